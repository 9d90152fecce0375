"""SNS through the real AWS CLI and boto3: topics, http and file
subscriptions with SubscriptionConfirmation and signed notifications
(checked with an independent implementation of AWS's algorithm), Publish,
attributes, tags and bad input."""

import json
import urllib.request

import botocore.exceptions
import pytest

from conftest import ACCOUNT, wait_for
from sns_receiver import Receiver, verify


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def error_of(excinfo):
    return excinfo.value.response["Error"]["Code"], excinfo.value.response["Error"]["Message"]


def confirm(server, receiver):
    """Confirms the pending subscription through its SubscribeURL, as an
    endpoint does (an unsigned GET)."""
    confirmation = receiver.wait_for("SubscriptionConfirmation")[-1]
    assert verify(confirmation)
    with urllib.request.urlopen(confirmation["SubscribeURL"], timeout=10) as r:
        body = r.read().decode()
    assert "<ConfirmSubscriptionResult>" in body
    return confirmation


def test_topic_http_subscription_confirmation_and_signed_notifications(server, receiver):
    arn = server.aws("sns", "create-topic", "--name", "security-alerts")["TopicArn"]
    assert arn == f"arn:aws:sns:us-east-1:{ACCOUNT}:security-alerts"
    # CreateTopic is idempotent.
    assert server.aws("sns", "create-topic", "--name", "security-alerts")["TopicArn"] == arn
    assert server.aws("sns", "list-topics")["Topics"] == [{"TopicArn": arn}]

    answer = server.aws("sns", "subscribe", "--topic-arn", arn, "--protocol", "http",
                        "--notification-endpoint", receiver.url)
    assert answer["SubscriptionArn"] == "pending confirmation"
    confirmation = confirm(server, receiver)
    assert confirmation["TopicArn"] == arn
    assert confirmation["Message"].startswith(f"You have chosen to subscribe to the topic {arn}.")
    headers = receiver.received[0]["headers"]
    assert headers["x-amz-sns-message-type"] == "SubscriptionConfirmation"
    assert headers["user-agent"] == "Amazon Simple Notification Service Agent"

    subs = server.aws("sns", "list-subscriptions-by-topic", "--topic-arn", arn)["Subscriptions"]
    assert len(subs) == 1 and subs[0]["SubscriptionArn"].startswith(arn + ":")
    assert subs[0]["Endpoint"] == receiver.url and subs[0]["Protocol"] == "http"

    published = server.aws("sns", "publish", "--topic-arn", arn, "--subject", "hello", "--message", "the body")
    note = receiver.wait_for("Notification")[0]
    assert note["MessageId"] == published["MessageId"]
    assert (note["Subject"], note["Message"], note["TopicArn"]) == ("hello", "the body", arn)
    assert verify(note)
    tampered = dict(note, Message="something else")
    with pytest.raises(Exception):
        verify(tampered)
    assert note["UnsubscribeURL"].endswith(subs[0]["SubscriptionArn"])

    attributes = server.aws("sns", "get-topic-attributes", "--topic-arn", arn)["Attributes"]
    assert attributes["TopicArn"] == arn and attributes["Owner"] == ACCOUNT
    assert attributes["SubscriptionsConfirmed"] == "1" and attributes["SubscriptionsPending"] == "0"
    assert json.loads(attributes["Policy"])["Statement"]
    server.aws("sns", "set-topic-attributes", "--topic-arn", arn, "--attribute-name", "DisplayName",
               "--attribute-value", "Alerts", expect_json=False)
    attributes = server.aws("sns", "get-topic-attributes", "--topic-arn", arn)["Attributes"]
    assert attributes["DisplayName"] == "Alerts"

    sub_arn = subs[0]["SubscriptionArn"]
    sub_attributes = server.aws("sns", "get-subscription-attributes", "--subscription-arn", sub_arn)["Attributes"]
    assert sub_attributes["PendingConfirmation"] == "false" and sub_attributes["Endpoint"] == receiver.url
    server.aws("sns", "unsubscribe", "--subscription-arn", sub_arn, expect_json=False)
    assert server.aws("sns", "list-subscriptions")["Subscriptions"] == []
    server.aws("sns", "delete-topic", "--topic-arn", arn, expect_json=False)
    assert server.aws("sns", "list-topics")["Topics"] == []


def test_a_pending_subscription_gets_nothing_and_the_link_needs_the_token(server, receiver):
    sns = server.client("sns")
    arn = sns.create_topic(Name="t")["TopicArn"]
    sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=receiver.url)
    confirmation = receiver.wait_for("SubscriptionConfirmation")[0]
    sns.publish(TopicArn=arn, Message="before confirmation")
    bad = confirmation["SubscribeURL"].replace(confirmation["Token"], "0" * len(confirmation["Token"]))
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(bad, timeout=10)
    assert e.value.code == 400
    confirm(server, receiver)
    sns.publish(TopicArn=arn, Message="after confirmation")
    received = receiver.wait_for("Notification")
    import time
    time.sleep(0.5)
    assert [m["Message"] for m in receiver.messages("Notification")] == ["after confirmation"]


def test_file_subscriptions_append_json_lines(server):
    sns = server.client("sns")
    arn = sns.create_topic(Name="to-file")["TopicArn"]
    path = server.data_dir / "notifications" / "alerts.jsonl"
    sub = sns.subscribe(TopicArn=arn, Protocol="file", Endpoint=f"file://{path}")["SubscriptionArn"]
    assert sub.startswith(arn + ":")
    for i in range(3):
        sns.publish(TopicArn=arn, Message=f"m{i}")
    wait_for(lambda: path.exists() and len(path.read_text().splitlines()) == 3, timeout=30,
             message="three lines in the file")
    lines = [json.loads(l) for l in path.read_text().splitlines()]
    assert [l["Message"] for l in lines] == ["m0", "m1", "m2"]
    assert all(verify(l) for l in lines)
    # Outside the configured roots: refused.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sns.subscribe(TopicArn=arn, Protocol="file", Endpoint="file:///etc/cairn-test.jsonl")
    assert error_of(e)[0] == "InvalidParameter"


def test_an_unreachable_endpoint_is_retried_without_blocking(server):
    sns = server.client("sns")
    arn = sns.create_topic(Name="t")["TopicArn"]
    # Nothing listens on this port: the confirmation request fails and is retried.
    sns.subscribe(TopicArn=arn, Protocol="http", Endpoint="http://127.0.0.1:9/nowhere")
    for _ in range(5):
        sns.publish(TopicArn=arn, Message="x")
    assert len(sns.list_topics()["Topics"]) == 1
    assert server.metrics().get("cairn_notifications_pending", 0) >= 1


@pytest.mark.parametrize("call,code", [
    (lambda s: s.create_topic(Name="bad name"), "InvalidParameter"),
    (lambda s: s.create_topic(Name="x" * 257), "InvalidParameter"),
    (lambda s: s.get_topic_attributes(TopicArn=f"arn:aws:sns:us-east-1:{ACCOUNT}:missing"), "NotFound"),
    (lambda s: s.publish(TopicArn=f"arn:aws:sns:us-east-1:{ACCOUNT}:missing", Message="m"), "NotFound"),
    (lambda s: s.subscribe(TopicArn=f"arn:aws:sns:us-east-1:{ACCOUNT}:t", Protocol="email",
                           Endpoint="a@example.com"), "InvalidParameter"),
    (lambda s: s.subscribe(TopicArn=f"arn:aws:sns:us-east-1:{ACCOUNT}:t", Protocol="http",
                           Endpoint="ftp://x"), "InvalidParameter"),
    (lambda s: s.publish(TopicArn=f"arn:aws:sns:us-east-1:{ACCOUNT}:t", Message=""), "InvalidParameter"),
])
def test_bad_sns_requests_are_answered_as_sns_answers_them(server, call, code):
    sns = server.client("sns")
    sns.create_topic(Name="t")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(sns)
    assert error_of(e)[0] == code


def test_topic_tags(server):
    sns = server.client("sns")
    arn = sns.create_topic(Name="t", Tags=[{"Key": "team", "Value": "sec"}])["TopicArn"]
    sns.tag_resource(ResourceArn=arn, Tags=[{"Key": "env", "Value": "prod"}])
    tags = {t["Key"]: t["Value"] for t in sns.list_tags_for_resource(ResourceArn=arn)["Tags"]}
    assert tags == {"team": "sec", "env": "prod"}
    sns.untag_resource(ResourceArn=arn, TagKeys=["team"])
    assert sns.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "env", "Value": "prod"}]


def test_a_trail_with_a_topic_notifies_every_delivered_log_file(server):
    sns = server.client("sns")
    ct = server.client("cloudtrail")
    server.client("s3").create_bucket(Bucket="audit")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ct.create_trail(Name="notified", S3BucketName="audit", SnsTopicName="missing-topic")
    assert error_of(e)[0] == "InsufficientSnsTopicPolicyException"
    topic = sns.create_topic(Name="log-files")["TopicArn"]
    path = server.data_dir / "notifications" / "log-files.jsonl"
    sns.subscribe(TopicArn=topic, Protocol="file", Endpoint=f"file://{path}")
    created = ct.create_trail(Name="notified", S3BucketName="audit", SnsTopicName="log-files")
    assert created["SnsTopicName"] == "log-files" and created["SnsTopicARN"] == topic
    assert ct.get_trail(Name="notified")["Trail"]["SnsTopicARN"] == topic
    ct.start_logging(Name="notified")
    line = json.dumps({"eventVersion": "1.08", "eventTime": "2026-12-02T10:00:00Z", "eventSource": "s3.amazonaws.com",
                       "eventName": "ListBuckets", "awsRegion": "us-east-1", "eventID": "n-1",
                       "eventType": "AwsApiCall", "recipientAccountId": ACCOUNT})
    server.ingest_lines([line])
    wait_for(lambda: path.exists() and path.read_text().strip(), timeout=30, message="a log-file notification")
    note = json.loads(path.read_text().splitlines()[0])
    assert verify(note)
    message = json.loads(note["Message"])
    assert message["s3Bucket"] == "audit"
    delivered = server.delivered("audit")
    assert message["s3ObjectKey"] == sorted(delivered)
    status = ct.get_trail_status(Name="notified")
    assert "LatestNotificationTime" in status and status["LatestNotificationAttemptSucceeded"]
    assert "LatestNotificationError" not in status


def test_signature_version_2_topics_sign_with_sha256(server):
    sns = server.client("sns")
    arn = sns.create_topic(Name="v2", Attributes={"SignatureVersion": "2"})["TopicArn"]
    assert sns.get_topic_attributes(TopicArn=arn)["Attributes"]["SignatureVersion"] == "2"
    path = server.data_dir / "notifications" / "v2.jsonl"
    sns.subscribe(TopicArn=arn, Protocol="file", Endpoint=f"file://{path}")
    sns.publish(TopicArn=arn, Message="signed with SHA256", Subject="v2")
    wait_for(lambda: path.exists() and path.read_text().strip(), timeout=30, message="a notification")
    note = json.loads(path.read_text().splitlines()[0])
    assert note["SignatureVersion"] == "2"
    assert verify(note)
    with urllib.request.urlopen(note["SigningCertURL"], timeout=10) as r:
        assert r.read().startswith(b"-----BEGIN CERTIFICATE-----")
