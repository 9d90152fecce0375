#!/usr/bin/env python3
"""validate-logs benchmark: a trail of N generated events (one account, one
region, so one digest chain holds them all) validated by `cairn validate-logs`,
next to the floor (one pass of gunzip + SHA-256 over the same log files, one
thread) and next to `aws cloudtrail validate-logs`, all measured in one run.

    python3 bench/validate.py [--count 1000000]

Prints a JSON summary and a Markdown row for bench/README.md. All traffic goes
to 127.0.0.1; every step is bounded by --timeout."""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import EVERY_RECORD_SELECTORS, free_port, metric, wait_healthy

REPO = Path(__file__).resolve().parents[1]
GEN = REPO.parent / "shared" / "tools" / "gen_cloudtrail.py"
KEY, SECRET = "AKIACAIRNBENCHKEY002", "cairn-bench-secret-key-abcdefghij0123456789"
ACCOUNT = "123456789012"


def timed(cmd, env, timeout):
    t0 = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return time.time() - t0, proc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--timeout", type=float, default=1800)
    # About the size of a busy account's five-minute CloudTrail log file.
    ap.add_argument("--file-bytes", type=int, default=1 << 20, help="uncompressed bytes per log file")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--skip-aws", action="store_true", help="do not run the AWS CLI (it takes minutes)")
    ap.add_argument("--keep", type=Path, help="work in this directory and keep it (data dir, events)")
    args = ap.parse_args()

    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "cairn", "--bin", "cairn"], cwd=REPO, check=True)
        subprocess.run(["cargo", "build", "--release", "-p", "cairn-digest", "--example", "gunzip_sha256_floor"],
                       cwd=REPO, check=True)
    cairn = target / "release" / "cairn"
    floor_bin = target / "release" / "examples" / "gunzip_sha256_floor"

    work = args.keep or Path(tempfile.mkdtemp(prefix="cairn-bench-validate-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        # Events for one account and region, so one chain holds all of them.
        events = work / "events.jsonl"
        gen = subprocess.run([sys.executable, str(GEN), "--count", str(args.count), "--seed", "42"],
                             capture_output=True, check=True)
        account = re.compile(rb'"recipientAccountId":"\d{12}"')
        region = re.compile(rb'"awsRegion":"[a-z0-9-]+"')
        with open(events, "wb") as out:
            for line in gen.stdout.splitlines():
                line = account.sub(b'"recipientAccountId":"' + ACCOUNT.encode() + b'"', line, count=1)
                out.write(region.sub(b'"awsRegion":"us-east-1"', line, count=1) + b"\n")
        del gen

        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        config = work / "cairn.toml"
        config.write_text(f'account_id = "{ACCOUNT}"\nregion = "us-east-1"\n'
                          '[delivery]\ninterval = "1s"\ndigest_interval = "5s"\n'
                          f'max_batch_bytes = {args.file_bytes}\n'
                          '[ingest]\nwal_max_disk_bytes = 17179869184\n')
        env = dict(os.environ, CAIRN_ROOT_ACCESS_KEY_ID=KEY, CAIRN_ROOT_SECRET_ACCESS_KEY=SECRET, CAIRN_LOG="warn",
                   AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET,
                   AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1", AWS_CONFIG_FILE=os.devnull,
                   AWS_SHARED_CREDENTIALS_FILE=os.devnull)
        data = work / "data"
        server = subprocess.Popen([str(cairn), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data),
                                   "--config", str(config)], env=env, stdout=subprocess.DEVNULL)
        aws = [sys.executable, "-m", "awscli"]
        try:
            wait_healthy(endpoint)
            start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
            run = lambda *a: subprocess.run(aws + list(a), env=env, check=True, capture_output=True, text=True)
            run("s3api", "create-bucket", "--bucket", "bench")
            arn = json.loads(run("cloudtrail", "create-trail", "--name", "all", "--s3-bucket-name", "bench",
                                 "--enable-log-file-validation").stdout)["TrailARN"]
            run("cloudtrail", "put-event-selectors", "--trail-name", "all", "--advanced-event-selectors",
                json.dumps(EVERY_RECORD_SELECTORS))
            run("cloudtrail", "start-logging", "--name", "all")
            subprocess.run([str(cairn), "ingest", str(events), "--endpoint-url", endpoint, "--batch-size", "500",
                            "--concurrency", "8", "--no-progress"], env=env, check=True, capture_output=True,
                           timeout=args.timeout)
            deadline = time.time() + args.timeout
            while metric(endpoint, "cairn_delivered_records_total") < args.count:
                if time.time() > deadline:
                    raise SystemExit("timed out waiting for delivery")
                time.sleep(0.2)
            time.sleep(2)
            digests_before = metric(endpoint, "cairn_delivered_digests_total")
            run("cloudtrail", "stop-logging", "--name", "all")
            while metric(endpoint, "cairn_delivered_digests_total") <= digests_before:
                if time.time() > deadline:
                    raise SystemExit("timed out waiting for the final digest")
                time.sleep(0.2)
            end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
            time.sleep(2)

            bucket_dir = data / "objects" / "bench"
            logs = sorted(str(p) for p in (bucket_dir / "AWSLogs" / ACCOUNT / "CloudTrail" / "us-east-1").rglob("*.json.gz"))
            listing = work / "logs.txt"
            listing.write_text("\n".join(logs) + "\n")
            keys_file = work / "keys.json"
            keys_file.write_text(run("cloudtrail", "list-public-keys", "--start-time", start, "--end-time",
                                     end).stdout)
            common = ["--trail-arn", arn, "--start-time", start, "--end-time", end]

            # Warm the page cache once, then measure side by side.
            subprocess.run([str(floor_bin), str(listing)], check=True, capture_output=True)
            floor = json.loads(subprocess.run([str(floor_bin), str(listing)], check=True, capture_output=True,
                                              text=True).stdout)
            cairn_wall, ours = timed([str(cairn), "validate-logs", "--no-progress", *common], env, args.timeout)
            if ours.returncode != 0:
                raise SystemExit(f"cairn validate-logs failed: {ours.stdout}{ours.stderr}")
            offline_wall, offline = timed([str(cairn), "validate-logs", "--no-progress", *common, "--local-dir",
                                           str(bucket_dir), "--public-keys", str(keys_file)], env, args.timeout)
            if offline.returncode != 0 or offline.stdout != ours.stdout:
                raise SystemExit(f"offline validation differs: {offline.stdout}{offline.stderr}")
            floor_again = json.loads(subprocess.run([str(floor_bin), str(listing)], check=True, capture_output=True,
                                                    text=True).stdout)
            aws_wall, theirs = (None, None)
            if not args.skip_aws:
                aws_wall, theirs = timed(aws + ["cloudtrail", "validate-logs", *common], env, args.timeout)
                if theirs.returncode != 0 or theirs.stdout != ours.stdout:
                    raise SystemExit(f"the AWS CLI disagrees: {theirs.stdout}{theirs.stderr}")
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)

        summary = re.search(r"(\d+)/\d+ digest files valid\n(\d+)/\d+ log files valid", ours.stdout)
        floor_wall = min(floor["wall_seconds"], floor_again["wall_seconds"])
        result = {
            "events": args.count,
            "log_files": len(logs),
            "digests": int(summary.group(1)) if summary else None,
            "validated_log_files": int(summary.group(2)) if summary else None,
            "compressed_mb": round(floor["compressed_bytes"] / 1e6, 1),
            "uncompressed_mb": round(floor["uncompressed_bytes"] / 1e6, 1),
            "floor_wall_seconds": round(floor_wall, 3),
            "cairn_online_wall_seconds": round(cairn_wall, 3),
            "cairn_offline_wall_seconds": round(offline_wall, 3),
            "aws_cli_wall_seconds": round(aws_wall, 3) if aws_wall else None,
            "cairn_online_to_floor": round(cairn_wall / floor_wall, 2),
            "cairn_offline_to_floor": round(offline_wall / floor_wall, 2),
            "aws_cli_to_cairn_online": round(aws_wall / cairn_wall, 1) if aws_wall else None,
        }
        print(json.dumps(result, indent=2))
        print(f"| {time.strftime('%Y-%m-%d')} | {args.count} | {len(logs)} | {result['digests']} | "
              f"{result['uncompressed_mb']} | {result['floor_wall_seconds']} | {result['cairn_online_wall_seconds']} "
              f"({result['cairn_online_to_floor']}x) | {result['cairn_offline_wall_seconds']} "
              f"({result['cairn_offline_to_floor']}x) | {result['aws_cli_wall_seconds']} | "
              f"{result['aws_cli_to_cairn_online']}x |")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
