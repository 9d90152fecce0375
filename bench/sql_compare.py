#!/usr/bin/env python3
"""Two or more builds of Cairn side by side on the guide's SQL, next to DuckDB, over the
data a `bench/sql.py --work DIR --keep` run left (its logs, their Parquet copy and the
server directory holding the imported event data store).

    python3 bench/sql_compare.py --work DIR [--rounds 3] [--athena 0,1,2,3,4] [--lake] BIN[=DIR]...

A build given as BIN=DIR reads its own data: the copy (DIR/cache, of --work's logs) and
the server directory (DIR/server) a run left in DIR, written by that build, with DuckDB
over that data too; a build without one reads --work's. So a change to the files' layout is measured
against DuckDB over each layout.

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


def duckdb_per_work(builds, view):
    """A DuckDB connection per data directory, with `view(work)` run on it."""
    ducks = {}
    for _, work in builds:
        if work not in ducks:
            ducks[work] = sql.duckdb().connect()
            ducks[work].execute("SET threads = 2")
            ducks[work].execute(view(work))
    return ducks


def label(builds, work):
    return "duckdb" if len({w for _, w in builds}) == 1 else f"duckdb({work.name})"


def print_table(rows, builds, ducks, best):
    """The Markdown table of `rows` ((title, key) pairs; `best[(key, build or work)]`
    holds each round's time): each build's best, each DuckDB's, and the newest build
    over the DuckDB reading its data."""
    last = builds[-1]
    print("| query | " + " | ".join(f"{Path(b).parent.name}/{Path(b).name} ({w.name})" for b, w in builds)
          + " | " + " | ".join(label(builds, w) for w in ducks) + " | last ÷ its DuckDB |")
    for title, key in rows:
        print(f"| {title} | " + " | ".join(f"{min(best[(key, b)]):.3f}" for b in builds) + " | "
              + " | ".join(f"{min(best[(key, w)]):.3f}" for w in ducks)
              + f" | {min(best[(key, last)]) / min(best[(key, last[1])]):.2f} |")


def athena(args, builds):
    queries, _ = sql.guide_queries()
    ducks = duckdb_per_work(builds, lambda work: "CREATE VIEW cloudtrail_logs AS SELECT * FROM "
                            f"read_parquet('{work}/cache/*.parquet')")
    best = {}

    def run(build, query, keep=False):
        binary, work = build
        start = time.perf_counter()
        # The logs' path is part of the copy's stamps: every build reads --work's.
        out = subprocess.run([binary, "query", "--logs", str(args.work / "logs"), "--cache-dir",
                              str(work / "cache"), "--output", "csv", query],
                             stdout=subprocess.PIPE if keep else subprocess.DEVNULL, check=True).stdout
        return time.perf_counter() - start, out

    for round_ in range(args.rounds):
        for i in args.athena:
            title, query = queries[i]
            outputs = []
            for build in builds:
                outputs.append(sorted(run(build, query, keep=True)[1].splitlines()))
                t = min(run(build, query)[0] for _ in range(3))
                best.setdefault((i, build), []).append(t)
            for work, duck in ducks.items():
                t = sql.best(lambda: duck.execute(sql.DUCK_ATHENA[i]).fetchall(), 3)
                best.setdefault((i, work), []).append(t)
            same = all(o == outputs[0] for o in outputs)
            print(round_, title[:40], " ".join(f"{best[(i, b)][-1]:.3f}" for b in builds),
                  " ".join(f"{label(builds, w)} {best[(i, w)][-1]:.3f}" for w in ducks),
                  "same rows" if same else "ROWS DIFFER", flush=True)
    print_table([(queries[i][0], i) for i in args.athena], builds, ducks, best)


def lake_store(work):
    stores = [p for p in (work / "server" / "lake").iterdir() if (p / "parts").exists()]
    return max(stores, key=lambda p: sum(f.stat().st_size for f in (p / "parts").rglob("*.parquet")))


def lake(args, builds):
    _, queries = sql.guide_queries()
    stores = {work: lake_store(work) for _, work in builds}
    ducks = duckdb_per_work(builds, lambda work: "CREATE VIEW store AS SELECT * FROM "
                            f"read_parquet('{stores[work]}/parts/*/*.parquet')")
    first = ducks[builds[0][1]]
    user = first.execute("SELECT useridentity.arn FROM store WHERE useridentity.arn IS NOT NULL "
                         "GROUP BY 1 ORDER BY count(*), 1 LIMIT 1 OFFSET 3").fetchone()[0]
    since = (datetime.now(timezone.utc) - timedelta(days=args.days // 2)).strftime("%Y-%m-%d 00:00:00")

    def cases(work):
        return [(title, query.replace("EVENT_DATA_STORE_ID", stores[work].name)
                 .replace("2024-01-01 00:00:00", since)
                 .replace("arn:aws:iam::123456789012:user/suspicious-user", user),
                 duck_query.format(user=user, since=since))
                for (title, query), duck_query in zip(queries, sql.DUCK_LAKE)]

    best = {}
    for round_ in range(args.rounds):
        for build in builds:
            binary, work = build
            server = sql.Server(binary, work)
            try:
                ct = server.client("cloudtrail")
                for title, query, _ in cases(work):
                    sql.lake_query(ct, query)
                    t = sql.best(lambda: sql.lake_query(ct, query), 5)
                    best.setdefault((title, build), []).append(t)
                    print(round_, binary, title[:40], f"{t:.3f}", flush=True)
            finally:
                server.stop()
        for work, duck in ducks.items():
            for title, _, duck_query in cases(work):
                t = sql.best(lambda: duck.execute(duck_query).fetchall(), 5)
                best.setdefault((title, work), []).append(t)
                print(round_, label(builds, work), title[:40], f"{t:.3f}", flush=True)
    print_table([(title, title) for title, _ in queries], builds, ducks, best)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, required=True, help="a bench/sql.py --keep run's directory")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--athena", default="0,1,2,3,4", help="which Athena queries (0-4), or '' for none")
    ap.add_argument("--lake", action="store_true", help="the two Lake queries too")
    ap.add_argument("bins", nargs="+", help="cairn binaries, the newest last, each BIN or BIN=DIR")
    args = ap.parse_args()
    args.athena = [int(x) for x in args.athena.split(",") if x]
    builds = []
    for spec in args.bins:
        binary, _, work = spec.partition("=")
        builds.append((str(Path(binary).resolve()), Path(work).resolve() if work else args.work.resolve()))
    if args.athena:
        athena(args, builds)
    if args.lake:
        lake(args, builds)


if __name__ == "__main__":
    sys.exit(main())
