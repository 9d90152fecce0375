#!/usr/bin/env python3
"""Sustained ingest benchmark: HTTP ingest in batches of 100 with durability on,
every record delivered to log files, next to the floor of just parsing and
gzipping the same records, measured in the same run.

    python3 bench/ingest.py [--count 300000] [--concurrency 8] [--trails 1]

With --trails N, N trails each select every record: the floor is then parsing
each record once and gzipping it N times.

Prints a JSON summary and a Markdown table row for bench/README.md. All traffic
goes to 127.0.0.1; the run is bounded by --count and --timeout."""

import argparse
import json
import os
import resource
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
KEY, SECRET = "AKIACAIRNBENCHKEY001", "cairn-bench-secret-key-0123456789abcdefgh"


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=300_000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--gzip-level", type=int, default=6)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--trails", type=int, default=1)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--lower-bound", action="store_true",
                    help="also run the same client against the least server that authenticates, makes durable and "
                         "delivers the records (the server crate's ingest_floor example), one trail only")
    args = ap.parse_args()
    if args.lower_bound and args.trails != 1:
        ap.error("--lower-bound measures one trail")

    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "cairn", "--bin", "cairn"], cwd=REPO, check=True)
        subprocess.run(["cargo", "build", "--release", "-p", "cairn-trail", "--example", "parse_gzip_floor"],
                       cwd=REPO, check=True)
        if args.lower_bound:
            subprocess.run(["cargo", "build", "--release", "-p", "cairn-server", "--example", "ingest_floor"],
                           cwd=REPO, check=True)
    cairn = target / "release" / "cairn"
    floor_bin = target / "release" / "examples" / "parse_gzip_floor"

    work = Path(tempfile.mkdtemp(prefix="cairn-bench-"))
    try:
        events = work / "events.jsonl"
        with open(events, "wb") as out:
            subprocess.run([sys.executable, str(GEN), "--count", str(args.count), "--seed", "42"], stdout=out, check=True)
        size = events.stat().st_size

        floor = json.loads(subprocess.run([str(floor_bin), str(events), str(args.gzip_level), str(args.trails)],
                                          capture_output=True, check=True, text=True).stdout)

        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        config = work / "cairn.toml"
        config.write_text(
            'account_id = "123456789012"\n[organization]\nid = "o-exampleorgid"\n'
            'member_accounts = ["210987654321", "111122223333", "444455556666"]\n'
            f'[delivery]\ninterval = "1s"\ngzip_level = {args.gzip_level}\n'
            '[ingest]\nwal_max_disk_bytes = 17179869184\n')
        env = dict(os.environ, CAIRN_ROOT_ACCESS_KEY_ID=KEY, CAIRN_ROOT_SECRET_ACCESS_KEY=SECRET, CAIRN_LOG="warn",
                   AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET,
                   AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
        server = subprocess.Popen([str(cairn), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir",
                                   str(work / "data"), "--config", str(config)], env=env,
                                  stdout=subprocess.DEVNULL)
        try:
            wait_healthy(endpoint)
            aws = [sys.executable, "-m", "awscli"]
            subprocess.run(aws + ["s3api", "create-bucket", "--bucket", "bench"], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            selectors = json.dumps(EVERY_RECORD_SELECTORS)
            for i in range(args.trails):
                name = f"all{i}"
                subprocess.run(aws + ["cloudtrail", "create-trail", "--name", name, "--s3-bucket-name", "bench",
                                      "--s3-key-prefix", name, "--is-organization-trail", "--is-multi-region-trail"],
                               env=env, check=True, stdout=subprocess.DEVNULL)
                subprocess.run(aws + ["cloudtrail", "put-event-selectors", "--trail-name", name,
                                      "--advanced-event-selectors", selectors],
                               env=env, check=True, stdout=subprocess.DEVNULL)
                subprocess.run(aws + ["cloudtrail", "start-logging", "--name", name], env=env, check=True)

            cpu0 = cpu_seconds(server.pid)
            client0 = children_cpu_seconds()
            t0 = time.time()
            send(args, cairn, events, endpoint, env)
            t_acked = time.time()
            client_cpu = children_cpu_seconds() - client0
            wait_delivered(endpoint, args.count * args.trails, t0 + args.timeout)
            t_delivered = time.time()
            cpu = cpu_seconds(server.pid) - cpu0
            # Chunks the router decoded once for all sinks, and chunks a sink
            # that fell behind its window read again on its own.
            router_chunks = metric(endpoint, "cairn_router_chunks_total")
            # Of those, chunks taken from records just committed (no WAL read back).
            memory_chunks = metric(endpoint, "cairn_router_memory_chunks_total")
            own_reads = metric(endpoint, "cairn_sink_own_reads_total")
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)

        wall = t_delivered - t0
        # The delivery cadence (interval) adds up to one interval of waiting that is not work.
        floor_rate = args.count / max(floor["cpu_seconds"], 1e-9)
        result = {
            "records": args.count,
            "trails": args.trails,
            "bytes": size,
            "batch": args.batch,
            "concurrency": args.concurrency,
            "ingest_wall_seconds": round(t_acked - t0, 3),
            "ingest_events_per_second": round(args.count / (t_acked - t0)),
            "end_to_end_wall_seconds": round(wall, 3),
            "end_to_end_events_per_second": round(args.count / wall),
            "server_cpu_seconds": round(cpu, 3),
            "server_cpu_us_per_event": round(cpu / args.count * 1e6, 2),
            # The ingest client shares the server's two cores: what it costs bounds the end-to-end rate.
            "client_cpu_us_per_event": round(client_cpu / args.count * 1e6, 2),
            # Two cores' worth of CPU per event, server and client together, cannot go faster than this.
            "two_core_bound_events_per_second": round(2 * args.count / max(cpu + client_cpu, 1e-9)),
            "floor_cpu_seconds": floor["cpu_seconds"],
            "floor_cpu_us_per_event": round(floor["cpu_seconds"] / args.count * 1e6, 2),
            "cpu_ratio_to_floor": round(cpu / max(floor["cpu_seconds"], 1e-9), 2),
            # The events/s at which one core parses and gzips the same records (for every trail).
            "one_core_floor_events_per_second": round(floor_rate),
            "end_to_end_ratio_to_one_core_floor": round(args.count / wall / floor_rate, 2),
            "router_chunks": router_chunks,
            "router_memory_chunks": memory_chunks,
            "sink_own_reads": own_reads,
        }
        if args.lower_bound:
            bound = lower_bound(args, target / "release" / "examples" / "ingest_floor", cairn, events, work, env)
            result.update({
                "lower_bound_ingest_wall_seconds": round(bound["acked"], 3),
                "lower_bound_end_to_end_wall_seconds": round(bound["delivered"], 3),
                "lower_bound_server_cpu_us_per_event": round(bound["cpu"] / args.count * 1e6, 2),
                "lower_bound_client_cpu_us_per_event": round(bound["client_cpu"] / args.count * 1e6, 2),
                "lower_bound_cpu_ratio_to_floor": round(bound["cpu"] / max(floor["cpu_seconds"], 1e-9), 2),
                "lower_bound_end_to_end_ratio_to_one_core_floor": round(
                    args.count / bound["delivered"] / floor_rate, 2),
            })
        print(json.dumps(result, indent=2))
        print(f"| {args.count} | {args.trails} | {args.batch} | {result['ingest_events_per_second']} | "
              f"{result['end_to_end_events_per_second']} | {result['server_cpu_us_per_event']} | "
              f"{result['floor_cpu_us_per_event']} | {result['cpu_ratio_to_floor']}x | "
              f"{result['one_core_floor_events_per_second']} | {result['end_to_end_ratio_to_one_core_floor']}x |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def send(args, cairn, events, endpoint, env):
    """Every record, with `cairn ingest` in batches of --batch, --concurrency requests in flight."""
    client = subprocess.run([str(cairn), "ingest", str(events), "--endpoint-url", endpoint,
                             "--batch-size", str(args.batch), "--concurrency", str(args.concurrency),
                             "--no-progress"], env=env, capture_output=True, text=True, timeout=args.timeout)
    if client.returncode != 0:
        raise SystemExit(f"cairn ingest to {endpoint} failed: {client.stderr}")


def wait_delivered(endpoint, records, deadline):
    """Until /metrics counts `records` delivered in log files."""
    while metric(endpoint, "cairn_delivered_records_total") < records:
        if time.time() > deadline:
            raise SystemExit(f"timed out waiting for delivery from {endpoint}")
        time.sleep(0.05)


def lower_bound(args, floor_server, cairn, events, work, env):
    """The same client and records against `ingest_floor`: HTTP, SigV4 with the body's SHA-256, the records
    found, one fdatasync'd append per group of requests before answering, then the parse+gzip floor's own work
    on a delivery thread with Cairn's deflate pool, files cut every second. What Cairn does beyond that
    (per-record checks and defaults, event IDs, deduplication, selectors, digests, the metastore) is not
    there, so Cairn cannot cost less than this."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([str(floor_server), f"127.0.0.1:{port}", str(work / "bound"), str(args.gzip_level),
                               "1000"], env=dict(env, AWS_ENDPOINT_URL=endpoint), stdout=subprocess.DEVNULL)
    try:
        wait_healthy(endpoint)
        cpu0 = cpu_seconds(server.pid)
        client0 = children_cpu_seconds()
        t0 = time.time()
        send(args, cairn, events, endpoint, env)
        acked = time.time() - t0
        client_cpu = children_cpu_seconds() - client0
        wait_delivered(endpoint, args.count, t0 + args.timeout)
        delivered = time.time() - t0
        cpu = cpu_seconds(server.pid) - cpu0
    finally:
        server.kill()
        server.wait(timeout=60)
    return {"acked": acked, "delivered": delivered, "cpu": cpu, "client_cpu": client_cpu}


if __name__ == "__main__":
    main()
