"""Presigned URLs: the AWS CLI's `s3 presign` (SigV2 query authentication)
fetched with curl, and SigV4 URLs from boto3; tampered and expired ones get
S3's own errors, expiry judged by the server's clock."""

import re
import subprocess
import time
import urllib.parse

import pytest


@pytest.fixture
def obj(server):
    s3 = server.client("s3")
    s3.create_bucket(Bucket="bkt")
    body = b'{"Records":[]}' * 1000
    s3.put_object(Bucket="bkt", Key="AWSLogs/x y+z.json", Body=body)
    return server, body


def curl(url, method="GET"):
    args = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-X", method, url]
    if method == "HEAD":
        args = ["curl", "-sS", "-I", "-w", "\n%{http_code}", url]
    out = subprocess.run(args, capture_output=True, check=True, timeout=60).stdout
    body, _, status = out.rpartition(b"\n")
    return int(status), body


def error(body):
    text = body.decode()
    code = re.search(r"<Code>(.*?)</Code>", text)
    message = re.search(r"<Message>(.*?)</Message>", text)
    return code and code.group(1), message and message.group(1)


def presign(server, *args):
    return server.aws("s3", "presign", *args, expect_json=False).strip()


def test_cli_presign_is_sigv2_and_works_with_curl(obj):
    server, body = obj
    url = presign(server, "s3://bkt/AWSLogs/x y+z.json")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert set(query) == {"AWSAccessKeyId", "Signature", "Expires"}, url  # SigV2, the CLI's default
    assert curl(url) == (200, body)
    # The method is signed: a GET URL does not authorise a HEAD, a HEAD URL does.
    assert curl(url, "HEAD")[0] == 403
    head_url = server.client("s3", signature_version="s3").generate_presigned_url(
        "head_object", Params={"Bucket": "bkt", "Key": "AWSLogs/x y+z.json"}, ExpiresIn=60)
    assert "AWSAccessKeyId=" in head_url
    status, head = curl(head_url, "HEAD")
    assert status == 200 and f"content-length: {len(body)}".encode() in head.lower()


def test_tampered_sigv2_urls_are_refused(obj):
    server, body = obj
    url = presign(server, "s3://bkt/AWSLogs/x y+z.json")
    split = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(split.query))
    signature = query["Signature"]
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    for tampered in [
        url.replace(urllib.parse.quote(signature, safe=""), urllib.parse.quote(flipped, safe="")),
        url.replace(f"Expires={query['Expires']}", f"Expires={int(query['Expires']) + 3600}"),
        url.replace("/AWSLogs/", "/AWSLogz/"),
    ]:
        assert tampered != url
        status, answer = curl(tampered)
        assert status == 403, answer
        assert error(answer) == ("SignatureDoesNotMatch", "The request signature we calculated does not match "
                                 "the signature you provided. Check your key and signing method."), answer
    # A write is never authorised by a SigV2 URL.
    status, answer = curl(url, "PUT")
    assert status == 400 and error(answer)[0] == "InvalidRequest"
    assert server.client("s3").get_object(Bucket="bkt", Key="AWSLogs/x y+z.json")["Body"].read() == body


def test_expired_sigv2_url_is_refused(obj):
    server, _ = obj
    url = presign(server, "s3://bkt/AWSLogs/x y+z.json", "--expires-in", "1")
    time.sleep(2.2)
    status, answer = curl(url)
    assert (status, error(answer)) == (403, ("AccessDenied", "Request has expired")), answer


def test_sigv4_presigned_url_expires_through_the_server(obj):
    server, body = obj
    s3 = server.client("s3", signature_version="s3v4")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "bkt", "Key": "AWSLogs/x y+z.json"},
                                    ExpiresIn=3)
    assert "X-Amz-Signature=" in url
    assert curl(url) == (200, body)
    tampered = url.replace("X-Amz-Expires=3", "X-Amz-Expires=4")
    status, answer = curl(tampered)
    assert (status, error(answer)[0]) == (403, "SignatureDoesNotMatch"), answer
    time.sleep(4.2)
    status, answer = curl(url)
    assert (status, error(answer)) == (403, ("AccessDenied", "Request has expired")), answer
