"""The operator guide's CloudWatch section, verbatim, against Cairn: a trail
feeding the `CloudTrail` log group, the guide's five metric filters and two
alarms, an SNS topic with a local HTTP endpoint subscribed and confirmed.
Five AccessDenied events drive UnauthorizedAPICallsAlarm to ALARM and the
endpoint receives CloudWatch's alarm notification, signed; one root event
does the same for RootAccountUsageAlarm."""

import json
import shlex
import time
import urllib.request
import uuid
from datetime import datetime, timezone

import pytest

from conftest import ACCOUNT, SHARED, wait_for
from sns_receiver import Receiver, verify

GUIDE = SHARED / "spec" / "operator-guide.txt"
GROUP_ARN = "arn:aws:logs:us-east-1:123456789012:log-group:CloudTrail:*"
ROLE_ARN = "arn:aws:iam::123456789012:role/CloudTrail-CWLogs-Role"


def guide_commands(first, last):
    """The guide's commands between two headings, continuation lines joined."""
    text = GUIDE.read_text()
    section = text[text.index(first):text.index(last)]
    commands, current = [], ""
    for line in section.splitlines():
        if current:
            current += " " + line.rstrip("\\").strip()
            if not line.rstrip().endswith("\\"):
                commands.append(current)
                current = ""
        elif line.startswith("aws "):
            current = line.rstrip("\\").strip()
            if not line.rstrip().endswith("\\"):
                commands.append(current)
                current = ""
    return [shlex.split(c) for c in commands]


def record(name, **extra):
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = {"eventVersion": "1.08", "eventTime": now, "eventSource": "iam.amazonaws.com", "eventName": name,
         "awsRegion": "us-east-1", "eventID": str(uuid.uuid4()), "eventType": "AwsApiCall",
         "eventCategory": "Management", "readOnly": False, "recipientAccountId": ACCOUNT,
         "userIdentity": {"type": "IAMUser", "userName": "alice", "accountId": ACCOUNT}}
    r.update(extra)
    return json.dumps(r)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def alarm_state(server, name):
    alarms = server.aws("cloudwatch", "describe-alarms", "--alarm-names", name)["MetricAlarms"]
    return alarms[0]["StateValue"]


def test_the_guides_cloudwatch_alerts_run_verbatim_and_fire(server, receiver):
    commands = guide_commands("CloudWatch Alerts for Sensitive Activity", "Athena Queries for CloudTrail Analysis")
    assert [c[:3] for c in commands].count(["aws", "logs", "put-metric-filter"]) == 5
    assert [c[:3] for c in commands].count(["aws", "cloudwatch", "put-metric-alarm"]) == 2

    server.aws("logs", "create-log-group", "--log-group-name", "CloudTrail", expect_json=False)
    topic = server.aws("sns", "create-topic", "--name", "security-alerts")["TopicArn"]
    assert topic == "arn:aws:sns:us-east-1:123456789012:security-alerts"
    server.aws("sns", "subscribe", "--topic-arn", topic, "--protocol", "http", "--notification-endpoint",
               receiver.url)
    confirmation = receiver.wait_for("SubscriptionConfirmation")[0]
    assert verify(confirmation)
    urllib.request.urlopen(confirmation["SubscribeURL"], timeout=10).read()

    server.aws("s3api", "create-bucket", "--bucket", "org-cloudtrail-audit-logs", expect_json=False)
    server.aws("cloudtrail", "create-trail", "--name", "org-audit-trail", "--s3-bucket-name",
               "org-cloudtrail-audit-logs", "--is-multi-region-trail",
               "--cloud-watch-logs-log-group-arn", GROUP_ARN, "--cloud-watch-logs-role-arn", ROLE_ARN)
    server.aws("cloudtrail", "start-logging", "--name", "org-audit-trail", expect_json=False)

    for command in commands:
        server.aws(*command[1:], expect_json=False)
    filters = server.aws("logs", "describe-metric-filters", "--log-group-name", "CloudTrail")["metricFilters"]
    assert sorted(f["filterName"] for f in filters) == [
        "ConsoleLoginWithoutMFA", "IAMPolicyChanges", "RootAccountUsage", "SecurityGroupChanges",
        "UnauthorizedAPICalls"]
    for name in ("UnauthorizedAPICallsAlarm", "RootAccountUsageAlarm"):
        assert alarm_state(server, name) == "INSUFFICIENT_DATA"

    # Ordinary activity: nothing matches, nothing leaves INSUFFICIENT_DATA
    # (the default TreatMissingData is `missing`), across several ticks.
    server.ingest_lines([record("ListUsers") for _ in range(20)])
    time.sleep(7)
    for name in ("UnauthorizedAPICallsAlarm", "RootAccountUsageAlarm"):
        assert alarm_state(server, name) == "INSUFFICIENT_DATA"
    assert receiver.messages("Notification") == []

    # Five AccessDenied calls in one five-minute period.
    denied = [record("DeleteBucket", errorCode="AccessDenied", errorMessage="Access Denied") for _ in range(5)]
    acked = time.time()
    server.ingest_lines(denied)
    note = receiver.wait_for("Notification", timeout=30)[0]
    latency = time.time() - acked
    assert verify(note)
    assert note["TopicArn"] == topic
    assert note["Subject"] == 'ALARM: "UnauthorizedAPICallsAlarm" in US East (N. Virginia)'
    message = json.loads(note["Message"])
    assert message["AlarmName"] == "UnauthorizedAPICallsAlarm"
    assert (message["OldStateValue"], message["NewStateValue"]) == ("INSUFFICIENT_DATA", "ALARM")
    assert message["Trigger"]["MetricName"] == "UnauthorizedAPICalls"
    assert message["Trigger"]["Namespace"] == "CloudTrailMetrics"
    assert message["Trigger"]["Threshold"] == 5.0
    assert message["AWSAccountId"] == ACCOUNT
    assert alarm_state(server, "UnauthorizedAPICallsAlarm") == "ALARM"
    assert alarm_state(server, "RootAccountUsageAlarm") == "INSUFFICIENT_DATA"
    assert latency < 10, latency

    # One root-account call.
    server.ingest_lines([record("CreateUser", userIdentity={"type": "Root", "accountId": ACCOUNT,
                                                            "arn": f"arn:aws:iam::{ACCOUNT}:root"})])
    notes = receiver.wait_for("Notification", count=2, timeout=30)
    root = json.loads(notes[1]["Message"])
    assert verify(notes[1])
    assert (root["AlarmName"], root["NewStateValue"]) == ("RootAccountUsageAlarm", "ALARM")
    assert alarm_state(server, "RootAccountUsageAlarm") == "ALARM"

    for name in ("UnauthorizedAPICallsAlarm", "RootAccountUsageAlarm"):
        history = server.aws("cloudwatch", "describe-alarm-history", "--alarm-name", name)["AlarmHistoryItems"]
        summaries = [h["HistorySummary"] for h in history]
        assert "Alarm updated from INSUFFICIENT_DATA to ALARM" in summaries
        assert f'Alarm "{name}" created' in summaries
        assert any(s.startswith("Successfully executed action arn:aws:sns:") for s in summaries)

    found = server.aws("logs", "filter-log-events", "--log-group-name", "CloudTrail", "--filter-pattern",
                       '{ $.errorCode = "AccessDenied*" }')["events"]
    assert len(found) == 5
    assert {json.loads(e["message"])["eventID"] for e in found} == {json.loads(d)["eventID"] for d in denied}
    # No notification twice for one state change.
    time.sleep(6)
    assert len(receiver.messages("Notification")) == 2


def test_alarm_validation_is_answered_as_cloudwatch_answers_it(server):
    cw = server.client("cloudwatch")
    import botocore.exceptions
    base = dict(AlarmName="a", MetricName="M", Namespace="N", Statistic="Sum", Period=60, EvaluationPeriods=1,
                Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold")
    for change, code in [
        ({"Statistic": "Total"}, "ValidationError"),
        ({"Period": 45}, "InvalidParameterValue"),
        ({"Statistic": None, "ExtendedStatistic": "p99", "Period": 300}, None),
        ({"Period": 10}, None),
        ({"Period": 30}, None),
        ({"DatapointsToAlarm": 2}, "InvalidParameterValue"),
    ]:
        args = {k: v for k, v in {**base, **change}.items() if v is not None}
        if code is None:
            cw.put_metric_alarm(**args)
            continue
        with pytest.raises(botocore.exceptions.ClientError) as e:
            cw.put_metric_alarm(**args)
        assert e.value.response["Error"]["Code"] in (code, "InvalidParameterCombination"), (change, e.value.response)
    # An action on a topic that does not exist is accepted, and fails when it runs.
    cw.put_metric_alarm(**{**base, "AlarmName": "b",
                           "AlarmActions": [f"arn:aws:sns:us-east-1:{ACCOUNT}:nowhere"]})
    cw.set_alarm_state(AlarmName="b", StateValue="ALARM", StateReason="testing")
    history = cw.describe_alarm_history(AlarmName="b")["AlarmHistoryItems"]
    assert any(h["HistorySummary"] == f"Failed to execute action arn:aws:sns:us-east-1:{ACCOUNT}:nowhere"
               for h in history)


def test_metrics_statistics_and_the_query_protocol(server):
    cw = server.client("cloudwatch")
    now = datetime.now(timezone.utc)
    cw.put_metric_data(Namespace="App", MetricData=[
        {"MetricName": "Latency", "Dimensions": [{"Name": "Api", "Value": "get"}], "Value": v, "Unit": "Milliseconds",
         "Timestamp": now} for v in (10, 20, 30, 40)])
    metrics = cw.list_metrics(Namespace="App")["Metrics"]
    assert metrics == [{"Namespace": "App", "MetricName": "Latency", "Dimensions": [{"Name": "Api", "Value": "get"}]}]
    stats = cw.get_metric_statistics(Namespace="App", MetricName="Latency", Dimensions=[{"Name": "Api", "Value": "get"}],
                                     StartTime=now.timestamp() - 600, EndTime=now.timestamp() + 60, Period=60,
                                     Statistics=["Sum", "Average", "SampleCount", "Maximum"])["Datapoints"]
    assert len(stats) == 1
    assert (stats[0]["Sum"], stats[0]["Average"], stats[0]["SampleCount"], stats[0]["Maximum"]) == (100, 25, 4, 40)
    p = cw.get_metric_statistics(Namespace="App", MetricName="Latency", Dimensions=[{"Name": "Api", "Value": "get"}],
                                 StartTime=now.timestamp() - 600, EndTime=now.timestamp() + 60, Period=60,
                                 ExtendedStatistics=["p50"])["Datapoints"]
    assert p[0]["ExtendedStatistics"]["p50"] in (20.0, 25.0)

    # The query protocol of older SDKs: a form body, XML back.
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    from conftest import ACCESS_KEY, SECRET_KEY
    body = "Action=ListMetrics&Version=2010-08-01&Namespace=App"
    request = botocore.awsrequest.AWSRequest(method="POST", url=server.endpoint + "/", data=body,
                                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY), "monitoring",
                            "us-east-1").add_auth(request)
    prepared = request.prepare()
    req = urllib.request.Request(prepared.url, data=body.encode(), method="POST", headers=dict(prepared.headers))
    with urllib.request.urlopen(req, timeout=10) as r:
        xml = r.read().decode()
    assert "<ListMetricsResponse" in xml and "<MetricName>Latency</MetricName>" in xml
    assert "<member><Name>Api</Name><Value>get</Value></member>" in xml


def test_the_cis_set_goes_on_a_trail_with_one_command_and_fires(server, tmp_path):
    """scripts/cis-monitoring.sh against Cairn: every control's filter and
    alarm, a topic; a file subscription sees a CIS alarm fire."""
    import subprocess
    from conftest import REPO
    server.aws("s3api", "create-bucket", "--bucket", "audit", expect_json=False)
    proc = subprocess.run([str(REPO / "scripts" / "cis-monitoring.sh")], env=server.env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    controls = json.loads((REPO / "monitoring" / "cis-aws-foundations.json").read_text())["controls"]
    filters = server.aws("logs", "describe-metric-filters", "--log-group-name", "CloudTrail")["metricFilters"]
    assert len(filters) == len(controls) == 14
    alarms = server.aws("cloudwatch", "describe-alarms")["MetricAlarms"]
    assert len(alarms) == 14
    topic = server.aws("sns", "list-topics")["Topics"][0]["TopicArn"]
    assert topic.endswith(":cis-alarms")
    alerts = server.data_dir / "notifications" / "cis.jsonl"
    server.aws("sns", "subscribe", "--topic-arn", topic, "--protocol", "file", "--notification-endpoint",
               f"file://{alerts}")
    server.aws("cloudtrail", "create-trail", "--name", "cis-trail", "--s3-bucket-name", "audit",
               "--cloud-watch-logs-log-group-arn", GROUP_ARN, "--cloud-watch-logs-role-arn", ROLE_ARN)
    server.aws("cloudtrail", "start-logging", "--name", "cis-trail", expect_json=False)
    server.ingest_lines([record("ConsoleLogin", eventSource="signin.amazonaws.com",
                                additionalEventData={"MFAUsed": "No"},
                                responseElements={"ConsoleLogin": "Success"})])
    wait_for(lambda: alerts.exists() and alerts.read_text().strip(), timeout=30, message="a CIS alarm notification")
    fired = [json.loads(json.loads(line)["Message"]) for line in alerts.read_text().splitlines()]
    mfa = next(c for c in controls if c["id"] == "CloudWatch.3")
    assert [f["AlarmName"] for f in fired] == [mfa["alarm"]["alarmName"]]
    assert fired[0]["NewStateValue"] == "ALARM"


def test_get_metric_data_returns_metric_stat_queries(server):
    cw = server.client("cloudwatch")
    now = datetime.now(timezone.utc)
    cw.put_metric_data(Namespace="App", MetricData=[{"MetricName": "Hits", "Value": v, "Timestamp": now}
                                                    for v in (1, 2, 3)])
    answer = cw.get_metric_data(StartTime=now.timestamp() - 600, EndTime=now.timestamp() + 60, MetricDataQueries=[
        {"Id": "sum", "MetricStat": {"Metric": {"Namespace": "App", "MetricName": "Hits"}, "Period": 60, "Stat": "Sum"}},
        {"Id": "p100", "MetricStat": {"Metric": {"Namespace": "App", "MetricName": "Hits"}, "Period": 60,
                                      "Stat": "p100"}, "Label": "max"},
    ])
    results = {r["Id"]: r for r in answer["MetricDataResults"]}
    assert results["sum"]["Values"] == [6.0] and results["sum"]["StatusCode"] == "Complete"
    assert results["p100"]["Values"] == [3.0] and results["p100"]["Label"] == "max"
    import botocore.exceptions
    with pytest.raises(botocore.exceptions.ClientError):
        cw.get_metric_data(StartTime=now.timestamp() - 600, EndTime=now.timestamp(),
                           MetricDataQueries=[{"Id": "e", "Expression": "SUM(METRICS())"}])
