"""kill -9 while alarms are firing and their notifications wait for an
endpoint that refuses them: after the restart every state change is notified
once (the endpoint takes each exactly once) and no alarm fires again."""

import json
import time
import urllib.request
from datetime import datetime, timezone

import pytest

from conftest import ACCOUNT, wait_for
from sns_receiver import Receiver, verify

FAST_RETRIES = json.dumps({"healthyRetryPolicy": {"minDelayTarget": 1, "maxDelayTarget": 1, "numRetries": 100,
                                                  "numNoDelayRetries": 0, "numMinDelayRetries": 0,
                                                  "numMaxDelayRetries": 100, "backoffFunction": "linear"}})


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def test_no_notification_is_lost_or_sent_twice_across_kill_9(make_server, receiver):
    server = make_server().start()
    sns = server.client("sns")
    cw = server.client("cloudwatch")
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=receiver.url,
                  Attributes={"DeliveryPolicy": FAST_RETRIES})
    confirmation = receiver.wait_for("SubscriptionConfirmation")[0]
    urllib.request.urlopen(confirmation["SubscribeURL"], timeout=10).read()
    names = [f"alarm-{i}" for i in range(6)]
    for i, name in enumerate(names):
        cw.put_metric_alarm(AlarmName=name, MetricName=f"M{i}", Namespace="Crash", Statistic="Sum", Period=60,
                            EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold",
                            AlarmActions=[topic])
    receiver.status = 500  # the endpoint refuses: notifications wait in the outbox
    now = datetime.now(timezone.utc)
    for i in range(len(names)):
        cw.put_metric_data(Namespace="Crash", MetricData=[{"MetricName": f"M{i}", "Value": 5, "Timestamp": now}])
    wait_for(lambda: all(a["StateValue"] == "ALARM" for a in cw.describe_alarms(AlarmNames=names)["MetricAlarms"]),
             timeout=30, message="every alarm in ALARM")
    wait_for(lambda: len(receiver.messages("Notification")) >= len(names), timeout=30,
             message="a refused attempt of every notification")
    assert receiver.messages("Notification", accepted_only=True) == []
    server.kill9()

    receiver.status = 200
    server.start()
    wait_for(lambda: len(receiver.messages("Notification", accepted_only=True)) >= len(names), timeout=60,
             message="every notification delivered after the restart")
    time.sleep(8)  # a few more evaluation ticks and retry rounds
    accepted = receiver.messages("Notification", accepted_only=True)
    alarms = [json.loads(m["Message"]) for m in accepted]
    assert sorted(a["AlarmName"] for a in alarms) == names, [a["AlarmName"] for a in alarms]
    assert all(a["NewStateValue"] == "ALARM" for a in alarms)
    assert len({m["MessageId"] for m in accepted}) == len(names)
    assert all(verify(m) for m in accepted)
    assert server.metrics()["cairn_notifications_pending"] == 0
    for name in names:
        history = cw.describe_alarm_history(AlarmName=name, HistoryItemType="StateUpdate")["AlarmHistoryItems"]
        assert len(history) == 1, history
