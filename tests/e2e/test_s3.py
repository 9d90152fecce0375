"""The S3 subset: what the AWS CLI needs to reach delivered logs."""

import gzip
import time

import botocore.exceptions
import pytest
import urllib.request
import urllib.error

from conftest import generate, wait_for


@pytest.fixture
def delivered_bucket(server):
    server.aws("s3api", "create-bucket", "--bucket", "logs")
    ct = server.client("cloudtrail")
    ct.create_trail(Name="trail", S3BucketName="logs", S3KeyPrefix="p", IsOrganizationTrail=True, IsMultiRegionTrail=True)
    ct.start_logging(Name="trail")
    server.ingest_lines(generate(500, seed=21))
    wait_for(lambda: server.metrics()["cairn_delivered_files_total"] > 0, message="a delivered file")
    time.sleep(1.5)
    return server


def test_bucket_operations(server):
    s3 = server.client("s3")
    s3.create_bucket(Bucket="one")
    s3.create_bucket(Bucket="two", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["one", "two"]
    s3.head_bucket(Bucket="one")
    assert s3.get_bucket_location(Bucket="one")["LocationConstraint"] is None
    assert s3.get_bucket_location(Bucket="two")["LocationConstraint"] == "eu-west-1"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_bucket(Bucket="nope")
    assert e.value.response["Error"]["Code"] == "404"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.list_objects(Bucket="nope")
    assert e.value.response["Error"]["Code"] == "NoSuchBucket"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.create_bucket(Bucket="Bad_Name")
    assert e.value.response["Error"]["Code"] == "InvalidBucketName"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket="one", Key="missing")
    assert e.value.response["Error"]["Code"] == "NoSuchKey"


def test_objects_listing_reading_and_ranges(delivered_bucket):
    server = delivered_bucket
    s3 = server.client("s3")
    v2 = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket="logs") for o in p.get("Contents", [])]
    v1 = [o["Key"] for p in s3.get_paginator("list_objects").paginate(Bucket="logs") for o in p.get("Contents", [])]
    assert v1 == v2 == sorted(v2) and v2
    small_pages = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(
        Bucket="logs", PaginationConfig={"PageSize": 2}) for o in p.get("Contents", [])]
    assert small_pages == v2
    v1_pages = [o["Key"] for p in s3.get_paginator("list_objects").paginate(
        Bucket="logs", PaginationConfig={"PageSize": 2}) for o in p.get("Contents", [])]
    assert v1_pages == v2
    top = s3.list_objects_v2(Bucket="logs", Prefix="p/AWSLogs/", Delimiter="/")
    assert [c["Prefix"] for c in top["CommonPrefixes"]] == ["p/AWSLogs/o-exampleorgid/"]
    key = v2[0]
    whole = s3.get_object(Bucket="logs", Key=key)["Body"].read()
    assert gzip.decompress(whole).startswith(b'{"Records":[')
    head = s3.head_object(Bucket="logs", Key=key)
    assert head["ContentLength"] == len(whole)
    part = s3.get_object(Bucket="logs", Key=key, Range="bytes=0-9")
    assert part["Body"].read() == whole[:10]
    assert part["ContentRange"] == f"bytes 0-9/{len(whole)}"
    assert s3.get_object(Bucket="logs", Key=key, Range="bytes=-5")["Body"].read() == whole[-5:]
    # The AWS CLI's high-level commands.
    out = server.aws("s3", "ls", "--recursive", "s3://logs/", expect_json=False)
    assert key in out
    import tempfile, os
    with tempfile.TemporaryDirectory() as d:
        server.aws("s3", "cp", f"s3://logs/{key}", os.path.join(d, "f.json.gz"), expect_json=False)
        assert open(os.path.join(d, "f.json.gz"), "rb").read() == whole
    # A presigned URL works without further signing; a tampered one does not.
    # A SigV4 presigned URL (SigV2 ones, the AWS CLI default, are tested in test_s3_presign.py).
    url = server.client("s3", signature_version="s3v4").generate_presigned_url("get_object", Params={"Bucket": "logs", "Key": key}, ExpiresIn=60)
    with urllib.request.urlopen(url) as r:
        assert r.read() == whole
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url.replace("X-Amz-Expires=60", "X-Amz-Expires=61"))
    assert e.value.code == 403
    s3.delete_object(Bucket="logs", Key=key)
    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_object(Bucket="logs", Key=key)
