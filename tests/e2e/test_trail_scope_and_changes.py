"""Two delivery properties end to end, with exact record sets:

* IncludeGlobalServiceEvents and trails homed outside us-east-1, against
  `oracle.py` (written from CloudTrail's user guide, not from the selector
  crate): global service events are us-east-1's, seen only by trails that see
  us-east-1 and include them.
* A trail change in the middle of a stream applies at its position: records
  ingested before a PutEventSelectors, StopLogging or StartLogging are
  delivered under the old setting, records after it under the new one."""

import collections
import json
import time

import boto3
import botocore.config

from conftest import ACCESS_KEY, ACCOUNT, LOG_KEY, SECRET_KEY, wait_for
from oracle import delivered_by


def ct(server, region):
    return boto3.client(
        "cloudtrail", endpoint_url=server.endpoint, region_name=region,
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        config=botocore.config.Config(retries={"max_attempts": 1}))


def record(n, region, source, read_only=True):
    return json.dumps({
        "eventVersion": "1.08", "eventTime": "2026-01-01T00:00:00Z", "eventSource": source,
        "eventName": "GetUser" if source == "iam.amazonaws.com" else "DescribeVpcs", "awsRegion": region,
        "eventID": f"00000000-0000-4000-8000-{n:012d}", "sourceIPAddress": "10.0.0.1", "userAgent": "test",
        "readOnly": read_only, "eventType": "AwsApiCall", "managementEvent": True, "eventCategory": "Management",
        "recipientAccountId": ACCOUNT, "userIdentity": {"type": "Root", "accountId": ACCOUNT}})


def delivered_by_prefix(server, bucket, prefix):
    """eventID -> how many times it was delivered under `prefix`, checking each
    file's key names the record's region."""
    out = collections.Counter()
    for key, records in server.delivered(bucket, prefix + "/").items():
        m = LOG_KEY.match(key)
        assert m, key
        for text in records:
            r = json.loads(text)
            assert r["awsRegion"] == m.group("region"), key
            out[r["eventID"]] += 1
    return out


def assert_exactly(server, bucket, prefix, expected, what):
    expected = set(expected)
    wait_for(lambda: set(delivered_by_prefix(server, bucket, prefix)) >= expected, timeout=60,
             message=f"{what}: {len(expected)} records")
    time.sleep(2.5)  # anything delivered late would show now
    got = delivered_by_prefix(server, bucket, prefix)
    assert all(n == 1 for n in got.values()), f"{what}: duplicates"
    assert set(got) == expected, (what, sorted(set(got) - expected), sorted(expected - set(got)))


# Trails: name, home region, CreateTrail options, the oracle's view of them.
# AWS refuses a multi-region trail that excludes global service events.
TRAILS = [
    ("east-global", "us-east-1", {}, {"include_global": True}),
    ("east-no-global", "us-east-1", {"IncludeGlobalServiceEvents": False}, {"include_global": False}),
    ("eu-single", "eu-west-1", {}, {"include_global": True}),
    ("eu-single-no-global", "eu-west-1", {"IncludeGlobalServiceEvents": False}, {"include_global": False}),
    ("eu-multi", "eu-west-1", {"IsMultiRegionTrail": True}, {"include_global": True, "multi_region": True}),
    ("ap-multi", "ap-southeast-2", {"IsMultiRegionTrail": True}, {"include_global": True, "multi_region": True}),
]


def test_global_service_events_and_home_regions_against_the_oracle(server):
    server.client("s3").create_bucket(Bucket="scope-logs")
    for name, region, options, _ in TRAILS:
        c = ct(server, region)
        c.create_trail(Name=name, S3BucketName="scope-logs", S3KeyPrefix=name, **options)
        c.start_logging(Name=name)
    lines = []
    n = 0
    for region in ("us-east-1", "eu-west-1", "ap-southeast-2"):
        for source in ("ec2.amazonaws.com", "iam.amazonaws.com", "sts.amazonaws.com"):
            if source != "ec2.amazonaws.com" and region != "us-east-1":
                continue  # global services record their events in us-east-1 only
            for _ in range(3):
                lines.append(record(n, region, source))
                n += 1
    server.ingest_lines(lines)
    parsed = [json.loads(l) for l in lines]
    for name, region, _, view in TRAILS:
        trail = {"account": ACCOUNT, "home_region": region, **view}
        expected = {r["eventID"] for r in parsed if delivered_by(trail, r, set())}
        assert_exactly(server, "scope-logs", name, expected, name)
    # The oracle's answers, spelled out for the cases this test is about.
    by_source = lambda *sources: {r["eventID"] for r in parsed if r["eventSource"] in sources}
    east = {r["eventID"] for r in parsed if r["awsRegion"] == "us-east-1"}
    eu = {r["eventID"] for r in parsed if r["awsRegion"] == "eu-west-1"}
    assert set(delivered_by_prefix(server, "scope-logs", "east-no-global")) == east - by_source("iam.amazonaws.com",
                                                                                                 "sts.amazonaws.com")
    assert set(delivered_by_prefix(server, "scope-logs", "eu-single")) == eu
    assert set(delivered_by_prefix(server, "scope-logs", "eu-multi")) == {r["eventID"] for r in parsed}


def test_a_trail_change_mid_stream_applies_at_its_position(server):
    server.client("s3").create_bucket(Bucket="change-logs")
    c = server.client("cloudtrail")
    c.create_trail(Name="changing", S3BucketName="change-logs", S3KeyPrefix="changing", IsMultiRegionTrail=True)
    c.start_logging(Name="changing")
    batches = []

    def send(first, count):
        # Reads and writes alternate, in two regions.
        lines = [record(first + i, ("us-east-1", "eu-west-1")[i % 2], "ec2.amazonaws.com", read_only=i % 3 != 0)
                 for i in range(count)]
        server.ingest_lines(lines)
        batches.append([json.loads(l) for l in lines])
        return batches[-1]

    everything = send(0, 40)                     # all management events
    c.put_event_selectors(TrailName="changing", EventSelectors=[
        {"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}])
    writes_only = send(100, 40)                  # writes only
    c.stop_logging(Name="changing")
    stopped = send(200, 40)                      # nothing
    c.start_logging(Name="changing")
    c.put_event_selectors(TrailName="changing", AdvancedEventSelectors=[
        {"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]},
                            {"Field": "readOnly", "Equals": ["true"]}]}])
    reads_only = send(300, 40)                   # reads only
    assert stopped
    expected = {r["eventID"] for r in everything}
    expected |= {r["eventID"] for r in writes_only if r["readOnly"] is False}
    expected |= {r["eventID"] for r in reads_only if r["readOnly"] is True}
    assert_exactly(server, "change-logs", "changing", expected, "changing")
