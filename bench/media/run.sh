#!/bin/sh
# Media relay benchmark (the Makefile's bench-media target runs this).
# The pbx2teams relay and rtpengine (userspace) each relay CALLS concurrent
# G.711 calls, RTP <-> SRTP, in their own process pinned to one CPU; the
# load generator runs pinned to another. Environment: CALLS (default 1000),
# DURATION (seconds or Go duration, default 20s), RUNS (default 3),
# RELAY_CPU / GEN_CPU (defaults: last CPU / CPU 0), RTPENGINE_THREADS,
# BENCH_NICE (default -19 when allowed: shields both relays alike from
# other load on a shared machine; 0 to disable).
set -eu
cd "$(dirname "$0")/../.."
bin="${TMPDIR:-/tmp}/mediabench.$$"
trap 'rm -f "$bin"' EXIT INT TERM
go build -o "$bin" ./bench/media
nice="${BENCH_NICE:--19}"
if ! nice -n "$nice" true 2>/dev/null; then
	nice=0
fi
export BENCH_NICE="$nice"
ncpu=$(getconf _NPROCESSORS_ONLN)
if [ "$ncpu" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
	RELAY_CPU="${RELAY_CPU:-$((ncpu - 1))}"
	export RELAY_CPU
	nice -n "$nice" taskset -c "${GEN_CPU:-0}" "$bin" "$@"
else
	echo "# fewer than 2 CPUs or no taskset: relay and generator share CPUs" >&2
	nice -n "$nice" "$bin" "$@"
fi
