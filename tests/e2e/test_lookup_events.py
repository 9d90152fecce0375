"""Event history: `aws cloudtrail lookup-events` by each lookup attribute,
with paging and time ranges, over the management events Cairn recorded;
data events are not in it."""

import json
from datetime import datetime, timedelta, timezone

import botocore.exceptions
import pytest

from conftest import ACCOUNT, ORG_CONFIG, wait_for

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def record(i, name, identity, minutes_ago, **extra):
    r = {"eventVersion": "1.08", "eventTime": (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ"),
         "eventSource": extra.pop("source", "iam.amazonaws.com"), "eventName": name, "awsRegion": "us-east-1",
         "eventID": f"hist-{i}", "eventType": "AwsApiCall", "eventCategory": "Management",
         "readOnly": name.startswith(("Get", "List", "Describe")), "recipientAccountId": ACCOUNT,
         "userIdentity": identity}
    r.update(extra)
    return json.dumps(r)


ALICE = {"type": "IAMUser", "userName": "alice", "accessKeyId": "AKIAALICE0000000001",
         "arn": f"arn:aws:iam::{ACCOUNT}:user/alice"}
ROLE = {"type": "AssumedRole", "accessKeyId": "ASIAROLE00000000001",
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/Deployer/ci-session"}
ROOT = {"type": "Root", "arn": f"arn:aws:iam::{ACCOUNT}:root"}


@pytest.fixture
def server(make_server):
    """A server keeping the event history (off by default)."""
    return make_server(ORG_CONFIG + "[history]\nenabled = true\n").start()


@pytest.fixture
def history(server):
    lines = [
        record(0, "CreateUser", ALICE, 50),
        record(1, "ListUsers", ALICE, 40),
        record(2, "DeleteBucket", ROLE, 30, source="s3.amazonaws.com",
               resources=[{"type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::old-bucket"}]),
        record(3, "CreateAccessKey", ROOT, 20),
        record(4, "GetObject", ALICE, 10, source="s3.amazonaws.com", eventCategory="Data", managementEvent=False),
        record(5, "DescribeInstances", ROLE, 5, source="ec2.amazonaws.com"),
    ]
    server.ingest_lines(lines)
    ct = server.client("cloudtrail")
    wait_for(lambda: len(ct.lookup_events()["Events"]) == 5, timeout=30, message="the history")
    return ct


def ids(answer):
    return [e["EventId"] for e in answer["Events"]]


def test_lookup_events_by_each_attribute_with_the_aws_cli(server, history):
    everything = server.aws("cloudtrail", "lookup-events")
    assert ids(everything) == ["hist-5", "hist-3", "hist-2", "hist-1", "hist-0"]  # newest first, no data event
    first = everything["Events"][-1]
    assert (first["EventName"], first["Username"], first["AccessKeyId"], first["ReadOnly"]) == \
        ("CreateUser", "alice", "AKIAALICE0000000001", "false")
    assert json.loads(first["CloudTrailEvent"])["eventID"] == "hist-0"
    for key, value, expected in [
        ("EventId", "hist-2", ["hist-2"]),
        ("EventName", "CreateAccessKey", ["hist-3"]),
        ("ReadOnly", "true", ["hist-5", "hist-1"]),
        ("Username", "alice", ["hist-1", "hist-0"]),
        ("Username", "ci-session", ["hist-5", "hist-2"]),
        ("Username", "root", ["hist-3"]),
        ("EventSource", "s3.amazonaws.com", ["hist-2"]),
        ("AccessKeyId", "ASIAROLE00000000001", ["hist-5", "hist-2"]),
        ("ResourceType", "AWS::S3::Bucket", ["hist-2"]),
        ("ResourceName", "arn:aws:s3:::old-bucket", ["hist-2"]),
    ]:
        answer = server.aws("cloudtrail", "lookup-events", "--lookup-attributes",
                            f"AttributeKey={key},AttributeValue={value}")
        assert ids(answer) == expected, (key, value, ids(answer))
    deleted = server.aws("cloudtrail", "lookup-events", "--lookup-attributes",
                         "AttributeKey=EventId,AttributeValue=hist-2")["Events"][0]
    assert deleted["Resources"] == [{"ResourceType": "AWS::S3::Bucket", "ResourceName": "arn:aws:s3:::old-bucket"}]


def test_lookup_events_pages_and_ranges(server, history):
    pages = list(history.get_paginator("lookup_events").paginate(PaginationConfig={"PageSize": 2}))
    assert [len(p["Events"]) for p in pages] == [2, 2, 1]
    assert [e["EventId"] for p in pages for e in p["Events"]] == ["hist-5", "hist-3", "hist-2", "hist-1", "hist-0"]
    ranged = history.lookup_events(StartTime=NOW - timedelta(minutes=35), EndTime=NOW - timedelta(minutes=15))
    assert ids(ranged) == ["hist-3", "hist-2"]
    # The CLI pages by itself.
    assert len(server.aws("cloudtrail", "lookup-events", "--max-items", "3")["Events"]) == 3


@pytest.mark.parametrize("kwargs,code", [
    ({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "a"},
                           {"AttributeKey": "Username", "AttributeValue": "b"}]}, "InvalidLookupAttributesException"),
    ({"MaxResults": 51}, "InvalidMaxResultsException"),
    ({"StartTime": NOW, "EndTime": NOW - timedelta(hours=1)}, "InvalidTimeRangeException"),
    ({"NextToken": "garbage"}, "InvalidNextTokenException"),
    ({"EventCategory": "other"}, "InvalidEventCategoryException"),
])
def test_bad_lookups_are_refused(server, kwargs, code):
    with pytest.raises((botocore.exceptions.ClientError, botocore.exceptions.ParamValidationError)) as e:
        server.client("cloudtrail").lookup_events(**kwargs)
    if isinstance(e.value, botocore.exceptions.ClientError):
        assert e.value.response["Error"]["Code"] == code


def test_without_the_history_lookup_events_says_how_to_turn_it_on(make_server):
    plain = make_server(name="plain").start()
    with pytest.raises(botocore.exceptions.ClientError) as e:
        plain.client("cloudtrail").lookup_events()
    assert e.value.response["Error"]["Code"] == "OperationNotPermittedException"
    assert "[history] enabled = true" in e.value.response["Error"]["Message"]
