#!/usr/bin/env python3
"""Generate SigV2 presigned-URL vectors for cairn-auth with botocore's own
`HmacV1QueryAuth` signer (what `aws s3 presign` uses by default).

Each vector is a presigned URL as botocore writes it, split into method, raw
path and raw query, with the headers a plain HTTP client (curl) sends when it
fetches it, the secret that signed it, the `Expires` instant and the
signature botocore computed. The Rust test replays each through
`parse_sigv2_query` + `verify_sigv2`, so the verifier is checked against the
reference client, not against our own reading of S3's documentation.

Usage: gen_sigv2_vectors.py [OUTPUT_JSON]  (default: sigv2_vectors.json next
to this script). The clock is pinned, so the output is deterministic for a
given botocore version.
"""

import json
import os
import sys
import time
from urllib.parse import parse_qs, urlsplit

for _name in list(os.environ):
    if _name.startswith("AWS_"):
        del os.environ[_name]
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull

import botocore  # noqa: E402
import botocore.session  # noqa: E402
from botocore.auth import HmacV1QueryAuth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE//token+with/odd=chars"
SIGNED_AT = 1_710_505_845  # 2024-03-15T12:30:45Z
HOST = "127.0.0.1:9000"

time.time = lambda: float(SIGNED_AT)


def vector(name, note, url, method="GET", expires=3600, secret=SECRET_KEY):
    split = urlsplit(url)
    query = parse_qs(split.query, keep_blank_values=True)
    return {
        "name": name,
        "note": note,
        "method": method,
        "path": split.path,
        "query": split.query,
        # What curl sends for the URL: the host, and nothing signed.
        "headers": [["host", split.netloc], ["user-agent", "curl/8"], ["accept", "*/*"]],
        "access_key_id": query["AWSAccessKeyId"][0],
        "secret_access_key": secret,
        "expires": int(query["Expires"][0]),
        "signature": query["Signature"][0],
        "signed_at": SIGNED_AT,
    }


def raw(name, note, path, query="", method="GET", expires=3600, token=None):
    creds = Credentials(ACCESS_KEY, SECRET_KEY, token)
    url = f"http://{HOST}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url)
    HmacV1QueryAuth(creds, expires=expires).add_auth(request)
    return vector(name, note, request.url, method=method, expires=expires)


def client_url(name, note, operation, params, expires=3600, token=None):
    session = botocore.session.get_session()
    client = session.create_client(
        "s3", region_name="us-east-1", endpoint_url=f"http://{HOST}",
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, aws_session_token=token,
        config=Config(signature_version="s3", s3={"addressing_style": "path"}),
    )
    url = client.generate_presigned_url(operation, Params=params, ExpiresIn=expires)
    method = "HEAD" if operation == "head_object" else "GET"
    return vector(name, note, url, method=method, expires=expires)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "sigv2_vectors.json")
    vectors = [
        raw("raw-get", "plain object GET", "/bucket/AWSLogs/123456789012/file.json.gz"),
        raw("raw-head", "HEAD signs its own method", "/bucket/key", method="HEAD"),
        raw("raw-encoded-path", "the path is signed as sent, percent-encoded", "/bucket/a%20key/%C3%A9t%C3%A9.txt"),
        raw("raw-subresources", "signed sub-resources, sorted, values decoded; other parameters left out",
            "/bucket/key", query="versionId=null&response-content-type=text%2Fplain&x-id=GetObject&acl"),
        raw("raw-short", "a one-second lifetime", "/bucket/key", expires=1),
        raw("raw-token", "a session token travels as x-amz-security-token in the query and is signed",
            "/bucket/key", token=SESSION_TOKEN),
        client_url("client-get-object", "s3.generate_presigned_url('get_object'), as aws s3 presign",
                   "get_object", {"Bucket": "logs", "Key": "AWSLogs/o-exampleorgid/123/CloudTrail/x y+z.json.gz"}),
        client_url("client-head-object", "s3.generate_presigned_url('head_object')",
                   "head_object", {"Bucket": "logs", "Key": "k"}),
        client_url("client-response-overrides", "response-content-disposition and -type are sub-resources",
                   "get_object", {"Bucket": "logs", "Key": "k", "ResponseContentType": "application/json",
                                  "ResponseContentDisposition": "attachment; filename=\"a b.json\""}),
        client_url("client-token", "temporary credentials", "get_object", {"Bucket": "logs", "Key": "k"},
                   token=SESSION_TOKEN),
    ]
    with open(out, "w") as f:
        json.dump({"botocore_version": botocore.__version__, "vectors": vectors}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
