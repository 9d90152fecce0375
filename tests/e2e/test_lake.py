"""CloudTrail Lake through the real AWS CLI: the operator guide's create-event-data-store
command and its two Lake queries, verbatim (only the store ID substituted), over
ingested events return exactly the rows DuckDB returns on the same records; every
acknowledged event is queryable exactly once across kill -9 during ingest and
compaction; the store's Parquet files are readable by DuckDB as they are; bad input
gets CloudTrail's own errors."""

import json
import re
import shlex
import threading
import time
from pathlib import Path

import pytest

from conftest import ACCOUNT, MEMBERS, ORG_CONFIG, Server, generate, wait_for
from test_query_logs import GUIDE, duckdb, get_ci, normal, text_of

CONFIG = ORG_CONFIG + '\n[query]\nmemory_mib = 256\ntimeout = "60s"\n'
SUSPICIOUS = "arn:aws:iam::123456789012:user/suspicious-user"


def guide_create_command():
    """The guide's `aws cloudtrail create-event-data-store ...` as argv."""
    text = GUIDE.read_text()
    start = text.index("aws cloudtrail create-event-data-store")
    end = text.index("-- CloudTrail Lake SQL queries")
    command = text[start:end].replace("\\\n", " ")
    argv = shlex.split(command)
    assert argv[:3] == ["aws", "cloudtrail", "create-event-data-store"]
    return argv[1:]


def guide_lake_queries():
    text = GUIDE.read_text()
    block = text[text.index("-- CloudTrail Lake SQL queries"):text.index("Validate Trail Integrity")]
    queries = []
    for chunk in re.split(r"\n-- ", block)[1:]:
        title, _, body = chunk.partition("\n")
        if body.lstrip().upper().startswith("SELECT"):
            queries.append((title.strip(), body.strip()))
    assert len(queries) == 2, queries
    return queries


def events(count, seed):
    """Generated management and data events from late December 2023 into January
    2024 (so the guide's `eventTime > '2024-01-01 00:00:00'` cuts through them);
    every tenth is the guide's suspicious user's."""
    out = []
    for i, line in enumerate(generate(count, seed)):
        record = json.loads(line)
        shift = (i * 9 * 86400) // count  # spread over nine days
        record["eventTime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1703721600 + shift))
        if i % 10 == 0:
            identity = record.setdefault("userIdentity", {})
            identity["arn"] = SUSPICIOUS
            identity["type"] = "IAMUser"
        record["eventID"] = f"{seed}-{i:07d}-{record.get('eventID', '')}"
        out.append(json.dumps(record, separators=(",", ":")))
    return out


def oracle(records, management_only=True):
    """The records (the management events only, as the guide's store selects them)
    in DuckDB, with how many there are."""
    con = duckdb().connect()
    rows = []
    for text in records:
        r = json.loads(text)
        category = get_ci(r, "eventCategory")
        if management_only and (category not in (None, "Management") or get_ci(r, "managementEvent") is False):
            continue
        identity = get_ci(r, "userIdentity")
        rows.append((text_of(get_ci(r, "eventTime")), text_of(get_ci(r, "eventName")),
                     text_of(get_ci(r, "eventSource")), text_of(get_ci(r, "sourceIPAddress")),
                     text_of(get_ci(r, "errorCode")), text_of(get_ci(r, "requestParameters")),
                     text_of(get_ci(identity, "arn")), text_of(get_ci(r, "recipientAccountId")),
                     text_of(get_ci(r, "eventID"))))
    con.execute("""CREATE TABLE t (eventtime VARCHAR, eventname VARCHAR, eventsource VARCHAR, sourceip VARCHAR,
                   errorcode VARCHAR, requestparameters VARCHAR, arn VARCHAR, account VARCHAR, eventid VARCHAR)""")
    con.executemany("INSERT INTO t VALUES (?,?,?,?,?,?,?,?,?)", rows)
    return con, len(rows)


ORACLE = {
    "Investigate a specific user's activity": (
        "SELECT strftime(CAST(eventtime AS TIMESTAMP), '%Y-%m-%d %H:%M:%S.%g'), eventname, eventsource, sourceip, "
        "errorcode, requestparameters FROM t WHERE arn = '" + SUSPICIOUS + "' "
        "AND CAST(eventtime AS TIMESTAMP) > TIMESTAMP '2024-01-01 00:00:00' ORDER BY eventtime DESC", 0,
        ["eventTime", "eventName", "eventSource", "sourceIPAddress", "errorCode", "requestParameters"]),
    "Cross-account activity summary": (
        "SELECT account, arn, count(*) AS event_count FROM t "
        "WHERE CAST(eventtime AS TIMESTAMP) > TIMESTAMP '2024-01-01 00:00:00' "
        "GROUP BY account, arn ORDER BY event_count DESC", 2, ["recipientAccountId", "arn", "event_count"]),
}


class Lake:
    def __init__(self, server):
        self.server = server
        self.client = server.client("cloudtrail")

    def start(self, sql, cli=False):
        if cli:
            return self.server.aws("cloudtrail", "start-query", "--query-statement", sql)["QueryId"]
        return self.client.start_query(QueryStatement=sql)["QueryId"]

    def wait(self, qid, timeout=120):
        return wait_for(lambda: (lambda d: d if d["QueryStatus"] not in ("QUEUED", "RUNNING") else None)(
            self.client.describe_query(QueryId=qid)), timeout=timeout, message=f"query {qid}")

    def rows(self, sql, cli=False):
        qid = self.start(sql, cli)
        described = self.wait(qid)
        assert described["QueryStatus"] == "FINISHED", described
        if cli:
            out = self.server.aws("cloudtrail", "get-query-results", "--query-id", qid)
            pages = [out]
        else:
            pages, token = [], None
            while True:
                page = self.client.get_query_results(QueryId=qid, **({"NextToken": token} if token else {}))
                pages.append(page)
                token = page.get("NextToken")
                if not token:
                    break
        rows = [r for p in pages for r in p["QueryResultRows"]]
        return described, rows

    def count(self, store_id):
        _, rows = self.rows(f"SELECT count(*) AS n, count(DISTINCT eventID) AS d FROM {store_id}")
        cells = {k: v for cell in rows[0] for k, v in cell.items()}
        return int(cells["n"]), int(cells["d"])


def create_guide_store(server):
    store = server.aws(*guide_create_command())
    assert store["Name"] == "org-audit-event-store"
    assert store["Status"] == "ENABLED"
    assert store["MultiRegionEnabled"] and store["OrganizationEnabled"]
    assert store["RetentionPeriod"] == 2555 and store["TerminationProtectionEnabled"]
    assert store["AdvancedEventSelectors"][0]["Name"] == "AllManagementEvents"
    return store["EventDataStoreArn"].rsplit("/", 1)[1]


@pytest.fixture
def lake_server(tmp_path):
    server = Server(tmp_path / "data", CONFIG).start()
    yield server
    server.stop()


def test_guide_store_and_queries_match_duckdb(lake_server):
    store_id = create_guide_store(lake_server)
    assert [s["Name"] for s in lake_server.aws("cloudtrail", "list-event-data-stores")["EventDataStores"]] == [
        "org-audit-event-store"]
    got = lake_server.aws("cloudtrail", "get-event-data-store", "--event-data-store", store_id)
    assert got["EventDataStoreArn"].endswith(store_id)
    records = events(6000, 31)
    acknowledged_at = time.time()
    lake_server.ingest_lines(records)
    con, total = oracle(records)
    assert 1000 < total < len(records), "management events only"
    lake = Lake(lake_server)
    wait_for(lambda: lake.count(store_id) == (total, total), timeout=60, message="every event queryable")
    latency = time.time() - acknowledged_at
    print(f"queryable {latency:.2f} s after the last acknowledgement")
    for title, sql in guide_lake_queries():
        oracle_sql, key, names = ORACLE[title]
        assert "EVENT_DATA_STORE_ID" in sql
        described, rows = lake.rows(sql.replace("EVENT_DATA_STORE_ID", store_id), cli=True)
        assert described["QueryStatistics"]["EventsScanned"] >= total
        want = [tuple(normal(c) for c in row) for row in con.execute(oracle_sql).fetchall()]
        got = []
        for row in rows:
            cells = {k: v for cell in row for k, v in cell.items()}
            assert set(cells) <= set(names), (title, cells)
            got.append(tuple(normal(cells.get(name)) for name in names))
        assert len(got) == len(want) > 0, title
        assert [r[key] for r in got] == [r[key] for r in want], title
        assert sorted(got) == sorted(want), title

    # Compacted into Parquet partitions DuckDB reads as they are.
    wait_for(lambda: list((lake_server.data_dir / "lake" / store_id / "parts").glob("*/*.parquet")),
             timeout=30, message="compaction")
    wait_for(lambda: not list((lake_server.data_dir / "lake" / store_id / "fresh").glob("*.ndjson")),
             timeout=30, message="fresh files folded")
    parts = str(lake_server.data_dir / "lake" / store_id / "parts" / "*" / "*.parquet")
    n, dates = duckdb().connect().execute(
        f"SELECT count(*), count(DISTINCT eventdate) FROM read_parquet('{parts}', hive_partitioning = true)"
    ).fetchone()
    assert n == total and dates >= 9
    assert lake.count(store_id) == (total, total)


def test_every_acknowledged_event_once_through_kill9(tmp_path):
    server = Server(tmp_path / "data", CONFIG).start()
    try:
        store_id = create_guide_store(server)
        records = events(9000, 47)
        _, total = oracle(records)
        batches = [records[i:i + 300] for i in range(0, len(records), 300)]
        sent = 0
        for round_ in range(3):
            stop = threading.Event()

            def feed():
                nonlocal sent
                while sent < len(batches) and not stop.is_set():
                    body = ('{"Records":[' + ",".join(batches[sent]) + "]}").encode()
                    try:
                        status, _ = server.ingest_raw(body)
                    except OSError:
                        return
                    if status != 200:
                        return
                    sent += 1

            feeder = threading.Thread(target=feed)
            feeder.start()
            time.sleep(2.5 + round_ * 2.6)  # through deliveries and a compaction (every 5 s)
            server.kill9()
            stop.set()
            feeder.join()
            server.start()
        # The rest, and the batch that may have been in flight (eventIDs dedup).
        if sent < len(batches):
            server.ingest_lines([line for batch in batches[max(sent - 1, 0):] for line in batch], batch=300)
        lake = Lake(server)
        wait_for(lambda: lake.count(store_id) == (total, total), timeout=90, message="every event once")
    finally:
        server.stop()


def test_bad_input_gets_cloudtrails_errors(tmp_path):
    lake_server = Server(tmp_path / "data", ORG_CONFIG + '\n[query]\nmemory_mib = 64\ntimeout = "30s"\n').start()
    try:
        bad_input(lake_server)
    finally:
        lake_server.stop()


def bad_input(lake_server):
    store_id = create_guide_store(lake_server)
    lake_server.ingest_lines(events(200, 5))

    def fails(args, code):
        proc = lake_server.aws(*args, check=False)
        assert proc.returncode != 0 and code in proc.stderr, (args, proc.stderr)
        return proc.stderr

    stderr = fails(["cloudtrail", "start-query", "--query-statement", f"SELEC * FROM {store_id}"],
                   "InvalidQueryStatementException")
    assert "line 1:" in stderr
    fails(["cloudtrail", "start-query", "--query-statement",
           "SELECT * FROM 11111111-2222-3333-4444-555555555555"], "EventDataStoreNotFoundException")
    lake = Lake(lake_server)
    for sql, named in [(f"SELECT noSuchColumn FROM {store_id}", "nosuchcolumn"),
                       (f"SELECT frobnicate(eventName) FROM {store_id}", "frobnicate")]:
        described = lake.wait(lake.start(sql))
        assert described["QueryStatus"] == "FAILED" and named in described["ErrorMessage"].lower(), described
    # Over the memory bound: fails, the server serves on.
    described = lake.wait(lake.start(
        f"SELECT array_agg(a.requestParameters) FROM {store_id} a CROSS JOIN {store_id} b CROSS JOIN {store_id} c"))
    assert described["QueryStatus"] in ("FAILED", "TIMED_OUT"), described
    # Cancelled.
    qid = lake.start(f"SELECT count(*) FROM {store_id} a CROSS JOIN {store_id} b CROSS JOIN {store_id} c "
                     f"CROSS JOIN {store_id} d WHERE a.eventName <> d.eventName")
    lake_server.aws("cloudtrail", "cancel-query", "--query-id", qid)
    assert lake.wait(qid)["QueryStatus"] == "CANCELLED"
    fails(["cloudtrail", "cancel-query", "--query-id", qid], "InactiveQueryException")
    queries = lake_server.aws("cloudtrail", "list-queries", "--event-data-store", store_id)["Queries"]
    assert qid in [q["QueryId"] for q in queries]

    # Stopped ingestion: queryable still, as on AWS; new events are not taken.
    lake_server.aws("cloudtrail", "stop-event-data-store-ingestion", "--event-data-store", store_id)
    assert lake_server.aws("cloudtrail", "get-event-data-store", "--event-data-store", store_id)[
        "Status"] == "STOPPED_INGESTION"
    before = wait_for(lambda: lake.count(store_id)[0] or None, message="events")
    lake_server.ingest_lines(events(100, 6))
    time.sleep(2)
    assert lake.count(store_id)[0] == before
    fails(["cloudtrail", "stop-event-data-store-ingestion", "--event-data-store", store_id],
          "InvalidEventDataStoreStatusException")
    lake_server.aws("cloudtrail", "start-event-data-store-ingestion", "--event-data-store", store_id)

    # Termination protection, then the pending-deletion window.
    fails(["cloudtrail", "delete-event-data-store", "--event-data-store", store_id],
          "EventDataStoreTerminationProtectedException")
    lake_server.aws("cloudtrail", "update-event-data-store", "--event-data-store", store_id,
                    "--no-termination-protection-enabled")
    lake_server.aws("cloudtrail", "delete-event-data-store", "--event-data-store", store_id, expect_json=False)
    assert lake_server.aws("cloudtrail", "get-event-data-store", "--event-data-store", store_id)[
        "Status"] == "PENDING_DELETION"
    fails(["cloudtrail", "start-query", "--query-statement", f"SELECT count(*) FROM {store_id}"],
          "InactiveEventDataStoreException")
    restored = lake_server.aws("cloudtrail", "restore-event-data-store", "--event-data-store", store_id)
    assert restored["Status"] == "ENABLED"
    assert lake.count(store_id)[0] >= before
    fails(["cloudtrail", "create-event-data-store", "--name", "org-audit-event-store"],
          "EventDataStoreAlreadyExistsException")
    fails(["cloudtrail", "create-event-data-store", "--name", "fixed-store", "--billing-mode",
           "FIXED_RETENTION_PRICING", "--retention-period", "3000"], "InvalidParameterException")
    fails(["cloudtrail", "get-event-data-store", "--event-data-store", "nope-nope"],
          "EventDataStoreNotFoundException")


def test_import_from_a_bucket_prefix(lake_server, tmp_path):
    import subprocess
    import sys
    from conftest import GEN
    from test_athena import upload
    out = tmp_path / "logs"
    subprocess.run([sys.executable, str(GEN), "--count", "3000", "--seed", "61", "--start", "2024-03-01T00:00:00Z",
                    "--rate", str(3000 / (4 * 86400)), "--format", "aws-layout", "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    s3 = lake_server.client("s3")
    s3.create_bucket(Bucket="exported-logs")
    upload(s3, "exported-logs", out)
    times = []
    for path in out.rglob("*.json.gz"):
        import gzip
        times += [r["eventTime"] for r in json.loads(gzip.decompress(path.read_bytes()))["Records"]]
    # Events older than a store's retention period are dropped (by eventTime, as on
    # AWS): ten years keeps these.
    store = lake_server.aws("cloudtrail", "create-event-data-store", "--name", "imported", "--retention-period",
                            "3653", "--no-start-ingestion", "--no-termination-protection-enabled")
    arn = store["EventDataStoreArn"]
    store_id = arn.rsplit("/", 1)[1]
    source = json.dumps({"S3": {"S3LocationUri": "s3://exported-logs/AWSLogs/", "S3BucketRegion": "us-east-1",
                                "S3BucketAccessRoleArn": "arn:aws:iam::123456789012:role/import"}})
    started = lake_server.aws("cloudtrail", "start-import", "--destinations", arn, "--import-source", source,
                              "--start-event-time", "2024-03-02T00:00:00Z", "--end-event-time", "2024-03-04T00:00:00Z")
    import_id = started["ImportId"]
    done = wait_for(lambda: (lambda g: g if g["ImportStatus"] not in ("INITIALIZING", "IN_PROGRESS") else None)(
        lake_server.aws("cloudtrail", "get-import", "--import-id", import_id)), timeout=120, message="import")
    assert done["ImportStatus"] == "COMPLETED", done
    want = sum(1 for t in times if "2024-03-02T00:00:00Z" <= t < "2024-03-04T00:00:00Z")
    assert done["ImportStatistics"]["EventsCompleted"] == want > 100
    assert Lake(lake_server).count(store_id) == (want, want)
    listed = lake_server.aws("cloudtrail", "list-imports")["Imports"]
    assert [i["ImportId"] for i in listed] == [import_id]


def test_guide_lake_queries_match_duckdb_on_real_records(lake_server, tmp_path):
    # The real records, their bytes as they are, 500 to a log file, imported into a
    # store (their accounts are not the organization's, so ingest would not feed it).
    from conftest import REAL
    from test_athena import upload
    prefix = tmp_path / "real" / "AWSLogs" / ACCOUNT / "CloudTrail" / "us-east-1" / "2024" / "01" / "01"
    prefix.mkdir(parents=True)
    records = []
    for source in sorted(REAL.glob("*.jsonl")):
        lines = [line for line in source.read_text().splitlines() if line.strip()]
        for part in range(0, len(lines), 500):
            chunk = lines[part:part + 500]
            (prefix / f"{source.stem}-{part:05d}.json").write_text('{"Records":[' + ",".join(chunk) + "]}")
        records += lines
    s3 = lake_server.client("s3")
    s3.create_bucket(Bucket="real-records")
    upload(s3, "real-records", tmp_path / "real")
    store = lake_server.aws("cloudtrail", "create-event-data-store", "--name", "real", "--retention-period", "3653",
                            "--no-start-ingestion", "--no-termination-protection-enabled")
    store_id = store["EventDataStoreArn"].rsplit("/", 1)[1]
    source = json.dumps({"S3": {"S3LocationUri": "s3://real-records/AWSLogs/", "S3BucketRegion": "us-east-1",
                                "S3BucketAccessRoleArn": "arn:aws:iam::123456789012:role/import"}})
    import_id = lake_server.aws("cloudtrail", "start-import", "--destinations", store["EventDataStoreArn"],
                                "--import-source", source)["ImportId"]
    wait_for(lambda: lake_server.aws("cloudtrail", "get-import", "--import-id", import_id)["ImportStatus"]
             == "COMPLETED", timeout=120, message="import")
    # A store keeps events by eventTime for its retention period (ten years here), as on
    # AWS: the oldest real records (2014) are dropped at the next compaction.
    from datetime import date, timedelta
    cutoff = (date.today() - timedelta(days=3653)).isoformat()
    kept = [t for t in records if json.loads(t)["eventTime"][:10] >= cutoff]
    assert 0 < len(kept) < len(records)
    # Imports keep every event the files hold, whatever the store's selectors.
    con, _ = oracle(kept, management_only=False)
    lake = Lake(lake_server)
    wait_for(lambda: lake.count(store_id)[0] == len(kept), timeout=60, message="retention applied")
    # The real records end before 2024: the guide's date, then one inside their span.
    (frequent,) = con.execute("SELECT arn FROM t WHERE arn IS NOT NULL GROUP BY arn ORDER BY count(*) DESC, arn LIMIT 1").fetchone()
    for since, user in [("2024-01-01 00:00:00", SUSPICIOUS), ("2019-01-01 00:00:00", frequent)]:
        for title, sql in guide_lake_queries():
            oracle_sql, key, names = ORACLE[title]
            oracle_sql = oracle_sql.replace("2024-01-01 00:00:00", since).replace(SUSPICIOUS, user)
            sql = (sql.replace("EVENT_DATA_STORE_ID", store_id).replace("2024-01-01 00:00:00", since)
                   .replace(SUSPICIOUS, user))
            _, got_rows = lake.rows(sql)
            want = [tuple(normal(c) for c in row) for row in con.execute(oracle_sql).fetchall()]
            got = [tuple(normal({k: v for cell in row for k, v in cell.items()}.get(n)) for n in names)
                   for row in got_rows]
            assert sorted(got) == sorted(want), (title, since)
            assert [r[key] for r in got] == [r[key] for r in want], (title, since)
