"""Every authentication refusal answers exactly what AWS answers, per protocol:
the status code and the error code, for an unsigned request, a bad signature,
an unknown key, a skewed clock, an expired presigned URL and a malformed
Authorization header. The table is AWS's behaviour as `crates/auth`
documents it (`AuthError`); nothing here is read back from the server's code.
Every refused request changes nothing."""

import datetime
import re
import urllib.error
import urllib.request
from unittest import mock

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest

from conftest import ACCESS_KEY, SECRET_KEY

# One request per protocol family: (service signing name, method, path, body, headers).
JSON = ("cloudtrail", "POST", "/", b"{}", {
    "X-Amz-Target": "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.ListTrails",
    "Content-Type": "application/x-amz-json-1.1"})
INGEST = ("cloudtrail-data", "POST", "/cairn/v1/records", b'{"Records":[]}', {"Content-Type": "application/json"})
QUERY = ("sts", "POST", "/", b"Action=GetCallerIdentity&Version=2011-06-15",
         {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
S3 = ("s3", "GET", "/", b"", {})

# What AWS answers: (status, code) per refusal and protocol family.
EXPECTED = {
    "unsigned": {"json": (403, "MissingAuthenticationTokenException"),
                 "query": (403, "MissingAuthenticationToken"),
                 "s3": (403, "AccessDenied")},
    "bad signature": {"json": (400, "InvalidSignatureException"),
                      "query": (403, "SignatureDoesNotMatch"),
                      "s3": (403, "SignatureDoesNotMatch")},
    "unknown key": {"json": (400, "UnrecognizedClientException"),
                    "query": (403, "InvalidClientTokenId"),
                    "s3": (403, "InvalidAccessKeyId")},
    "skewed": {"json": (400, "InvalidSignatureException"),
               "query": (403, "SignatureDoesNotMatch"),
               "s3": (403, "RequestTimeTooSkewed")},
    "malformed": {"json": (400, "IncompleteSignatureException"),
                  "query": (400, "IncompleteSignature"),
                  "s3": (400, "AuthorizationHeaderMalformed")},
    "expired presigned": {"json": (400, "InvalidSignatureException"),
                          "query": (403, "SignatureDoesNotMatch"),
                          "s3": (403, "AccessDenied")},
}

FAMILIES = [("json", JSON), ("json", INGEST), ("query", QUERY), ("s3", S3)]


def signed(server, request, refusal):
    """The request as a client making `refusal` would send it: (url, headers, body)."""
    service, method, path, body, headers = request
    url = server.endpoint + path
    access_key, secret = ACCESS_KEY, SECRET_KEY
    when = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    if refusal == "unsigned":
        return url, dict(headers), body, method
    if refusal == "bad signature":
        secret = "not-the-secret-key-0123456789abcdefghijk"
    if refusal == "unknown key":
        access_key = "AKIAUNKNOWNKEY000000"
    if refusal == "skewed":
        when -= datetime.timedelta(minutes=20)
    creds = botocore.credentials.Credentials(access_key, secret)
    if refusal == "expired presigned" and service == "sts":
        # A presigned query request is a GET with the form in the URL.
        method, url, body, headers = "GET", url + "?" + body.decode(), b"", {}
    req = botocore.awsrequest.AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    if refusal == "expired presigned":
        signer = botocore.auth.SigV4QueryAuth(creds, service, server.region, expires=60)
        when -= datetime.timedelta(minutes=10)
    else:
        signer = botocore.auth.SigV4Auth(creds, service, server.region)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        signer.add_auth(req)
    prepared = req.prepare()
    out = dict(prepared.headers)
    if refusal == "malformed":
        # No SignedHeaders: the Authorization header is incomplete.
        out["Authorization"] = re.sub(r"SignedHeaders=[^,]*, ", "", out["Authorization"])
    return prepared.url, out, body, method


def send(url, headers, body, method):
    req = urllib.request.Request(url, data=body or None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def error_code(family, payload):
    text = payload.decode(errors="replace")
    if family == "json":
        import json
        return json.loads(text)["__type"].split("#")[-1]
    match = re.search(r"<Code>([^<]+)</Code>", text)
    assert match, text
    return match.group(1)


@pytest.mark.parametrize("refusal", list(EXPECTED))
def test_every_refusal_answers_aws_status_and_code_per_protocol(server, refusal):
    answers = {}
    for family, request in FAMILIES:
        url, headers, body, method = signed(server, request, refusal)
        status, payload = send(url, headers, body, method)
        answers[request[0]] = (status, error_code(family, payload) if status >= 400 else payload[:200])
    expected = {request[0]: EXPECTED[refusal][family] for family, request in FAMILIES}
    assert answers == expected, answers
    # Nothing was done on anyone's behalf.
    assert server.client("cloudtrail").list_trails()["Trails"] == []
    assert server.metrics().get("cairn_ingested_records_total", 0) == 0


def test_the_same_requests_signed_properly_succeed(server):
    """The control: each request of the table succeeds when signed right, so
    the refusals above are about the signature, nothing else."""
    for _family, request in FAMILIES:
        service, method, path, body, headers = request
        req = botocore.awsrequest.AWSRequest(method=method, url=server.endpoint + path, data=body,
                                             headers=dict(headers))
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY), service,
                                server.region).add_auth(req)
        prepared = req.prepare()
        status, payload = send(prepared.url, dict(prepared.headers), body, method)
        assert status == 200, (service, status, payload[:300])
