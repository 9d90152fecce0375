"""Bad input gets a clear AWS-style error, and nothing is stored or lost."""

import gzip
import json

import botocore.exceptions
import pytest

from conftest import generate

GOOD = generate(3, seed=5)


def stored(server):
    return server.metrics()["cairn_ingested_records_total"]


@pytest.mark.parametrize("body,status,code", [
    (b'{"Records":[{"eventTime":', 400, "SerializationException"),
    (b'not json at all', 400, "SerializationException"),
    (b'{"Records":{"a":1}}', 400, "SerializationException"),
    (b'{"Records":[], "Extra": 1}', 400, "SerializationException"),
    (b'[1,2,3]', 400, "SerializationException"),
    # Records found in one pass without a full parse: a body that is not JSON
    # is still refused whole, even where a record's first problem is a field's type.
    (('{"Records":[' + GOOD[0] + ',{"eventTime":1,"x":tru}]}').encode(), 400, "SerializationException"),
    (('{"Records":[' + GOOD[0] + ',{"a":1]]}').encode(), 400, "SerializationException"),
    (('{"Records":[' + GOOD[0] + " " + GOOD[1] + "]}").encode(), 400, "SerializationException"),
    (('{"Records":[' + GOOD[0] + ',{"a":"x\u0001"}]}').encode(), 400, "SerializationException"),
    (('{"Records":[' + GOOD[0] + ']} trailing').encode(), 400, "SerializationException"),
])
def test_malformed_bodies(server, body, status, code):
    got_status, answer = server.ingest_raw(body)
    assert (got_status, answer.get("__type")) == (status, code), answer
    assert answer["message"]
    assert stored(server) == 0


def test_per_record_errors_are_reported_and_the_rest_stored(server):
    records = [
        GOOD[0],
        '{"eventSource":"s3.amazonaws.com","eventName":"GetObject"}',
        '{"eventTime":12345,"eventSource":"s3.amazonaws.com","eventName":"GetObject"}',
        '{"eventTime":"2024-01-01T00:00:00Z","eventSource":["x"],"eventName":"GetObject"}',
        '{"eventTime":"2024-01-01T00:00:00Z","eventSource":"a","eventName":"b","recipientAccountId":"999999999999"}',
        '"just a string"',
        GOOD[1],
    ]
    status, answer = server.ingest_raw(('{"Records":[' + ",".join(records) + "]}").encode())
    assert status == 200, answer
    assert answer["accepted"] == 2
    codes = {f["index"]: f["errorCode"] for f in answer["failed"]}
    assert codes == {1: "FieldNotFound", 2: "InvalidData", 3: "InvalidData", 4: "InvalidRecipient", 5: "InvalidData"}
    assert "eventTime" in answer["failed"][0]["errorMessage"]
    assert stored(server) == 2


def test_per_record_errors_of_records_that_parse(server):
    """The same answers when every record parses (its records found in one pass
    with their limits checked, not by a full parse of the body)."""
    deep = '{"eventTime":"2024-01-01T00:00:00Z","eventSource":"a","eventName":"b","d":' + "[" * 200 + "]" * 200 + "}"
    records = [
        GOOD[0],
        '{"eventSource":"s3.amazonaws.com","eventName":"GetObject"}',
        '{"eventTime":"2024-01-01T00:00:00Z","eventSource":"a","eventName":"b","recipientAccountId":"999999999999"}',
        '{"eventTime":"2024-01-01T00:00:00Z","eventSource":"a","eventName":"b","s":"\\ud800"}',
        deep,
        '{"eventTime":"2024-01-01T00:00:00Z","eventSource":"a","eventName":"b","n":1e999}',
        GOOD[1],
    ]
    status, answer = server.ingest_raw(('{ "Records" : [ ' + " ,\n".join(records) + " ] }\n").encode())
    assert status == 200, answer
    assert answer["accepted"] == 2
    failed = {f["index"]: (f["errorCode"], f["errorMessage"]) for f in answer["failed"]}
    assert {i: code for i, (code, _) in failed.items()} == {
        1: "FieldNotFound", 2: "InvalidRecipient", 3: "InvalidData", 4: "InvalidData", 5: "InvalidData"}
    assert "surrogate" in failed[3][1] and "deeper than 128" in failed[4][1] and "1e999" in failed[5][1], failed
    assert stored(server) == 2


def test_limits(server):
    too_many = ('{"Records":[' + ",".join([GOOD[0]] * 1001) + "]}").encode()
    status, answer = server.ingest_raw(too_many)
    assert status == 400 and answer["__type"] == "ValidationException", answer
    huge = json.loads(GOOD[0])
    huge["requestParameters"] = {"blob": "x" * (900 * 1024)}
    big_record = json.dumps(huge)
    too_big = ('{"Records":[' + ",".join([big_record] * 7) + "]}").encode()
    assert len(too_big) > 5 * 1024 * 1024
    status, answer = server.ingest_raw(too_big)
    assert status == 413 and answer["__type"] == "RequestEntityTooLargeException", (status, answer)
    # A gzip bomb is refused after 5 MiB of output, not inflated in memory.
    bomb = gzip.compress(b'{"Records":[' + b" " * (64 * 1024 * 1024) + b"]}")
    status, answer = server.ingest_raw(bomb, headers={"Content-Encoding": "gzip"})
    assert status == 413, (status, answer)
    assert stored(server) == 0
    # gzip within the limits is fine.
    status, answer = server.ingest_raw(gzip.compress(('{"Records":[' + GOOD[2] + "]}").encode()),
                                       headers={"Content-Encoding": "gzip"})
    assert status == 200 and answer == {"accepted": 1, "failed": []}


def test_a_body_far_over_the_limit_is_answered_not_cut(server):
    """A client that sends its whole body before reading the answer gets the 413,
    not a broken pipe: the server reads on past the limit before refusing. The body
    is several times the socket buffers, so a server that stopped reading at the
    limit would reset the connection under the client on every run."""
    record = json.loads(GOOD[0])
    record["requestParameters"] = {"blob": "y" * (900 * 1024)}
    body = ('{"Records":[' + ",".join([json.dumps(record)] * 26) + "]}").encode()
    assert len(body) > 22 * 1024 * 1024
    for _ in range(2):
        status, answer = server.ingest_raw(body)
        assert status == 413 and answer["__type"] == "RequestEntityTooLargeException", (status, answer)
    assert stored(server) == 0


def test_unsigned_and_tampered_requests_change_nothing(server):
    body = ('{"Records":[' + GOOD[0] + "]}").encode()
    status, answer = server.ingest_raw(body, sign=False)
    assert status == 403 and answer["__type"] == "MissingAuthenticationTokenException", answer
    status, answer = server.ingest_raw(body, secret="wrong-secret")
    assert status == 400 and answer["__type"] == "InvalidSignatureException", answer
    assert stored(server) == 0

    unknown = server.client("cloudtrail", access_key="AKIAUNKNOWNKEY000000")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        unknown.list_trails()
    assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"
    bad_secret = server.client("cloudtrail", secret_key="nope")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        bad_secret.create_trail(Name="trail-x1", S3BucketName="b")
    assert e.value.response["Error"]["Code"] == "InvalidSignatureException"
    s3 = server.client("s3", secret_key="nope")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.create_bucket(Bucket="never")
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert server.client("s3").list_buckets()["Buckets"] == []


def test_tampered_body_after_signing_is_refused(server):
    import botocore.auth, botocore.awsrequest, botocore.credentials, urllib.request, urllib.error
    from conftest import ACCESS_KEY, SECRET_KEY
    body = ('{"Records":[' + GOOD[0] + "]}").encode()
    req = botocore.awsrequest.AWSRequest(method="POST", url=server.endpoint + "/cairn/v1/records", data=body,
                                         headers={"Content-Type": "application/json"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY), "cloudtrail-data",
                            "us-east-1").add_auth(req)
    p = req.prepare()
    tampered = body.replace(b'"eventName":"', b'"eventName":"X')
    try:
        urllib.request.urlopen(urllib.request.Request(p.url, data=tampered, method="POST", headers=dict(p.headers)))
        raise AssertionError("a tampered body was accepted")
    except urllib.error.HTTPError as e:
        assert json.loads(e.read())["__type"] == "InvalidSignatureException"
    assert stored(server) == 0
