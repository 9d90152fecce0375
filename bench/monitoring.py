#!/usr/bin/env python3
"""Monitoring benchmarks, measured side by side in one run (loopback only,
bounded by --count, --samples and --timeout):

(b) sustained ingest (each mode --repeat times, interleaved, medians
    compared: this 2-core machine is shared and noisy) with a trail feeding the `CloudTrail` log group that
    carries the CIS set's 14 metric filters and alarms
    (scripts/cis-monitoring.sh), next to the same ingest feeding the group
    without them and with the trail alone: server CPU per event of each, and
    the ratios (goal: the filters and alarms under 1.2x);
(c) the time from the ingest acknowledgement of a breaching event to its
    alarm's SNS notification arriving at a local HTTP endpoint, over
    --samples alarms (goal: p99 under 2 s).

    python3 bench/monitoring.py [--count 100000] [--samples 40] [--no-build]
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path

from common import EVERY_RECORD_SELECTORS, free_port, metric, wait_healthy

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
from sns_receiver import Receiver  # noqa: E402

GEN = REPO.parent / "shared" / "tools" / "gen_cloudtrail.py"
KEY, SECRET = "AKIACAIRNBENCHKEY001", "cairn-bench-secret-key-0123456789abcdefgh"
ACCOUNT = "123456789012"
GROUP_ARN = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:CloudTrail:*"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/CloudTrail-CWLogs-Role"


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, cairn, work, name):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.dir = work / name
        self.dir.mkdir()
        config = self.dir / "cairn.toml"
        config.write_text('account_id = "123456789012"\n[organization]\nid = "o-exampleorgid"\n'
                          'member_accounts = ["210987654321", "111122223333", "444455556666"]\n'
                          '[delivery]\ninterval = "1s"\n[ingest]\nwal_max_disk_bytes = 17179869184\n')
        self.env = dict(os.environ, CAIRN_ROOT_ACCESS_KEY_ID=KEY, CAIRN_ROOT_SECRET_ACCESS_KEY=SECRET,
                        CAIRN_LOG="warn", AWS_ENDPOINT_URL=self.endpoint, AWS_ACCESS_KEY_ID=KEY,
                        AWS_SECRET_ACCESS_KEY=SECRET, AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1",
                        AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
        self.cairn = cairn
        self.proc = subprocess.Popen([str(cairn), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir",
                                      str(self.dir / "data"), "--config", str(config)], env=self.env,
                                     stdout=subprocess.DEVNULL)
        wait_healthy(self.endpoint)

    def aws(self, *args):
        out = subprocess.run([sys.executable, "-m", "awscli", *args], env=self.env, check=True,
                             capture_output=True, text=True).stdout
        return json.loads(out) if out.strip() else {}

    def trail(self, log_group):
        self.aws("s3api", "create-bucket", "--bucket", "bench")
        extra = ["--cloud-watch-logs-log-group-arn", GROUP_ARN, "--cloud-watch-logs-role-arn", ROLE_ARN] \
            if log_group else []
        self.aws("cloudtrail", "create-trail", "--name", "all", "--s3-bucket-name", "bench",
                 "--is-organization-trail", "--is-multi-region-trail", *extra)
        self.aws("cloudtrail", "put-event-selectors", "--trail-name", "all", "--advanced-event-selectors",
                 json.dumps(EVERY_RECORD_SELECTORS))
        self.aws("cloudtrail", "start-logging", "--name", "all")

    def ingest(self, path, timeout):
        done = subprocess.run([str(self.cairn), "ingest", str(path), "--endpoint-url", self.endpoint,
                               "--batch-size", "100", "--concurrency", "8", "--no-progress"], env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise SystemExit(f"cairn ingest failed: {done.stderr}")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def sustained(cairn, work, events, count, mode, timeout):
    """One run: `plain` (the trail alone), `feed` (the trail feeding a log
    group) or `cis` (feeding a group that carries the CIS filters and alarms)."""
    work.mkdir(parents=True, exist_ok=True)
    server = Server(cairn, work, mode)
    with_monitoring = mode != "plain"
    try:
        if with_monitoring:
            server.aws("logs", "create-log-group", "--log-group-name", "CloudTrail")
        if mode == "cis":
            subprocess.run([str(REPO / "scripts" / "cis-monitoring.sh")], env=server.env, check=True,
                           capture_output=True)
        server.trail(with_monitoring)
        cpu0 = cpu_seconds(server.proc.pid)
        t0 = time.time()
        server.ingest(events, timeout)
        deadline = t0 + timeout
        while (metric(server.endpoint, "cairn_delivered_records_total") < count
               or (with_monitoring and metric(server.endpoint, "cairn_log_events_delivered_total") < count)):
            if time.time() > deadline:
                raise SystemExit("timed out waiting for delivery")
            time.sleep(0.05)
        wall = time.time() - t0
        cpu = cpu_seconds(server.proc.pid) - cpu0
        return {"cpu_seconds": round(cpu, 3), "cpu_us_per_event": round(cpu / count * 1e6, 2),
                "wall_seconds": round(wall, 3)}
    finally:
        server.stop()


def latency(cairn, work, samples):
    """Ack-to-notification times of `samples` alarms, one breaching event each."""
    server = Server(cairn, work, "latency")
    receiver = Receiver()
    try:
        server.aws("logs", "create-log-group", "--log-group-name", "CloudTrail")
        topic = server.aws("sns", "create-topic", "--name", "bench")["TopicArn"]
        server.aws("sns", "subscribe", "--topic-arn", topic, "--protocol", "http", "--notification-endpoint",
                   receiver.url)
        confirmation = receiver.wait_for("SubscriptionConfirmation")[0]
        urllib.request.urlopen(confirmation["SubscribeURL"], timeout=10).read()
        server.trail(True)
        for i in range(samples):
            server.aws("logs", "put-metric-filter", "--log-group-name", "CloudTrail", "--filter-name", f"f{i}",
                       "--filter-pattern", f'{{ $.eventName = "BenchBreach{i}" }}', "--metric-transformations",
                       f"metricName=Breach{i},metricNamespace=Bench,metricValue=1")
            server.aws("cloudwatch", "put-metric-alarm", "--alarm-name", f"a{i}", "--metric-name", f"Breach{i}",
                       "--namespace", "Bench", "--statistic", "Sum", "--period", "60", "--threshold", "1",
                       "--comparison-operator", "GreaterThanOrEqualToThreshold", "--evaluation-periods", "1",
                       "--alarm-actions", topic)
        times = []
        for i in range(samples):
            record = {"eventVersion": "1.08", "eventTime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                      "eventSource": "iam.amazonaws.com", "eventName": f"BenchBreach{i}", "awsRegion": "us-east-1",
                      "eventID": str(uuid.uuid4()), "eventType": "AwsApiCall", "eventCategory": "Management",
                      "recipientAccountId": ACCOUNT}
            path = work / "one.json"
            path.write_text(json.dumps(record) + "\n")
            server.ingest(path, 60)
            acked = time.time()
            deadline = acked + 30
            while True:
                found = [r for r in list(receiver.received)
                         if json.loads(r["body"]).get("Type") == "Notification"
                         and json.loads(json.loads(r["body"])["Message"])["AlarmName"] == f"a{i}"]
                if found:
                    times.append(found[0]["at"] - acked)
                    break
                if time.time() > deadline:
                    raise SystemExit(f"no notification for a{i}")
                time.sleep(0.005)
            time.sleep(0.2)
        times.sort()
        pick = lambda q: times[min(len(times) - 1, int(round(q * (len(times) - 1))))]  # noqa: E731
        return {"samples": len(times), "p50_seconds": round(pick(0.5), 3), "p90_seconds": round(pick(0.9), 3),
                "p99_seconds": round(pick(0.99), 3), "max_seconds": round(times[-1], 3)}
    finally:
        receiver.stop()
        server.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--samples", type=int, default=40)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each ingest mode, interleaved; the medians are compared")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "cairn", "--bin", "cairn"], cwd=REPO, check=True)
    cairn = target / "release" / "cairn"
    work = Path(tempfile.mkdtemp(prefix="cairn-bench-monitoring-"))
    try:
        events = work / "events.jsonl"
        with open(events, "wb") as out:
            subprocess.run([sys.executable, str(GEN), "--count", str(args.count), "--seed", "42"], stdout=out,
                           check=True)
        runs = {"plain": [], "feed": [], "cis": []}
        for i in range(args.repeat):
            for mode in runs:
                runs[mode].append(sustained(cairn, work / f"{mode}{i}", events, args.count, mode, args.timeout))

        def median(mode):
            ordered = sorted(runs[mode], key=lambda r: r["cpu_seconds"])
            return dict(ordered[len(ordered) // 2], runs_cpu_us_per_event=[r["cpu_us_per_event"] for r in runs[mode]])
        plain, feed, monitored = median("plain"), median("feed"), median("cis")
        lat = latency(cairn, work, args.samples)
        ratio = lambda a, b: round(a["cpu_seconds"] / max(b["cpu_seconds"], 1e-9), 3)  # noqa: E731
        result = {"records": args.count, "trail_only": plain, "trail_with_log_group": feed,
                  "trail_with_cis_log_group": monitored,
                  "cis_filters_and_alarms_cpu_ratio": ratio(monitored, feed),
                  "log_group_feed_with_cis_cpu_ratio": ratio(monitored, plain),
                  "notification_latency": lat}
        print(json.dumps(result, indent=2))
        print(f"| {args.count} | {plain['cpu_us_per_event']} | {feed['cpu_us_per_event']} | "
              f"{monitored['cpu_us_per_event']} | {result['cis_filters_and_alarms_cpu_ratio']}x | "
              f"{result['log_group_feed_with_cis_cpu_ratio']}x | {lat['samples']} | {lat['p50_seconds']} | "
              f"{lat['p99_seconds']} | {lat['max_seconds']} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
