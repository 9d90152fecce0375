"""The edge answers every AWS protocol family in its own shape: served services
(CloudTrail over JSON 1.1, STS over the query protocol, S3 over REST-XML) and
services Cairn does not serve (one of each family) give the real AWS CLI a real
error code and message, never `Unknown`."""

import re

import pytest

from conftest import ACCOUNT


def cli_error(server, *args):
    proc = server.aws(*args, check=False)
    assert proc.returncode != 0, proc.stdout
    assert "(Unknown)" not in proc.stderr and "Unknown error" not in proc.stderr, proc.stderr
    match = re.search(r"An error occurred \((\w+)\) when calling the (\w+) operation: (.*)", proc.stderr)
    assert match, proc.stderr
    return match.group(1), match.group(2), match.group(3)


def test_sts_get_caller_identity_names_the_signing_principal(server):
    identity = server.aws("sts", "get-caller-identity")
    assert identity == {"UserId": ACCOUNT, "Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:root"}
    boto = server.client("sts").get_caller_identity()
    assert boto["Account"] == ACCOUNT and boto["Arn"] == f"arn:aws:iam::{ACCOUNT}:root"
    assert boto["ResponseMetadata"]["RequestId"]


def test_served_services_answer_their_own_errors(server):
    code, op, message = cli_error(server, "cloudtrail", "get-trail", "--name", "nope")
    assert (code, op) == ("TrailNotFoundException", "GetTrail")
    assert message == f"Unknown trail: arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/nope for the user: {ACCOUNT}"
    code, op, message = cli_error(server, "s3api", "list-objects-v2", "--bucket", "never-created")
    assert (code, op) == ("NoSuchBucket", "ListObjectsV2")


@pytest.mark.parametrize("args,code,operation", [
    # JSON 1.1
    (["cloudtrail", "list-channels"], "UnknownOperationException", "ListChannels"),
    (["logs", "describe-destinations"], "UnknownOperationException", "DescribeDestinations"),
    # query
    (["sts", "get-session-token"], "InvalidAction", "GetSessionToken"),
    (["sns", "list-platform-applications"], "InvalidAction", "ListPlatformApplications"),
])
def test_unknown_operations_of_served_services(server, args, code, operation):
    got_code, got_op, message = cli_error(server, *args)
    assert (got_code, got_op) == (code, operation)
    assert operation in message


@pytest.mark.parametrize("args,code,operation,named", [
    (["kinesis", "list-streams"], "UnknownOperationException", "ListStreams", "Amazon Kinesis"),
    (["kms", "list-keys"], "UnknownOperationException", "ListKeys", "AWS Key Management Service"),
    (["dynamodb", "list-tables"], "UnknownOperationException", "ListTables", "Amazon DynamoDB"),
    (["lambda", "list-functions"], "UnknownOperationException", "ListFunctions", "AWS Lambda"),
    (["iam", "list-users"], "InvalidAction", "ListUsers", "AWS Identity and Access Management"),
    (["cloudformation", "list-stacks"], "InvalidAction", "ListStacks", "AWS CloudFormation"),
    (["route53", "list-hosted-zones"], "InvalidAction", "ListHostedZones", "Amazon Route 53"),
    (["ec2", "describe-vpcs"], "InvalidAction", "DescribeVpcs", "Amazon Elastic Compute Cloud"),
])
def test_unserved_services_are_named_in_their_own_protocol(server, args, code, operation, named):
    got_code, got_op, message = cli_error(server, *args)
    assert (got_code, got_op) == (code, operation)
    assert message.startswith(f"Cairn does not serve {named} ("), message
    assert "cloudtrail" in message and "sts" in message


def test_unserved_query_service_errors_are_xml_error_responses(server):
    import botocore.exceptions
    with pytest.raises(botocore.exceptions.ClientError) as e:
        server.client("iam").list_users()
    error = e.value.response["Error"]
    assert error["Code"] == "InvalidAction" and error["Type"] == "Sender"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_query_compatible_cloudwatch_gets_the_query_code(server):
    import botocore.exceptions
    with pytest.raises(botocore.exceptions.ClientError) as e:
        server.client("cloudwatch").describe_anomaly_detectors()
    error = e.value.response["Error"]
    assert error["Code"] == "InvalidAction"
    assert error["QueryErrorCode"] == "UnknownOperationException"
    assert error["Type"] == "Sender"


def test_bad_signature_on_a_query_service_is_a_query_error(server):
    import botocore.exceptions
    with pytest.raises(botocore.exceptions.ClientError) as e:
        server.client("sts", secret_key="wrong").get_caller_identity()
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        server.client("iam", access_key="AKIAUNKNOWNKEY000000").list_users()
    assert e.value.response["Error"]["Code"] == "InvalidClientTokenId"
