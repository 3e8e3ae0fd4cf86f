#!/bin/sh
# Call set-up benchmark (the Makefile's bench-calls target runs this).
# SIPp uac -> pbx2teams B2BUA -> SIPp uas, then SIPp uac -> Kamailio
# (stateful proxy) -> SIPp uas, in rate steps; the B2BUA and Kamailio are
# pinned to one CPU, the SIPp generators to another. Environment: STEPS
# (calls/s, default 500,750,1000,1250,1500,2000), STEP (seconds per step,
# default 10), HOLD (call hold, default 1s), RUNS (default 3),
# DUT_CPU / GEN_CPU (defaults: last CPU / CPU 0), KAMAILIO_CHILDREN,
# BENCH_NICE (default -19, 0 to disable): on a shared machine the
# benchmark runs in its own session whose scheduler autogroup gets this
# nice value, shielding both systems alike from other load.
# Last line: calls cps=X failures=0 kamailio_cps=Y ratio=R setup_p99_ms=Z
set -eu
cd "$(dirname "$0")/../.."
bin="${TMPDIR:-/tmp}/callsbench.$$"
trap 'rm -f "$bin"' EXIT INT TERM
go build -o "$bin" ./bench/calls
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -H -n)" 2>/dev/null || true
ncpu=$(getconf _NPROCESSORS_ONLN)
if [ "$ncpu" -ge 2 ]; then
	DUT_CPU="${DUT_CPU:-$((ncpu - 1))}"
	GEN_CPU="${GEN_CPU:-0}"
else
	echo "# one CPU: system under test and generators share it" >&2
	DUT_CPU="${DUT_CPU:-0}"
	GEN_CPU="${GEN_CPU:-0}"
fi
export DUT_CPU GEN_CPU
set -- "$bin" "$@"
BENCH_NICE="${BENCH_NICE:--19}"
if [ "$BENCH_NICE" != 0 ] && nice -n "$BENCH_NICE" true 2>/dev/null && command -v setsid >/dev/null 2>&1; then
	export BENCH_NICE
	# A new session is a new autogroup; its nice weighs it against the
	# other sessions' groups (plain nice only acts inside one group).
	setsid -w sh -c 'echo "$BENCH_NICE" > /proc/self/autogroup 2>/dev/null || true; exec nice -n "$BENCH_NICE" "$@"' sh "$@"
else
	"$@"
fi
