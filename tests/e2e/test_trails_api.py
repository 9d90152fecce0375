"""The CloudTrail trail API through the real AWS CLI and boto3."""

import json

import botocore.exceptions
import pytest

from conftest import ACCOUNT


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def test_trail_lifecycle_with_the_aws_cli(server):
    server.aws("s3api", "create-bucket", "--bucket", "audit-logs")
    created = server.aws("cloudtrail", "create-trail", "--name", "main", "--s3-bucket-name", "audit-logs",
                         "--s3-key-prefix", "org", "--enable-log-file-validation")
    arn = f"arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/main"
    assert created["TrailARN"] == arn
    assert created["Name"] == "main"
    assert created["S3KeyPrefix"] == "org"
    assert created["IncludeGlobalServiceEvents"] is True
    assert created["IsMultiRegionTrail"] is False
    assert created["LogFileValidationEnabled"] is True

    trail = server.aws("cloudtrail", "get-trail", "--name", "main")["Trail"]
    assert trail["HomeRegion"] == "us-east-1"
    assert trail["HasCustomEventSelectors"] is False
    assert server.aws("cloudtrail", "get-trail", "--name", arn)["Trail"]["TrailARN"] == arn

    listed = server.aws("cloudtrail", "list-trails")["Trails"]
    assert listed == [{"TrailARN": arn, "Name": "main", "HomeRegion": "us-east-1"}]
    described = server.aws("cloudtrail", "describe-trails")["trailList"]
    assert [t["Name"] for t in described] == ["main"]
    assert server.aws("cloudtrail", "describe-trails", "--trail-name-list", "nope")["trailList"] == []

    status = server.aws("cloudtrail", "get-trail-status", "--name", "main")
    assert status["IsLogging"] is False
    server.aws("cloudtrail", "start-logging", "--name", "main", expect_json=False)
    status = server.aws("cloudtrail", "get-trail-status", "--name", "main")
    assert status["IsLogging"] is True
    # Timestamps arrive as epoch seconds, as AWS sends them.
    assert isinstance(status["StartLoggingTime"], (int, float))
    assert status["TimeLoggingStarted"].endswith("Z")
    server.aws("cloudtrail", "stop-logging", "--name", "main", expect_json=False)
    status = server.aws("cloudtrail", "get-trail-status", "--name", "main")
    assert status["IsLogging"] is False
    assert status["StopLoggingTime"] >= status["StartLoggingTime"]

    updated = server.aws("cloudtrail", "update-trail", "--name", "main", "--is-multi-region-trail")
    assert updated["IsMultiRegionTrail"] is True

    selectors = server.aws("cloudtrail", "get-event-selectors", "--trail-name", "main")
    assert selectors["EventSelectors"] == [
        {"ReadWriteType": "All", "IncludeManagementEvents": True, "DataResources": [], "ExcludeManagementEventSources": []}
    ]
    put = server.aws("cloudtrail", "put-event-selectors", "--trail-name", "main", "--event-selectors",
                     json.dumps([{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": True}]))
    assert put["TrailARN"] == arn
    assert put["EventSelectors"] == [{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": True,
                                      "DataResources": [], "ExcludeManagementEventSources": []}]
    advanced = [{"Name": "s3 writes", "FieldSelectors": [
        {"Field": "eventCategory", "Equals": ["Data"]},
        {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
        {"Field": "readOnly", "Equals": ["false"]}]}]
    server.aws("cloudtrail", "put-event-selectors", "--trail-name", "main", "--advanced-event-selectors",
               json.dumps(advanced))
    got = server.aws("cloudtrail", "get-event-selectors", "--trail-name", "main")
    assert got["AdvancedEventSelectors"] == advanced
    assert "EventSelectors" not in got
    assert server.aws("cloudtrail", "get-trail", "--name", "main")["Trail"]["HasCustomEventSelectors"] is True

    server.aws("cloudtrail", "add-tags", "--resource-id", arn, "--tags-list", "Key=team,Value=sec")
    tags = server.aws("cloudtrail", "list-tags", "--resource-id-list", arn)
    assert tags["ResourceTagList"] == [{"ResourceId": arn, "TagsList": [{"Key": "team", "Value": "sec"}]}]

    server.aws("cloudtrail", "delete-trail", "--name", "main", expect_json=False)
    assert server.aws("cloudtrail", "list-trails")["Trails"] == []


@pytest.mark.parametrize("name,message", [
    ("ab", "Trail name too short"),
    ("bad name", "can only contain"),
    ("-leading", "must starts with a letter or number"),
    ("double--dash", "adjacent"),
    ("10.0.0.1", "IP address"),
])
def test_bad_trail_names_are_refused(server, name, message):
    server.aws("s3api", "create-bucket", "--bucket", "b-names")
    proc = server.aws("cloudtrail", "create-trail", f"--name={name}", "--s3-bucket-name", "b-names", check=False)
    assert proc.returncode == 255
    assert "InvalidTrailNameException" in proc.stderr
    assert message in proc.stderr
    assert server.aws("cloudtrail", "list-trails")["Trails"] == []


def test_create_trail_errors(server):
    ct = server.client("cloudtrail")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ct.create_trail(Name="trail-one", S3BucketName="missing-bucket")
    assert error_code(e) == "S3BucketDoesNotExistException"
    server.client("s3").create_bucket(Bucket="bkt-one")
    ct.create_trail(Name="trail-one", S3BucketName="bkt-one")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ct.create_trail(Name="trail-one", S3BucketName="bkt-one")
    assert error_code(e) == "TrailAlreadyExistsException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ct.create_trail(Name="trail-two", S3BucketName="bkt-one", IsMultiRegionTrail=True, IncludeGlobalServiceEvents=False)
    assert error_code(e) == "InvalidParameterCombinationException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ct.get_trail(Name="nope")
    assert error_code(e) == "TrailNotFoundException"
    assert "Unknown trail: arn:aws:cloudtrail:us-east-1:123456789012:trail/nope for the user: 123456789012" in str(e.value)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ct.start_logging(Name="nope")
    assert error_code(e) == "TrailNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ct.create_trail(Name="trail-three", S3BucketName="bkt-one", S3KeyPrefix="x" * 201)
    assert error_code(e) == "InvalidS3PrefixException"
    for i in range(2, 6):
        ct.create_trail(Name=f"trail-{i + 10}", S3BucketName="bkt-one")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ct.create_trail(Name="trail-99", S3BucketName="bkt-one")
    assert error_code(e) == "MaximumNumberOfTrailsExceededException"


@pytest.mark.parametrize("kwargs", [
    {"AdvancedEventSelectors": [{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]},
                                                   {"Field": "colour", "Equals": ["blue"]}]}]},
    {"AdvancedEventSelectors": [{"FieldSelectors": [{"Field": "eventCategory", "StartsWith": ["Manage"]}]}]},
    {"EventSelectors": [{"ReadWriteType": "read-only"}]},
    {"EventSelectors": [{"ReadWriteType": "All"}] * 6},
    {"EventSelectors": [{"ReadWriteType": "All"}],
     "AdvancedEventSelectors": [{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}]},
    {"EventSelectors": [{"DataResources": [{"Type": "AWS::EC2::Instance", "Values": ["arn:aws:ec2"]}]}]},
])
def test_bad_selectors_are_refused(server, kwargs):
    server.client("s3").create_bucket(Bucket="bkt-one")
    ct = server.client("cloudtrail")
    ct.create_trail(Name="trail-one", S3BucketName="bkt-one")
    before = ct.get_event_selectors(TrailName="trail-one")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ct.put_event_selectors(TrailName="trail-one", **kwargs)
    assert error_code(e) == "InvalidEventSelectorsException"
    after = ct.get_event_selectors(TrailName="trail-one")
    before.pop("ResponseMetadata"), after.pop("ResponseMetadata")
    assert before == after


def test_unknown_operator_is_refused_over_raw_json(server):
    """botocore would refuse an unknown operator key client-side, so send the JSON ourselves."""
    server.client("s3").create_bucket(Bucket="bkt-one")
    server.client("cloudtrail").create_trail(Name="trail-one", S3BucketName="bkt-one")
    import botocore.auth, botocore.awsrequest, botocore.credentials, urllib.request, urllib.error
    from conftest import ACCESS_KEY, SECRET_KEY
    body = json.dumps({"TrailName": "trail-one", "AdvancedEventSelectors": [
        {"FieldSelectors": [{"Field": "eventCategory", "Matches": ["Management"]}]}]}).encode()
    req = botocore.awsrequest.AWSRequest(method="POST", url=server.endpoint + "/", data=body, headers={
        "X-Amz-Target": "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.PutEventSelectors",
        "Content-Type": "application/x-amz-json-1.1"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY), "cloudtrail", "us-east-1").add_auth(req)
    p = req.prepare()
    try:
        urllib.request.urlopen(urllib.request.Request(p.url, data=body, method="POST", headers=dict(p.headers)))
        raise AssertionError("accepted an unknown operator")
    except urllib.error.HTTPError as e:
        assert e.code == 400
        answer = json.loads(e.read())
        assert answer["__type"] == "InvalidEventSelectorsException"
        assert "Matches" in answer["message"]


def test_organization_trail_needs_an_organization(make_server):
    s = make_server('account_id = "123456789012"\n').start()
    s.client("s3").create_bucket(Bucket="bkt-one")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s.client("cloudtrail").create_trail(Name="org", S3BucketName="bkt-one", IsOrganizationTrail=True)
    assert error_code(e) == "OrganizationsNotInUseException"


def test_organization_trail_only_from_management_account(make_server):
    s = make_server('account_id = "210987654321"\n[organization]\nid = "o-exampleorgid"\n'
                    'management_account = "123456789012"\nmember_accounts = ["210987654321"]\n').start()
    s.client("s3").create_bucket(Bucket="bkt-one")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s.client("cloudtrail").create_trail(Name="org", S3BucketName="bkt-one", IsOrganizationTrail=True)
    assert error_code(e) == "NotOrganizationMasterAccountException"
