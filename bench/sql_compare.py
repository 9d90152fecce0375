#!/usr/bin/env python3
"""Two or more builds of Cairn side by side on the guide's SQL, next to DuckDB, over the
data a `bench/sql.py --work DIR --keep` run left (its logs, their Parquet copy and the
server directory holding the imported event data store).

    python3 bench/sql_compare.py --work DIR [--rounds 3] [--athena 0,1,2,3,4] [--lake] BIN...

* Athena queries: each round runs each build's `cairn query --logs` (a process per
  query, output to /dev/null) three times, then DuckDB three times over the same
  Parquet copy; the best of each is kept. Every build's rows are compared (sorted).
* Lake queries (`--lake`): each round serves the store with each build in turn
  (`cairn serve` on DIR/server) and times StartQuery until FINISHED, best of 5 after a
  first run that reads the footers; then DuckDB over the store's parts, best of 5.

Only builds measured in one run compare: the machine's speed moves between runs."""

import argparse
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sql


def athena(args, bins):
    queries, _ = sql.guide_queries()
    duck = sql.duckdb().connect()
    duck.execute("SET threads = 2")
    duck.execute(f"CREATE VIEW cloudtrail_logs AS SELECT * FROM read_parquet('{args.work}/cache/*.parquet')")
    best = {}

    def run(binary, query, keep=False):
        start = time.perf_counter()
        out = subprocess.run([binary, "query", "--logs", str(args.work / "logs"), "--cache-dir",
                              str(args.work / "cache"), "--output", "csv", query],
                             stdout=subprocess.PIPE if keep else subprocess.DEVNULL, check=True).stdout
        return time.perf_counter() - start, out

    for round_ in range(args.rounds):
        for i in args.athena:
            title, query = queries[i]
            outputs = []
            for binary in bins:
                outputs.append(sorted(run(binary, query, keep=True)[1].splitlines()))
                t = min(run(binary, query)[0] for _ in range(3))
                best.setdefault((i, binary), []).append(t)
            t = sql.best(lambda: duck.execute(sql.DUCK_ATHENA[i]).fetchall(), 3)
            best.setdefault((i, "duckdb"), []).append(t)
            same = all(o == outputs[0] for o in outputs)
            print(round_, title[:40], " ".join(f"{best[(i, b)][-1]:.3f}" for b in bins),
                  f"duckdb {t:.3f}", "same rows" if same else "ROWS DIFFER", flush=True)
    for i in args.athena:
        print(f"| {queries[i][0]} | " + " | ".join(f"{min(best[(i, b)]):.3f}" for b in bins + ["duckdb"])
              + f" | {min(best[(i, bins[-1])]) / min(best[(i, 'duckdb')]):.2f} |")


def lake(args, bins):
    _, queries = sql.guide_queries()
    data = args.work / "server"
    stores = [p for p in (data / "lake").iterdir() if (p / "parts").exists()]
    store = max(stores, key=lambda p: sum(f.stat().st_size for f in (p / "parts").rglob("*.parquet")))
    duck = sql.duckdb().connect()
    duck.execute("SET threads = 2")
    duck.execute(f"CREATE VIEW store AS SELECT * FROM read_parquet('{store}/parts/*/*.parquet')")
    user = duck.execute("SELECT useridentity.arn FROM store WHERE useridentity.arn IS NOT NULL "
                        "GROUP BY 1 ORDER BY count(*) LIMIT 1 OFFSET 3").fetchone()[0]
    since = (datetime.now(timezone.utc) - timedelta(days=args.days // 2)).strftime("%Y-%m-%d 00:00:00")
    cases = [(title, query.replace("EVENT_DATA_STORE_ID", store.name).replace("2024-01-01 00:00:00", since)
              .replace("arn:aws:iam::123456789012:user/suspicious-user", user), duck_query.format(user=user, since=since))
             for (title, query), duck_query in zip(queries, sql.DUCK_LAKE)]
    best = {}
    for round_ in range(args.rounds):
        for binary in bins:
            server = sql.Server(binary, args.work)
            try:
                ct = server.client("cloudtrail")
                for title, query, _ in cases:
                    sql.lake_query(ct, query)
                    t = sql.best(lambda: sql.lake_query(ct, query), 5)
                    best.setdefault((title, binary), []).append(t)
                    print(round_, binary, title[:40], f"{t:.3f}", flush=True)
            finally:
                server.stop()
        for title, _, duck_query in cases:
            t = sql.best(lambda: duck.execute(duck_query).fetchall(), 5)
            best.setdefault((title, "duckdb"), []).append(t)
            print(round_, "duckdb", title[:40], f"{t:.3f}", flush=True)
    for title, _, _ in cases:
        print(f"| {title} | " + " | ".join(f"{min(best[(title, b)]):.3f}" for b in bins + ["duckdb"])
              + f" | {min(best[(title, bins[-1])]) / min(best[(title, 'duckdb')]):.2f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, required=True, help="a bench/sql.py --keep run's directory")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--athena", default="0,1,2,3,4", help="which Athena queries (0-4), or '' for none")
    ap.add_argument("--lake", action="store_true", help="the two Lake queries too")
    ap.add_argument("bins", nargs="+", help="cairn binaries, the newest last")
    args = ap.parse_args()
    args.athena = [int(x) for x in args.athena.split(",") if x]
    bins = [str(Path(b).resolve()) for b in args.bins]
    if args.athena:
        athena(args, bins)
    if args.lake:
        lake(args, bins)


if __name__ == "__main__":
    sys.exit(main())
