#!/usr/bin/env python3
"""Puts optout's durable append rates (divan output of the durable_appends bench) beside
raw SQLite's (shared/bench/durable.py --only sqlite --results FILE) and prints Markdown.

  durable_table.py --round divan.txt divan.stderr raw-sqlite.json [--round ...]
                   [--scratch DIR] [--json summary.json] [--target 0.8]

Figures: raw SQLite is rows/s over all its commits (median of durable.py's 3 repeats);
optout is divan's `mean` column, total events over total time. Both mean "durable rows per
second", so the ratio is optout / raw at the same rows per commit. With several rounds
(bench/durable.sh alternates the two sides) each figure is the median over the rounds.
"""
import argparse
import datetime
import json
import os
import platform
import re
import sqlite3
import statistics
import sys

BATCHES = (1, 100, 10000)
CONCURRENT = ("concurrent_64_threads::single_choice", "concurrent_64_threads::single_keyed_choice")
UNIT = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9}
THROUGHPUT = re.compile(r"([\d.]+)\s*([KMG]?)item/s")
NAMED = re.compile(r"[├╰]─ (\S+)")


def parse_divan(text):
    """{ "group::bench": {"mean": events/s, "median": events/s, "samples": n, "iters": n} }"""
    results, path, pending = {}, [], None
    for line in text.splitlines():
        named = NAMED.search(line)
        if named:
            depth = named.start() // 3
            rest = line[named.end():]
            path = path[:depth] + [named.group(1)]
            pending = "::".join(path) if re.search(r"\d", rest) else None
            if pending:
                counts = [c.strip() for c in rest.split("│")[-2:]]
                results[pending] = {"samples": int(counts[0]), "iters": int(counts[1])}
            continue
        rates = THROUGHPUT.findall(line)
        if pending and len(rates) == 4:
            fastest, slowest, median, mean = (float(v) * UNIT[u] for v, u in rates)
            results[pending].update(mean=mean, median=median, fastest=fastest, slowest=slowest)
            pending = None
    return results


def parse_writer_log(text):
    writers, sqlite_version = {}, None
    for line in text.splitlines():
        if line.startswith("optout-bench-writer "):
            record = json.loads(line.split(" ", 1)[1])
            writers[record["bench"]] = record
        elif line.startswith("optout-bench-sqlite "):
            sqlite_version = json.loads(line.split(" ", 1)[1])["version"]
    return writers, sqlite_version


def parse_raw(path):
    with open(path) as f:
        records = json.load(f)
    raw = {}
    for r in records:
        if r.get("test") == "sqlite_wal_sync_full":
            raw[(r["rows_per_commit"], r["indexed"])] = r["rows_per_s"]
    return raw


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model}), Linux {platform.release()}"


def filesystem(path):
    """The device and type of the filesystem holding `path`, from /proc/self/mounts."""
    path = os.path.realpath(path)
    best = ("?", "?", "")
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                device, mount_point, fs_type = line.split()[:3]
                inside = path == mount_point or path.startswith(mount_point.rstrip("/") + "/")
                if inside and len(mount_point) >= len(best[2]):
                    best = (device, fs_type, mount_point)
    except OSError:
        pass
    return f"{best[1]} on {best[0]}"


def fmt(x):
    return "—" if x is None else f"{x:,.0f}"


def ratio(a, b):
    return None if a is None or not b else a / b


def times(x):
    return "—" if x is None else f"{x:,.0f}×"


def pct(x):
    return "—" if x is None else f"{x:.0%}"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def load_round(divan_path, writer_log_path, raw_path):
    with open(divan_path) as f:
        optout = parse_divan(f.read())
    with open(writer_log_path) as f:
        writers, sqlite_version = parse_writer_log(f.read())
    return {"optout": optout, "writers": writers, "sqlite_optout": sqlite_version,
            "raw": parse_raw(raw_path)}


def summarise(rounds):
    """Medians over the rounds, and each round's main ratio."""
    def optout(name):
        return median(r["optout"].get(name, {}).get("mean") for r in rounds)

    def raw(batch, indexed):
        return median(r["raw"].get((batch, indexed)) for r in rounds)

    batched = []
    for batch in BATCHES:
        plain, indexed = raw(batch, False), raw(batch, True)
        mixed = optout(f"batched::events_{batch}")
        keyed = optout(f"batched_keyed::events_{batch}")
        per_round = [ratio(r["optout"].get(f"batched::events_{batch}", {}).get("mean"),
                           r["raw"].get((batch, True))) for r in rounds]
        batched.append({"rows_per_commit": batch, "raw_rows_per_s": plain,
                        "raw_indexed_rows_per_s": indexed, "optout_events_per_s": mixed,
                        "ratio_to_raw_indexed": ratio(mixed, indexed),
                        "ratio_to_raw": ratio(mixed, plain),
                        "optout_keyed_events_per_s": keyed,
                        "keyed_ratio_to_raw_indexed": ratio(keyed, indexed),
                        "ratio_to_raw_indexed_by_round": per_round})
    concurrent = []
    for name in CONCURRENT:
        commits = sum(r["writers"].get(name, {}).get("commits", 0) for r in rounds)
        events = sum(r["writers"].get(name, {}).get("events", 0) for r in rounds)
        largest = max((r["writers"].get(name, {}).get("largest_batch_events", 0)
                       for r in rounds), default=0)
        rate = optout(name)
        concurrent.append({"bench": name, "optout_events_per_s": rate, "commits": commits,
                           "events_per_commit_mean": events / commits if commits else None,
                           "events_per_commit_max": largest,
                           "ratio_to_raw_indexed_1": ratio(rate, raw(1, True)),
                           "ratio_to_raw_indexed_100": ratio(rate, raw(100, True))})
    return batched, concurrent


def print_tables(batched, concurrent, target):
    print("| rows per commit | raw SQLite rows/s | raw SQLite rows/s, indexed "
          "| optout events/s | optout / raw indexed | optout / raw "
          "| optout events/s, keyed | keyed / raw indexed |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in batched:
        print(f"| {r['rows_per_commit']:,} | {fmt(r['raw_rows_per_s'])} "
              f"| {fmt(r['raw_indexed_rows_per_s'])} | {fmt(r['optout_events_per_s'])} "
              f"| {pct(r['ratio_to_raw_indexed'])} | {pct(r['ratio_to_raw'])} "
              f"| {fmt(r['optout_keyed_events_per_s'])} "
              f"| {pct(r['keyed_ratio_to_raw_indexed'])} |")
    print()
    print("| 64 threads, 1 event per call | optout events/s | commits | events per commit "
          "(mean / max) | vs raw indexed, 1 row per commit | vs raw indexed, 100 rows per commit |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for c in concurrent:
        mean = c["events_per_commit_mean"]
        print(f"| {c['bench'].split('::')[1]} | {fmt(c['optout_events_per_s'])} "
              f"| {fmt(c['commits'])} | {'—' if mean is None else f'{mean:.1f}'} / "
              f"{fmt(c['events_per_commit_max'])} | {times(c['ratio_to_raw_indexed_1'])} "
              f"| {pct(c['ratio_to_raw_indexed_100'])} |")
    print()
    print("optout / raw indexed, round by round: " + "; ".join(
        f"{r['rows_per_commit']:,} rows: " + ", ".join(pct(x) for x in
                                                       r["ratio_to_raw_indexed_by_round"])
        for r in batched))
    below = [r["rows_per_commit"] for r in batched
             if r["ratio_to_raw_indexed"] is not None and r["ratio_to_raw_indexed"] < target]
    if below:
        print(f"Below {target:.0%} of raw indexed SQLite at rows per commit: "
              + ", ".join(f"{b:,}" for b in below))
    else:
        print(f"At or above {target:.0%} of raw indexed SQLite at every batch size.")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--round", nargs=3, action="append", required=True,
                    metavar=("DIVAN_TXT", "DIVAN_STDERR", "RAW_JSON"),
                    help="one round's outputs; repeat for each round")
    ap.add_argument("--scratch", help="where the databases were written (for the report)")
    ap.add_argument("--json")
    ap.add_argument("--target", type=float, default=0.8)
    args = ap.parse_args()

    rounds = [load_round(*paths) for paths in args.round]
    batched, concurrent = summarise(rounds)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sqlite_optout = next((r["sqlite_optout"] for r in rounds if r["sqlite_optout"]), "?")
    disk = f"; {filesystem(args.scratch)}" if args.scratch else ""
    print(f"Run {when}; {machine()}{disk}; SQLite {sqlite3.sqlite_version} (Python) / "
          f"{sqlite_optout} (optout, bundled); WAL, synchronous=FULL on both sides; "
          f"median of {len(rounds)} alternating round(s).")
    print()
    print_tables(batched, concurrent, args.target)

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"when": when, "machine": machine(), "sqlite_python": sqlite3.sqlite_version,
                       "sqlite_optout": sqlite_optout, "batched": batched,
                       "concurrent": concurrent,
                       "rounds": [{"optout_divan": r["optout"], "optout_writer": r["writers"],
                                   "raw": [{"rows_per_commit": b, "indexed": i, "rows_per_s": v}
                                           for (b, i), v in sorted(r["raw"].items())]}
                                  for r in rounds]}, f, indent=1)
    missing = [r["rows_per_commit"] for r in batched
               if r["raw_rows_per_s"] is None or r["optout_events_per_s"] is None]
    if missing:
        print(f"missing figures for rows per commit {missing}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
