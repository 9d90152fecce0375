"""Connection hygiene (issue 11): idle and slow clients cannot exhaust the
server. Idle connections (new or kept alive) are closed after the header read
timeout; past max_connections new connections are closed at once and the
server keeps answering; a body that trickles in is answered 408; a malformed
chunked body is a 400, not a 413."""

import socket
import time

import botocore.auth
import botocore.awsrequest
import botocore.credentials

from conftest import ACCESS_KEY, ORG_CONFIG, SECRET_KEY, Server, wait_for

LIMITS = ORG_CONFIG + """
[limits]
max_connections = 16
header_read_timeout = "2s"
body_read_timeout = "2s"
"""


def connect(server):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return s


def closed_by_server(sock, within):
    """True if the server closes `sock` (EOF or reset) within `within` seconds."""
    sock.settimeout(within)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def signed_head(server, body, extra_headers=None):
    """Request line and headers of a signed ingest POST of `body`, as bytes."""
    request = botocore.awsrequest.AWSRequest(
        method="POST", url=server.endpoint + "/cairn/v1/records", data=body,
        headers={"Content-Type": "application/json"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY),
                            "cloudtrail-data", server.region).add_auth(request)
    headers = dict(request.headers)
    headers["Content-Length"] = str(len(body))
    headers.update(extra_headers or {})
    lines = [f"POST /cairn/v1/records HTTP/1.1", f"Host: 127.0.0.1:{server.port}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_idle_connections_are_closed_after_the_header_read_timeout(tmp_path):
    server = Server(tmp_path / "data", LIMITS).start()
    try:
        fresh = connect(server)
        assert closed_by_server(fresh, 6)
        kept = connect(server)
        kept.sendall(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
        kept.settimeout(5)
        assert kept.recv(65536).startswith(b"HTTP/1.1 200")
        # Kept alive, then idle: closed too.
        assert closed_by_server(kept, 6)
    finally:
        server.stop()


def test_connections_past_the_limit_are_closed_and_the_server_keeps_answering(tmp_path):
    server = Server(tmp_path / "data", LIMITS).start()
    held = []
    try:
        held = [connect(server) for _ in range(16)]
        time.sleep(0.3)
        extra = connect(server)
        assert closed_by_server(extra, 1.5), "a connection past the limit must be closed at once"
        held.pop().close()
        def refused_counted():
            try:
                return server.metrics()["cairn_connections_refused_total"] >= 1
            except OSError:
                return False

        wait_for(refused_counted, timeout=10, message="the refused connection counted")
        # The idle ones time out, and the server answers again.
        wait_for(lambda: server.aws("s3api", "list-buckets", check=False).returncode == 0,
                 timeout=20, message="service after idle connections expire")
    finally:
        for s in held:
            s.close()
        server.stop()


def test_a_trickling_body_is_answered_408_and_malformed_chunks_400(tmp_path):
    server = Server(tmp_path / "data", LIMITS).start()
    try:
        body = b'{"Records":[]}' * 20
        slow = connect(server)
        slow.sendall(signed_head(server, body))
        slow.sendall(body[:10])
        slow.settimeout(8)
        answer = slow.recv(65536)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"RequestTimeout" in answer

        chunked = connect(server)
        head = signed_head(server, b"{}", {"Transfer-Encoding": "chunked"})
        head = b"\r\n".join(l for l in head.split(b"\r\n") if not l.lower().startswith(b"content-length"))
        chunked.sendall(head + b"zz\r\nnot hex\r\n")
        chunked.settimeout(8)
        answer = chunked.recv(65536)
        assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    finally:
        server.stop()
