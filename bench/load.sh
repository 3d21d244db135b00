#!/usr/bin/env bash
# Load benchmark of `optout serve` on loopback, bounded in time: durable single-choice
# PUTs per second with p50/p99 latency, choices per second through choices:batch, and ids
# per second through consent:check. The server and the load generator
# (crates/optout-server/examples/load_generator.rs, keep-alive HTTP/1.1) share the
# machine's cores, so the figures are a floor for the server alone. Results: bench/load.md.
#
#   bench/load.sh
#
# Environment (all optional):
#   LOAD_SECONDS      length of each run (default 10)
#   LOAD_SCRATCH      where the data directory goes (default /tmp/optout-bench-load; must
#                     not be a tmpfs, where fsync costs nothing)
#   PUT_CONNECTIONS   concurrent connections sending PUTs (default 64)
#   BATCH_SIZE        choices per batch request (default 10000)
#   BATCH_CONNECTIONS concurrent batch requests (default 4)
#   CHECK_IDS         ids per consent:check request (default 100000)
#   CHECK_CONNECTIONS concurrent check requests (default 2)
#   LOAD_ONLY         run only this part: put, batch or check (check runs after a batch
#                     warm-up so the index holds explicit choices)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${LOAD_SECONDS:-10}"
scratch="${LOAD_SCRATCH:-/tmp/optout-bench-load}"
only="${LOAD_ONLY:-}"

cd "$repo"
cargo build --release -j2 -p optout >&2
cargo build --release -j2 -p optout-server --example load_generator >&2
optout="$repo/target/release/optout"
generator="$repo/target/release/examples/load_generator"

rm -rf "$scratch"
mkdir -p "$scratch"
data="$scratch/data"
"$optout" --data-dir "$data" init >/dev/null

# Rate limits out of the way: the benchmark measures the service, not its throttles.
OPTOUT_LOG_LEVEL=warn \
OPTOUT_LIMITS_MEMBER_REQUESTS_PER_SECOND=1000000 \
OPTOUT_LIMITS_MEMBER_REQUESTS_BURST=1000000 \
OPTOUT_LIMITS_SERVICE_REQUESTS_PER_SECOND=1000000 \
OPTOUT_LIMITS_SERVICE_REQUESTS_BURST=1000000 \
  "$optout" --data-dir "$data" serve --listen 127.0.0.1:0 >"$scratch/listening" 2>"$scratch/server.log" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  [ -s "$scratch/listening" ] && break
  sleep 0.1
done
address="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["listening"])' "$scratch/listening")"
echo "server on $address, data in $data, $seconds s per run" >&2

run() {
  "$generator" --data-dir "$data" --address "$address" --seconds "$seconds" "$@"
}

if [ -z "$only" ] || [ "$only" = put ]; then
  run --mode put --connections "${PUT_CONNECTIONS:-64}"
fi
if [ -z "$only" ] || [ "$only" = batch ] || [ "$only" = check ]; then
  run --mode batch --connections "${BATCH_CONNECTIONS:-4}" --batch "${BATCH_SIZE:-10000}" \
      --members 10000000
fi
if [ -z "$only" ] || [ "$only" = check ]; then
  run --mode check --connections "${CHECK_CONNECTIONS:-2}" --ids "${CHECK_IDS:-100000}" \
      --members 10000000
fi

curl -s "http://$address/metrics" | grep -E '^optout_(ledger|index|choices)_' >&2 || true
kill -TERM "$server"
wait "$server" || true
trap - EXIT
"$optout" --data-dir "$data" --quiet ledger verify >&2
