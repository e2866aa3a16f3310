#!/usr/bin/env bash
# Guichet capacity benchmark: a release engine (`guichet serve`) and the release load tool
# (`guichet load`, or the `load_from_env` runner of tests/loadgen.rs until the binary has
# the subcommand) on this machine. One fresh engine per step so each memory baseline is
# clean. Results: one JSON per step in $OUT and a summary table on stdout.
#
#   bench/run.sh                      # both series with the defaults below
#   CONCURRENT="500 1000" RATES="" bench/run.sh
#   PERF_STEP=concurrent-2000 bench/run.sh   # also a `perf record` of the engine in that step
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-bench/results/$(date -u +%Y%m%dT%H%M%SZ)}
SIP=${SIP:-127.0.0.1:5060}
USER_PART=${USER_PART:-1000}
CONCURRENT=${CONCURRENT-"500 1000 2000 3000"}
RAMP=${RAMP:-500}           # calls/s used to reach N concurrent calls
HOLD_CONC=${HOLD_CONC:-20}  # seconds each call of the concurrency series lasts
RATES=${RATES-"100 250 500 1000"}
RATE_SECS=${RATE_SECS:-10}  # seconds of new calls in the rate series
HOLD_RATE=${HOLD_RATE:-3}   # seconds each call of the rate series lasts
RTP_TASKS=${RTP_TASKS:-2}
LOAD_THREADS=${LOAD_THREADS:-1}
PERF_STEP=${PERF_STEP:-}
mkdir -p "$OUT"

cargo build --release --bin guichet
GUICHET=target/release/guichet
if "$GUICHET" load --help >/dev/null 2>&1; then
    load() { "$GUICHET" load "$@"; }
else
    cargo test --release --no-run --test loadgen
    load() { GUICHET_LOAD_ARGS="$*" cargo test -q --release --test loadgen -- --ignored --nocapture load_from_env; }
fi

ENGINE=
start_engine() {
    # Raised limits: the defaults (1,000 calls, 20 requests/s per source) protect a
    # production engine from one source; here one source is the whole load.
    ${ENGINE_PREFIX:-} env GUICHET_RTP_REALTIME=${REALTIME:-true} GUICHET_LIMITS_MAX_CALLS=20000 \
    GUICHET_LIMITS_RATE_PER_SOURCE=100000 \
    GUICHET_LIMITS_RATE_BURST=100000 \
        "$GUICHET" serve --sip-listen "$SIP" --rtp-ports 20000-59999 --log-level warn \
        >"$OUT/engine-$1.log" 2>&1 &
    ENGINE=$!
    sleep 2
    kill -0 "$ENGINE" || { echo "engine did not start, see $OUT/engine-$1.log"; exit 2; }
}
stop_engine() {
    kill -INT "$ENGINE" 2>/dev/null || true
    wait "$ENGINE" 2>/dev/null || true
}
trap stop_engine EXIT

step() { # name, then load arguments
    local name=$1; shift
    start_engine "$name"
    local perf_pid=
    if [ "$PERF_STEP" = "$name" ]; then
        perf record -F 499 -g -p "$ENGINE" -o "$OUT/perf-$name.data" 2>/dev/null &
        perf_pid=$!
    fi
    echo "== $name: $*  (date $(date -u +%H:%M:%S), load average $(cut -d' ' -f1-3 /proc/loadavg))"
    load --target "$SIP" --user "$USER_PART" --engine-pid "$ENGINE" --rtp-tasks "$RTP_TASKS" \
        --threads "$LOAD_THREADS" --json "$OUT/$name.json" "$@" | sed -n '1,/^quality bar/p' || true
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
        perf report -i "$OUT/perf-$name.data" --no-children --percent-limit 1 --stdio -g none \
            >"$OUT/perf-$name.txt" 2>/dev/null || true
    fi
    stop_engine
}

for n in $CONCURRENT; do
    step "concurrent-$n" --calls "$n" --rate "$RAMP" --hold "$HOLD_CONC"
done
for r in $RATES; do
    step "rate-$r" --calls $((r * RATE_SECS)) --rate "$r" --hold "$HOLD_RATE"
done

python3 - "$OUT" <<'PY'
import json, pathlib, sys
rows = []
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    r = json.loads(f.read_text())
    e = r.get("engine") or {}
    g = r["media"]["gap_error_us"]
    s = r["sip"]
    mem = e.get("memory_per_call_kib")
    rows.append([f.stem, s["attempted"], s["answered"], s["failed"], s["peak_concurrent"],
                 "%.1f" % (s["setup_us"]["p50"] / 1000), "%.1f" % (s["setup_us"]["p99"] / 1000),
                 r["media"]["lost"], "%.2f" % (g["p50"] / 1000), "%.2f" % (g["p99"] / 1000),
                 "%.1f" % (g["max"] / 1000), "-" if mem is None else "%.1f" % mem,
                 "-" if e.get("cpu_percent") is None else "%.0f" % e["cpu_percent"],
                 "yes" if not r["misses"] else "no"])
head = ["step", "calls", "answered", "failed", "peak", "setup p50 ms", "setup p99 ms", "lost",
        "gap err p50 ms", "gap err p99 ms", "gap err max ms", "KiB/call", "engine CPU %", "bar met"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for row in rows:
    print("| " + " | ".join(str(c) for c in row) + " |")
PY
