"""Regions as AWS has them: a trail's home region is its CreateTrail request's
region (the SigV4 scope), single-region trails are seen only at home,
multi-region trails appear elsewhere as shadow trails, and the quota of five
trails counts per region. Also GetTrailStatus' members in each state and
insight selectors."""

import json
import re

import boto3
import botocore.config
import botocore.exceptions
import pytest

from conftest import ACCESS_KEY, ACCOUNT, LOG_KEY, SECRET_KEY, wait_for

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]


def ct(server, region):
    return boto3.client(
        "cloudtrail", endpoint_url=server.endpoint, region_name=region,
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


def arn(region, name):
    return f"arn:aws:cloudtrail:{region}:{ACCOUNT}:trail/{name}"


def code(e):
    return e.value.response["Error"]["Code"]


def test_trails_live_in_their_home_region(server):
    server.client("s3").create_bucket(Bucket="logs-bucket")
    clients = {r: ct(server, r) for r in REGIONS}
    for r, c in clients.items():
        created = c.create_trail(Name=f"local-{r}", S3BucketName="logs-bucket")
        assert created["TrailARN"] == arn(r, f"local-{r}")
    world = clients["eu-west-1"].create_trail(Name="world", S3BucketName="logs-bucket", IsMultiRegionTrail=True)
    assert world["TrailARN"] == arn("eu-west-1", "world")

    for r, c in clients.items():
        described = c.describe_trails()["trailList"]
        by_arn = {t["TrailARN"]: t for t in described}
        # The region's own single-region trail, and the multi-region one (at home or as a shadow).
        assert set(by_arn) == {arn(r, f"local-{r}"), arn("eu-west-1", "world")}, (r, by_arn)
        assert by_arn[arn("eu-west-1", "world")]["HomeRegion"] == "eu-west-1"
        assert by_arn[arn(r, f"local-{r}")]["HomeRegion"] == r
        # Shadows hidden on request.
        own = {t["TrailARN"] for t in c.describe_trails(includeShadowTrails=False)["trailList"]}
        expected = {arn(r, f"local-{r}")} | ({arn("eu-west-1", "world")} if r == "eu-west-1" else set())
        assert own == expected, (r, own)
        # ListTrails lists the trails seen in the region (its own and multi-region ones), with home regions.
        listed = {(t["TrailARN"], t["HomeRegion"]) for t in c.list_trails()["Trails"]}
        assert listed == {(arn(r, f"local-{r}"), r), (arn("eu-west-1", "world"), "eu-west-1")}, (r, listed)

    us = clients["us-east-1"]
    # A single-region trail is unknown elsewhere, by name and by ARN.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        us.get_trail(Name="local-eu-west-1")
    assert code(e) == "TrailNotFoundException"
    assert str(arn("us-east-1", "local-eu-west-1")) in e.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        us.get_trail_status(Name=arn("eu-west-1", "local-eu-west-1"))
    assert code(e) == "TrailNotFoundException"
    # Names in a trail name list match the region's own trails only; ARNs reach shadows.
    assert us.describe_trails(trailNameList=["world"])["trailList"] == []
    assert [t["Name"] for t in us.describe_trails(trailNameList=[arn("eu-west-1", "world")])["trailList"]] == ["world"]

    # GetTrail of a shadow works by name and ARN; GetTrailStatus by ARN only.
    assert us.get_trail(Name="world")["Trail"]["TrailARN"] == arn("eu-west-1", "world")
    assert us.get_trail(Name=arn("eu-west-1", "world"))["Trail"]["HomeRegion"] == "eu-west-1"
    clients["eu-west-1"].start_logging(Name="world")
    status = us.get_trail_status(Name=arn("eu-west-1", "world"))
    assert status["IsLogging"] is True
    with pytest.raises(botocore.exceptions.ClientError) as e:
        us.get_trail_status(Name="world")
    assert code(e) == "TrailNotFoundException"

    # Changes are made at home only.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        us.stop_logging(Name=arn("eu-west-1", "world"))
    assert code(e) == "InvalidHomeRegionException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        us.update_trail(Name=arn("eu-west-1", "world"), S3KeyPrefix="x")
    assert code(e) == "InvalidHomeRegionException"

    # A multi-region trail's name is taken in every region.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        us.create_trail(Name="world", S3BucketName="logs-bucket")
    assert code(e) == "TrailAlreadyExistsException"
    # A single-region name may repeat in another region.
    created = us.create_trail(Name="local-eu-west-1", S3BucketName="logs-bucket")
    assert created["TrailARN"] == arn("us-east-1", "local-eu-west-1")


def test_quota_counts_per_region_and_multi_region_trails_everywhere(server):
    server.client("s3").create_bucket(Bucket="logs-bucket")
    us, eu = ct(server, "us-east-1"), ct(server, "eu-west-1")
    us.create_trail(Name="everywhere", S3BucketName="logs-bucket", IsMultiRegionTrail=True)
    for i in range(4):
        us.create_trail(Name=f"us-{i}", S3BucketName="logs-bucket")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        us.create_trail(Name="us-5", S3BucketName="logs-bucket")
    assert code(e) == "MaximumNumberOfTrailsExceededException"
    # eu-west-1 has the shadow (one of five) and room for four more.
    for i in range(4):
        eu.create_trail(Name=f"eu-{i}", S3BucketName="logs-bucket")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        eu.create_trail(Name="eu-5", S3BucketName="logs-bucket")
    assert code(e) == "MaximumNumberOfTrailsExceededException"
    # ap-southeast-2 is untouched but for the shadow.
    ap = ct(server, "ap-southeast-2")
    for i in range(4):
        ap.create_trail(Name=f"ap-{i}", S3BucketName="logs-bucket")


STRING_MEMBERS = ["LatestDeliveryAttemptTime", "LatestNotificationAttemptTime", "LatestNotificationAttemptSucceeded",
                  "LatestDeliveryAttemptSucceeded", "TimeLoggingStarted", "TimeLoggingStopped"]


def raw_status(server, name):
    """GetTrailStatus as it is on the wire (botocore would turn epochs into datetimes)."""
    out = server.aws("cloudtrail", "get-trail-status", "--name", name)
    return out


def test_trail_status_members_in_each_state(server):
    server.client("s3").create_bucket(Bucket="logs-bucket")
    server.client("cloudtrail").create_trail(Name="main", S3BucketName="logs-bucket")
    new = raw_status(server, "main")
    assert new == {"IsLogging": False, **{m: "" for m in STRING_MEMBERS}}

    server.aws("cloudtrail", "start-logging", "--name", "main", expect_json=False)
    started = raw_status(server, "main")
    assert set(started) == {"IsLogging", "StartLoggingTime", *STRING_MEMBERS}, started
    assert started["IsLogging"] is True
    assert isinstance(started["StartLoggingTime"], (int, float))
    assert started["TimeLoggingStarted"].endswith("Z") and len(started["TimeLoggingStarted"]) == 20
    assert started["TimeLoggingStopped"] == ""
    for m in ["LatestDeliveryAttemptTime", "LatestNotificationAttemptTime", "LatestNotificationAttemptSucceeded",
              "LatestDeliveryAttemptSucceeded"]:
        assert started[m] == "", (m, started)

    # After a delivery: the delivery time (epoch) and the attempt strings.
    line = json.dumps({"eventVersion": "1.08", "eventTime": "2026-01-01T00:00:00Z", "eventSource": "iam.amazonaws.com",
                       "eventName": "ListUsers", "awsRegion": "us-east-1", "sourceIPAddress": "10.0.0.1",
                       "userAgent": "test", "readOnly": False, "eventType": "AwsApiCall",
                       "managementEvent": True, "recipientAccountId": ACCOUNT,
                       "userIdentity": {"type": "Root", "accountId": ACCOUNT}})
    server.ingest_lines([line])
    delivered = wait_for(lambda: (s := raw_status(server, "main")).get("LatestDeliveryTime") and s,
                         message="a delivery")
    assert set(delivered) == {"IsLogging", "StartLoggingTime", "LatestDeliveryTime", *STRING_MEMBERS}, delivered
    assert isinstance(delivered["LatestDeliveryTime"], (int, float))
    assert delivered["LatestDeliveryAttemptTime"].endswith("Z")
    assert delivered["LatestDeliveryAttemptSucceeded"] == delivered["LatestDeliveryAttemptTime"]
    assert delivered["LatestNotificationAttemptTime"] == "" and delivered["LatestNotificationAttemptSucceeded"] == ""

    server.aws("cloudtrail", "stop-logging", "--name", "main", expect_json=False)
    stopped = raw_status(server, "main")
    assert {"IsLogging", "StartLoggingTime", "StopLoggingTime", *STRING_MEMBERS} <= set(stopped), stopped
    assert set(stopped) - {"IsLogging", "StartLoggingTime", "StopLoggingTime", *STRING_MEMBERS} <= {
        "LatestDeliveryTime", "LatestDigestDeliveryTime"}, stopped
    assert stopped["IsLogging"] is False
    assert isinstance(stopped["StopLoggingTime"], (int, float))
    assert stopped["StopLoggingTime"] >= stopped["StartLoggingTime"]
    assert stopped["TimeLoggingStopped"].endswith("Z")
    assert stopped["TimeLoggingStarted"] == started["TimeLoggingStarted"]


def test_insight_selectors(server):
    server.client("s3").create_bucket(Bucket="logs-bucket")
    c = server.client("cloudtrail")
    c.create_trail(Name="main", S3BucketName="logs-bucket")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_insight_selectors(TrailName="main")
    assert code(e) == "InsightNotEnabledException"
    assert c.get_trail(Name="main")["Trail"]["HasInsightSelectors"] is False

    put = c.put_insight_selectors(TrailName="main", InsightSelectors=[
        {"InsightType": "ApiCallRateInsight"}, {"InsightType": "ApiErrorRateInsight"}])
    assert put["TrailARN"] == arn("us-east-1", "main")
    assert put["InsightSelectors"] == [{"InsightType": "ApiCallRateInsight"}, {"InsightType": "ApiErrorRateInsight"}]
    got = c.get_insight_selectors(TrailName=arn("us-east-1", "main"))
    assert got["InsightSelectors"] == put["InsightSelectors"]
    assert c.get_trail(Name="main")["Trail"]["HasInsightSelectors"] is True
    assert c.describe_trails()["trailList"][0]["HasInsightSelectors"] is True

    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.put_insight_selectors(TrailName="main", InsightSelectors=[{"InsightType": "ApiCallRateInsight"},
                                                                    {"InsightType": "ApiCallRateInsight"}])
    assert code(e) == "InvalidInsightSelectorsException"
    # Unchanged by the refused call.
    assert c.get_insight_selectors(TrailName="main")["InsightSelectors"] == put["InsightSelectors"]

    # Call-rate insights analyse write management events: a trail logging only reads cannot have them.
    c.put_event_selectors(TrailName="main", EventSelectors=[{"ReadWriteType": "ReadOnly",
                                                               "IncludeManagementEvents": True}])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.put_insight_selectors(TrailName="main", InsightSelectors=[{"InsightType": "ApiCallRateInsight"}])
    assert code(e) == "InvalidInsightSelectorsException"
    c.put_insight_selectors(TrailName="main", InsightSelectors=[{"InsightType": "ApiErrorRateInsight"}])
    assert c.get_insight_selectors(TrailName="main")["InsightSelectors"] == [{"InsightType": "ApiErrorRateInsight"}]

    # An empty list turns Insights off.
    c.put_insight_selectors(TrailName="main", InsightSelectors=[])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_insight_selectors(TrailName="main")
    assert code(e) == "InsightNotEnabledException"
    assert c.get_trail(Name="main")["Trail"]["HasInsightSelectors"] is False


def test_parameter_combination_is_checked_before_the_bucket(server):
    c = server.client("cloudtrail")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.create_trail(Name="trail-1", S3BucketName="no-such-bucket", IsMultiRegionTrail=True,
                       IncludeGlobalServiceEvents=False)
    assert code(e) == "InvalidParameterCombinationException"
    assert e.value.response["Error"]["Message"] == "Multi-Region trail must include global service events."
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.create_trail(Name="trail-1", S3BucketName="no-such-bucket")
    assert code(e) == "S3BucketDoesNotExistException"


def record(region, n):
    # A regional service: global service events (IAM in us-east-1) go to every trail that includes them.
    return json.dumps({"eventVersion": "1.08", "eventTime": "2026-01-01T00:00:00Z",
                       "eventSource": "ec2.amazonaws.com", "eventName": "DescribeVpcs", "awsRegion": region,
                       "eventID": f"00000000-0000-4000-8000-{n:012d}", "sourceIPAddress": "10.0.0.1",
                       "userAgent": "test", "readOnly": True, "eventType": "AwsApiCall", "managementEvent": True,
                       "recipientAccountId": ACCOUNT, "userIdentity": {"type": "Root", "accountId": ACCOUNT}})


def test_a_trail_delivers_its_home_region_or_every_region(server):
    """A single-region trail created in eu-west-1 delivers eu-west-1's records only;
    a multi-region one created there delivers every region's."""
    server.client("s3").create_bucket(Bucket="logs-bucket")
    eu = ct(server, "eu-west-1")
    eu.create_trail(Name="eu-only", S3BucketName="logs-bucket", S3KeyPrefix="single")
    eu.create_trail(Name="eu-world", S3BucketName="logs-bucket", S3KeyPrefix="multi", IsMultiRegionTrail=True)
    eu.start_logging(Name="eu-only")
    eu.start_logging(Name="eu-world")
    server.ingest_lines([record(r, i) for i, r in enumerate(["eu-west-1", "us-east-1", "eu-west-1", "ap-southeast-2"])])

    def regions_of(prefix, expected):
        files = server.delivered("logs-bucket", prefix + "/")
        found = {}
        for key, records in files.items():
            m = LOG_KEY.match(key)
            assert m, key
            for text in records:
                found.setdefault(m.group("region"), 0)
                found[m.group("region")] += 1
                assert json.loads(text)["awsRegion"] == m.group("region")
        return found if sum(found.values()) >= expected else None

    assert wait_for(lambda: regions_of("single", 2), message="eu-only delivery") == {"eu-west-1": 2}
    assert wait_for(lambda: regions_of("multi", 4), message="eu-world delivery") == {
        "eu-west-1": 2, "us-east-1": 1, "ap-southeast-2": 1}


def test_aws_cli_validates_a_trail_homed_outside_the_default_region(make_server):
    """A validating trail created in eu-west-1 (the server's default is us-east-1):
    its digests sit under CloudTrail-Digest/eu-west-1/, signed with eu-west-1's key,
    and the AWS CLI in eu-west-1 validates them."""
    import datetime
    import subprocess
    import time
    from conftest import ORG_CONFIG

    server = make_server(ORG_CONFIG + 'digest_interval = "3s"\n', region="eu-west-1").start()
    server.client("s3").create_bucket(Bucket="logs-bucket",
                                      CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    c = server.client("cloudtrail")
    start = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) - datetime.timedelta(minutes=1)
    trail_arn = c.create_trail(Name="audit", S3BucketName="logs-bucket", EnableLogFileValidation=True)["TrailARN"]
    assert trail_arn == arn("eu-west-1", "audit")
    c.start_logging(Name="audit")
    server.ingest_lines([record("eu-west-1", 100 + i) for i in range(20)])
    time.sleep(3)
    c.stop_logging(Name="audit")
    wait_for(lambda: c.get_trail_status(Name="audit").get("LatestDigestDeliveryTime"), message="a digest")
    end = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(seconds=2)
    time.sleep(2)
    keys = [o["Key"] for o in server.client("s3").list_objects_v2(Bucket="logs-bucket")["Contents"]]
    assert any("/CloudTrail-Digest/eu-west-1/" in k for k in keys), keys
    assert not any("/us-east-1/" in k for k in keys), keys
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    proc = subprocess.run(["python3", "-m", "awscli", "cloudtrail", "validate-logs", "--trail-arn", trail_arn,
                           "--start-time", start.strftime(fmt), "--end-time", end.strftime(fmt)],
                          env=server.env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "INVALID" not in proc.stdout + proc.stderr
    assert re.search(r"\n(\d+)/\1 digest files valid\n", proc.stdout) and "0/0 digest" not in proc.stdout, proc.stdout
    assert re.search(r"\n(\d+)/\1 log files valid", proc.stdout) and "0/0 log" not in proc.stdout, proc.stdout
