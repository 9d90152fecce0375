"""A local HTTP endpoint for SNS subscriptions (loopback only), and the
signature check AWS tells receivers to make, done independently of Cairn's
code with the `cryptography` package."""

import base64
import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

SIGNED_FIELDS = {
    "Notification": ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"],
    "SubscriptionConfirmation": ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"],
    "UnsubscribeConfirmation": ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"],
}


def verify(message):
    """Checks an SNS message's signature against the certificate at its
    SigningCertURL, as AWS's guide describes; raises when it does not hold."""
    text = ""
    for field in SIGNED_FIELDS[message["Type"]]:
        if field in message:
            text += f"{field}\n{message[field]}\n"
    with urllib.request.urlopen(message["SigningCertURL"], timeout=10) as r:
        certificate = x509.load_pem_x509_certificate(r.read())
    digest = hashes.SHA1() if message["SignatureVersion"] == "1" else hashes.SHA256()
    certificate.public_key().verify(base64.b64decode(message["Signature"]), text.encode(), padding.PKCS1v15(),
                                    digest)
    return True


class Receiver:
    """Records every POST (headers and parsed JSON body); answers `status`."""

    def __init__(self, status=200):
        self.status = status
        self.received = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length).decode()
                with receiver.lock:
                    status = receiver.status
                    receiver.received.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body,
                                              "at": time.time(), "status": status})
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sns"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def messages(self, kind=None, accepted_only=False):
        with self.lock:
            out = [json.loads(r["body"]) for r in self.received if not accepted_only or r["status"] < 300]
        return [m for m in out if kind is None or m.get("Type") == kind]

    def wait_for(self, kind, count=1, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = self.messages(kind)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{count} {kind} message(s) not received in {timeout}s; got {self.messages()}")

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
