"""`cairn query --logs`: the operator guide's five Athena queries, verbatim, over a
directory of CloudTrail log files, return exactly the rows DuckDB returns on the
same records.

The oracle shares nothing with Cairn's engine: Python's json module reads the
log files, DuckDB (from PyPI, installed by the test if missing) runs each
question written in DuckDB's own SQL. Data: generated events spread over ten
days ending now (so the guide's `current_date` windows cut through them), and
the real records of ../shared/data/real-cloudtrail as their own directory."""

import csv
from collections import Counter
import gzip
import io
import json
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import GEN, REAL, cairn_bin

GUIDE = Path(__file__).resolve().parents[2].parent / "shared" / "spec" / "operator-guide.txt"


def duckdb():
    try:
        import duckdb as module
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "duckdb"], check=True)
        import duckdb as module
    return module


def guide_athena_queries():
    """The guide's five SELECTs after the CREATE EXTERNAL TABLE, as written."""
    text = GUIDE.read_text()
    start = text.index("-- Create Athena table for CloudTrail logs")
    end = text.index("CloudTrail Lake (Event Data Store)")
    block = text[start:end]
    queries = []
    for chunk in re.split(r"\n-- ", block)[1:]:
        title, _, body = chunk.partition("\n")
        if body.lstrip().upper().startswith("SELECT"):
            queries.append((title.strip(), body.strip()))
    assert len(queries) == 5, [t for t, _ in queries]
    return queries


def get_ci(obj, name):
    """A JSON member by name, case-insensitively (as Hive's JSON SerDe reads)."""
    if not isinstance(obj, dict):
        return None
    for key, value in obj.items():
        if key.lower() == name.lower():
            return value
    return None


def text_of(value):
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, separators=(",", ":"))


def oracle_table(con, log_dir):
    rows = []
    for path in sorted(Path(log_dir).rglob("*.json*")):
        if "CloudTrail-Digest" in path.parts:
            continue
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt") as f:
            document = json.load(f)
        for r in document["Records"]:
            identity = get_ci(r, "userIdentity")
            resources = get_ci(r, "resources")
            first = resources[0] if isinstance(resources, list) and resources else None
            rows.append((
                text_of(get_ci(r, "eventTime")),
                text_of(get_ci(identity, "arn")),
                text_of(get_ci(identity, "userName")),
                text_of(get_ci(r, "eventName")),
                text_of(get_ci(r, "eventSource")),
                text_of(get_ci(r, "sourceIPAddress")),
                text_of(get_ci(r, "errorCode")),
                text_of(get_ci(r, "errorMessage")),
                text_of(get_ci(r, "requestParameters")),
                text_of(get_ci(r, "additionalEventData")),
                text_of(get_ci(first, "arn")),
            ))
    con.execute("""CREATE TABLE t (eventtime VARCHAR, arn VARCHAR, username VARCHAR, eventname VARCHAR,
                   eventsource VARCHAR, sourceip VARCHAR, errorcode VARCHAR, errormessage VARCHAR,
                   requestparameters VARCHAR, additionaleventdata VARCHAR, key_arn VARCHAR)""")
    con.executemany("INSERT INTO t VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
    return len(rows)


CUTOFF = "strftime(current_date - INTERVAL {days} DAY, '%Y-%m-%dT%H:%M:%SZ')"

# The same questions in DuckDB's SQL, each with the column its ORDER BY sorts on,
# and without LIMIT: the check below applies LIMIT's meaning itself.
ORACLE = {
    "Find all delete operations in the last 7 days": (
        "SELECT eventtime, arn, eventname, sourceip, requestparameters FROM t "
        f"WHERE eventname LIKE '%Delete%' AND eventtime > {CUTOFF.format(days=7)} ORDER BY eventtime DESC", 0, 100),
    "Identify console logins from unusual IP addresses": (
        "SELECT eventtime, username, sourceip, additionaleventdata FROM t WHERE eventname = 'ConsoleLogin' "
        "AND sourceip NOT IN ('198.51.100.0/24', '203.0.113.0/24') "
        f"AND eventtime > {CUTOFF.format(days=30)} ORDER BY eventtime DESC", 0, None),
    "Access key usage patterns per principal": (
        "SELECT arn, count(*) AS api_call_count, count(DISTINCT eventname), count(DISTINCT sourceip), "
        f"min(eventtime), max(eventtime) FROM t WHERE eventtime > {CUTOFF.format(days=30)} "
        "GROUP BY arn ORDER BY api_call_count DESC", 1, 50),
    "Failed API calls indicating permission issues or reconnaissance": (
        "SELECT eventtime, arn, eventname, errorcode, errormessage, sourceip FROM t "
        "WHERE errorcode IN ('AccessDenied', 'UnauthorizedAccess', 'Client.UnauthorizedAccess') "
        f"AND eventtime > {CUTOFF.format(days=7)} ORDER BY eventtime DESC", 0, 200),
    "Track KMS key usage": (
        "SELECT eventtime, arn, eventname, requestparameters, key_arn FROM t "
        "WHERE eventsource = 'kms.amazonaws.com' "
        "AND eventname IN ('Decrypt', 'Encrypt', 'GenerateDataKey', 'DisableKey', 'ScheduleKeyDeletion') "
        f"AND eventtime > {CUTOFF.format(days=7)} ORDER BY eventtime DESC", 0, None),
}


def normal(value):
    """One cell as both sides can print it: JSON text compared as JSON."""
    if value is None or value == "":
        return ""
    text = str(value)
    if text[:1] in "{[":
        try:
            return json.dumps(json.loads(text), sort_keys=True)
        except ValueError:
            pass
    return text


def cairn_rows(log_dir, cache_dir, sql):
    out = subprocess.run([cairn_bin(), "query", "--logs", str(log_dir), "--cache-dir", str(cache_dir),
                          "--output", "csv", sql], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = list(csv.reader(io.StringIO(out.stdout)))
    return rows[0], [tuple(normal(c) for c in row) for row in rows[1:]]


def check_against_oracle(log_dir, cache_dir, con):
    checked = 0
    for title, sql in guide_athena_queries():
        oracle_sql, key, limit = ORACLE[title]
        _, got = cairn_rows(log_dir, cache_dir, sql)
        want = [tuple(normal(c) for c in row) for row in con.execute(oracle_sql).fetchall()]
        # ORDER BY ... LIMIT n: n rows (or all there are), sorted as the oracle's
        # first n, each one of the oracle's rows; rows tied on the sort key at the
        # boundary may be any of the tied ones, as in any engine.
        expected_len = len(want) if limit is None else min(limit, len(want))
        assert len(got) == expected_len, (title, len(got), expected_len)
        assert [r[key] for r in got] == [r[key] for r in want[:expected_len]], title
        assert not (Counter(got) - Counter(want)), title
        if limit is None or len(want) <= limit:
            assert sorted(got) == sorted(want), title
        checked += len(got)
    return checked


@pytest.fixture(scope="module")
def generated_logs(tmp_path_factory):
    out = tmp_path_factory.mktemp("logs")
    start = (datetime.now(timezone.utc) - timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    subprocess.run([sys.executable, str(GEN), "--count", "20000", "--seed", "13", "--start", start,
                    "--rate", str(20000 / (10 * 86400)), "--format", "aws-layout", "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    return out


def test_guide_queries_match_duckdb_on_generated_logs(generated_logs, tmp_path):
    con = duckdb().connect()
    total = oracle_table(con, generated_logs)
    assert total == 20000
    checked = check_against_oracle(generated_logs, tmp_path / "cache", con)
    assert checked > 200, "the windows cut through the data"
    # Cached: a second run reads the Parquet copy, same answers.
    assert list((tmp_path / "cache").glob("*.parquet"))
    assert check_against_oracle(generated_logs, tmp_path / "cache", con) == checked


def test_guide_queries_match_duckdb_on_real_records(tmp_path):
    # The real records as a log directory: their bytes as they are, 500 to a file.
    log_dir = tmp_path / "real"
    log_dir.mkdir()
    count = 0
    for source in sorted(REAL.glob("*.jsonl")):
        lines = [line for line in source.read_text().splitlines() if line.strip()]
        for part in range(0, len(lines), 500):
            chunk = lines[part:part + 500]
            (log_dir / f"{source.stem}-{part:05d}.json").write_text('{"Records":[' + ",".join(chunk) + "]}")
            count += len(chunk)
    assert count > 1000
    con = duckdb().connect()
    assert oracle_table(con, log_dir) == count
    check_against_oracle(log_dir, tmp_path / "cache", con)
    # Over all time (the real records are years old), the same per-principal summary.
    sql = ("SELECT userIdentity.arn, count(*) AS n, min(eventTime), max(eventTime) FROM cloudtrail_logs "
           "GROUP BY userIdentity.arn ORDER BY n DESC, userIdentity.arn")
    _, got = cairn_rows(log_dir, tmp_path / "cache", sql)
    want = [tuple(normal(c) for c in row) for row in con.execute(
        "SELECT arn, count(*) AS n, min(eventtime), max(eventtime) FROM t GROUP BY arn ORDER BY n DESC, arn NULLS LAST"
    ).fetchall()]
    assert got == want


def test_bad_queries_name_what_is_wrong(generated_logs, tmp_path):
    for sql, wanted in [
        ("SELEC eventname FROM cloudtrail_logs", "SELEC"),
        ("SELECT eventname FROM no_such_table", "no_such_table"),
        ("SELECT no_such_column FROM cloudtrail_logs", "no_such_column"),
        ("SELECT no_such_function(eventname) FROM cloudtrail_logs", "no_such_function"),
    ]:
        out = subprocess.run([cairn_bin(), "query", "--logs", str(generated_logs), "--cache-dir",
                              str(tmp_path / "cache"), sql], capture_output=True, text=True, timeout=300)
        assert out.returncode == 1, (sql, out.stdout)
        assert wanted in out.stderr, (sql, out.stderr)
