"""CloudWatch Logs through the real AWS CLI and boto3: log groups, streams,
events, metric filters, TestMetricFilter over every worked case of the filter
pattern spec, retention, tags, and a trail feeding its log group."""

import json
import time

import botocore.exceptions
import pytest

from conftest import ACCOUNT, SHARED, wait_for

GROUP_ARN = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:CloudTrail:*"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/CloudTrail-CWLogs-Role"


def error_of(excinfo):
    return excinfo.value.response["Error"]["Code"], excinfo.value.response["Error"]["Message"]


def now_ms():
    return int(time.time() * 1000)


def test_log_groups_streams_and_events_with_the_aws_cli(server):
    server.aws("logs", "create-log-group", "--log-group-name", "app", expect_json=False)
    server.aws("logs", "create-log-group", "--log-group-name", "/aws/other", expect_json=False)
    groups = server.aws("logs", "describe-log-groups")["logGroups"]
    assert [g["logGroupName"] for g in groups] == ["/aws/other", "app"]
    app = groups[1]
    assert app["arn"] == f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:app:*"
    assert app["logGroupArn"] == f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:app"
    assert app["metricFilterCount"] == 0 and app["storedBytes"] == 0
    assert "retentionInDays" not in app
    prefixed = server.aws("logs", "describe-log-groups", "--log-group-name-prefix", "/aws")["logGroups"]
    assert [g["logGroupName"] for g in prefixed] == ["/aws/other"]

    server.aws("logs", "create-log-stream", "--log-group-name", "app", "--log-stream-name", "web-1",
               expect_json=False)
    t = now_ms()
    events = [{"timestamp": t + i, "message": f"GET /index.html {200 if i % 3 else 500} {i}"} for i in range(6)]
    put = server.aws("logs", "put-log-events", "--log-group-name", "app", "--log-stream-name", "web-1",
                     "--log-events", json.dumps(events))
    assert "nextSequenceToken" in put and "rejectedLogEventsInfo" not in put

    got = server.aws("logs", "get-log-events", "--log-group-name", "app", "--log-stream-name", "web-1",
                     "--start-from-head")
    assert [e["message"] for e in got["events"]] == [e["message"] for e in events]
    assert all(e["ingestionTime"] >= t for e in got["events"])
    # Following the forward token at the end gives nothing and the same token.
    again = server.aws("logs", "get-log-events", "--log-group-name", "app", "--log-stream-name", "web-1",
                       "--next-token", got["nextForwardToken"])
    assert again["events"] == [] and again["nextForwardToken"] == got["nextForwardToken"]

    found = server.aws("logs", "filter-log-events", "--log-group-name", "app", "--filter-pattern", "500")
    assert [e["message"] for e in found["events"]] == ["GET /index.html 500 0", "GET /index.html 500 3"]
    assert all(e["logStreamName"] == "web-1" and e["eventId"] for e in found["events"])
    spaced = server.aws("logs", "filter-log-events", "--log-group-name", "app",
                        "--filter-pattern", "[method, path, status=5*, n]")
    assert len(spaced["events"]) == 2

    streams = server.aws("logs", "describe-log-streams", "--log-group-name", "app")["logStreams"]
    assert len(streams) == 1
    assert streams[0]["firstEventTimestamp"] == t and streams[0]["lastEventTimestamp"] == t + 5
    assert streams[0]["arn"].endswith(":log-group:app:log-stream:web-1")

    server.aws("logs", "delete-log-stream", "--log-group-name", "app", "--log-stream-name", "web-1",
               expect_json=False)
    assert server.aws("logs", "describe-log-streams", "--log-group-name", "app")["logStreams"] == []
    server.aws("logs", "delete-log-group", "--log-group-name", "app", expect_json=False)
    assert [g["logGroupName"] for g in server.aws("logs", "describe-log-groups")["logGroups"]] == ["/aws/other"]


def test_put_log_events_reports_events_outside_the_window_and_refuses_bad_batches(server):
    logs = server.client("logs")
    logs.create_log_group(logGroupName="g")
    logs.create_log_stream(logGroupName="g", logStreamName="s")
    t = now_ms()
    day = 86_400_000
    answer = logs.put_log_events(logGroupName="g", logStreamName="s", logEvents=[
        {"timestamp": t - 15 * day, "message": "too old"},
        {"timestamp": t, "message": "kept"},
        {"timestamp": t + 3 * 3_600_000, "message": "too new"},
    ])
    assert answer["rejectedLogEventsInfo"] == {"tooOldLogEventEndIndex": 0, "tooNewLogEventStartIndex": 2}
    kept = logs.get_log_events(logGroupName="g", logStreamName="s", startFromHead=True)["events"]
    assert [e["message"] for e in kept] == ["kept"]

    with pytest.raises(botocore.exceptions.ClientError) as e:
        logs.put_log_events(logGroupName="g", logStreamName="s", logEvents=[
            {"timestamp": t, "message": "b"}, {"timestamp": t - 1, "message": "a"}])
    assert error_of(e)[0] == "InvalidParameterException"
    assert "chronological" in error_of(e)[1]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        logs.put_log_events(logGroupName="g", logStreamName="nope", logEvents=[{"timestamp": t, "message": "x"}])
    assert error_of(e) == ("ResourceNotFoundException", "The specified log stream does not exist.")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        logs.put_log_events(logGroupName="nope", logStreamName="s", logEvents=[{"timestamp": t, "message": "x"}])
    assert error_of(e) == ("ResourceNotFoundException", "The specified log group does not exist.")


@pytest.mark.parametrize("call,code", [
    (lambda l: l.create_log_group(logGroupName="bad name"), "InvalidParameterException"),
    (lambda l: l.create_log_group(logGroupName="x" * 513), "InvalidParameterException"),
    (lambda l: l.create_log_group(logGroupName="dup"), "ResourceAlreadyExistsException"),
    (lambda l: l.put_retention_policy(logGroupName="dup", retentionInDays=2), "InvalidParameterException"),
    (lambda l: l.put_retention_policy(logGroupName="missing", retentionInDays=1), "ResourceNotFoundException"),
    (lambda l: l.create_log_stream(logGroupName="dup", logStreamName="a:b"), "InvalidParameterException"),
    (lambda l: l.delete_log_group(logGroupName="missing"), "ResourceNotFoundException"),
    (lambda l: l.describe_log_groups(limit=51), "InvalidParameterException"),
])
def test_bad_log_requests_are_answered_as_aws_answers_them(server, call, code):
    logs = server.client("logs")
    logs.create_log_group(logGroupName="dup")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(logs)
    assert error_of(e)[0] == code


def test_retention_tags_and_metric_filter_management(server):
    logs = server.client("logs")
    logs.create_log_group(logGroupName="g", tags={"team": "sec"})
    logs.put_retention_policy(logGroupName="g", retentionInDays=30)
    assert logs.describe_log_groups()["logGroups"][0]["retentionInDays"] == 30
    logs.delete_retention_policy(logGroupName="g")
    assert "retentionInDays" not in logs.describe_log_groups()["logGroups"][0]

    assert logs.list_tags_log_group(logGroupName="g")["tags"] == {"team": "sec"}
    arn = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:g"
    logs.tag_resource(resourceArn=arn, tags={"env": "prod"})
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "sec", "env": "prod"}
    logs.untag_resource(resourceArn=arn, tagKeys=["team"])
    logs.untag_log_group(logGroupName="g", tags=["env"])
    assert logs.list_tags_log_group(logGroupName="g")["tags"] == {}

    logs.put_metric_filter(logGroupName="g", filterName="errors", filterPattern="ERROR",
                           metricTransformations=[{"metricName": "Errors", "metricNamespace": "App",
                                                   "metricValue": "1", "defaultValue": 0}])
    filters = logs.describe_metric_filters(logGroupName="g")["metricFilters"]
    assert [(f["filterName"], f["filterPattern"]) for f in filters] == [("errors", "ERROR")]
    assert filters[0]["metricTransformations"] == [
        {"metricName": "Errors", "metricNamespace": "App", "metricValue": "1", "defaultValue": 0.0}]
    by_metric = logs.describe_metric_filters(metricName="Errors", metricNamespace="App")["metricFilters"]
    assert len(by_metric) == 1
    assert logs.describe_log_groups()["logGroups"][0]["metricFilterCount"] == 1
    logs.delete_metric_filter(logGroupName="g", filterName="errors")
    assert logs.describe_metric_filters(logGroupName="g")["metricFilters"] == []
    with pytest.raises(botocore.exceptions.ClientError) as e:
        logs.delete_metric_filter(logGroupName="g", filterName="errors")
    assert error_of(e)[0] == "ResourceNotFoundException"


@pytest.mark.parametrize("pattern,value", [
    ('{ $.errorCode = "AccessDenied*" ', "1"),  # unparsable pattern
    ("{ $.errorCode = 1 }", "$.missing"),  # a field the pattern does not have
    ("ERROR", "one"),  # neither a number nor a field
])
def test_put_metric_filter_refuses_bad_patterns_and_values(server, pattern, value):
    logs = server.client("logs")
    logs.create_log_group(logGroupName="g")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        logs.put_metric_filter(logGroupName="g", filterName="f", filterPattern=pattern,
                               metricTransformations=[{"metricName": "M", "metricNamespace": "N",
                                                       "metricValue": value}])
    assert error_of(e)[0] == "InvalidParameterException"
    assert logs.describe_metric_filters(logGroupName="g")["metricFilters"] == []


def test_every_worked_filter_pattern_case_through_test_metric_filter(server):
    """Each case of the filter-pattern spec, through `aws logs test-metric-filter`."""
    cases = [json.loads(line) for line in (SHARED / "spec" / "filter-vectors.jsonl").read_text().splitlines()
             if line.strip()]
    assert len(cases) >= 85
    failures = []
    for case in cases:
        proc = server.aws("logs", "test-metric-filter", "--filter-pattern", case["pattern"],
                          "--log-event-messages", json.dumps([case["event"]]), check=False)
        if case.get("error"):
            if proc.returncode == 0 or "InvalidParameterException" not in proc.stderr:
                failures.append((case["id"], "expected a refusal", proc.stdout, proc.stderr))
            continue
        if proc.returncode != 0:
            failures.append((case["id"], "refused", proc.stderr))
            continue
        matched = bool(json.loads(proc.stdout)["matches"])
        if matched != case["match"]:
            failures.append((case["id"], case["pattern"], case["event"], matched))
    assert failures == []


def test_test_metric_filter_numbers_matches_and_extracts_fields(server):
    answer = server.client("logs").test_metric_filter(
        filterPattern="[ip, user, timestamp, request, status_code = 4*, bytes]",
        logEventMessages=[
            '127.0.0.1 frank [10/Oct/2000:13:25:15 -0700] "GET /apache_pb.gif HTTP/1.0" 404 1534',
            '127.0.0.1 frank [10/Oct/2000:13:35:22 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326',
        ])
    assert len(answer["matches"]) == 1
    match = answer["matches"][0]
    assert match["eventNumber"] == 1
    assert match["extractedValues"]["$status_code"] == "404"
    assert match["extractedValues"]["$bytes"] == "1534"


def test_a_trail_feeds_its_log_group_and_filter_log_events_finds_the_events(server):
    server.aws("s3api", "create-bucket", "--bucket", "audit", expect_json=False)
    # The log group must exist before a trail can name it.
    proc = server.aws("cloudtrail", "create-trail", "--name", "feed", "--s3-bucket-name", "audit",
                      "--cloud-watch-logs-log-group-arn", GROUP_ARN, "--cloud-watch-logs-role-arn", ROLE_ARN,
                      check=False)
    assert proc.returncode != 0 and "InvalidCloudWatchLogsLogGroupArnException" in proc.stderr
    server.aws("logs", "create-log-group", "--log-group-name", "CloudTrail", expect_json=False)
    proc = server.aws("cloudtrail", "create-trail", "--name", "feed", "--s3-bucket-name", "audit",
                      "--cloud-watch-logs-log-group-arn", GROUP_ARN, check=False)
    assert proc.returncode != 0 and "InvalidCloudWatchLogsRoleArnException" in proc.stderr
    created = server.aws("cloudtrail", "create-trail", "--name", "feed", "--s3-bucket-name", "audit",
                         "--is-multi-region-trail", "--cloud-watch-logs-log-group-arn", GROUP_ARN,
                         "--cloud-watch-logs-role-arn", ROLE_ARN)
    assert created["CloudWatchLogsLogGroupArn"] == GROUP_ARN
    assert created["CloudWatchLogsRoleArn"] == ROLE_ARN
    server.aws("cloudtrail", "start-logging", "--name", "feed", expect_json=False)

    def record(i, region, error=None):
        r = {"eventVersion": "1.08", "eventTime": "2026-12-02T10:00:00Z", "eventSource": "s3.amazonaws.com",
             "eventName": "GetBucketAcl", "awsRegion": region, "eventID": f"feed-{i}",
             "eventType": "AwsApiCall", "eventCategory": "Management", "readOnly": True,
             "recipientAccountId": ACCOUNT, "userIdentity": {"type": "IAMUser", "userName": "u"}}
        if error:
            r["errorCode"] = error
        return json.dumps(r)

    lines = [record(i, "us-east-1" if i % 2 else "eu-west-1", "AccessDenied" if i < 3 else None)
             for i in range(10)]
    server.ingest_lines(lines)
    logs = server.client("logs")

    def all_events():
        return logs.filter_log_events(logGroupName="CloudTrail")["events"]

    wait_for(lambda: len(all_events()) == 10, timeout=30, message="the trail's events in its log group")
    streams = {s["logStreamName"] for s in logs.describe_log_streams(logGroupName="CloudTrail")["logStreams"]}
    assert streams == {f"{ACCOUNT}_CloudTrail_us-east-1", f"{ACCOUNT}_CloudTrail_eu-west-1"}
    # Each event is the record's exact text, timed by its eventTime.
    texts = {e["message"] for e in all_events()}
    assert texts == set(lines)
    assert all(e["timestamp"] == 1_796_205_600_000 for e in all_events())
    denied = server.aws("logs", "filter-log-events", "--log-group-name", "CloudTrail",
                        "--filter-pattern", '{ ($.errorCode = "*UnauthorizedAccess*") || ($.errorCode = "AccessDenied*") }')
    assert sorted(json.loads(e["message"])["eventID"] for e in denied["events"]) == ["feed-0", "feed-1", "feed-2"]
    status = server.aws("cloudtrail", "get-trail-status", "--name", "feed")
    assert "LatestCloudWatchLogsDeliveryTime" in status
    assert "LatestCloudWatchLogsDeliveryError" not in status

    # Removing the group from the trail stops the feed.
    server.aws("cloudtrail", "update-trail", "--name", "feed", "--cloud-watch-logs-log-group-arn", "",
               "--cloud-watch-logs-role-arn", "")
    trail = server.aws("cloudtrail", "get-trail", "--name", "feed")["Trail"]
    assert "CloudWatchLogsLogGroupArn" not in trail
    server.ingest_lines([record(100, "us-east-1")])
    time.sleep(1.5)
    assert len(all_events()) == 10
