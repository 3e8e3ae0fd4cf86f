#!/bin/sh
# Media relay benchmark (the Makefile's bench-media target runs this).
# The pbx2teams relay and rtpengine (userspace) each relay CALLS concurrent
# G.711 calls, RTP <-> SRTP, in their own process pinned to one CPU; the
# load generator runs pinned to another. Environment: CALLS (default 1000),
# DURATION (seconds or Go duration, default 20s), RUNS (default 3),
# RELAY_CPU / GEN_CPU (defaults: last CPU / CPU 0), RTPENGINE_THREADS,
# BENCH_NICE (default -19, 0 to disable): on a shared machine the
# benchmark runs in its own session whose scheduler autogroup gets this
# nice value, shielding both relays alike from other load.
# BENCH_RT (default 10, 0 to disable): the generator and each relay's
# relays run SCHED_FIFO at this priority (under chrt; rtpengine with one
# worker thread, RTPENGINE_THREADS, default 1), as a production media
# relay would be deployed; other programs then cannot
# delay packets by holding the CPUs. Needs root or CAP_SYS_NICE; without
# it the benchmark runs under normal scheduling and says so.
set -eu
cd "$(dirname "$0")/../.."
bin="${TMPDIR:-/tmp}/mediabench.$$"
trap 'rm -f "$bin"' EXIT INT TERM
go build -o "$bin" ./bench/media

ncpu=$(getconf _NPROCESSORS_ONLN)
if [ "$ncpu" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
	RELAY_CPU="${RELAY_CPU:-$((ncpu - 1))}"
	export RELAY_CPU
	set -- taskset -c "${GEN_CPU:-0}" "$bin" "$@"
else
	echo "# fewer than 2 CPUs or no taskset: relay and generator share CPUs" >&2
	set -- "$bin" "$@"
fi

BENCH_RT="${BENCH_RT:-10}"
if [ "$BENCH_RT" != 0 ] && command -v chrt >/dev/null 2>&1 && chrt -f "$BENCH_RT" true 2>/dev/null; then
	set -- chrt -f "$BENCH_RT" "$@"
else
	BENCH_RT=0
fi
export BENCH_RT

BENCH_NICE="${BENCH_NICE:--19}"
if [ "$BENCH_NICE" != 0 ] && nice -n "$BENCH_NICE" true 2>/dev/null && command -v setsid >/dev/null 2>&1; then
	export BENCH_NICE
	# A new session is a new autogroup; its nice weighs it against the
	# other sessions' groups (plain nice only acts inside one group).
	setsid -w sh -c 'echo "$BENCH_NICE" > /proc/self/autogroup 2>/dev/null || true; exec nice -n "$BENCH_NICE" "$@"' sh "$@"
else
	BENCH_NICE=0
	export BENCH_NICE
	"$@"
fi
