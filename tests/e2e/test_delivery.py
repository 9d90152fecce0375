"""Trails with different selectors receive exactly the records their selectors
choose, each once, in files with CloudTrail's keys."""

import collections
import json
import time

from conftest import ACCOUNT, LOG_KEY, MEMBERS, ORG_ID, generate, wait_for
from oracle import delivered_by

ORG_ACCOUNTS = {ACCOUNT, *MEMBERS}

TRAILS = [
    # name, create kwargs, selectors (None: the default), oracle description
    ("mgmt-default", {}, None, {"home_region": "us-east-1"}),
    ("org-reads", {"IsOrganizationTrail": True, "IsMultiRegionTrail": True},
     {"EventSelectors": [{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": True}]},
     {"org": True, "multi_region": True, "basic": [{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": True}]}),
    ("pii-objects", {"IsOrganizationTrail": True, "IsMultiRegionTrail": True},
     {"AdvancedEventSelectors": [{"Name": "pii", "FieldSelectors": [
         {"Field": "eventCategory", "Equals": ["Data"]},
         {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
         {"Field": "resources.ARN", "StartsWith": ["arn:aws:s3:::pii-bucket/"]}]}]},
     {"org": True, "multi_region": True, "advanced": [{"FieldSelectors": [
         {"Field": "eventCategory", "Equals": ["Data"]},
         {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
         {"Field": "resources.ARN", "StartsWith": ["arn:aws:s3:::pii-bucket/"]}]}]}),
    ("writes-no-kms", {"IsMultiRegionTrail": True},
     {"AdvancedEventSelectors": [{"FieldSelectors": [
         {"Field": "eventCategory", "Equals": ["Management"]},
         {"Field": "readOnly", "Equals": ["false"]},
         {"Field": "eventSource", "NotEquals": ["kms.amazonaws.com"]}]}]},
     {"multi_region": True, "advanced": [{"FieldSelectors": [
         {"Field": "eventCategory", "Equals": ["Management"]},
         {"Field": "readOnly", "Equals": ["false"]},
         {"Field": "eventSource", "NotEquals": ["kms.amazonaws.com"]}]}]}),
    ("lambda-data", {"IsOrganizationTrail": True, "IsMultiRegionTrail": True},
     {"EventSelectors": [{"ReadWriteType": "All", "IncludeManagementEvents": False,
                          "DataResources": [{"Type": "AWS::Lambda::Function", "Values": ["arn:aws:lambda"]}]}]},
     {"org": True, "multi_region": True, "basic": [{"ReadWriteType": "All", "IncludeManagementEvents": False,
                                                    "DataResources": [{"Type": "AWS::Lambda::Function",
                                                                       "Values": ["arn:aws:lambda"]}]}]}),
]


def check_trail_files(files, name, oracle, expected_lines):
    """Every file of one trail: valid key, exact records, each once."""
    seen = collections.Counter()
    for key, records in files.items():
        m = LOG_KEY.match(key)
        assert m, key
        assert m.group("prefix") == name, key
        assert (m.group("org") == ORG_ID) == bool(oracle.get("org")), key
        for text in records:
            r = json.loads(text)
            assert r["recipientAccountId"] == m.group("account"), key
            assert r["awsRegion"] == m.group("region"), key
            assert expected_lines.get(r["eventID"]) == text, "record not delivered byte for byte"
            seen[r["eventID"]] += 1
    return seen


def test_each_trail_holds_exactly_what_its_selectors_choose(server):
    s3 = server.client("s3")
    ct = server.client("cloudtrail")
    server.aws("s3api", "create-bucket", "--bucket", "audit-logs")
    for name, kwargs, selectors, _ in TRAILS:
        ct.create_trail(Name=name, S3BucketName="audit-logs", S3KeyPrefix=name, **kwargs)
        if selectors:
            ct.put_event_selectors(TrailName=name, **selectors)
    # Records ingested before StartLogging are not delivered.
    early = generate(50, seed=99)
    server.ingest_lines(early)
    for name, *_ in TRAILS:
        server.aws("cloudtrail", "start-logging", "--name", name, expect_json=False)

    lines = generate(4000, seed=7)
    answers = server.ingest_lines(lines, batch=400)
    assert sum(a["accepted"] for a in answers) == len(lines)
    assert all(a["failed"] == [] for a in answers)
    by_id = {json.loads(l)["eventID"]: l for l in lines}
    parsed = [json.loads(l) for l in lines]

    expected = {}
    for name, _, _, oracle in TRAILS:
        oracle = {"account": ACCOUNT, "home_region": "us-east-1", **oracle}
        expected[name] = {r["eventID"] for r in parsed if delivered_by(oracle, r, ORG_ACCOUNTS)}
        assert expected[name], f"the generated stream should exercise {name}"
    total = sum(len(v) for v in expected.values())
    wait_for(lambda: server.metrics()["cairn_delivered_records_total"] >= total, timeout=90,
             message=f"{total} delivered records")

    delivered = server.delivered("audit-logs")
    for name, _, _, oracle in TRAILS:
        files = {k: v for k, v in delivered.items() if k.startswith(name + "/")}
        seen = check_trail_files(files, name, oracle, by_id)
        assert set(seen) == expected[name], name
        assert max(seen.values()) == 1, f"{name} delivered a record twice"
    assert server.metrics()["cairn_delivered_records_total"] == total

    # GetTrailStatus reports the delivery truthfully.
    status = ct.get_trail_status(Name="mgmt-default")
    assert status["IsLogging"] is True
    assert "LatestDeliveryTime" in status
    assert "LatestDeliveryError" not in status

    # The AWS CLI's high-level commands reach the files too.
    listing = server.aws("s3", "ls", "--recursive", "s3://audit-logs/", expect_json=False)
    assert len(listing.strip().splitlines()) == len(delivered)


def test_stop_logging_stops_delivery_and_duplicates_are_delivered_once(server):
    server.client("s3").create_bucket(Bucket="logs")
    ct = server.client("cloudtrail")
    ct.create_trail(Name="trail", S3BucketName="logs", IsOrganizationTrail=True, IsMultiRegionTrail=True)
    ct.start_logging(Name="trail")
    lines = generate(300, seed=3)
    management = {json.loads(l)["eventID"] for l in lines if json.loads(l)["eventCategory"] == "Management"}
    server.ingest_lines(lines)
    server.ingest_lines(lines[:100])  # a producer retrying: acknowledged, stored once
    wait_for(lambda: server.metrics()["cairn_delivered_records_total"] >= len(management), message="first delivery")
    ct.stop_logging(Name="trail")
    server.ingest_lines(generate(200, seed=4))
    time.sleep(3)
    delivered = server.delivered("logs")
    ids = [json.loads(t)["eventID"] for records in delivered.values() for t in records]
    assert len(ids) == len(set(ids))
    assert set(ids) == management
    m = server.metrics()
    assert m["cairn_duplicate_records_total"] == 100
    assert m["cairn_ingested_records_total"] == 500
    status = ct.get_trail_status(Name="trail")
    assert status["IsLogging"] is False and "StopLoggingTime" in status
