"""Every bucket-level and object sub-resource operation of botocore's S3 model,
generated from the model itself: each is either served or refused with
NotImplemented (501), and the bucket and its objects are unchanged afterwards.
On a missing bucket every one answers NoSuchBucket and creates nothing."""

import datetime

import botocore.config
import botocore.exceptions
import botocore.session
import pytest

from conftest import ACCESS_KEY, SECRET_KEY

BUCKET = "walked"
OBJECTS = {
    "a.txt": (b"alpha", {"color": "red"}, "text/plain"),
    "dir/b.bin": (bytes(range(256)) * 4, {}, "application/octet-stream"),
    "dir/sub/c.json": (b'{"c": 1}', {"k": "v", "other": "x"}, "application/json"),
}
# Served operations whose correct answer on this bucket is an S3 error, not 2xx.
SERVED_REFUSALS = {
    "DeleteBucket": "BucketNotEmpty",  # the bucket holds objects
}
# Operations that botocore sends elsewhere than the bucket URI, or that are not bucket requests.
NOT_BUCKET_LEVEL = {"ListBuckets", "ListDirectoryBuckets", "WriteGetObjectResponse"}


def s3_model():
    return botocore.session.get_session().get_service_model("s3")


def minimal_value(shape, name, bucket, key, depth=0):
    """A minimal valid value for a shape (required members only)."""
    if depth == 0 and name == "Bucket":
        return bucket
    if depth == 0 and name == "Key":
        return key
    t = shape.type_name
    if t == "structure":
        members = list(shape.required_members)
        if shape.metadata.get("union") and not members:
            members = [next(iter(shape.members))]  # a union sets exactly one member
        return {m: minimal_value(shape.members[m], m, bucket, key, depth + 1) for m in members}
    if t == "list":
        return [minimal_value(shape.member, name, bucket, key, depth + 1)]
    if t == "map":
        return {"k": minimal_value(shape.value, name, bucket, key, depth + 1)}
    if t == "string":
        if shape.enum:
            return shape.enum[0]
        text = "x"
        minimum = shape.metadata.get("min", 1)
        return text * max(1, minimum)
    if t in ("integer", "long"):
        return max(1, shape.metadata.get("min", 1))
    if t == "boolean":
        return False
    if t == "timestamp":
        return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    if t == "blob":
        return b"x"
    raise AssertionError(f"no minimal value for {name}: {t}")


def minimal_input(op, bucket, key=None):
    shape = op.input_shape
    if shape is None:
        return {}
    params = {m: minimal_value(shape.members[m], m, bucket, key) for m in shape.required_members}
    # Sub-resources that carry an id name it even where the model leaves it optional.
    if "Id" in shape.members and "Id" not in params:
        params["Id"] = "x"
    # DeleteObjects must not touch the walked objects: name a key that does not exist.
    if op.name == "DeleteObjects":
        params["Delete"] = {"Objects": [{"Key": "not-there"}]}
    return params


def bucket_level_operations():
    model = s3_model()
    out = []
    for name in model.operation_names:
        op = model.operation_model(name)
        uri = op.http["requestUri"]
        if name in NOT_BUCKET_LEVEL or not uri.startswith("/{Bucket}") or "{Key+}" in uri:
            continue
        out.append(name)
    return sorted(out)


def object_subresource_operations():
    model = s3_model()
    return sorted(name for name in model.operation_names
                  if "{Key+}?" in model.operation_model(name).http["requestUri"])


def client(server):
    session = botocore.session.get_session()
    return session.create_client(
        "s3", endpoint_url=server.endpoint, region_name=server.region,
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        config=botocore.config.Config(retries={"max_attempts": 1}, inject_host_prefix=False,
                                      s3={"addressing_style": "path"}),
    )


def snapshot(s3, bucket):
    """Everything a client can see of the bucket and its objects."""
    buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    objects = {}
    for key in keys:
        got = s3.get_object(Bucket=bucket, Key=key)
        objects[key] = (got["Body"].read(), got["Metadata"], got["ContentType"], got["ETag"])
    location = s3.get_bucket_location(Bucket=bucket)["LocationConstraint"]
    return buckets, location, objects


@pytest.fixture
def walked(server):
    s3 = client(server)
    s3.create_bucket(Bucket=BUCKET)
    for key, (body, metadata, content_type) in OBJECTS.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body, Metadata=metadata, ContentType=content_type)
    return server, s3


def call(s3, name, params):
    op = s3.meta.service_model.operation_model(name)
    method = getattr(s3, botocore.xform_name(name))
    try:
        response = method(**params)
        return response["ResponseMetadata"]["HTTPStatusCode"], None
    except botocore.exceptions.ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]
    finally:
        assert op.name == name


def test_every_bucket_operation_is_served_or_not_implemented(walked):
    server, s3 = walked
    before = snapshot(s3, BUCKET)
    assert set(before[2]) == set(OBJECTS)
    names = bucket_level_operations()
    assert len(names) > 70, names  # the model's bucket-level operations, all of them
    served, refused = [], []
    for name in names:
        status, code = call(s3, name, minimal_input(s3.meta.service_model.operation_model(name), BUCKET))
        if code is None:
            assert 200 <= status < 300, (name, status)
            served.append(name)
        elif code == "NotImplemented":
            assert status == 501, (name, status)
            refused.append(name)
        else:
            assert SERVED_REFUSALS.get(name) == code, (name, status, code)
            served.append(name)
        assert snapshot(s3, BUCKET) == before, f"{name} changed the bucket"
    # The operations of the issue: each is one explicit row, never another operation.
    for name in ["DeleteBucketPolicy", "PutBucketVersioning", "PutBucketPolicy", "PutPublicAccessBlock",
                 "PutBucketEncryption", "PutBucketLifecycleConfiguration", "PutBucketLogging",
                 "PutObjectLockConfiguration", "GetPublicAccessBlock", "GetBucketLogging"]:
        assert name in refused, name
    for name in ["ListObjects", "ListObjectsV2", "HeadBucket", "GetBucketLocation", "DeleteObjects",
                 "ListMultipartUploads", "CreateBucket", "DeleteBucket"]:
        assert name in served, name


def test_every_bucket_operation_on_a_missing_bucket_is_no_such_bucket(walked):
    server, s3 = walked
    before = snapshot(s3, BUCKET)
    for name in bucket_level_operations():
        if name == "CreateBucket":
            continue
        status, code = call(s3, name, minimal_input(s3.meta.service_model.operation_model(name), "never-made"))
        assert status == 404, (name, status, code)
        assert code in ("NoSuchBucket", "404"), (name, code)  # HEAD answers carry no body
    assert snapshot(s3, BUCKET) == before
    assert "never-made" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_object_subresources_are_served_or_not_implemented(walked):
    server, s3 = walked
    before = snapshot(s3, BUCKET)
    names = object_subresource_operations()
    for expected in ["GetObjectTagging", "PutObjectTagging", "DeleteObjectTagging", "GetObjectAcl",
                     "PutObjectAcl", "GetObjectRetention", "PutObjectRetention", "GetObjectLegalHold",
                     "PutObjectLegalHold", "RestoreObject", "SelectObjectContent", "GetObjectAttributes",
                     "GetObjectTorrent", "CreateMultipartUpload"]:
        assert expected in names, expected
    for name in names:
        params = minimal_input(s3.meta.service_model.operation_model(name), BUCKET, "a.txt")
        status, code = call(s3, name, params)
        if code is None:
            assert 200 <= status < 300, (name, status)
        else:
            assert (code, status) == ("NotImplemented", 501), (name, status, code)
        assert snapshot(s3, BUCKET) == before, f"{name} changed the bucket"
        status, code = call(s3, name, minimal_input(s3.meta.service_model.operation_model(name), "never-made",
                                                    "a.txt"))
        assert (status, code) == (404, "NoSuchBucket"), (name, status, code)
    # An upload in progress is not an object.
    assert [u["Key"] for u in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])] == ["a.txt"]


def test_cli_on_a_missing_bucket_creates_and_deletes_nothing(walked):
    server, s3 = walked
    before = snapshot(s3, BUCKET)
    proc = server.aws("s3api", "delete-bucket-policy", "--bucket", "never-created", check=False)
    assert proc.returncode != 0 and "NoSuchBucket" in proc.stderr, proc.stderr
    proc = server.aws("s3api", "put-bucket-versioning", "--bucket", "never-created",
                      "--versioning-configuration", "Status=Enabled", check=False)
    assert proc.returncode != 0 and "NoSuchBucket" in proc.stderr, proc.stderr
    assert "never-created" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    # On the existing bucket: refused by name, and the bucket is still there.
    proc = server.aws("s3api", "delete-bucket-policy", "--bucket", BUCKET, check=False)
    assert proc.returncode != 0 and "NotImplemented" in proc.stderr and "DeleteBucketPolicy" in proc.stderr
    proc = server.aws("s3api", "put-bucket-versioning", "--bucket", BUCKET,
                      "--versioning-configuration", "Status=Enabled", check=False)
    assert proc.returncode != 0 and "NotImplemented" in proc.stderr and "PutBucketVersioning" in proc.stderr
    assert snapshot(s3, BUCKET) == before
