"""End-to-end harness: a real `cairn serve` on a free loopback port with a
temporary data dir, driven by the real AWS CLI and boto3 through
AWS_ENDPOINT_URL. Every server this harness starts listens on 127.0.0.1 only
and is stopped when its test ends."""

import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import pytest
import urllib.request
import urllib.error

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
GEN = SHARED / "tools" / "gen_cloudtrail.py"
REAL = SHARED / "data" / "real-cloudtrail"
ACCESS_KEY = "AKIACAIRNE2ETESTKEY1"
SECRET_KEY = "cairn-e2e-secret-key-0123456789abcdefghij"
ACCOUNT = "123456789012"
ORG_ID = "o-exampleorgid"
MEMBERS = ["210987654321", "111122223333", "444455556666"]

LOG_KEY = re.compile(
    r"^(?:(?P<prefix>.+)/)?AWSLogs/(?:(?P<org>o-[a-z0-9]{10,32})/)?(?P<account>\d{12})/CloudTrail/"
    r"(?P<region>[a-z0-9-]+)/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/"
    r"(?P=account)_CloudTrail_(?P=region)_(?P<stamp>\d{8}T\d{4}Z)_(?P<unique>[A-Za-z0-9]{16})\.json\.gz$"
)


def cairn_bin():
    path = os.environ.get("CAIRN_BIN")
    if path:
        return str(Path(path).resolve())
    for candidate in (REPO / "target" / "debug" / "cairn", REPO / "target" / "release" / "cairn"):
        if candidate.exists():
            return str(candidate)
    pytest.fail("set CAIRN_BIN or build the cairn binary first (cargo build -p cairn)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `cairn serve` process and the clients that talk to it."""

    def __init__(self, data_dir, config_text="", region="us-east-1"):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.data_dir.parent / (self.data_dir.name + ".toml")
        self.config_path.write_text(config_text)
        self.region = region
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log_path = self.data_dir.parent / (self.data_dir.name + ".log")

    def env(self):
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("AWS_"):
                del env[k]
        env.update(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
            AWS_DEFAULT_REGION=self.region,
            AWS_REGION=self.region,
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            AWS_RETRY_MODE="standard",
            AWS_MAX_ATTEMPTS="3",
            CAIRN_ROOT_ACCESS_KEY_ID=ACCESS_KEY,
            CAIRN_ROOT_SECRET_ACCESS_KEY=SECRET_KEY,
            CAIRN_LOG=os.environ.get("CAIRN_LOG", "warn"),
        )
        return env

    def start(self, timeout=60):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [cairn_bin(), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir),
             "--config", str(self.config_path)],
            stdout=subprocess.PIPE, stderr=log, env=self.env(),
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cairn serve exited with {self.proc.returncode}: {self.log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(self.endpoint + "/health", timeout=1) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.05)
        raise RuntimeError("cairn serve did not become healthy")

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self):
        self.stop()
        self.port = self.port
        return self.start()

    # --- clients -----------------------------------------------------------------

    def client(self, service, **kwargs):
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=kwargs.pop("access_key", ACCESS_KEY),
            aws_secret_access_key=kwargs.pop("secret_key", SECRET_KEY),
            config=botocore.config.Config(retries={"max_attempts": 3, "mode": "standard"}, **kwargs),
        )

    def aws(self, *args, check=True, expect_json=True):
        """Runs the real AWS CLI against this server."""
        proc = subprocess.run(
            [sys.executable, "-m", "awscli", *args], env=self.env(), capture_output=True, text=True, timeout=120
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"aws {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        if not check:
            return proc
        if expect_json and proc.stdout.strip():
            return json.loads(proc.stdout)
        return proc.stdout

    def metrics(self):
        with urllib.request.urlopen(self.endpoint + "/metrics", timeout=5) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.split()
                out[name] = float(value)
        return out

    def ingest_raw(self, body, headers=None, sign=True, secret=SECRET_KEY, service="cloudtrail-data",
                   path="/cairn/v1/records"):
        """POSTs a body to the native ingest endpoint, signed with botocore's own signer."""
        request = botocore.awsrequest.AWSRequest(
            method="POST", url=self.endpoint + path, data=body,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        if sign:
            creds = botocore.credentials.Credentials(ACCESS_KEY, secret)
            botocore.auth.SigV4Auth(creds, service, self.region).add_auth(request)
        prepared = request.prepare()
        req = urllib.request.Request(prepared.url, data=body, method="POST", headers=dict(prepared.headers))
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            payload = e.read()
            try:
                return e.code, json.loads(payload or b"{}")
            except ValueError:
                return e.code, {"raw": payload.decode(errors="replace")}

    def ingest_lines(self, lines, batch=500):
        """Sends JSON-text records (kept byte for byte) in batches; returns per-batch responses."""
        results = []
        for i in range(0, len(lines), batch):
            chunk = lines[i:i + batch]
            body = ('{"Records":[' + ",".join(chunk) + "]}").encode()
            status, answer = self.ingest_raw(body)
            assert status == 200, (status, answer)
            results.append(answer)
        return results

    # --- reading delivered logs -----------------------------------------------------

    def delivered(self, bucket, prefix=""):
        """Every delivered log file: key -> list of raw record texts (byte exact)."""
        s3 = self.client("s3")
        keys = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        out = {}
        for key in keys:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            out[key] = split_records(gzip.decompress(body))
        return out


def split_records(document):
    """Splits a delivered {"Records":[...]} document into each record's exact text."""
    text = document.decode("utf-8")
    parsed = json.loads(text)
    assert list(parsed.keys()) == ["Records"], parsed.keys()
    assert text.startswith('{"Records":[') and text.endswith("]}"), text[:40]
    body = text[len('{"Records":['):-2]
    records, depth, start, in_str, esc = [], 0, 0, False, False
    for i, ch in enumerate(body):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        elif ch == "," and depth == 0:
            records.append(body[start:i])
            start = i + 1
    if body:
        records.append(body[start:])
    assert len(records) == len(parsed["Records"])
    return records


def wait_for(predicate, timeout=60, interval=0.2, message="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message} (last: {last!r})")


def generate(count, seed, fmt="jsonl"):
    out = subprocess.run([sys.executable, str(GEN), "--count", str(count), "--seed", str(seed), "--format", fmt],
                         capture_output=True, check=True)
    return out.stdout.decode().splitlines()


ORG_CONFIG = f"""
account_id = "{ACCOUNT}"
region = "us-east-1"
[organization]
id = "{ORG_ID}"
management_account = "{ACCOUNT}"
member_accounts = {json.dumps(MEMBERS)}
[delivery]
interval = "1s"
"""


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path / "data", ORG_CONFIG).start()
    yield s
    s.stop()


@pytest.fixture
def make_server(tmp_path):
    started = []

    def make(config_text=ORG_CONFIG, name="data", region="us-east-1"):
        s = Server(tmp_path / name, config_text, region=region)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()
