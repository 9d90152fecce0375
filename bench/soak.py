#!/usr/bin/env python3
"""Soak: mixed signed ingest and API calls against one `cairn serve` for a bounded
time, with a kill -9 every few minutes, idle connections held open and unsigned
clients sending large bodies the whole time.

    python3 bench/soak.py [--minutes 30] [--kill-every 120] [--idle 200] [--unsigned 100]

At the end it waits for delivery and checks that every acknowledged eventID is
in the bucket exactly once (and nothing that was never sent). It reports, per
window between two kills, the signed ingest latency (p50/p99) and the server's
RSS against its unloaded value (measured after start-up and trail creation,
before any load). Exit status 1 when a record is lost or duplicated.

All traffic goes to 127.0.0.1; every loop is bounded by --minutes."""

import argparse
import collections
import gzip
import json
import multiprocessing as mp
import os
import random
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials

from common import EVERY_RECORD_SELECTORS, free_port, wait_healthy

REPO = Path(__file__).resolve().parents[1]
GEN = REPO.parent / "shared" / "tools" / "gen_cloudtrail.py"
KEY, SECRET = "AKIACAIRNSOAKTESTKEY", "cairn-soak-secret-key-0123456789abcdefghij"
BUCKET = "soak"
EVENT_ID = re.compile(r'"eventID":"[^"]*"')


def rss_bytes(pid, field="VmRSS"):
    """Resident memory of a process (VmRSS), or one of its parts (RssAnon, RssFile)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def percentile(values, q):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- hostile clients (each in a process of its own so it does not share the GIL) ---------

def hold_idle(port, count, stop, out):
    """Keeps `count` connections open: half silent, half with a request head that never ends.
    A connection the server closes (header-read timeout, restart) is opened again."""
    sel = selectors.DefaultSelector()
    opened = closed = refused = 0

    def open_one(i):
        nonlocal opened, refused
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
        except OSError:
            refused += 1
            return False
        s.setblocking(False)
        if i % 2:
            try:
                s.send(b"POST /cairn/v1/records HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            except OSError:
                pass
        sel.register(s, selectors.EVENT_READ, i)
        opened += 1
        return True

    missing = list(range(count))
    while not stop.is_set():
        still = []
        for i in missing:
            if stop.is_set() or not open_one(i):
                still.append(i)
        missing = still
        for key, _ in sel.select(timeout=0.5 if not missing else 0.05):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                s.close()
                closed += 1
                missing.append(key.data)
        if missing:
            time.sleep(0.2)
    out.put(("idle", {"opened": opened, "closed_by_server": closed, "connect_failed": refused}))


def unsigned_bodies(port, clients, stop, out):
    """`clients` threads, each sending 6 MiB bodies: half with no Authorization at all,
    half signed with a key the server does not know."""
    statuses = collections.Counter()
    lock = threading.Lock()
    chunk = b"x" * 65536

    def one(i):
        while not stop.is_set():
            head = (b"POST /cairn/v1/records HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 6291456\r\n")
            if i % 2:
                head += (b"X-Amz-Date: 20261202T000000Z\r\nAuthorization: AWS4-HMAC-SHA256 "
                         b"Credential=AKIANOTAKNOWNKEY0000/20261202/us-east-1/cloudtrail-data/aws4_request, "
                         b"SignedHeaders=host;x-amz-date, Signature=" + b"0" * 64 + b"\r\n")
            status = "connect-failed"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(head + b"\r\n")
                    status = "closed"
                    try:
                        for _ in range(96):
                            s.sendall(chunk)
                    except OSError:
                        status = "closed mid-body"
                    # The answer, if the server sent one before closing.
                    s.settimeout(5)
                    answer = s.recv(64)
                    if answer.startswith(b"HTTP/"):
                        status = answer.split(b" ")[1].decode() + (" mid-body" if "mid" in status else "")
            except OSError:
                pass
            with lock:
                statuses[status] += 1
            time.sleep(0.1)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    while not stop.is_set():
        time.sleep(0.2)
    for t in threads:
        t.join(timeout=10)
    out.put(("unsigned", dict(statuses)))


# --- the server --------------------------------------------------------------------------

class Server:
    def __init__(self, binary, work, port):
        self.binary, self.work, self.port = binary, work, port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.proc = None
        self.log = open(work / "server.log", "ab")
        self.config = work / "cairn.toml"
        self.config.write_text(
            'account_id = "123456789012"\n[organization]\nid = "o-exampleorgid"\n'
            'member_accounts = ["210987654321", "111122223333", "444455556666"]\n'
            '[delivery]\ninterval = "30s"\n')

    def env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(CAIRN_ROOT_ACCESS_KEY_ID=KEY, CAIRN_ROOT_SECRET_ACCESS_KEY=SECRET, CAIRN_LOG="warn")
        return env

    def start(self):
        self.proc = subprocess.Popen(
            [str(self.binary), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir",
             str(self.work / "data"), "--config", str(self.config)],
            env=self.env(), stdout=subprocess.DEVNULL, stderr=self.log)
        t0 = time.time()
        wait_healthy(self.endpoint, attempts=1200)
        if self.proc.poll() is not None:
            raise SystemExit(f"cairn serve exited with {self.proc.returncode}; see {self.work / 'server.log'}")
        return time.time() - t0

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=60)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self, service):
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                            config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=5,
                                                          read_timeout=30))


def signed_post(endpoint, body):
    request = botocore.awsrequest.AWSRequest(method="POST", url=endpoint + "/cairn/v1/records", data=body,
                                             headers={"Content-Type": "application/json"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(KEY, SECRET), "cloudtrail-data",
                            "us-east-1").add_auth(request)
    prepared = request.prepare()
    req = urllib.request.Request(prepared.url, data=body, method="POST", headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, None
    except (OSError, ValueError):
        return None, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30, help="the whole run, warm-up included")
    ap.add_argument("--kill-every", type=float, default=120, help="seconds between two kill -9")
    ap.add_argument("--idle", type=int, default=200)
    ap.add_argument("--unsigned", type=int, default=100)
    ap.add_argument("--producers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--rate", type=float, default=1000, help="signed events/s the producers aim at")
    ap.add_argument("--base-records", type=int, default=20000)
    ap.add_argument("--warmup", type=float, default=120,
                    help="seconds of signed ingest and API calls alone before the hostile clients and kills start")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    args = ap.parse_args()

    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "cairn", "--bin", "cairn"], cwd=REPO, check=True)
    binary = target / "release" / "cairn"

    work = Path(tempfile.mkdtemp(prefix="cairn-soak-"))
    base = subprocess.run([sys.executable, str(GEN), "--count", str(args.base_records), "--seed", "5"],
                          capture_output=True, text=True, check=True).stdout.splitlines()
    server = Server(binary, work, free_port())
    server.start()
    s3, ct = server.client("s3"), server.client("cloudtrail")
    s3.create_bucket(Bucket=BUCKET)
    ct.create_trail(Name="soak", S3BucketName=BUCKET, IsOrganizationTrail=True, IsMultiRegionTrail=True)
    ct.put_event_selectors(TrailName="soak", AdvancedEventSelectors=EVERY_RECORD_SELECTORS)
    ct.start_logging(Name="soak")
    time.sleep(3)
    unloaded_rss = rss_bytes(server.proc.pid)

    stop = threading.Event()
    mp_stop = mp.Event()
    out = mp.Queue()
    hostile = [mp.Process(target=hold_idle, args=(server.port, args.idle, mp_stop, out)),
               mp.Process(target=unsigned_bodies, args=(server.port, args.unsigned, mp_stop, out))]

    # Producers take batches in order; a batch not acknowledged is sent again, as a producer would.
    next_batch = [0]
    batch_lock = threading.Lock()
    acked, sent = set(), set()
    latencies = []  # (time, seconds) of acknowledged signed batches
    failures = collections.Counter()
    interval = args.batch / args.rate * args.producers

    def record_text(n):
        line = base[n % len(base)]
        return EVENT_ID.sub(f'"eventID":"{n // len(base):08x}-soak-{n % len(base):08d}"', line, count=1)

    def producer():
        while not stop.is_set():
            with batch_lock:
                first = next_batch[0] * args.batch
                next_batch[0] += 1
            ids = [f"{n // len(base):08x}-soak-{n % len(base):08d}" for n in range(first, first + args.batch)]
            body = ('{"Records":[' + ",".join(record_text(n) for n in range(first, first + args.batch))
                    + "]}").encode()
            while not stop.is_set():
                started = time.time()
                sent.update(ids)
                status, answer = signed_post(server.endpoint, body)
                took = time.time() - started
                if status == 200 and answer and not answer.get("failed"):
                    acked.update(ids)
                    latencies.append((started, took))
                    break
                failures[str(status)] += 1
                time.sleep(0.1)
            time.sleep(max(0.0, interval - (time.time() - started)))

    api_calls = collections.Counter()

    def api_caller():
        while not stop.is_set():
            for name, call in (("DescribeTrails", lambda: ct.describe_trails()),
                               ("GetTrailStatus", lambda: ct.get_trail_status(Name="soak")),
                               ("GetEventSelectors", lambda: ct.get_event_selectors(TrailName="soak")),
                               ("ListObjectsV2", lambda: s3.list_objects_v2(Bucket=BUCKET, MaxKeys=50))):
                try:
                    call()
                    api_calls[name + " ok"] += 1
                except Exception as e:  # noqa: BLE001 - every failure is counted, by kind
                    api_calls[f"{name} {type(e).__name__}"] += 1
                time.sleep(0.25)

    rss_samples = []  # (time, bytes)
    anon_samples = []  # (time, bytes): the anonymous part (heap, stacks), without mapped files
    windows = []      # (start, end, restart seconds)

    def sampler():
        while not stop.is_set():
            value = rss_bytes(server.proc.pid)
            if value:
                rss_samples.append((time.time(), value))
                anon_samples.append((time.time(), rss_bytes(server.proc.pid, "RssAnon") or 0))
            time.sleep(1)

    workers = [threading.Thread(target=producer) for _ in range(args.producers)]
    workers += [threading.Thread(target=api_caller), threading.Thread(target=sampler)]
    t0 = time.time()
    for w in workers:
        w.start()
    end = t0 + args.minutes * 60
    # Warm-up: the same signed ingest and API calls, no hostile clients, no kill: the RSS the
    # server needs for the work itself.
    time.sleep(min(args.warmup, args.minutes * 60))
    warm_end = time.time()
    loaded_rss = max((v for (t, v) in rss_samples), default=unloaded_rss)
    windows.append((t0, warm_end, 0.0))
    window_start = warm_end
    for p in hostile:
        p.start()
    try:
        while time.time() < end:
            time.sleep(min(args.kill_every, max(0.0, end - time.time())))
            if time.time() >= end:
                break
            server.kill9()
            killed = time.time()
            took = server.start()
            windows.append((window_start, killed, took))
            window_start = killed
            print(f"[{killed - t0:7.1f}s] kill -9, back healthy after {took:.2f}s; acked {len(acked)}", flush=True)
    finally:
        stop.set()
        mp_stop.set()
        for w in workers:
            w.join(timeout=120)
        hostile_stats = {}
        for _ in hostile:
            try:
                kind, stats = out.get(timeout=60)
                hostile_stats[kind] = stats
            except Exception:  # noqa: BLE001
                pass
        for p in hostile:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
    windows.append((window_start, time.time(), 0.0))

    # Every acknowledged record must reach the bucket, once.
    def delivered():
        ids = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            for obj in page.get("Contents", []):
                if "/CloudTrail/" not in obj["Key"]:
                    continue
                body = gzip.decompress(s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read())
                ids += [r["eventID"] for r in json.loads(body)["Records"]]
        return ids

    deadline = time.time() + 600
    final = delivered()
    while not set(final) >= acked and time.time() < deadline:
        time.sleep(15)
        final = delivered()
    server.stop()
    counts = collections.Counter(final)
    duplicates = sum(1 for n in counts.values() if n > 1)
    missing = len(acked - set(counts))
    unsent = len(set(counts) - sent)

    rows = []
    for n, (start, stop_at, restart) in enumerate(windows):
        lat = [took for (t, took) in latencies if start <= t < stop_at]
        rss = [v for (t, v) in rss_samples if start <= t < stop_at]
        rows.append({"phase": "warm-up" if n == 0 else "hostile + kill -9", "from_s": round(start - t0), "to_s": round(stop_at - t0), "acked_batches": len(lat),
                     "p50_ms": round(percentile(lat, 0.5) * 1000, 1) if lat else None,
                     "p99_ms": round(percentile(lat, 0.99) * 1000, 1) if lat else None,
                     "max_rss_mb": round(max(rss) / 2**20, 1) if rss else None,
                     "max_anon_mb": round(max(v for (t, v) in anon_samples if start <= t < stop_at) / 2**20, 1)
                     if rss else None,
                     "restart_s": round(restart, 2)})
    all_lat = [took for (_, took) in latencies]
    max_rss = max(v for (t, v) in rss_samples if t >= warm_end) if args.minutes * 60 > args.warmup else loaded_rss
    result = {
        "minutes": args.minutes, "kills": len(windows) - 1, "idle_connections": args.idle,
        "unsigned_clients": args.unsigned, "acknowledged": len(acked), "delivered": len(final),
        "missing": missing, "duplicates": duplicates, "delivered_never_sent": unsent,
        "signed_p50_ms": round(percentile(all_lat, 0.5) * 1000, 1),
        "signed_p99_ms": round(percentile(all_lat, 0.99) * 1000, 1),
        "unloaded_rss_mb": round(unloaded_rss / 2**20, 1), "max_rss_mb": round(max_rss / 2**20, 1),
        "warmup_max_rss_mb": round(loaded_rss / 2**20, 1),
        "max_rss_ratio_to_unloaded": round(max_rss / unloaded_rss, 2),
        "max_rss_ratio_to_warmup": round(max_rss / loaded_rss, 2),
        "signed_failures": dict(failures), "api_calls": dict(api_calls), "hostile": hostile_stats,
        "windows": rows,
    }
    print(json.dumps(result, indent=2))
    print("| phase | window (s) | acked batches | p50 ms | p99 ms | max RSS MB | of which anonymous | restart s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['phase']} | {r['from_s']}–{r['to_s']} | {r['acked_batches']} | {r['p50_ms']} | {r['p99_ms']} | "
              f"{r['max_rss_mb']} | {r['max_anon_mb']} | {r['restart_s']} |")
    if args.keep:
        print(f"work dir kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if missing or duplicates or unsent else 0)


if __name__ == "__main__":
    main()
