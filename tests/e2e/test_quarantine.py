"""A quarantine instead of a stall (issue 11): trail settings that would make
keys the store refuses are refused at the door; a log file the store refuses
for good is set aside with its records and reason (listed by `cairn
quarantine list`, counted in /metrics, shown in GetTrailStatus) while every
other record is delivered; a crash during the quarantine keeps exactly-once;
deleting a parked trail stops its sink; fixing its bucket un-parks it."""

import json
import subprocess
import time
import uuid
from datetime import datetime, timezone

import pytest

from conftest import ACCOUNT, cairn_bin, wait_for

REFUSED_REGION = "eu-west-3"


def record(region, event_id=None):
    return json.dumps({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "accountId": ACCOUNT, "userName": "alice",
                         "arn": f"arn:aws:iam::{ACCOUNT}:user/alice", "principalId": "AIDAEXAMPLE"},
        "eventTime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "ec2.amazonaws.com",
        "eventName": "RunInstances",
        "awsRegion": region,
        "sourceIPAddress": "192.0.2.1",
        "userAgent": "aws-cli/2",
        "requestParameters": None,
        "responseElements": None,
        "eventID": event_id or str(uuid.uuid4()),
        "eventType": "AwsApiCall",
        "readOnly": False,
        "managementEvent": True,
        "eventCategory": "Management",
        "recipientAccountId": ACCOUNT,
    }, separators=(",", ":"))


def event_ids(lines):
    return {json.loads(line)["eventID"] for line in lines}


def delivered_ids(server, bucket):
    out = []
    for key, records in server.delivered(bucket).items():
        for text in records:
            out.append((key, json.loads(text)["eventID"]))
    return out


def quarantine_list(server):
    proc = subprocess.run([cairn_bin(), "quarantine", "list", "--data-dir", str(server.data_dir), "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def quarantined_ids(server):
    return [i for entry in quarantine_list(server) for i in entry["eventIDs"]]


def trail_with_bucket(server, name="q-trail", bucket="audit-q", multi_region=True):
    server.aws("s3api", "create-bucket", "--bucket", bucket)
    ct = server.client("cloudtrail")
    trail = ct.create_trail(Name=name, S3BucketName=bucket, IsMultiRegionTrail=multi_region)
    ct.start_logging(Name=name)
    return trail["TrailARN"]


@pytest.mark.parametrize("prefix", ["../x", "a//b", ".", "/x", "x/", "a/./b", "x/.."])
def test_s3_key_prefixes_that_are_not_key_paths_are_refused(server, prefix):
    server.aws("s3api", "create-bucket", "--bucket", "prefix-bucket")
    proc = server.aws("cloudtrail", "create-trail", "--name", "trail-one", "--s3-bucket-name", "prefix-bucket",
                      "--s3-key-prefix", prefix, check=False)
    assert proc.returncode != 0
    assert "InvalidS3PrefixException" in proc.stderr, proc.stderr
    assert "is not valid" in proc.stderr, proc.stderr
    # Nothing was created; a good prefix is taken; UpdateTrail refuses the same way.
    assert server.client("cloudtrail").describe_trails()["trailList"] == []
    server.aws("cloudtrail", "create-trail", "--name", "trail-one", "--s3-bucket-name", "prefix-bucket",
               "--s3-key-prefix", "good/prefix")
    proc = server.aws("cloudtrail", "update-trail", "--name", "trail-one", "--s3-key-prefix", prefix, check=False)
    assert proc.returncode != 0
    assert "InvalidS3PrefixException" in proc.stderr, proc.stderr
    trail = server.client("cloudtrail").get_trail(Name="trail-one")["Trail"]
    assert trail["S3KeyPrefix"] == "good/prefix"


def test_s3_key_prefix_whose_keys_pass_1024_bytes_is_refused(server):
    server.aws("s3api", "create-bucket", "--bucket", "prefix-bucket")
    wide = "/".join(["\U0001F600" * 30] * 6)  # 185 characters, 725 bytes
    proc = server.aws("cloudtrail", "create-trail", "--name", "trail-one", "--s3-bucket-name", "prefix-bucket",
                      "--s3-key-prefix", wide, check=False)
    assert proc.returncode != 0
    assert "InvalidS3PrefixException" in proc.stderr and "1024" in proc.stderr, proc.stderr


@pytest.mark.parametrize("bucket", ["a-.bc", "ab.-c", "xn--abc", "abc-s3alias"])
def test_bucket_names_outside_s3s_rules_are_refused(server, bucket):
    proc = server.aws("cloudtrail", "create-trail", "--name", "trail-one", "--s3-bucket-name", bucket, check=False)
    assert proc.returncode != 0
    assert "InvalidS3BucketNameException" in proc.stderr, proc.stderr


def test_a_refused_log_file_is_quarantined_and_every_other_record_delivered(make_server, monkeypatch):
    monkeypatch.setenv("CAIRN_FAULT_REFUSE_KEY", f"/CloudTrail/{REFUSED_REGION}/")
    server = make_server().start()
    arn = trail_with_bucket(server)
    good = [record("us-east-1") for _ in range(10)] + [record("eu-west-1") for _ in range(4)]
    bad = [record(REFUSED_REGION) for _ in range(6)]
    batch = good[:5] + bad[:3] + good[5:] + bad[3:]
    assert server.ingest_lines(batch)[0]["accepted"] == 20

    wait_for(lambda: len(delivered_ids(server, "audit-q")) >= 14, message="the other records delivered")
    wait_for(lambda: len(quarantined_ids(server)) == 6, message="the refused file quarantined")
    delivered = delivered_ids(server, "audit-q")
    assert sorted(i for _, i in delivered) == sorted(event_ids(good))
    assert all(f"/CloudTrail/{REFUSED_REGION}/" not in key for key, _ in delivered)
    (entry,) = quarantine_list(server)
    assert entry["sink"] == f"trail:{arn}"
    assert entry["records"] == 6
    assert set(entry["eventIDs"]) == event_ids(bad)
    assert f"/CloudTrail/{REFUSED_REGION}/" in entry["part"]
    assert "fault injection" in entry["reason"]
    # The records' exact text is kept for a later re-delivery.
    (doc,) = list((server.data_dir / "quarantine").glob("*/*.json"))
    kept = json.loads(doc.read_text())
    assert kept["v"] == 1
    assert sorted(json.dumps(r["record"], separators=(",", ":")) for r in kept["records"]) == sorted(bad)

    assert server.metrics()["cairn_quarantined_records_total"] == 6
    status = wait_for(lambda: (s := server.client("cloudtrail").get_trail_status(Name=arn)).get(
        "LatestDeliveryError") and s, message="LatestDeliveryError")
    assert entry["part"] in status["LatestDeliveryError"]
    assert "quarantine" in status["LatestDeliveryError"]
    # The human listing names the sink, the reason and the eventIDs.
    text = subprocess.run([cairn_bin(), "quarantine", "list", "--data-dir", str(server.data_dir)],
                          capture_output=True, text=True, timeout=60).stdout
    assert f"trail:{arn}" in text and "6 record(s)" in text and sorted(event_ids(bad))[0] in text

    # The trail keeps delivering later records.
    later_good = [record("us-east-1") for _ in range(5)]
    later_bad = [record(REFUSED_REGION) for _ in range(2)]
    server.ingest_lines(later_good + later_bad)
    wait_for(lambda: len(delivered_ids(server, "audit-q")) == 19, message="later records delivered")
    wait_for(lambda: len(quarantined_ids(server)) == 8, message="later refused records quarantined")
    assert sorted(i for _, i in delivered_ids(server, "audit-q")) == sorted(event_ids(good + later_good))
    assert server.metrics()["cairn_quarantined_records_total"] == 8
    # Delivery errors are not what a quarantine is: the sink never parked.
    assert server.metrics()["cairn_delivery_failures_total"] == 0


@pytest.mark.parametrize("crash_point,quarantined", [("quarantine-after-write", True),
                                                     ("quarantine-before-write", False)])
def test_a_crash_during_quarantine_keeps_exactly_once(make_server, monkeypatch, crash_point, quarantined):
    monkeypatch.setenv("CAIRN_FAULT_REFUSE_KEY", f"/CloudTrail/{REFUSED_REGION}/")
    monkeypatch.setenv("CAIRN_CRASH_POINT", crash_point)
    server = make_server().start()
    trail_with_bucket(server)
    good = [record("us-east-1") for _ in range(8)]
    bad = [record(REFUSED_REGION) for _ in range(4)]
    assert server.ingest_lines(good + bad)[0]["accepted"] == 12
    wait_for(lambda: server.proc.poll() is not None, message="the crash during the quarantine")
    assert server.proc.returncode != 0
    assert bool(quarantined_ids(server)) == quarantined

    # Restarted with a store that now takes every key.
    monkeypatch.delenv("CAIRN_FAULT_REFUSE_KEY")
    monkeypatch.delenv("CAIRN_CRASH_POINT")
    server.start()
    if quarantined:
        # Set aside before the crash: stays set aside, never delivered too.
        wait_for(lambda: len(delivered_ids(server, "audit-q")) >= 8, message="recovery")
        time.sleep(2)
        assert sorted(i for _, i in delivered_ids(server, "audit-q")) == sorted(event_ids(good))
        assert sorted(quarantined_ids(server)) == sorted(event_ids(bad))
    else:
        # Not yet set aside: delivered now, nothing lost, nothing quarantined.
        wait_for(lambda: len(delivered_ids(server, "audit-q")) >= 12, message="recovery")
        time.sleep(2)
        assert sorted(i for _, i in delivered_ids(server, "audit-q")) == sorted(event_ids(good + bad))
        assert quarantined_ids(server) == []
    # Later records go on as usual.
    later = [record("us-east-1") for _ in range(3)]
    server.ingest_lines(later)
    expected = good + later + ([] if quarantined else bad)
    wait_for(lambda: len(delivered_ids(server, "audit-q")) == len(expected), message="later records")
    assert sorted(i for _, i in delivered_ids(server, "audit-q")) == sorted(event_ids(expected))


def park_on_a_denied_bucket(server, name="parked"):
    """A trail whose bucket the store denies (a whole-destination permanent
    error, injected): its sink parks."""
    arn = trail_with_bucket(server, name=name, bucket="doomed-bucket")
    lines = [record("us-east-1") for _ in range(5)]
    server.ingest_lines(lines)
    ct = server.client("cloudtrail")
    wait_for(lambda: "AccessDenied" in (ct.get_trail_status(Name=arn).get("LatestDeliveryError") or ""),
             message="the sink parked on AccessDenied")
    return arn, lines


def test_updating_the_bucket_of_a_parked_trail_unparks_it_at_once(make_server, monkeypatch):
    monkeypatch.setenv("CAIRN_FAULT_DENY_BUCKET", "doomed-bucket")
    server = make_server().start()
    arn, lines = park_on_a_denied_bucket(server)
    time.sleep(1)
    assert server.metrics()["cairn_delivery_failures_total"] == 1, "parked, not retrying"
    server.aws("s3api", "create-bucket", "--bucket", "fixed-bucket")
    server.aws("cloudtrail", "update-trail", "--name", arn, "--s3-bucket-name", "fixed-bucket")
    # Parked sinks recheck every five minutes: seconds mean the fix woke it.
    wait_for(lambda: len(delivered_ids(server, "fixed-bucket")) == 5, timeout=20, message="delivery to the new bucket")
    assert sorted(i for _, i in delivered_ids(server, "fixed-bucket")) == sorted(event_ids(lines))
    ct = server.client("cloudtrail")
    wait_for(lambda: not ct.get_trail_status(Name=arn).get("LatestDeliveryError"), timeout=10,
             message="the error cleared")


def test_deleting_a_parked_trail_stops_its_sink(make_server, monkeypatch):
    monkeypatch.setenv("CAIRN_LOG", "info")
    monkeypatch.setenv("CAIRN_FAULT_DENY_BUCKET", "doomed-bucket")
    server = make_server().start()
    arn, _ = park_on_a_denied_bucket(server)
    failures = server.metrics()["cairn_delivery_failures_total"]
    assert failures >= 1
    server.aws("cloudtrail", "delete-trail", "--name", arn, expect_json=False)
    wait_for(lambda: "dropping the delivery of a deleted trail" in server.log_path.read_text(), timeout=20,
             message="the parked delivery dropped")
    # More configuration changes wake parked sinks: the deleted one is gone.
    server.aws("s3api", "create-bucket", "--bucket", "other-bucket")
    for i in range(3):
        server.client("cloudtrail").create_trail(Name=f"other-{i}", S3BucketName="other-bucket")
    time.sleep(3)
    assert server.metrics()["cairn_delivery_failures_total"] == failures
    log = server.log_path.read_text()
    after = log[log.index("dropping the delivery of a deleted trail"):]
    assert "sink operation failed" not in after, after[-2000:]
    # Its WAL consumer is gone: a trail of the same name starts afresh.
    trail_with_bucket(server, name="parked", bucket="fresh-bucket")
    lines = [record("us-east-1") for _ in range(3)]
    server.ingest_lines(lines)
    wait_for(lambda: len(delivered_ids(server, "fresh-bucket")) == 3, message="the new trail's delivery")


def test_kill_9_at_any_moment_of_quarantining_keeps_exactly_once(make_server, monkeypatch):
    monkeypatch.setenv("CAIRN_FAULT_REFUSE_KEY", f"/CloudTrail/{REFUSED_REGION}/")
    server = make_server().start()
    trail_with_bucket(server)
    good, bad = [], []
    for round_ in range(6):
        g = [record("us-east-1") for _ in range(20)]
        b = [record(REFUSED_REGION) for _ in range(7)]
        assert server.ingest_lines(g + b)[0]["accepted"] == 27
        good += g
        bad += b
        # Deliveries run every second: a kill lands before, during or after one.
        time.sleep(0.3 + 0.35 * round_)
        server.kill9()
        server.start()
    wait_for(lambda: len(delivered_ids(server, "audit-q")) >= len(good)
             and len(quarantined_ids(server)) >= len(bad), timeout=60, message="everything delivered or set aside")
    time.sleep(2)
    delivered = [i for _, i in delivered_ids(server, "audit-q")]
    quarantined = quarantined_ids(server)
    assert sorted(delivered) == sorted(event_ids(good)), "a good record lost or delivered twice"
    assert sorted(quarantined) == sorted(event_ids(bad)), "a refused record lost or set aside twice"
