"""Buckets on an S3-compatible store (moto's server, started here on loopback):
delivery lands there, an outage is retried and reported, nothing is dropped."""

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import boto3
import pytest

from conftest import free_port, generate, split_records, wait_for


class Moto:
    def __init__(self):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self):
        exe = shutil.which("moto_server")
        cmd = [exe] if exe else [sys.executable, "-m", "moto.server"]
        self.proc = subprocess.Popen(cmd + ["-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        def up():
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=1)
                return True
            except urllib.error.HTTPError:
                return True
            except OSError:
                return False
        wait_for(up, timeout=60, message="moto_server")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def s3(self):
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="moto", aws_secret_access_key="moto")


@pytest.fixture
def moto():
    m = Moto().start()
    yield m
    m.stop()


def config_for(moto):
    return f"""
account_id = "123456789012"
[organization]
id = "o-exampleorgid"
member_accounts = ["210987654321", "111122223333", "444455556666"]
[delivery]
interval = "1s"
[storage]
url = "s3://backing/cairn"
[storage.options]
aws_endpoint = "{moto.endpoint}"
aws_allow_http = "true"
aws_access_key_id = "moto"
aws_secret_access_key = "moto"
aws_region = "us-east-1"
aws_virtual_hosted_style_request = "false"
"""


def backing_objects(moto):
    s3 = moto.s3()
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="backing", Prefix="cairn/"):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def test_delivery_to_s3_and_an_outage(moto, make_server):
    moto.s3().create_bucket(Bucket="backing")
    server = make_server(config_for(moto)).start()
    server.client("s3").create_bucket(Bucket="audit")
    ct = server.client("cloudtrail")
    ct.create_trail(Name="trail", S3BucketName="audit", IsOrganizationTrail=True, IsMultiRegionTrail=True)
    ct.start_logging(Name="trail")
    first = generate(400, seed=31)
    management = lambda lines: [l for l in lines if json.loads(l)["eventCategory"] == "Management"]
    server.ingest_lines(first)
    n_first = len(management(first))
    wait_for(lambda: server.metrics()["cairn_delivered_records_total"] >= n_first, message="delivery to S3")
    keys = backing_objects(moto)
    assert keys and all(k.startswith("cairn/audit/AWSLogs/o-exampleorgid/") for k in keys), keys
    body = moto.s3().get_object(Bucket="backing", Key=keys[0])["Body"].read()
    assert split_records(gzip.decompress(body))
    # Cairn's own S3 API reads the same objects.
    assert len(server.delivered("audit")) == len(keys)

    # Outage: the store goes away; ingest still succeeds; status reports the failure.
    moto.stop()
    second = generate(300, seed=32)
    server.ingest_lines(second)
    wait_for(lambda: "LatestDeliveryError" in ct.get_trail_status(Name="trail"), timeout=60,
             message="a delivery error in GetTrailStatus")
    # The store comes back (empty: moto keeps nothing), and delivery resumes without loss.
    moto.start()
    moto.s3().create_bucket(Bucket="backing")
    n_total = n_first + len(management(second))
    wait_for(lambda: server.metrics()["cairn_delivered_records_total"] >= n_total, timeout=120,
             message="delivery after the outage")
    status = ct.get_trail_status(Name="trail")
    assert "LatestDeliveryError" not in status
    delivered = [json.loads(t)["eventID"] for recs in server.delivered("audit").values() for t in recs]
    assert sorted(delivered) == sorted(json.loads(l)["eventID"] for l in management(second))


def test_client_objects_on_the_s3_backend(moto, make_server, tmp_path):
    """PutObject, multipart (aws s3 cp), CopyObject and DeleteObjects when the
    buckets live on an S3-compatible store; uploads in progress stay hidden."""
    import hashlib
    import filecmp
    moto.s3().create_bucket(Bucket="backing")
    server = make_server(config_for(moto)).start()
    s3 = server.client("s3")
    s3.create_bucket(Bucket="exports")
    put = s3.put_object(Bucket="exports", Key="small.json", Body=b'{"a":1}', Metadata={"m": "1"},
                        ContentType="application/json")
    got = s3.get_object(Bucket="exports", Key="small.json")
    assert got["Body"].read() == b'{"a":1}' and got["Metadata"] == {"m": "1"}
    assert got["ContentType"] == "application/json" and got["ETag"] == put["ETag"]

    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(20 * 1000 * 1000))
    server.aws("s3", "cp", str(source), "s3://exports/big.bin", expect_json=False)
    head = s3.head_object(Bucket="exports", Key="big.bin")
    assert head["ContentLength"] == source.stat().st_size and head["ETag"].endswith('-3"'), head["ETag"]
    back = tmp_path / "back.bin"
    server.aws("s3", "cp", "s3://exports/big.bin", str(back), expect_json=False)
    assert filecmp.cmp(source, back, shallow=False)

    pending = s3.create_multipart_upload(Bucket="exports", Key="pending")["UploadId"]
    s3.upload_part(Bucket="exports", Key="pending", UploadId=pending, PartNumber=1, Body=b"x")
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket="exports")["Uploads"]] == [pending]
    s3.copy_object(Bucket="exports", Key="copy.json", CopySource="exports/small.json")
    assert s3.get_object(Bucket="exports", Key="copy.json")["Metadata"] == {"m": "1"}
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="exports")["Contents"])
    assert keys == ["big.bin", "copy.json", "small.json"]
    s3.abort_multipart_upload(Bucket="exports", Key="pending", UploadId=pending)
    out = s3.delete_objects(Bucket="exports", Delete={"Objects": [{"Key": k} for k in keys]})
    assert sorted(d["Key"] for d in out["Deleted"]) == keys
    assert "Contents" not in s3.list_objects_v2(Bucket="exports")
    # Nothing of Cairn's bookkeeping is left in the backing bucket but the data it holds.
    assert not [k for k in backing_objects(moto) if "/exports/" in k], backing_objects(moto)
