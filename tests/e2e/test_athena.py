"""Athena through the real AWS CLI: the operator guide's CREATE EXTERNAL TABLE and its
five queries, verbatim (only the bucket, the account prefix and nothing else
substituted), over CloudTrail log files in a Cairn bucket, return exactly the rows
DuckDB returns on the same records; results land in the OutputLocation as Athena
writes them; the table shows in Glue; bad statements fail in Athena's own shape
and leave the server serving.

The oracle is the one of test_query_logs.py: Python's json module reads the log
files, DuckDB runs each question in its own SQL."""

import csv
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ACCOUNT, GEN, ORG_ID, REAL, Server
from test_query_logs import GUIDE, ORACLE, duckdb, guide_athena_queries, normal, oracle_table

BUCKET = "org-cloudtrail-audit-logs"
RESULTS = "athena-results"
GUIDE_LOCATION = "s3://org-cloudtrail-audit-logs/AWSLogs/123456789012/CloudTrail/"


def guide_ddl():
    text = GUIDE.read_text()
    start = text.index("CREATE EXTERNAL TABLE")
    return text[start:text.index(";", start) + 1]


def upload(s3, bucket, root):
    files = [p for p in Path(root).rglob("*") if p.is_file()]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: s3.put_object(Bucket=bucket, Key=str(p.relative_to(root)), Body=p.read_bytes()),
                      files))
    return len(files)


class Athena:
    """Runs statements: with the real AWS CLI as an operator would (`cli=True`, the
    guide's statements), or with boto3 (quicker, for everything else)."""

    def __init__(self, server, database=None, cli=False):
        self.server = server
        self.database = database
        self.cli = cli
        self.client = server.client("athena")

    def start(self, sql, output=f"s3://{RESULTS}/athena/"):
        if not self.cli:
            kwargs = {"QueryExecutionContext": {"Database": self.database}} if self.database else {}
            return self.client.start_query_execution(
                QueryString=sql, ResultConfiguration={"OutputLocation": output}, **kwargs)["QueryExecutionId"]
        args = ["athena", "start-query-execution", "--query-string", sql,
                "--result-configuration", f"OutputLocation={output}"]
        if self.database:
            args += ["--query-execution-context", f"Database={self.database}"]
        return self.server.aws(*args)["QueryExecutionId"]

    def wait(self, qid, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            execution = self.client.get_query_execution(QueryExecutionId=qid)["QueryExecution"]
            if execution["Status"]["State"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                if self.cli:
                    # What the CLI prints, for the record.
                    execution = self.server.aws("athena", "get-query-execution",
                                                "--query-execution-id", qid)["QueryExecution"]
                return execution
            time.sleep(0.1)
        raise AssertionError(f"query {qid} did not finish")

    def run(self, sql):
        execution = self.wait(self.start(sql))
        assert execution["Status"]["State"] == "SUCCEEDED", execution["Status"]
        return execution

    def rows(self, sql):
        """The result rows (every page), header first."""
        execution = self.run(sql)
        qid = execution["QueryExecutionId"]
        if self.cli:
            # The CLI follows every NextToken itself.
            out = self.server.aws("athena", "get-query-results", "--query-execution-id", qid)
            pages = [out]
        else:
            pages = list(self.client.get_paginator("get_query_results").paginate(QueryExecutionId=qid))
        rows = [[d.get("VarCharValue") for d in r["Data"]] for p in pages for r in p["ResultSet"]["Rows"]]
        return execution, pages[0]["ResultSet"]["ResultSetMetadata"]["ColumnInfo"], rows

    def fails(self, sql):
        execution = self.wait(self.start(sql))
        assert execution["Status"]["State"] == "FAILED", execution["Status"]
        return execution["Status"]


def check_guide_queries(athena, con):
    checked = 0
    for title, sql in guide_athena_queries():
        oracle_sql, key, limit = ORACLE[title]
        _, columns, rows = athena.rows(sql)
        assert rows[0] == [c["Name"] for c in columns], title
        got = [tuple(normal(c) for c in row) for row in rows[1:]]
        want = [tuple(normal(c) for c in row) for row in con.execute(oracle_sql).fetchall()]
        expected_len = len(want) if limit is None else min(limit, len(want))
        assert len(got) == expected_len, (title, len(got), expected_len)
        assert [r[key] for r in got] == [r[key] for r in want[:expected_len]], title
        if limit is None or len(want) <= limit:
            assert sorted(got) == sorted(want), title
        checked += len(got)
    return checked


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("athena-logs")
    start = (datetime.now(timezone.utc) - timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    subprocess.run([sys.executable, str(GEN), "--count", "20000", "--seed", "17", "--start", start,
                    "--rate", str(20000 / (10 * 86400)), "--format", "aws-layout", "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    return out


@pytest.fixture(scope="module")
def athena_server(tmp_path_factory, generated):
    base = tmp_path_factory.mktemp("athena-server")
    server = Server(base / "data", '[query]\nmemory_mib = 64\ntimeout = "8s"\n').start()
    s3 = server.client("s3")
    for bucket in (BUCKET, RESULTS):
        s3.create_bucket(Bucket=bucket)
    assert upload(s3, BUCKET, generated) > 100
    yield server
    server.stop()


def org_location():
    # An organization trail delivers under AWSLogs/<org-id>/<account>/CloudTrail/.
    return f"s3://{BUCKET}/AWSLogs/{ORG_ID}/{ACCOUNT}/CloudTrail/"


def test_guide_table_and_queries_match_duckdb(athena_server, generated):
    athena = Athena(athena_server, cli=True)
    ddl = guide_ddl()
    assert GUIDE_LOCATION in ddl
    created = athena.run(ddl.replace(GUIDE_LOCATION, org_location()))
    assert created["StatementType"] == "DDL"
    con = duckdb().connect()
    total = oracle_table(con, Path(generated) / "AWSLogs" / ORG_ID / ACCOUNT)
    assert total > 2000
    checked = check_guide_queries(athena, con)
    assert checked > 100, "the windows cut through the data"

    # The table in Glue, as Athena's DDL declared it.
    table = athena_server.aws("glue", "get-table", "--database-name", "default", "--name", "cloudtrail_logs")["Table"]
    assert table["StorageDescriptor"]["Location"] == org_location()
    assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"] == "org.apache.hive.hcatalog.data.JsonSerDe"
    assert [c["Name"] for c in table["PartitionKeys"]] == ["region", "year", "month", "day"]
    assert table["StorageDescriptor"]["Columns"][1]["Type"].startswith("struct<type:string,principalid:string")
    tables = athena_server.aws("glue", "get-tables", "--database-name", "default")["TableList"]
    assert [t["Name"] for t in tables] == ["cloudtrail_logs"]
    assert [d["Name"] for d in athena_server.aws("glue", "get-databases")["DatabaseList"]] == ["default"]
    metadata = athena_server.aws("athena", "get-table-metadata", "--catalog-name", "AwsDataCatalog",
                                 "--database-name", "default", "--table-name", "cloudtrail_logs")["TableMetadata"]
    assert metadata["Columns"][0] == {"Name": "eventversion", "Type": "string"}

    # SHOW and DESCRIBE answer rows without a header.
    _, _, rows = athena.rows("SHOW TABLES")
    assert rows == [["cloudtrail_logs"]]
    _, _, rows = athena.rows("DESCRIBE cloudtrail_logs")
    assert rows[0] == ["eventversion", "string", ""]
    athena.run("MSCK REPAIR TABLE cloudtrail_logs")


def test_results_are_written_and_paged_as_athena_does(athena_server):
    athena = Athena(athena_server)
    athena.run(guide_ddl().replace(GUIDE_LOCATION, org_location()))
    sql = ("SELECT eventName, count(*) AS n FROM cloudtrail_logs GROUP BY eventName "
           "ORDER BY n DESC, eventName")
    execution, columns, rows = athena.rows(sql)
    qid = execution["QueryExecutionId"]
    assert execution["Statistics"]["DataScannedInBytes"] > 0
    assert execution["ResultConfiguration"]["OutputLocation"] == f"s3://{RESULTS}/athena/{qid}.csv"
    assert [(c["Name"], c["Type"]) for c in columns] == [("eventname", "varchar"), ("n", "bigint")]
    s3 = athena_server.client("s3")
    body = s3.get_object(Bucket=RESULTS, Key=f"athena/{qid}.csv")["Body"].read().decode()
    assert list(csv.reader(io.StringIO(body))) == rows
    assert body.startswith('"eventname","n"\n')
    s3.head_object(Bucket=RESULTS, Key=f"athena/{qid}.csv.metadata")

    # Pages of MaxResults rows, the header in the first.
    client = athena_server.client("athena")
    page = client.get_query_results(QueryExecutionId=qid, MaxResults=3)
    assert len(page["ResultSet"]["Rows"]) == 3 and "NextToken" in page
    paged = []
    token = None
    while True:
        kwargs = {"NextToken": token} if token else {}
        page = client.get_query_results(QueryExecutionId=qid, MaxResults=3, **kwargs)
        paged += [[d.get("VarCharValue") for d in r["Data"]] for r in page["ResultSet"]["Rows"]]
        token = page.get("NextToken")
        if not token:
            break
    assert paged == rows

    listed = athena_server.aws("athena", "list-query-executions")["QueryExecutionIds"]
    assert qid in listed
    batch = athena_server.aws("athena", "batch-get-query-execution", "--query-execution-ids", qid, "nope")
    assert [e["QueryExecutionId"] for e in batch["QueryExecutions"]] == [qid]
    assert batch["UnprocessedQueryExecutionIds"][0]["QueryExecutionId"] == "nope"


def test_files_delivered_later_are_seen_without_loading_partitions(athena_server, tmp_path):
    athena = Athena(athena_server)
    athena.run(guide_ddl().replace(GUIDE_LOCATION, org_location()))
    _, _, before = athena.rows("SELECT count(*) FROM cloudtrail_logs")
    late = {"Records": [{"eventVersion": "1.08", "eventID": f"late-{i}", "eventTime": "2020-02-02T00:00:00Z",
                         "eventName": "LateEvent", "eventSource": "s3.amazonaws.com", "awsRegion": "ap-south-1"}
                        for i in range(3)]}
    key = (f"AWSLogs/{ORG_ID}/{ACCOUNT}/CloudTrail/ap-south-1/2020/02/02/"
           f"{ACCOUNT}_CloudTrail_ap-south-1_20200202T0000Z_LateLateLateLate.json")
    athena_server.client("s3").put_object(Bucket=BUCKET, Key=key, Body=json.dumps(late).encode())
    _, _, after = athena.rows("SELECT count(*) FROM cloudtrail_logs")
    assert int(after[1][0]) == int(before[1][0]) + 3
    _, _, rows = athena.rows("SELECT region, year, month, day, count(*) FROM cloudtrail_logs "
                             "WHERE eventName = 'LateEvent' GROUP BY 1, 2, 3, 4")
    assert rows[1] == ["ap-south-1", "2020", "02", "02", "3"]


def test_guide_queries_match_duckdb_on_real_records(athena_server, tmp_path):
    # The real records, their bytes as they are, 500 to a log file, in their own
    # bucket and database.
    layout = tmp_path / "real"
    prefix = layout / "AWSLogs" / ACCOUNT / "CloudTrail" / "us-east-1" / "2024" / "01" / "01"
    prefix.mkdir(parents=True)
    count = 0
    for source in sorted(REAL.glob("*.jsonl")):
        lines = [line for line in source.read_text().splitlines() if line.strip()]
        for part in range(0, len(lines), 500):
            chunk = lines[part:part + 500]
            (prefix / f"{source.stem}-{part:05d}.json").write_text('{"Records":[' + ",".join(chunk) + "]}")
            count += len(chunk)
    s3 = athena_server.client("s3")
    s3.create_bucket(Bucket="real-records")
    upload(s3, "real-records", layout)
    athena = Athena(athena_server, database="realdb", cli=True)
    athena.run("CREATE DATABASE IF NOT EXISTS realdb")
    athena.run(guide_ddl().replace(GUIDE_LOCATION, f"s3://real-records/AWSLogs/{ACCOUNT}/CloudTrail/"))
    con = duckdb().connect()
    assert oracle_table(con, layout) == count
    check_guide_queries(athena, con)
    _, _, rows = athena.rows("SELECT userIdentity.arn, count(*) AS n, min(eventTime), max(eventTime) "
                             "FROM cloudtrail_logs GROUP BY userIdentity.arn ORDER BY n DESC, userIdentity.arn")
    got = [tuple(normal(c) for c in row) for row in rows[1:]]
    want = [tuple(normal(c) for c in row) for row in con.execute(
        "SELECT arn, count(*) AS n, min(eventtime), max(eventtime) FROM t GROUP BY arn ORDER BY n DESC, arn NULLS LAST"
    ).fetchall()]
    assert got == want


def test_bad_statements_fail_in_athenas_shape_and_the_server_serves_on(athena_server):
    athena = Athena(athena_server)
    athena.run(guide_ddl().replace(GUIDE_LOCATION, org_location()))
    status = athena.fails("SELEC eventName FROM cloudtrail_logs")
    assert status["StateChangeReason"].startswith("line 1:1:"), status
    assert status["AthenaError"]["ErrorCategory"] == 2
    for sql, named in [("SELECT * FROM no_such_table", "no_such_table"),
                       ("SELECT no_such_column FROM cloudtrail_logs", "no_such_column"),
                       ("SELECT frobnicate(eventName) FROM cloudtrail_logs", "frobnicate")]:
        status = athena.fails(sql)
        assert named in status["StateChangeReason"], status
    status = athena.fails(guide_ddl().replace(GUIDE_LOCATION, "s3://no-such-bucket/AWSLogs/").replace(
        "cloudtrail_logs", "elsewhere"))
    assert "no-such-bucket" in status["StateChangeReason"], status
    # Over the memory bound (64 MiB): fails, does not take the server down.
    status = athena.fails("SELECT array_agg(a.requestParameters) FROM cloudtrail_logs a CROSS JOIN cloudtrail_logs b")
    assert "resources" in status["StateChangeReason"].lower(), status
    # Over the time bound (8 s).
    status = athena.fails("SELECT count(*) FROM cloudtrail_logs a CROSS JOIN cloudtrail_logs b "
                          "CROSS JOIN cloudtrail_logs c WHERE a.eventName <> c.eventName")
    assert "time" in status["StateChangeReason"], status
    # Cancelled while running.
    qid = athena.start("SELECT count(*) FROM cloudtrail_logs a CROSS JOIN cloudtrail_logs b "
                       "CROSS JOIN cloudtrail_logs c WHERE a.eventName <> c.eventName")
    time.sleep(1)
    athena_server.aws("athena", "stop-query-execution", "--query-execution-id", qid)
    assert athena.wait(qid, timeout=30)["Status"]["State"] == "CANCELLED"
    # Request errors are the API's own.
    proc = athena_server.aws("athena", "start-query-execution", "--query-string", "SELECT 1", check=False)
    assert proc.returncode != 0 and "InvalidRequestException" in proc.stderr and "output location" in proc.stderr
    proc = athena_server.aws("athena", "get-query-results", "--query-execution-id", "nope", check=False)
    assert "InvalidRequestException" in proc.stderr
    # Still serving.
    _, _, rows = athena.rows("SELECT count(*) FROM cloudtrail_logs")
    assert int(rows[1][0]) > 0
