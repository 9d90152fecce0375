"""`cairn import` and `cairn query` against a running server, found as the AWS CLI
finds it: a local directory of exported log files imported into an event data
store (uploaded to a bucket, then StartImport), the same files imported from
their bucket prefix, and SQL through CloudTrail Lake (a statement naming a
store) and Athena (any other), with table, CSV and JSON output. The counts are
checked against the records themselves; failures exit 1 with the API's message."""

import csv
import gzip
import io
import json
import subprocess
import sys
from collections import Counter

import pytest

from conftest import GEN, Server, cairn_bin
from test_athena import upload

CONFIG = '[query]\nmemory_mib = 256\ntimeout = "60s"\n'


def cairn(server, *args, check=True):
    proc = subprocess.run([cairn_bin(), *args], env=server.env(), capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """3 000 generated events over four days as CloudTrail lays them out, with the
    events' names counted from the files themselves."""
    out = tmp_path_factory.mktemp("export") / "logs"
    subprocess.run([sys.executable, str(GEN), "--count", "3000", "--seed", "71", "--start", "2024-05-01T00:00:00Z",
                    "--rate", str(3000 / (4 * 86400)), "--format", "aws-layout", "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    names, arns = Counter(), Counter()
    files = 0
    for path in out.rglob("*.json.gz"):
        files += 1
        records = json.loads(gzip.decompress(path.read_bytes()))["Records"]
        names.update(r["eventName"] for r in records)
        arns.update((r.get("userIdentity") or {}).get("arn") or "" for r in records)
    assert arns[""] > 0, "some events have no principal ARN"
    return out, files, names, arns


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("sql") / "data", CONFIG).start()
    yield s
    s.stop()


def new_store(server, name):
    store = server.aws("cloudtrail", "create-event-data-store", "--name", name, "--retention-period", "3653",
                       "--no-start-ingestion", "--no-termination-protection-enabled")
    return store["EventDataStoreArn"]


def counts_of(csv_text):
    rows = list(csv.reader(io.StringIO(csv_text)))
    assert rows[0] == ["eventName", "n"], rows[:2]
    return Counter({name: int(n) for name, n in rows[1:]})


def test_import_a_directory_and_a_prefix_then_query_the_stores(server, exported):
    logs, files, names, arns = exported
    server.client("s3").create_bucket(Bucket="uploads")
    arn = new_store(server, "from-directory")
    store_id = arn.rsplit("/", 1)[1]

    # A local directory: uploaded under the given prefix, then imported from there.
    done = cairn(server, "import", str(logs), "--event-data-store", arn, "--bucket", "uploads",
                 "--prefix", "exported/", "--no-progress")
    fields = done.stdout.strip().split("\t")
    assert fields[1:] == ["COMPLETED", f"{files} files", "3000 events", "0 failed"], done.stdout
    uploaded = server.delivered("uploads", "exported/AWSLogs/")
    assert len(uploaded) == files
    imports = server.aws("cloudtrail", "list-imports")["Imports"]
    assert fields[0] in [i["ImportId"] for i in imports]

    # The store answers through CloudTrail Lake: `cairn query` sees the store's ID in FROM.
    sql = f"SELECT eventName, count(*) AS n FROM {store_id} GROUP BY eventName"
    assert counts_of(cairn(server, "query", "--output", "csv", sql).stdout) == names
    table = cairn(server, "query", f"SELECT count(*) AS n FROM {store_id}").stdout
    assert "| n    |" in table and "| 3000 |" in table, table
    lines = cairn(server, "query", "--output", "json", sql + " ORDER BY n DESC LIMIT 2").stdout.splitlines()
    top = names.most_common(2)
    assert [json.loads(l)["eventName"] for l in lines] == [n for n, _ in top]
    # Lake leaves nulls out of a row: the columns still line up.
    by_arn = cairn(server, "query", "--output", "csv",
                   f"SELECT userIdentity.arn AS arn, count(*) AS n FROM {store_id} GROUP BY 1").stdout
    rows = list(csv.reader(io.StringIO(by_arn)))
    assert rows[0] == ["arn", "n"]
    assert Counter({arn: int(n) for arn, n in rows[1:]}) == arns

    # The same files from their bucket prefix, into a second store, by ID.
    second = new_store(server, "from-prefix").rsplit("/", 1)[1]
    done = cairn(server, "import", "s3://uploads/exported/", "--event-data-store", second, "--no-progress",
                 "--start-event-time", "2024-05-02T00:00:00Z", "--end-event-time", "2024-05-03T00:00:00Z")
    assert done.stdout.strip().split("\t")[1] == "COMPLETED", done.stdout
    want = 0
    for path in logs.rglob("*.json.gz"):
        want += sum(1 for r in json.loads(gzip.decompress(path.read_bytes()))["Records"]
                    if "2024-05-02T00:00:00Z" <= r["eventTime"] <= "2024-05-03T00:00:00Z")
    got = cairn(server, "query", "--output", "csv", f"SELECT count(*) AS n FROM {second}").stdout
    assert got.splitlines() == ["n", str(want)] and want > 100

    # Refusals: a directory with no bucket, a store that does not exist.
    missing = cairn(server, "import", str(logs), "--event-data-store", arn, check=False)
    assert missing.returncode == 1 and "--bucket" in missing.stderr
    unknown = cairn(server, "import", "s3://uploads/exported/", "--event-data-store", "no-such-store", check=False)
    assert unknown.returncode == 1 and "EventDataStoreNotFoundException" in unknown.stderr, unknown.stderr


def test_athena_statements_through_cairn_query(server, exported):
    logs, _, names, _ = exported
    s3 = server.client("s3")
    s3.create_bucket(Bucket="trail-logs")
    s3.create_bucket(Bucket="athena-results")
    upload(s3, "trail-logs", logs)
    athena = ["query", "--output-location", "s3://athena-results/cli/"]
    ddl = cairn(server, *athena, """CREATE EXTERNAL TABLE cli_logs (eventversion STRING, eventname STRING,
        eventtime STRING) ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'
        LOCATION 's3://trail-logs/AWSLogs/'""")
    assert ddl.stdout == ""
    assert "cli_logs" in cairn(server, *athena, "SHOW TABLES").stdout

    sql = "SELECT eventname AS \"eventName\", count(*) AS n FROM cli_logs GROUP BY eventname"
    assert counts_of(cairn(server, *athena, "--output", "csv", sql).stdout) == names
    # JSON keeps Athena's column types: a bigint is a number.
    rows = [json.loads(l) for l in cairn(server, *athena, "--output", "json", sql).stdout.splitlines()]
    assert Counter({r["eventName"]: r["n"] for r in rows}) == names
    assert all(isinstance(r["n"], int) for r in rows)
    # The results were written where Athena writes them.
    listed = s3.list_objects_v2(Bucket="athena-results", Prefix="cli/").get("Contents", [])
    assert [o for o in listed if o["Key"].endswith(".csv")]

    # Failures: exit 1 with the execution's reason; no output location for Athena.
    syntax = cairn(server, *athena, "SELEC 1", check=False)
    assert syntax.returncode == 1 and "FAILED: line 1:1:" in syntax.stderr, syntax.stderr
    table = cairn(server, *athena, "SELECT * FROM no_such_table", check=False)
    assert table.returncode == 1 and "no_such_table" in table.stderr, table.stderr
    bare = cairn(server, "query", "SELECT 1", check=False)
    assert bare.returncode == 1 and "--output-location" in bare.stderr, bare.stderr
