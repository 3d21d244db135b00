#!/usr/bin/env bash
# The gate beside its peers, in one run: imports the workload's consent log into a fresh
# optout ledger, runs shared/bench/peers.py (DuckDB, Polars, PyArrow; Spark if asked) for
# the gate and the plain copy, then runs `optout gate` and our own plain copy
# (`optout gate --no-consent`) on the same files, checks that every output holds the same
# rows (count + checksum against expected.json), and prints a table of medians, the ratio
# peer / optout, rows/s, peak RSS and the enforcement overhead (gate / copy).
#
#   bench/gate.sh
#
# The peers and optout run in rounds (every peer once, then optout), so load from other
# work on the machine falls on all of them alike; the load average before each phase is
# recorded and printed with the table. Before each phase the engines' inputs are read
# into the page cache, so every engine starts warm, as the kit's rule assumes.
#
# Environment (all optional):
#   SHARED_DIR     the shared/ checkout (default: ../shared beside this repository)
#   BENCH_VENV     Python venv with duckdb, polars, pyarrow, numpy, psutil (default /tmp/benchvenv)
#   BENCH_DATA     gen_profiles.py output (default /tmp/benchdata-1m; generated if missing
#                  with BENCH_MEMBERS members, default 1,000,000, seed 42)
#   BENCH_ENGINES  peers to run (default duckdb,polars,pyarrow; add spark if installed)
#   BENCH_REPEATS  rounds (runs per engine and task); medians are reported (default 3)
#   BENCH_OUT      where the ledger, outputs and results go (default /tmp/optout-bench-gate)
#   OPTOUT_BIN     an optout binary to use instead of building target/release/optout
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared="${SHARED_DIR:-$repo/../shared}"
venv="${BENCH_VENV:-/tmp/benchvenv}"
data="${BENCH_DATA:-/tmp/benchdata-1m}"
members="${BENCH_MEMBERS:-1000000}"
engines="${BENCH_ENGINES:-duckdb,polars,pyarrow}"
repeats="${BENCH_REPEATS:-3}"
out="${BENCH_OUT:-/tmp/optout-bench-gate}"

log() { printf '\n== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)" >&2; }
# The machine's load average before each timed phase: the runs share the cores with
# whatever else runs, and the summary says how busy the machine was.
load() { printf '%s %s\n' "$1" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/load.txt"; }
# Reads files through the page cache before a timed phase. The kit's rule is that inputs
# start in the page cache ("after generation, all of them"), but a host may page out file
# pages left unused for a minute (DAMON's `pageout` scheme does on these machines): the
# peers' phase of a round lasts longer than that, so without this our ledger and the input
# columns only the digest reads would start on the disk, and the first peer of a round would
# find the pages our runs did not touch gone. Every engine's inputs are warmed alike.
warm() { cat "$@" >/dev/null; }

kit="$shared/bench"
[ -f "$kit/peers.py" ] || { echo "no benchmark kit at $kit (set SHARED_DIR)" >&2; exit 2; }
kit="$(cd "$kit" && pwd)"
py="$venv/bin/python"
if [ ! -x "$py" ]; then
    log "python venv $venv"
    python3 -m venv "$venv"
    "$py" -m pip install --quiet duckdb polars pyarrow numpy psutil
fi
command -v /usr/bin/time >/dev/null || { echo "needs GNU time at /usr/bin/time" >&2; exit 2; }

if [ ! -f "$data/expected.json" ]; then
    log "generating $members members into $data"
    "$py" "$kit/gen_profiles.py" --members "$members" --seed 42 --out "$data"
fi

if [ -n "${OPTOUT_BIN:-}" ]; then
    optout="$OPTOUT_BIN"
else
    log "building optout (release)"
    (cd "$repo" && cargo build --release -j2 -p optout --quiet)
    optout="$repo/target/release/optout"
fi

rm -rf "$out"
mkdir -p "$out/runs"
ledger="$out/data"
cutoff="$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["cutoff"])' "$data/cutoff.json")"
purpose="$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["purpose"])' "$data/cutoff.json")"

log "importing the consent log into a fresh ledger"
"$optout" --data-dir "$ledger" init >/dev/null
/usr/bin/time -v -o "$out/import.time" \
    "$optout" --data-dir "$ledger" --quiet import "$data"/choices/*.parquet >"$out/import.json"
cat "$out/import.json" >&2

# Rounds: each runs every peer once, then optout's gate and plain copy, so a change in
# the machine's load hits every engine alike instead of whichever ran in that stretch.
: >"$out/peers-summary.jsonl"
: >"$out/peers-runs.jsonl"
for repeat in $(seq 1 "$repeats"); do
    warm "$data"/profiles/*.parquet "$data"/choices/*.parquet
    load "round $repeat, before peers:"
    log "round $repeat of $repeats: peers ($engines)"
    "$py" "$kit/peers.py" --data "$data" --engines "$engines" --tasks gate,copy \
        --repeats 1 --outdir "$out/peers-out" --results "$out/peers-$repeat.json" \
        >>"$out/peers-summary.jsonl" 2>>"$out/peers-runs.jsonl" || {
        echo "peers.py reported a wrong output or a failed run; see $out/peers-runs.jsonl" >&2
        exit 1
    }
    load "round $repeat, before optout:"
    log "round $repeat of $repeats: optout gate and plain copy"
    for task in gate copy; do
        dest="$out/optout-$task"
        rm -rf "$dest"
        extra=()
        [ "$task" = copy ] && extra=(--no-consent)
        warm "$data"/profiles/*.parquet "$ledger"/ledger.sqlite*
        /usr/bin/time -v -o "$out/runs/$task-$repeat.time" \
            "$optout" --data-dir "$ledger" --quiet gate --purpose "$purpose" --cutoff "$cutoff" \
            --input "$data/profiles" --output "$dest" --fields headline,skills,experience \
            "${extra[@]}" >"$out/runs/$task-$repeat.json"
        "$py" - "$dest" "$out/runs/$task-$repeat.check.json" "$kit" <<'EOF'
import glob, json, os, sys
sys.path.insert(0, sys.argv[3])
from peers import id_checksum
files = sorted(glob.glob(os.path.join(sys.argv[1], "*.parquet")))
n, s, x = id_checksum(files)
json.dump({"rows_out": n, "checksum_sum": s, "checksum_xor": x}, open(sys.argv[2], "w"))
EOF
    done
    if [ "$repeat" = 1 ]; then
        log "optout verify of the gate's output"
        "$optout" --data-dir "$ledger" --quiet verify --purpose "$purpose" --cutoff "$cutoff" \
            --manifest "$out/optout-gate/manifest.json" >"$out/verify.json"
    fi
done

load "after optout:"

"$py" - "$out" "$data" "$kit" "$repeats" <<'EOF' | tee "$out/summary.md"
import json, os, statistics, sys
sys.path.insert(0, sys.argv[3])
from peers import id_checksum, parse_time_v
out, data, kit, repeats = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
expected = json.load(open(os.path.join(data, "expected.json")))
want_gate = (expected["rows_out"], expected["checksum_sum"], expected["checksum_xor"])
want_copy = tuple(id_checksum(os.path.join(data, "profiles")))
# One line per engine, task and round: medians over the rounds.
rounds = {}
for line in open(os.path.join(out, "peers-summary.jsonl")):
    record = json.loads(line)
    rounds.setdefault((record["engine"], record["task"]), []).append(record)
peers = []
for (engine, task), records in rounds.items():
    ok = [r for r in records if "seconds" in r]
    merged = {"engine": engine, "task": task, "rows_in": records[0]["rows_in"],
              "peers_agree": all(r.get("peers_agree") for r in records),
              "all_correct": all(r.get("all_correct") for r in records)}
    if ok:
        seconds = statistics.median(r["seconds"] for r in ok)
        merged.update({"seconds": seconds, "seconds_runs": [r["seconds"] for r in ok],
                       "rows_in_per_s": round(merged["rows_in"] / seconds),
                       "peak_rss_mb": max(r["peak_rss_mb"] for r in ok),
                       "tree_cpu_s": statistics.median(r["tree_cpu_s"] for r in ok)})
    peers.append(merged)
by_engine = {(p["engine"], p["task"]): p for p in peers}
for p in peers:
    copy = by_engine.get((p["engine"], "copy"), {})
    if p["task"] == "gate" and "seconds" in p and copy.get("seconds"):
        p["overhead_ratio"] = round(p["seconds"] / copy["seconds"], 3)
ours = {}
problems = []
for task, want in (("gate", want_gate), ("copy", want_copy)):
    runs = []
    for repeat in range(1, repeats + 1):
        summary = json.load(open(os.path.join(out, "runs", f"{task}-{repeat}.json")))
        check = json.load(open(os.path.join(out, "runs", f"{task}-{repeat}.check.json")))
        timing = parse_time_v(os.path.join(out, "runs", f"{task}-{repeat}.time"))
        got = (check["rows_out"], check["checksum_sum"], check["checksum_xor"])
        if got != tuple(want):
            problems.append(f"optout {task} run {repeat}: {got} != {tuple(want)}")
        runs.append({"seconds": summary["seconds"], "rss": timing.get("time_v_max_rss_mb", 0),
                     "cpu": timing.get("user_s", 0) + timing.get("sys_s", 0), "rows_out": got[0]})
    ours[task] = {"seconds": statistics.median(r["seconds"] for r in runs),
                  "seconds_runs": [r["seconds"] for r in runs],
                  "peak_rss_mb": max(r["rss"] for r in runs),
                  "cpu_s": statistics.median(r["cpu"] for r in runs),
                  "rows_out": runs[-1]["rows_out"]}
rows_in = peers[0]["rows_in"] if peers else None
gate_s, copy_s = ours["gate"]["seconds"], ours["copy"]["seconds"]
print(f"# gate benchmark: {expected['members']:,} members, {rows_in:,} profile rows, "
      f"{expected['stats']['events']:,} events\n")
print(f"rows out: {expected['rows_out']:,} (checksum {expected['checksum_sum']}/{expected['checksum_xor']}); "
      f"optout outputs {'all match' if not problems else 'WRONG: ' + '; '.join(problems)}; "
      f"peers agree: {all(p.get('peers_agree') and p.get('all_correct') for p in peers)}\n")
print("| engine | task | median s | runs | ratio engine/optout | rows in/s | peak RSS MB | CPU s |")
print("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: |")
for task in ("gate", "copy"):
    mine = ours[task]
    print(f"| optout | {task} | {mine['seconds']:.3f} | {mine['seconds_runs']} | 1.00 | "
          f"{rows_in / mine['seconds']:,.0f} | {mine['peak_rss_mb']:.0f} | {mine['cpu_s']:.2f} |")
    for p in peers:
        if p["task"] != task or "seconds" not in p:
            continue
        print(f"| {p['engine']} | {task} | {p['seconds']:.3f} | {p['seconds_runs']} | "
              f"{p['seconds'] / mine['seconds']:.2f} | {p['rows_in_per_s']:,} | "
              f"{p['peak_rss_mb']:.0f} | {p['tree_cpu_s']:.2f} |")
print(f"\nenforcement overhead (optout gate / optout plain copy): {gate_s / copy_s:.3f} "
      f"({gate_s - copy_s:+.3f} s); in CPU time {ours['gate']['cpu_s'] / ours['copy']['cpu_s']:.3f}")
for p in peers:
    if p["task"] == "gate" and "overhead_ratio" in p:
        print(f"- {p['engine']}: gate / copy {p['overhead_ratio']}")
print("\nratio peer / optout gate within each round (same load), median:")
for p in peers:
    if p["task"] == "gate" and "seconds_runs" in p:
        ratios = [theirs / mine for theirs, mine in zip(p["seconds_runs"], ours["gate"]["seconds_runs"])]
        print(f"- {p['engine']}: {statistics.median(ratios):.2f} ({', '.join(f'{r:.2f}' for r in ratios)})")
load = open(os.path.join(out, "load.txt")).read().strip().splitlines()
print(f"\nload average (1, 5, 15 min) on {os.cpu_count()} cores: " + "; ".join(load))
json.dump({"optout": ours, "peers": peers, "problems": problems, "load": load},
          open(os.path.join(out, "summary.json"), "w"), indent=1)
sys.exit(1 if problems else 0)
EOF
