"""The signed digest chain, checked by the real `aws cloudtrail validate-logs`
and by `cairn validate-logs`, which must agree file by file.

Digests are written every few seconds and signing keys rotate every few
seconds, so one test sees a chain of many digests, several keys and a server
restart in the middle."""

import datetime
import gzip
import io
import json
import re
import shutil
import subprocess
import time

import pytest

from conftest import ACCOUNT, MEMBERS, ORG_CONFIG, ORG_ID, Server, cairn_bin, generate, wait_for

MEMBER = MEMBERS[1]
BUCKET = "audit-logs"

# The organization of the other tests, with digests every 3 s and a new key every 7 s.
CHAIN_CONFIG = ORG_CONFIG + 'digest_interval = "3s"\ndigest_key_rotation = "7s"\n'

STATUS = re.compile(r"^(\(backfill\) )?(Digest file|Log file|No log files were delivered)")


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def records_for(account, region="us-east-1", count=4000, seed=7):
    out = []
    for line in generate(count, seed):
        r = json.loads(line)
        if (r.get("recipientAccountId") == account and r.get("awsRegion") == region
                and r.get("managementEvent", True) and r.get("eventCategory", "Management") == "Management"):
            out.append(line)
    return out


def digest_keys(server, bucket=BUCKET, prefix=""):
    s3 = server.client("s3")
    keys = []
    for page in s3.get_paginator("list_objects").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return sorted(k for k in keys if "/CloudTrail-Digest/" in k), sorted(k for k in keys if "/CloudTrail/" in k)


def run_aws(server, args):
    proc = subprocess.run(
        ["python3", "-m", "awscli", "cloudtrail", "validate-logs", *args],
        env=server.env(), capture_output=True, text=True, timeout=300,
    )
    return proc


def run_cairn(server, args, extra=()):
    proc = subprocess.run(
        [cairn_bin(), "validate-logs", "--no-progress", *args, *extra],
        env=server.env(), capture_output=True, text=True, timeout=300,
    )
    return proc


def status_lines(proc):
    """The per-file verdict lines of one run, stdout and stderr together."""
    lines = [l for l in (proc.stdout + "\n" + proc.stderr).splitlines() if STATUS.match(l)]
    return sorted(lines)


def chain_checks(proc):
    return [l for l in proc.stderr.splitlines() if l.startswith("Chain check\t")]


def compare(server, args):
    """Runs both validators; asserts the same stdout and the same per-file verdicts."""
    aws = run_aws(server, args)
    ours = run_cairn(server, args)
    assert aws.returncode in (0, 1), aws.stderr
    assert ours.stdout == aws.stdout, f"--- aws\n{aws.stdout}\n--- cairn\n{ours.stdout}\n{ours.stderr}"
    assert status_lines(ours) == status_lines(aws), (aws.stderr, ours.stderr)
    checks = chain_checks(ours)
    # Cairn fails exactly when the AWS CLI does, or when its own checks found something.
    assert ours.returncode == (1 if aws.returncode == 1 or checks else 0), (ours.returncode, ours.stderr)
    return aws, ours, checks


def build_chain(server, trail, records, waves, pause, restart_after=None, **create):
    """Creates a validating trail, ingests `records` in waves, stops logging;
    returns the validate-logs arguments for the whole chain."""
    ct = server.client("cloudtrail")
    start = now() - datetime.timedelta(minutes=1)
    arn = ct.create_trail(Name=trail, S3BucketName=BUCKET, EnableLogFileValidation=True, **create)["TrailARN"]
    ct.start_logging(Name=trail)
    per_wave = max(1, len(records) // waves)
    for i in range(waves):
        server.ingest_lines(records[i * per_wave:(i + 1) * per_wave])
        if restart_after is not None and i == restart_after:
            server.restart()
            ct = server.client("cloudtrail")
        time.sleep(pause)
    # Let every log file land, then end the chain with a final digest.
    time.sleep(2)
    ct.stop_logging(Name=trail)
    # Digests were delivered all along (every few seconds); wait for the one
    # that ends the chain, delivered once StopLogging is applied.
    status = wait_for(lambda: (s := ct.get_trail_status(Name=trail)).get("LatestDigestDeliveryTime")
                      and s.get("StopLoggingTime") and s["LatestDigestDeliveryTime"] >= s["StopLoggingTime"] and s,
                      message="the final digest after StopLogging")
    assert "LatestDigestDeliveryError" not in status, status
    end = now() + datetime.timedelta(seconds=2)
    time.sleep(2)
    return arn, ["--trail-arn", arn, "--start-time", iso(start), "--end-time", iso(end), "--verbose"]


@pytest.fixture(scope="module")
def chain_server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("validate") / "data", CHAIN_CONFIG).start()
    s.client("s3").create_bucket(Bucket=BUCKET)
    yield s
    s.stop()


def test_aws_cli_validates_a_chain_across_key_rotation_and_restart(chain_server):
    server = chain_server
    records = records_for(ACCOUNT)
    arn, args = build_chain(server, "audit", records, waves=6, pause=2.5, restart_after=2)
    digests, logs = digest_keys(server, prefix="AWSLogs/")
    digests = [k for k in digests if "_audit_" in k]
    assert len(digests) >= 5, digests
    aws = run_aws(server, args)
    assert aws.returncode == 0, aws.stdout + aws.stderr
    n_logs = len([k for k in logs if f"/{ACCOUNT}/CloudTrail/us-east-1/" in k])
    assert f"\n{len(digests)}/{len(digests)} digest files valid\n{n_logs}/{n_logs} log files valid\n" in aws.stdout, aws.stdout
    assert "INVALID" not in aws.stdout + aws.stderr
    # One unbroken chain: no gap line anywhere, not across the restart either.
    assert "No log files were delivered" not in aws.stderr, aws.stderr

    # Several signing keys took part, and every one is listed.
    fingerprints = set()
    s3 = server.client("s3")
    for key in digests:
        body = json.loads(gzip.decompress(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()))
        fingerprints.add(body["digestPublicKeyFingerprint"])
    assert len(fingerprints) >= 2, fingerprints
    listed = server.aws("cloudtrail", "list-public-keys", "--start-time", args[3], "--end-time", args[5])
    assert fingerprints <= {k["Fingerprint"] for k in listed["PublicKeyList"]}

    # cairn validate-logs says the same, line for line, and finds nothing more.
    aws, ours, checks = compare(server, args)
    assert checks == []
    json_out = run_cairn(server, args, extra=["--output", "json"])
    report = json.loads(json_out.stdout)
    assert report["exitCode"] == 0 and report["summary"]["validLogs"] == n_logs
    assert report["summary"]["validDigests"] == len(digests)

    # Offline, from a copy of the bucket and the keys the CLI lists, the same again.
    copy = server.data_dir.parent / "export" / BUCKET
    shutil.copytree(server.data_dir / "objects" / BUCKET, copy)
    # Metadata exported as `aws s3api head-object` prints it.
    for key in digests:
        head = server.aws("s3api", "head-object", "--bucket", BUCKET, "--key", key)
        (copy / (key + ".metadata.json")).write_text(json.dumps(head))
    keys_file = server.data_dir.parent / "keys.json"
    keys_file.write_text(json.dumps(listed))
    offline = run_cairn(server, args, extra=["--local-dir", str(copy), "--public-keys", str(keys_file)])
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout == aws.stdout


def test_organization_trail_with_member_account(chain_server):
    server = chain_server
    records = records_for(MEMBER, seed=11)
    arn, args = build_chain(server, "org-audit", records, waves=4, pause=2.5,
                            IsOrganizationTrail=True, S3KeyPrefix="org")
    member_args = args + ["--account-id", MEMBER]
    aws = run_aws(server, member_args)
    assert aws.returncode == 0, aws.stdout + aws.stderr
    digests, logs = digest_keys(server, prefix=f"org/AWSLogs/{ORG_ID}/{MEMBER}/")
    assert len(digests) >= 3
    n_logs = len([k for k in logs if "/CloudTrail/us-east-1/" in k])
    assert n_logs > 0
    assert f"{len(digests)}/{len(digests)} digest files valid\n{n_logs}/{n_logs} log files valid" in aws.stdout
    _, _, checks = compare(server, member_args)
    assert checks == []
    # Without --account-id both refuse, as the AWS CLI does for organization trails.
    aws = run_aws(server, args)
    ours = run_cairn(server, args)
    assert aws.returncode == ours.returncode == 255
    assert "--account-id" in aws.stderr and "--account-id" in ours.stderr


@pytest.fixture(scope="module")
def tamper_chain(chain_server):
    """A trail of six or more digests, and a second trail in the same bucket."""
    server = chain_server
    records = records_for(ACCOUNT, seed=23)
    # Log file names carry minutes: the chain must cover a whole minute for a
    # forged file's name to fall inside it for certain.
    arn, args = build_chain(server, "victim", records, waves=9, pause=15, S3KeyPrefix="victim")
    build_chain(server, "other", records_for(ACCOUNT, seed=29), waves=2, pause=3.2, S3KeyPrefix="other")
    digests, logs = digest_keys(server, prefix="victim/")
    assert len(digests) >= 6, digests
    return server, args, digests, logs


class Snapshot:
    """Tampers with the local bucket the way someone with disk access would
    (Cairn's S3 API does not take writes), and puts everything back after."""

    def __init__(self, server):
        self.root = server.data_dir / "objects"
        self.saved = {}
        self.added = []

    def _paths(self, key):
        return self.root / BUCKET / key, self.root / ".cairn-meta" / BUCKET / key

    def save(self, key):
        if key not in self.saved:
            body_path, meta_path = self._paths(key)
            metadata = json.loads(meta_path.read_text()) if meta_path.exists() else {}
            self.saved[key] = (body_path.read_bytes(), metadata)
        return self.saved[key]

    def put(self, key, body, metadata=None):
        body_path, meta_path = self._paths(key)
        if key not in self.saved:
            if body_path.exists():
                self.save(key)
            else:
                self.added.append(key)
        body_path.parent.mkdir(parents=True, exist_ok=True)
        body_path.write_bytes(body)
        if metadata:
            meta_path.parent.mkdir(parents=True, exist_ok=True)
            meta_path.write_text(json.dumps(metadata))
        elif meta_path.exists():
            meta_path.unlink()

    def delete(self, key):
        self.save(key)
        for path in self._paths(key):
            if path.exists():
                path.unlink()

    def restore(self):
        for key, (body, metadata) in self.saved.items():
            self.put(key, body, metadata)
        for key in self.added:
            for path in self._paths(key):
                if path.exists():
                    path.unlink()
        self.saved, self.added = {}, []


def gz(data):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def listed_logs(server, digest_key):
    body = json.loads(gzip.decompress(server.client("s3").get_object(Bucket=BUCKET, Key=digest_key)["Body"].read()))
    return [f["s3Object"] for f in body["logFiles"]]


def middle_digest_with_logs(server, digests):
    for key in reversed(digests[1:-1]):
        if listed_logs(server, key):
            return key
    pytest.fail("no digest in the middle lists a log file")


def test_tampering_is_caught_alike(tamper_chain):
    server, args, digests, logs = tamper_chain
    s3 = server.client("s3")
    pristine = compare(server, args)
    assert pristine[0].returncode == 0 and pristine[2] == []

    def scenario(name, tamper, expect_line=None, expect_check=None):
        snap = Snapshot(server)
        try:
            tamper(snap)
            aws, ours, checks = compare(server, args)
            if expect_line:
                assert any(expect_line in l for l in status_lines(aws)), (name, aws.stderr)
                assert aws.returncode == 1, name
            if expect_check:
                assert any(expect_check in c for c in checks), (name, ours.stderr)
            return aws, ours, checks
        finally:
            snap.restore()

    digest = middle_digest_with_logs(server, digests)
    log = listed_logs(server, digest)[0]

    # A log file edited.
    def edit_log(snap):
        body, _ = snap.save(log)
        text = gzip.decompress(body).replace(b'"eventName":"', b'"eventName":"X', 1)
        snap.put(log, gz(text))
    scenario("log edited", edit_log, f"Log file\ts3://{BUCKET}/{log}\tINVALID: hash value doesn't match")

    # A log file deleted.
    scenario("log deleted", lambda snap: snap.delete(log), f"Log file\ts3://{BUCKET}/{log}\tINVALID: not found")

    # A digest edited (its signature kept).
    def edit_digest(snap):
        body, metadata = snap.save(digest)
        doc = gzip.decompress(body).replace(b'"hashValue":"', b'"hashValue":"0', 1)
        snap.put(digest, gz(doc), metadata)
    scenario("digest edited", edit_digest,
             f"Digest file\ts3://{BUCKET}/{digest}\tINVALID: signature verification failed",
             "chain broken")

    # A digest deleted.
    scenario("digest deleted", lambda snap: snap.delete(digest),
             f"Digest file\ts3://{BUCKET}/{digest}\tINVALID: not found", "chain broken")

    # A signature replaced by another digest's.
    def replace_signature(snap):
        body, metadata = snap.save(digest)
        other = s3.get_object(Bucket=BUCKET, Key=digests[0])["Metadata"]["signature"]
        snap.put(digest, body, {**metadata, "signature": other})
    scenario("signature replaced", replace_signature,
             f"Digest file\ts3://{BUCKET}/{digest}\tINVALID: signature verification failed")

    # A forged log file added: the AWS CLI cannot see it; cairn names it.
    def times(key):
        body = json.loads(gzip.decompress(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()))
        parse = lambda t: datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ")
        return parse(body["digestStartTime"]), parse(body["digestEndTime"])
    lo, hi = times(digests[0])[0], times(digests[-1])[1]
    minute = (lo + datetime.timedelta(seconds=59)).replace(second=0)
    assert minute + datetime.timedelta(minutes=1) <= hi, (lo, hi)
    folder = log.split("/CloudTrail/us-east-1/")[0] + "/CloudTrail/us-east-1/" + minute.strftime("%Y/%m/%d")
    forged = f"{folder}/{ACCOUNT}_CloudTrail_us-east-1_{minute.strftime('%Y%m%dT%H%MZ')}_FORGEDFORGED0001.json.gz"
    aws, ours, checks = scenario("forged log", lambda snap: snap.put(forged, gz(b'{"Records":[]}')),
                                 expect_check=forged)
    assert aws.returncode == 0 and ours.returncode == 1

    # Files of another trail mixed in: its newest digest, renamed as this trail's
    # newest, and one of its log files among this trail's.
    other_digests, other_logs = digest_keys(server, prefix="other/")
    def mix_in(snap):
        body = s3.get_object(Bucket=BUCKET, Key=other_digests[-1])
        newest = digests[-1]
        later = re.sub(r"_(\d{8}T\d{6}Z)\.json\.gz$", lambda m: "_" + (
            datetime.datetime.strptime(m.group(1), "%Y%m%dT%H%M%SZ") + datetime.timedelta(seconds=1)
        ).strftime("%Y%m%dT%H%M%SZ") + ".json.gz", newest)
        snap.put(later, body["Body"].read(), body["Metadata"])
        other_log = other_logs[0]
        unique = other_log.rsplit("_", 1)[1]
        renamed = f"{folder}/{ACCOUNT}_CloudTrail_us-east-1_{minute.strftime('%Y%m%dT%H%MZ')}_{unique}"
        snap.put(renamed, s3.get_object(Bucket=BUCKET, Key=other_log)["Body"].read())
        mix_in.keys = (later, renamed)
    aws, ours, checks = scenario("other trail", mix_in)
    later, renamed = mix_in.keys
    assert f"Digest file\ts3://{BUCKET}/{later}\tINVALID: has been moved from its original location" in status_lines(aws)
    assert any(renamed in c for c in checks), ours.stderr


def test_two_deleted_digests_in_a_row(tamper_chain):
    """aws-cli issue 7054: the AWS CLI reports one missing digest; cairn's chain
    check says the break spans more than one digest period."""
    server, args, digests, logs = tamper_chain
    snap = Snapshot(server)
    newer, older = digests[-3], digests[-4]
    try:
        snap.delete(newer)
        snap.delete(older)
        aws, ours, checks = compare(server, args)
        lines = status_lines(aws)
        assert f"Digest file\ts3://{BUCKET}/{newer}\tINVALID: not found" in lines
        assert not any(older in l for l in lines), "the AWS CLI does not see the second deletion"
        broken = [c for c in checks if "chain broken" in c]
        assert len(broken) == 1 and "more digest file" in broken[0] and "may have been deleted" in broken[0], checks
    finally:
        snap.restore()


def test_public_keys_and_organization_apis(chain_server, make_server):
    import base64
    import hashlib

    server = chain_server
    # A short chain of its own, so a key has signed at least one digest.
    build_chain(server, "keys", records_for(ACCOUNT, count=300, seed=3), waves=1, pause=0.5)
    keys = server.aws("cloudtrail", "list-public-keys", "--start-time", "2020-01-01T00:00:00Z")["PublicKeyList"]
    assert keys
    for key in keys:
        der = base64.b64decode(key["Value"])
        assert key["Value"].startswith("MIIBCgKCAQEA"), "PKCS#1 RSAPublicKey, 2048 bits"
        assert key["Fingerprint"] == hashlib.md5(der).hexdigest()
        assert key["ValidityStartTime"] < key["ValidityEndTime"]
    # Keys are per region: none were made for a region no digest was signed in.
    other = server.aws("--region", "ap-south-1", "cloudtrail", "list-public-keys", "--start-time", "2020-01-01T00:00:00Z")
    assert other["PublicKeyList"] == []
    bad = server.aws("cloudtrail", "list-public-keys", "--start-time", "2026-01-02T00:00:00Z",
                     "--end-time", "2026-01-01T00:00:00Z", check=False)
    assert bad.returncode != 0 and "InvalidTimeRangeException" in bad.stderr

    org = server.aws("organizations", "describe-organization")["Organization"]
    assert org["Id"] == ORG_ID and org["MasterAccountId"] == ACCOUNT
    lone = make_server(f'account_id = "{ACCOUNT}"\n', name="lone").start()
    refused = lone.aws("organizations", "describe-organization", check=False)
    assert refused.returncode != 0 and "AWSOrganizationsNotInUseException" in refused.stderr
