#!/usr/bin/env bash
# Durable appends: optout's SqliteLedger (group-commit writer) beside raw SQLite on the same
# disk, in one run. Runs shared/bench/durable.py --only sqlite (python sqlite3, WAL,
# synchronous=FULL) and `cargo bench -p optout-sqlite --bench durable_appends` (divan), then
# prints a table of rows/s, events/s and the ratio optout / raw for 1, 100 and 10,000 rows
# per commit. Not part of the test run: it takes about 25 minutes (2 rounds) and measures
# fsyncs.
#
#   bench/durable.sh
#
# Environment (all optional):
#   SHARED_DIR     the shared/ checkout (default: ../shared beside this repository)
#   BENCH_VENV     Python venv with the kit's packages (default /tmp/benchvenv; made if missing)
#   BENCH_DATA     gen_profiles.py output to take consent rows from (default /tmp/benchdata-1m;
#                  generated if missing, with BENCH_MEMBERS members, default 1,000,000)
#   BENCH_SCRATCH  where both sides write their databases (default /tmp/optout-bench-durable;
#                  must not be a tmpfs, where fsync costs nothing)
#   BENCH_OUT      where raw outputs and summary.json/summary.md go
#                  (default /tmp/optout-bench-durable-results)
#   BENCH_ROUNDS   rounds of (optout, raw SQLite), alternating (default 2; each ~12 minutes)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared="${SHARED_DIR:-$repo/../shared}"
venv="${BENCH_VENV:-/tmp/benchvenv}"
data="${BENCH_DATA:-/tmp/benchdata-1m}"
members="${BENCH_MEMBERS:-1000000}"
scratch="${BENCH_SCRATCH:-/tmp/optout-bench-durable}"
out="${BENCH_OUT:-/tmp/optout-bench-durable-results}"
rounds_count="${BENCH_ROUNDS:-2}"

log() { printf '\n== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)" >&2; }

kit="$shared/bench"
if [ ! -f "$kit/durable.py" ] || [ ! -f "$kit/gen_profiles.py" ]; then
    echo "no benchmark kit at $kit (set SHARED_DIR to the shared/ directory)" >&2
    exit 2
fi
kit="$(cd "$kit" && pwd)"

log "python venv $venv"
py="$venv/bin/python"
if ! [ -x "$py" ] || ! "$py" -c 'import numpy, pyarrow, duckdb, polars, psutil' 2>/dev/null; then
    python3 -m venv "$venv"
    "$py" -m pip install --quiet --upgrade pip
    "$py" -m pip install --quiet numpy pyarrow duckdb polars psutil
fi

log "workload $data"
if ! [ -f "$data/choices/choices.parquet" ]; then
    "$py" "$kit/gen_profiles.py" --members "$members" --seed 42 --out "$data" >&2
fi

mkdir -p "$scratch" "$out"
if [ "$(stat -f -c %T "$scratch")" = "tmpfs" ]; then
    scratch="$repo/target/bench-durable-scratch"
    mkdir -p "$scratch"
    echo "the scratch directory is a tmpfs; using $scratch instead" >&2
fi
df -hT "$scratch" >&2

log "build the divan benchmark"
(cd "$repo" && cargo bench -j2 -p optout-sqlite --bench durable_appends --no-run)

# The disk's fsync latency drifts (other work on the machine, the host), so the two sides
# alternate, round after round, and the table takes the median of the rounds.
rounds=()
for round in $(seq 1 "$rounds_count"); do
    log "round $round/$rounds_count, optout: cargo bench -p optout-sqlite --bench durable_appends"
    (cd "$repo" && OPTOUT_BENCH_DIR="$scratch/optout" \
        cargo bench -j2 -p optout-sqlite --bench durable_appends -- --color never) \
        >"$out/divan-$round.txt" 2>"$out/divan-$round.stderr"
    cat "$out/divan-$round.txt" >&2

    log "round $round/$rounds_count, raw SQLite: durable.py --only sqlite"
    "$py" "$kit/durable.py" --data "$data" --only sqlite --scratch "$scratch/raw" \
        --results "$out/raw-sqlite-$round.json" >&2
    rounds+=(--round "$out/divan-$round.txt" "$out/divan-$round.stderr" "$out/raw-sqlite-$round.json")
done

log "summary ($out/summary.md)"
"$py" "$repo/bench/durable_table.py" "${rounds[@]}" --scratch "$scratch" \
    --json "$out/summary.json" | tee "$out/summary.md"
