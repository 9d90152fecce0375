#!/usr/bin/env python3
"""SQL benchmark (issue 13): the operator guide's five Athena queries and two CloudTrail
Lake queries over generated events spread over 30 days, through Cairn next to DuckDB
over the same Parquet files and DuckDB over the raw `.json.gz` logs, in one run; plus
the conversion's peak memory (`cairn query --logs`), an import into an event data
store, ingest-to-queryable latency, LookupEvents latency and bytes stored per event.

    python3 bench/sql.py [--count 10000000] [--days 30] [--work DIR] [--keep]

* Athena queries: `cairn query --logs` (a fresh process per query, its Parquet copy
  made once before, as a warm Athena table's would be) against DuckDB on the same
  Parquet files and DuckDB on the log files (explicit columns, `unnest(Records)`).
* Lake queries: `cairn serve`, an event data store filled by StartImport from the
  logs in a bucket, StartQuery timed from the call until FINISHED, against DuckDB on
  the store's Parquet partitions. The guide's user ARN and date are substituted by
  one present in the data and the midpoint of the 30 days.
* DuckDB runs with 2 threads, as the machine has 2 cores. Every time is the best of
  --repeat runs. All traffic goes to 127.0.0.1.

Prints a JSON summary and Markdown rows for bench/README.md."""

import argparse
import gzip
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

from common import free_port, wait_healthy
from soak import KEY, SECRET, signed_post

REPO = Path(__file__).resolve().parents[1]
GEN = REPO.parent / "shared" / "tools" / "gen_cloudtrail.py"
GUIDE = REPO.parent / "shared" / "spec" / "operator-guide.txt"


def duckdb():
    try:
        import duckdb as module
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "duckdb"], check=True)
        import duckdb as module
    return module


def guide_queries():
    text = GUIDE.read_text()
    athena = text[text.index("-- Create Athena table for CloudTrail logs"):text.index("CloudTrail Lake (Event Data Store)")]
    lake = text[text.index("-- CloudTrail Lake SQL queries"):text.index("Validate Trail Integrity")]
    out = []
    for block in (athena, lake):
        for chunk in re.split(r"\n-- ", block)[1:]:
            title, _, body = chunk.partition("\n")
            if body.lstrip().upper().startswith("SELECT"):
                out.append((title.strip(), body.strip()))
    assert len(out) == 7, [t for t, _ in out]
    return out[:5], out[5:]


CUT = "strftime(current_date - INTERVAL {d} DAY, '%Y-%m-%dT%H:%M:%SZ')"
DUCK_ATHENA = [
    "SELECT eventtime, useridentity.arn, eventname, sourceipaddress, requestparameters FROM cloudtrail_logs "
    f"WHERE eventname LIKE '%Delete%' AND eventtime > {CUT.format(d=7)} ORDER BY eventtime DESC LIMIT 100",
    "SELECT eventtime, useridentity.username, sourceipaddress, additionaleventdata FROM cloudtrail_logs "
    "WHERE eventname = 'ConsoleLogin' AND sourceipaddress NOT IN ('198.51.100.0/24', '203.0.113.0/24') "
    f"AND eventtime > {CUT.format(d=30)} ORDER BY eventtime DESC",
    "SELECT useridentity.arn, count(*) AS api_call_count, count(DISTINCT eventname) AS unique_actions, "
    "count(DISTINCT sourceipaddress) AS unique_ips, min(eventtime) AS first_seen, max(eventtime) AS last_seen "
    f"FROM cloudtrail_logs WHERE eventtime > {CUT.format(d=30)} GROUP BY useridentity.arn "
    "ORDER BY api_call_count DESC LIMIT 50",
    "SELECT eventtime, useridentity.arn, eventname, errorcode, errormessage, sourceipaddress FROM cloudtrail_logs "
    "WHERE errorcode IN ('AccessDenied', 'UnauthorizedAccess', 'Client.UnauthorizedAccess') "
    f"AND eventtime > {CUT.format(d=7)} ORDER BY eventtime DESC LIMIT 200",
    "SELECT eventtime, useridentity.arn, eventname, requestparameters, resources[1].arn AS key_arn "
    "FROM cloudtrail_logs WHERE eventsource = 'kms.amazonaws.com' "
    "AND eventname IN ('Decrypt', 'Encrypt', 'GenerateDataKey', 'DisableKey', 'ScheduleKeyDeletion') "
    f"AND eventtime > {CUT.format(d=7)} ORDER BY eventtime DESC",
]
DUCK_LAKE = [
    "SELECT eventtime, eventname, eventsource, sourceipaddress, errorcode, requestparameters FROM store "
    "WHERE useridentity.arn = '{user}' AND CAST(eventtime AS TIMESTAMP) > TIMESTAMP '{since}' "
    "ORDER BY eventtime DESC",
    "SELECT recipientaccountid, useridentity.arn, count(*) AS event_count FROM store "
    "WHERE CAST(eventtime AS TIMESTAMP) > TIMESTAMP '{since}' GROUP BY 1, 2 ORDER BY event_count DESC",
]
RAW_COLUMNS = ("STRUCT(eventTime VARCHAR, eventSource VARCHAR, eventName VARCHAR, sourceIPAddress VARCHAR, "
               "errorCode VARCHAR, errorMessage VARCHAR, requestParameters JSON, additionalEventData JSON, "
               "recipientAccountId VARCHAR, userIdentity STRUCT(arn VARCHAR, userName VARCHAR), "
               "resources STRUCT(ARN VARCHAR)[])[]")


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run_measured(cmd, env=None):
    """Runs a command; returns (seconds, peak RSS bytes)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {proc.stderr.read().decode()[-2000:]}")
    return elapsed, usage.ru_maxrss * 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=10_000_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", type=Path)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--lake-only", action="store_true", help="skip the Athena queries (their run is separate)")
    ap.add_argument("--athena-only", action="store_true", help="skip CloudTrail Lake (its run is separate)")
    ap.add_argument("--no-raw", action="store_true", help="skip DuckDB over the raw logs (minutes per query)")
    args = ap.parse_args()

    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "cairn", "--bin", "cairn"], cwd=REPO, check=True)
    cairn = str(target / "release" / "cairn")
    work = args.work or Path(tempfile.mkdtemp(prefix="cairn-sql-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    summary = {"events": args.count, "days": args.days}
    athena_sql, lake_sql = guide_queries()
    try:
        logs = work / "logs"
        start = (datetime.now(timezone.utc) - timedelta(days=args.days)).replace(microsecond=0)
        if not logs.exists():
            t = time.perf_counter()
            subprocess.run([sys.executable, str(GEN), "--count", str(args.count), "--seed", "7",
                            "--start", start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "--rate", str(args.count / (args.days * 86400)), "--per-file", "2000",
                            "--format", "aws-layout", "--out", str(logs)], check=True, stdout=subprocess.DEVNULL)
            summary["generate_s"] = round(time.perf_counter() - t, 1)
        files = sorted(logs.rglob("*.json.gz"))
        raw_bytes = 0
        for f in files:
            with open(f, "rb") as h:
                h.seek(-4, 2)
                raw_bytes += int.from_bytes(h.read(4), "little")
        summary.update(log_files=len(files), raw_json_bytes=raw_bytes,
                       gz_bytes=sum(f.stat().st_size for f in files))

        # The Parquet copy, once, with its peak memory (the Athena queries read it).
        cache = work / "cache"
        duck = duckdb()
        if not args.lake_only:
            shutil.rmtree(cache, ignore_errors=True)
            seconds, rss = run_measured([cairn, "query", "--logs", str(logs), "--cache-dir", str(cache),
                                         "--output", "csv", "SELECT count(*) FROM cloudtrail_logs"])
            summary.update(convert_s=round(seconds, 1), convert_peak_rss_mib=round(rss / 2**20),
                           parquet_bytes=sum(p.stat().st_size for p in cache.glob("*.parquet")))
            parquet = duck.connect()
            parquet.execute("SET threads = 2")
            parquet.execute(f"CREATE VIEW cloudtrail_logs AS SELECT * FROM read_parquet('{cache}/*.parquet')")
            raw = duck.connect()
            raw.execute("SET threads = 2")
            raw.execute(f"""CREATE VIEW cloudtrail_logs AS SELECT r.eventTime AS eventtime, r.eventSource AS eventsource,
                r.eventName AS eventname, r.sourceIPAddress AS sourceipaddress, r.errorCode AS errorcode,
                r.errorMessage AS errormessage, r.requestParameters AS requestparameters,
                r.additionalEventData AS additionaleventdata, r.recipientAccountId AS recipientaccountid,
                {{'arn': r.userIdentity.arn, 'username': r.userIdentity.userName}} AS useridentity,
                list_transform(r.resources, lambda x: {{'arn': x.ARN}}) AS resources
                FROM (SELECT unnest(Records) AS r FROM read_json('{logs}/**/*.json.gz',
                      columns = {{Records: '{RAW_COLUMNS}'}}, format = 'auto', maximum_object_size = 268435456))""")
        rows = []
        for (title, sql), duck_sql in zip([] if args.lake_only else athena_sql, DUCK_ATHENA):
            cairn_s = best(lambda: run_measured([cairn, "query", "--logs", str(logs), "--cache-dir", str(cache),
                                                 "--output", "csv", sql]), args.repeat)
            parquet_s = best(lambda: parquet.execute(duck_sql).fetchall(), args.repeat)
            raw_s = None if args.no_raw else best(lambda: raw.execute(duck_sql).fetchall(), 1)
            n = len(parquet.execute(duck_sql).fetchall())
            rows.append({"query": title, "rows": n, "cairn_s": round(cairn_s, 3), "duckdb_parquet_s": round(parquet_s, 3),
                         "duckdb_raw_s": raw_s and round(raw_s, 2), "vs_parquet": round(cairn_s / parquet_s, 2),
                         "raw_over_cairn": raw_s and round(raw_s / cairn_s, 1)})
            print(json.dumps(rows[-1]), flush=True)

        # CloudTrail Lake: a server, a store filled by import, the two queries.
        lake_rows, extra = ([], {}) if args.athena_only else lake(cairn, work, logs, files, lake_sql, duck, args)
        rows += lake_rows
        summary.update(extra)
        summary["queries"] = rows
        print(json.dumps(summary, indent=2))
        print("\n| query | rows | Cairn s | DuckDB Parquet s | ratio | DuckDB raw s | raw / Cairn |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['query']} | {r['rows']} | {r['cairn_s']} | {r['duckdb_parquet_s']} | {r['vs_parquet']} | "
                  f"{r['duckdb_raw_s']} | {r['raw_over_cairn']} |")
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)


class Server:
    """`cairn serve` on work/server: a fresh one with `config`, or (config None) the
    data and configuration an earlier run left there."""

    def __init__(self, cairn, work, config=None):
        self.data = work / "server"
        if config is not None:
            shutil.rmtree(self.data, ignore_errors=True)
            self.data.mkdir(parents=True)
            (work / "server.toml").write_text(config)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, CAIRN_ROOT_ACCESS_KEY_ID=KEY, CAIRN_ROOT_SECRET_ACCESS_KEY=SECRET, CAIRN_LOG="warn")
        self.proc = subprocess.Popen([cairn, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir",
                                      str(self.data), "--config", str(work / "server.toml")],
                                     stdout=subprocess.DEVNULL, stderr=open(work / "server.log", "ab"), env=env)
        wait_healthy(self.endpoint)

    def client(self, service):
        import boto3
        import botocore.config
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=KEY,
                            aws_secret_access_key=SECRET,
                            config=botocore.config.Config(retries={"max_attempts": 3}, read_timeout=600))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def lake_query(ct, sql):
    start = time.perf_counter()
    qid = ct.start_query(QueryStatement=sql)["QueryId"]
    while True:
        d = ct.describe_query(QueryId=qid)
        if d["QueryStatus"] not in ("QUEUED", "RUNNING"):
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    assert d["QueryStatus"] == "FINISHED", d
    return elapsed, d


def lake(cairn, work, logs, files, lake_sql, duck, args):
    extra = {}
    server = Server(cairn, work, '[query]\nmemory_mib = 2048\n[history]\nenabled = true\n[delivery]\ninterval = "1s"\n')
    rows = []
    try:
        s3, ct = server.client("s3"), server.client("cloudtrail")
        s3.create_bucket(Bucket="exported")
        t = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda p: s3.put_object(Bucket="exported", Key=str(p.relative_to(logs)), Body=p.read_bytes()),
                          files))
        extra["upload_s"] = round(time.perf_counter() - t, 1)
        store = ct.create_event_data_store(Name="bench", StartIngestion=False, TerminationProtectionEnabled=False,
                                           RetentionPeriod=3653)
        store_id = store["EventDataStoreArn"].rsplit("/", 1)[1]
        t = time.perf_counter()
        imp = ct.start_import(Destinations=[store["EventDataStoreArn"]], ImportSource={"S3": {
            "S3LocationUri": "s3://exported/AWSLogs/", "S3BucketRegion": "us-east-1",
            "S3BucketAccessRoleArn": "arn:aws:iam::123456789012:role/import"}})
        while True:
            got = ct.get_import(ImportId=imp["ImportId"])
            if got["ImportStatus"] not in ("INITIALIZING", "IN_PROGRESS"):
                break
            time.sleep(0.5)
        assert got["ImportStatus"] == "COMPLETED", got
        extra["import_s"] = round(time.perf_counter() - t, 1)
        parts = sorted((server.data / "lake" / store_id / "parts").rglob("*.parquet"))
        stored = sum(p.stat().st_size for p in parts)
        extra.update(store_bytes=stored, store_bytes_per_event=round(stored / args.count, 1))
        con = duck.connect()
        con.execute("SET threads = 2")
        con.execute(f"CREATE VIEW store AS SELECT * FROM read_parquet('{server.data}/lake/{store_id}/parts/*/*.parquet')")
        user = con.execute("SELECT useridentity.arn FROM store WHERE useridentity.arn IS NOT NULL "
                           "GROUP BY 1 ORDER BY count(*) LIMIT 1 OFFSET 3").fetchone()[0]
        since = (datetime.now(timezone.utc) - timedelta(days=args.days // 2)).strftime("%Y-%m-%d 00:00:00")
        for (title, sql), duck_sql in zip(lake_sql, DUCK_LAKE):
            sql = (sql.replace("EVENT_DATA_STORE_ID", store_id).replace("2024-01-01 00:00:00", since)
                   .replace("arn:aws:iam::123456789012:user/suspicious-user", user))
            duck_sql = duck_sql.format(user=user, since=since)
            cairn_s = best(lambda: lake_query(ct, sql), args.repeat)
            parquet_s = best(lambda: con.execute(duck_sql).fetchall(), args.repeat)
            n = len(con.execute(duck_sql).fetchall())
            rows.append({"query": title, "rows": n, "cairn_s": round(cairn_s, 3),
                         "duckdb_parquet_s": round(parquet_s, 3), "duckdb_raw_s": None,
                         "vs_parquet": round(cairn_s / parquet_s, 2), "raw_over_cairn": None})
            print(json.dumps(rows[-1]), flush=True)

        # Ingest to queryable: an ingesting store, 500 events at a time.
        # The server's account's events (the store is not the organization's).
        live = ct.create_event_data_store(Name="live", TerminationProtectionEnabled=False)
        live_id = live["EventDataStoreArn"].rsplit("/", 1)[1]
        lines = subprocess.run([sys.executable, str(GEN), "--count", "205000", "--seed", "99"],
                               capture_output=True, check=True).stdout.decode().splitlines()
        latencies = []
        for round_ in range(5):
            batch = lines[round_ * 500:(round_ + 1) * 500]
            # The store takes management events: the marker is the batch's last one.
            marker = next(json.loads(line)["eventID"] for line in reversed(batch)
                          if json.loads(line).get("eventCategory", "Management") == "Management"
                          and json.loads(line).get("recipientAccountId") == "123456789012")
            status, _ = signed_post(server.endpoint, ('{"Records":[' + ",".join(batch) + "]}").encode())
            acked = time.perf_counter()
            assert status == 200, status
            deadline = time.perf_counter() + 60
            while time.perf_counter() < deadline:
                _, d = lake_query(ct, f"SELECT count(*) FROM {live_id} WHERE eventID = '{marker}'")
                rows_ = ct.get_query_results(QueryId=d["QueryId"])["QueryResultRows"]
                if rows_ and list(rows_[0][0].values())[0] != "0":
                    break
            latencies.append(time.perf_counter() - acked)
        extra["queryable_after_ack_s"] = {"median": round(statistics.median(latencies), 3),
                                          "max": round(max(latencies), 3)}
        # LookupEvents over the event history: the rest of the events.
        rest = lines[2500:]
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: signed_post(server.endpoint, ('{"Records":[' + ",".join(rest[i:i + 500]) + "]}")
                                                .encode()), range(0, len(rest), 500)))
        time.sleep(5)
        names = [json.loads(l)["eventName"] for l in rest[:50]]
        samples = []
        for name in names:
            t = time.perf_counter()
            ct.lookup_events(LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": name}], MaxResults=50)
            samples.append(time.perf_counter() - t)
        extra["lookup_events_ms"] = {"events_in_history": len(lines), "median": round(statistics.median(samples) * 1000, 1),
                                     "max": round(max(samples) * 1000, 1)}
    finally:
        server.stop()
    return rows, extra


if __name__ == "__main__":
    main()
