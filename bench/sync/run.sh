#!/bin/sh
# make bench-sync: full sync of a generated Microsoft 365 tenant (simulator
# in its own process) into a fresh SQLite store through dirsync, then a
# delta after 1,000 changes; runs at 10,000 and 100,000 users to show that
# memory does not grow with the tenant. Flags are passed on, e.g. -runs 1.
# The last line is:
#   sync users=100000 full_s=X delta_changes=1000 delta_s=Y peak_rss_mb=Z
set -eu
cd "$(dirname "$0")/../.."
bin="$(mktemp -d)/pbx2teams-bench-sync"
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./bench/sync
"$bin" "$@"
