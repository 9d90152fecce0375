"""Objects written by clients: PutObject with checksums, multipart through
`aws s3 cp`, `aws s3 sync` of a CloudTrail export both ways, CopyObject,
DeleteObjects, ListParts and abort, and the key length bound."""

import base64
import filecmp
import hashlib
import os
import subprocess
import sys
import urllib.error
import urllib.request
import zlib

import botocore.exceptions
import pytest

from conftest import GEN


@pytest.fixture
def s3(server):
    client = server.client("s3")
    client.create_bucket(Bucket="bkt")
    return client


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def test_put_object_checks_content_md5_and_checksums(s3):
    body = b"hello world"
    put = s3.put_object(Bucket="bkt", Key="k", Body=body, Metadata={"Color": "blue"}, ContentType="text/plain")
    # botocore 1.43 sends x-amz-checksum-crc32 by default; S3 echoes it.
    assert put["ChecksumCRC32"] == base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket="bkt", Key="k")
    assert got["Body"].read() == body and got["Metadata"] == {"color": "blue"}
    assert got["ContentType"] == "text/plain" and got["ETag"] == put["ETag"]
    listed = s3.list_objects_v2(Bucket="bkt")["Contents"]
    assert [(o["Key"], o["ETag"]) for o in listed] == [("k", put["ETag"])]
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    s3.put_object(Bucket="bkt", Key="m", Body=body, ContentMD5=md5)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket="bkt", Key="m2", Body=b"other", ContentMD5=md5)
    assert error_code(e) == "BadDigest"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket="bkt", Key="m2", Body=b"other", ContentMD5="bm90LW1kNQ==")
    assert error_code(e) == "InvalidDigest"
    for algorithm, value in [("SHA256", base64.b64encode(hashlib.sha256(body).digest()).decode()),
                             ("SHA1", base64.b64encode(hashlib.sha1(body).digest()).decode())]:
        s3.put_object(Bucket="bkt", Key="c", Body=body, ChecksumAlgorithm=algorithm)
        with pytest.raises(botocore.exceptions.ClientError) as e:
            s3.put_object(Bucket="bkt", Key="c2", Body=b"other", **{f"Checksum{algorithm}": value})
        assert error_code(e) == "BadDigest", algorithm
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="bkt")["Contents"]] == ["c", "k", "m"]


def test_aws_chunked_upload_with_trailing_checksum(server, s3):
    """The body shape botocore uses over HTTPS: aws-chunked, checksum in an unsigned trailer."""
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    from conftest import ACCESS_KEY, SECRET_KEY
    payload = os.urandom(100_000)
    crc = base64.b64encode(zlib.crc32(payload).to_bytes(4, "big")).decode()

    def send(trailer_value):
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(payload[i:i + 65536]), payload[i:i + 65536])
                          for i in range(0, len(payload), 65536))
        body = chunks + b"0\r\n" + f"x-amz-checksum-crc32:{trailer_value}\r\n\r\n".encode()
        request = botocore.awsrequest.AWSRequest(method="PUT", url=server.endpoint + "/bkt/chunked", data=body,
                                                 headers={"Content-Encoding": "aws-chunked",
                                                          "X-Amz-Trailer": "x-amz-checksum-crc32",
                                                          "X-Amz-Decoded-Content-Length": str(len(payload)),
                                                          "X-Amz-Content-SHA256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER"})
        botocore.auth.S3SigV4Auth(botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY), "s3",
                                  server.region).add_auth(request)
        prepared = request.prepare()
        req = urllib.request.Request(prepared.url, data=body, method="PUT", headers=dict(prepared.headers))
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.headers.get("x-amz-checksum-crc32")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    status, echoed = send(crc)
    assert status == 200 and echoed == crc
    assert s3.get_object(Bucket="bkt", Key="chunked")["Body"].read() == payload
    status, answer = send("AAAAAA==")
    assert status == 400 and "BadDigest" in answer


def test_key_too_long(s3):
    longest = "/".join(["k" * 200] * 5) + "k" * 20  # 1024 bytes (file names stay under 255)
    assert len(longest) == 1024
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket="bkt", Key=longest + "k", Body=b"x")
    assert error_code(e) == "KeyTooLongError"
    s3.put_object(Bucket="bkt", Key=longest, Body=b"x")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket="bkt", Key=longest + "k")
    assert error_code(e) == "KeyTooLongError"
    # Keys that would leave the bucket's directory stay refused.
    with pytest.raises(botocore.exceptions.ClientError):
        s3.put_object(Bucket="bkt", Key="../escape", Body=b"x")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="bkt")["Contents"]] == [longest]


def test_copy_object(s3):
    s3.put_object(Bucket="bkt", Key="src", Body=b"payload", Metadata={"a": "1"}, ContentType="text/plain")
    s3.create_bucket(Bucket="other")
    out = s3.copy_object(Bucket="other", Key="copied", CopySource={"Bucket": "bkt", "Key": "src"})
    assert out["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(b"payload").hexdigest()}"'
    got = s3.get_object(Bucket="other", Key="copied")
    assert got["Body"].read() == b"payload" and got["Metadata"] == {"a": "1"} and got["ContentType"] == "text/plain"
    s3.copy_object(Bucket="bkt", Key="replaced", CopySource="bkt/src", MetadataDirective="REPLACE",
                   Metadata={"b": "2"}, ContentType="application/json")
    got = s3.get_object(Bucket="bkt", Key="replaced")
    assert got["Metadata"] == {"b": "2"} and got["ContentType"] == "application/json"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.copy_object(Bucket="bkt", Key="src", CopySource="bkt/src")
    assert error_code(e) == "InvalidRequest"
    etag = s3.head_object(Bucket="bkt", Key="src")["ETag"]
    s3.copy_object(Bucket="bkt", Key="cond", CopySource="bkt/src", CopySourceIfMatch=etag)
    for condition in [{"CopySourceIfMatch": '"0123"'}, {"CopySourceIfNoneMatch": etag}]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            s3.copy_object(Bucket="bkt", Key="cond2", CopySource="bkt/src", **condition)
        assert error_code(e) == "PreconditionFailed", condition
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.copy_object(Bucket="bkt", Key="x", CopySource="bkt/missing")
    assert error_code(e) == "NoSuchKey"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.copy_object(Bucket="bkt", Key="x", CopySource="nobucket/src")
    assert error_code(e) == "NoSuchBucket"


def test_delete_objects(server, s3):
    for k in ["a", "b", "c/d"]:
        s3.put_object(Bucket="bkt", Key=k, Body=k.encode())
    out = s3.delete_objects(Bucket="bkt", Delete={"Objects": [{"Key": "a"}, {"Key": "c/d"}, {"Key": "never"},
                                                            {"Key": "b", "VersionId": "v1"}]})
    assert sorted(d["Key"] for d in out["Deleted"]) == ["a", "c/d", "never"]
    assert [(e["Key"], e["Code"]) for e in out["Errors"]] == [("b", "NoSuchVersion")]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="bkt")["Contents"]] == ["b"]
    quiet = s3.delete_objects(Bucket="bkt", Delete={"Objects": [{"Key": "b"}], "Quiet": True})
    assert "Deleted" not in quiet and "Errors" not in quiet
    assert "Contents" not in s3.list_objects_v2(Bucket="bkt")
    # The real AWS CLI's `s3 rm --recursive` uses DeleteObjects.
    s3.put_object(Bucket="bkt", Key="x/1", Body=b"1")
    s3.put_object(Bucket="bkt", Key="x/2", Body=b"2")
    s3.put_object(Bucket="bkt", Key="y", Body=b"3")
    out = server.aws("s3", "rm", "--recursive", "s3://bkt/x/", expect_json=False)
    assert "delete: s3://bkt/x/1" in out and "delete: s3://bkt/x/2" in out
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="bkt")["Contents"]] == ["y"]


def test_multipart_list_parts_abort_and_complete_errors(s3):
    key = "big/object"
    upload = s3.create_multipart_upload(Bucket="bkt", Key=key, Metadata={"m": "1"})["UploadId"]
    part1 = os.urandom(5 * 1024 * 1024)
    part2 = os.urandom(1000)
    e1 = s3.upload_part(Bucket="bkt", Key=key, UploadId=upload, PartNumber=1, Body=part1)["ETag"]
    e2 = s3.upload_part(Bucket="bkt", Key=key, UploadId=upload, PartNumber=2, Body=part2)["ETag"]
    parts = s3.list_parts(Bucket="bkt", Key=key, UploadId=upload)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts["Parts"]] == [(1, e1, len(part1)), (2, e2, 1000)]
    # botocore sends each part's CRC32; it is kept and must match on completion.
    crc2 = base64.b64encode(zlib.crc32(part2).to_bytes(4, "big")).decode()
    assert parts["Parts"][1]["ChecksumCRC32"] == crc2
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.complete_multipart_upload(Bucket="bkt", Key=key, UploadId=upload, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2, "ChecksumCRC32": "AAAAAA=="}]})
    assert error_code(e) == "InvalidPart"
    page = s3.list_parts(Bucket="bkt", Key=key, UploadId=upload, MaxParts=1)
    assert page["IsTruncated"] and [p["PartNumber"] for p in page["Parts"]] == [1]
    # In-progress uploads are listed as uploads, never as objects.
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket="bkt")["Uploads"]] == [upload]
    assert "Contents" not in s3.list_objects_v2(Bucket="bkt")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.complete_multipart_upload(Bucket="bkt", Key=key, UploadId=upload,
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e2}]})
    assert error_code(e) == "InvalidPart"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.complete_multipart_upload(Bucket="bkt", Key=key, UploadId=upload, MultipartUpload={
            "Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]})
    assert error_code(e) == "InvalidPartOrder"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.complete_multipart_upload(Bucket="bkt", Key=key, UploadId=upload, MultipartUpload={
            "Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 3, "ETag": e2}]})
    assert error_code(e) == "InvalidPart"
    done = s3.complete_multipart_upload(Bucket="bkt", Key=key, UploadId=upload, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2, "ChecksumCRC32": crc2}]})
    digests = b"".join(hashlib.md5(p).digest() for p in (part1, part2))
    assert done["ETag"] == f'"{hashlib.md5(digests).hexdigest()}-2"'
    got = s3.get_object(Bucket="bkt", Key=key)
    assert got["Body"].read() == part1 + part2 and got["Metadata"] == {"m": "1"} and got["ETag"] == done["ETag"]
    assert "Uploads" not in s3.list_multipart_uploads(Bucket="bkt")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.list_parts(Bucket="bkt", Key=key, UploadId=upload)
    assert error_code(e) == "NoSuchUpload"

    # Abort: the parts go, nothing appears.
    upload = s3.create_multipart_upload(Bucket="bkt", Key="aborted")["UploadId"]
    s3.upload_part(Bucket="bkt", Key="aborted", UploadId=upload, PartNumber=1, Body=b"x")
    s3.abort_multipart_upload(Bucket="bkt", Key="aborted", UploadId=upload)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.upload_part(Bucket="bkt", Key="aborted", UploadId=upload, PartNumber=2, Body=b"x")
    assert error_code(e) == "NoSuchUpload"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.abort_multipart_upload(Bucket="bkt", Key="aborted", UploadId="../../etc")
    assert error_code(e) == "NoSuchUpload"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="bkt")["Contents"]] == [key]
    # A bucket with an upload in progress is not empty.
    s3.create_multipart_upload(Bucket="bkt", Key="pending")
    s3.delete_object(Bucket="bkt", Key=key)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.delete_bucket(Bucket="bkt")
    assert error_code(e) == "BucketNotEmpty"


def test_cli_cp_of_a_large_file_is_multipart_and_byte_identical(server, s3, tmp_path):
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(50 * 1000 * 1000))
    server.aws("s3", "cp", str(source), "s3://bkt/exports/big.bin", expect_json=False)
    head = s3.head_object(Bucket="bkt", Key="exports/big.bin")
    assert head["ContentLength"] == source.stat().st_size
    assert head["ETag"].endswith('-6"'), head["ETag"]  # 8 MiB parts: multipart
    back = tmp_path / "back.bin"
    server.aws("s3", "cp", "s3://bkt/exports/big.bin", str(back), expect_json=False)
    assert filecmp.cmp(source, back, shallow=False)
    # An S3-to-S3 copy of a large object is a multipart copy (UploadPartCopy).
    server.aws("s3", "cp", "s3://bkt/exports/big.bin", "s3://bkt/exports/copy.bin", expect_json=False)
    assert s3.head_object(Bucket="bkt", Key="exports/copy.bin")["ETag"] == head["ETag"]
    copied = tmp_path / "copied.bin"
    server.aws("s3", "cp", "s3://bkt/exports/copy.bin", str(copied), expect_json=False)
    assert filecmp.cmp(source, copied, shallow=False)


def test_cli_sync_of_a_cloudtrail_export_both_ways(server, s3, tmp_path):
    export = tmp_path / "export"
    subprocess.run([sys.executable, str(GEN), "--count", "3000", "--seed", "7", "--format", "aws-layout",
                    "--per-file", "100", "--out", str(export)], check=True, capture_output=True)
    files = sorted(p.relative_to(export).as_posix() for p in export.rglob("*") if p.is_file())
    assert len(files) >= 20 and any("/CloudTrail/" in f for f in files), files[:5]
    server.aws("s3", "sync", str(export), "s3://bkt/import/", expect_json=False)
    listed = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket="bkt", Prefix="import/")
              for o in p.get("Contents", [])]
    assert listed == sorted("import/" + f for f in files)
    back = tmp_path / "back"
    server.aws("s3", "sync", "s3://bkt/import/", str(back), expect_json=False)
    compared = filecmp.dircmp(export, back)

    def same(c):
        assert not c.left_only and not c.right_only and not c.diff_files and not c.funny_files, c.report()
        _, mismatch, errors = filecmp.cmpfiles(c.left, c.right, c.common_files, shallow=False)
        assert not mismatch and not errors
        for sub in c.subdirs.values():
            same(sub)
    same(compared)
    # A second sync finds nothing to do.
    out = server.aws("s3", "sync", str(export), "s3://bkt/import/", expect_json=False)
    assert "upload:" not in out


def test_upload_size_bound(s3):
    """A PutObject body may be 64 MiB (read into memory before the signature
    is checked); more is EntityTooLarge, and the AWS CLI goes multipart long before."""
    s3.put_object(Bucket="bkt", Key="max", Body=b"x" * (64 * 1024 * 1024))
    assert s3.head_object(Bucket="bkt", Key="max")["ContentLength"] == 64 * 1024 * 1024
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket="bkt", Key="over", Body=b"x" * (64 * 1024 * 1024 + 1))
    assert error_code(e) == "EntityTooLarge"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="bkt")["Contents"]] == ["max"]
