"""A trail change interrupted between its writes: the server aborts at a crash
point (CAIRN_CRASH_POINT, as kill -9 would end it) after the WAL control record
is durable and before the metastore has the change, or after the metastore and
before the `meta` cursor moved; or it is killed with kill -9 right after the
call. After a restart the API (GetTrail, GetEventSelectors, GetTrailStatus) and
the delivered log files agree: the change is in both, and records ingested
afterwards are delivered by the new configuration only."""

import collections
import json
import time
import uuid
from datetime import datetime, timezone

import botocore.config
import pytest

from conftest import ACCOUNT, ACCESS_KEY, SECRET_KEY, Server, wait_for

CONFIG = f"""
account_id = "{ACCOUNT}"
region = "us-east-1"
[delivery]
interval = "1s"
"""

BUCKET = "crash-changes"
TRAIL = "changes"


def records(tag, count):
    """Management events in us-east-1 for the account; every other one read-only."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = []
    for i in range(count):
        read_only = i % 2 == 0
        out.append(json.dumps({
            "eventVersion": "1.08",
            "userIdentity": {"type": "IAMUser", "accountId": ACCOUNT,
                             "arn": f"arn:aws:iam::{ACCOUNT}:user/alice"},
            "eventTime": now,
            "eventSource": "ec2.amazonaws.com",
            "eventName": "DescribeInstances" if read_only else "RunInstances",
            "awsRegion": "us-east-1",
            "sourceIPAddress": "192.0.2.1",
            "eventID": f"{tag}-{i}-{uuid.uuid4()}",
            "readOnly": read_only,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "eventCategory": "Management",
            "recipientAccountId": ACCOUNT,
        }, separators=(",", ":")))
    return out


def one_shot_client(server, service):
    """No retries: the call that crashes the server must not be sent again."""
    import boto3
    return boto3.client(
        service, endpoint_url=server.endpoint, region_name=server.region,
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        config=botocore.config.Config(retries={"total_max_attempts": 1}, read_timeout=30),
    )


def with_crash_point(server, point):
    base = Server.env

    def env():
        e = base(server)
        e.pop("CAIRN_CRASH_POINT", None)
        if point:
            e["CAIRN_CRASH_POINT"] = point
        return e

    server.env = env


def delivered_by_id(server):
    """eventID -> keys of the files holding it."""
    out = collections.defaultdict(list)
    for key, texts in server.delivered(BUCKET).items():
        for text in texts:
            out[json.loads(text)["eventID"]].append(key)
    return out


CHANGES = {
    "update_trail": lambda ct: ct.update_trail(Name=TRAIL, S3KeyPrefix="after"),
    "put_event_selectors": lambda ct: ct.put_event_selectors(
        TrailName=TRAIL,
        EventSelectors=[{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": True}],
    ),
    "stop_logging": lambda ct: ct.stop_logging(Name=TRAIL),
}


def check_api(ct, change):
    trail = ct.get_trail(Name=TRAIL)["Trail"]
    selectors = ct.get_event_selectors(TrailName=TRAIL)
    status = ct.get_trail_status(Name=TRAIL)
    if change == "update_trail":
        assert trail.get("S3KeyPrefix") == "after", trail
    else:
        assert trail.get("S3KeyPrefix") == "before", trail
    if change == "put_event_selectors":
        assert selectors["EventSelectors"][0]["ReadWriteType"] == "ReadOnly", selectors
        assert trail["HasCustomEventSelectors"] is True
    else:
        assert selectors["EventSelectors"][0]["ReadWriteType"] == "All", selectors
    if change == "stop_logging":
        assert status["IsLogging"] is False, status
        assert "StopLoggingTime" in status
    else:
        assert status["IsLogging"] is True, status


def expected_after(change, texts):
    """Which of the records ingested after the change the trail delivers, and where."""
    out = {}
    for text in texts:
        record = json.loads(text)
        if change == "stop_logging":
            continue
        if change == "put_event_selectors" and not record["readOnly"]:
            continue
        prefix = "after/" if change == "update_trail" else "before/"
        out[record["eventID"]] = prefix
    return out


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("interruption", ["trail-change-after-wal", "trail-change-after-meta", "kill-9"])
def test_interrupted_trail_change_leaves_api_and_delivery_in_agreement(tmp_path, change, interruption):
    server = Server(tmp_path / "data", CONFIG)
    with_crash_point(server, None)
    server.start()
    try:
        server.client("s3").create_bucket(Bucket=BUCKET)
        ct = server.client("cloudtrail")
        ct.create_trail(Name=TRAIL, S3BucketName=BUCKET, S3KeyPrefix="before")
        ct.start_logging(Name=TRAIL)
        before = records("before", 40)
        server.ingest_lines(before)
        before_ids = {json.loads(t)["eventID"] for t in before}
        wait_for(lambda: set(delivered_by_id(server)) >= before_ids, timeout=60,
                 message="the records before the change delivered")

        if interruption == "kill-9":
            CHANGES[change](server.client("cloudtrail"))
            server.kill9()
        else:
            server.stop()
            with_crash_point(server, interruption)
            server.start()
            with pytest.raises(Exception):
                CHANGES[change](one_shot_client(server, "cloudtrail"))
            server.proc.wait(timeout=30)
            assert server.proc.returncode != 0, "the server should have aborted at the crash point"
            assert f"CAIRN_CRASH_POINT={interruption}" in server.log_path.read_text()
            with_crash_point(server, None)
        server.start()

        ct = server.client("cloudtrail")
        check_api(ct, change)
        after = records("after", 40)
        server.ingest_lines(after)
        expected = expected_after(change, after)
        if expected:
            wait_for(lambda: set(delivered_by_id(server)) >= set(expected), timeout=60,
                     message="the records after the change delivered")
        else:
            time.sleep(3)  # several delivery intervals: nothing may come
        delivered = delivered_by_id(server)
        # Exactly once, before and after; after the change, exactly what the
        # new configuration chooses, under its prefix.
        assert all(len(keys) == 1 for keys in delivered.values()), \
            {i: k for i, k in delivered.items() if len(k) > 1}
        assert before_ids <= set(delivered)
        for event_id in before_ids:
            assert delivered[event_id][0].startswith("before/AWSLogs/"), delivered[event_id]
        after_ids = {json.loads(t)["eventID"] for t in after}
        assert {i for i in delivered if i in after_ids} == set(expected)
        for event_id, prefix in expected.items():
            assert delivered[event_id][0].startswith(prefix + "AWSLogs/"), delivered[event_id]
        # A second restart changes nothing (the metastore replay is idempotent).
        server.stop()
        server.start()
        check_api(server.client("cloudtrail"), change)
    finally:
        server.stop()
