#!/usr/bin/env python3
"""CIS filter benchmark: what the CIS AWS Foundations CloudTrail metric filters
(monitoring/cis-aws-foundations.json) cost per event, next to the JSON parse of
the same events, measured side by side in one run by
crates/filter/examples/cis_bench.rs.

    python3 bench/filters.py [--count 1000000] [--seed 42] [--chunk 50000]

Generates the events with ../shared/tools/gen_cloudtrail.py into a temporary
file (deleted afterwards), builds the example in release, runs it, and prints a
table, a JSON summary and a Markdown row for bench/README.md."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GEN = REPO.parent / "shared" / "tools" / "gen_cloudtrail.py"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--chunk", type=int, default=50_000, help="events pre-parsed at a time (bounds memory)")
    ap.add_argument("--block", type=int, default=16, help="events matched at a time, warm in the cache")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--timeout", type=float, default=3600)
    args = ap.parse_args()

    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "cairn-filter", "--example", "cis_bench"],
                       cwd=REPO, check=True)
    bench = target / "release" / "examples" / "cis_bench"

    fd, events = tempfile.mkstemp(prefix="cairn-bench-filters-", suffix=".jsonl")
    try:
        t0 = time.time()
        with os.fdopen(fd, "wb") as out:
            subprocess.run([sys.executable, str(GEN), "--count", str(args.count), "--seed", str(args.seed),
                            "--format", "jsonl"], stdout=out, check=True, timeout=args.timeout)
        gen_s = time.time() - t0
        proc = subprocess.run([str(bench), events, "--json", "--chunk", str(args.chunk), "--block", str(args.block)],
                              capture_output=True, text=True, check=True, timeout=args.timeout)
    finally:
        os.unlink(events)
    r = json.loads(proc.stdout)

    print(f"{r['events']} events ({r['bytes'] / 1e6:.1f} MB, generated in {gen_s:.0f} s), "
          f"{r['chunks']} chunks of {r['chunk_size']}, "
          f"matched in blocks of {r['block_size']}")
    print(f"{'control':<15} {'filter':<30} {'ns/event':>10} {'÷ parse':>8} {'matches':>9}")
    parse = r["parse_ns_per_event"]
    for f in r["filters"]:
        print(f"{f['id']:<15} {f['name']:<30} {f['ns_per_event']:>10.1f} {f['ns_per_event'] / parse:>8.3f} "
              f"{f['matches']:>9}")
    print(f"{'':<15} {'sum of the filters alone':<30} {r['sum_of_filters_alone_ns_per_event']:>10.1f} "
          f"{r['sum_of_filters_alone_ns_per_event'] / parse:>8.3f}")
    print(f"{'':<15} {'all filters on each event':<30} {r['all_filters_ns_per_event']:>10.1f} "
          f"{r['ratio_all_filters_to_parse']:>8.3f} {r['all_filters_matches']:>9}")
    print(f"{'':<15} {'all filters, events not cached':<30} {r['all_filters_cold_ns_per_event']:>10.1f} "
          f"{r['ratio_all_filters_cold_to_parse']:>8.3f}")
    print(f"{'':<15} {'JSON parse (serde_json::Value)':<30} {parse:>10.1f} {1:>8.3f}")
    goal = max(r["ratio_all_filters_to_parse"], r["ratio_all_filters_cold_to_parse"]) < 1.0
    print(f"goal (all filters together cost less than the parse): {'met' if goal else 'NOT met'} "
          f"({r['ratio_all_filters_to_parse']:.3f}x; events not cached {r['ratio_all_filters_cold_to_parse']:.3f}x)")
    print(json.dumps(r))
    print(f"| {time.strftime('%Y-%m-%d')} | {r['events']:,} | {parse:.0f} | {r['all_filters_ns_per_event']:.0f} | "
          f"{r['sum_of_filters_alone_ns_per_event']:.0f} | {r['ratio_all_filters_to_parse']:.3f}x | "
          f"{r['all_filters_cold_ns_per_event']:.0f} | {r['ratio_all_filters_cold_to_parse']:.3f}x |".replace(",", " "))


if __name__ == "__main__":
    main()
