#!/bin/sh
# make bench-portal: the Users page and the users API list at 100,000
# directory users (first page, a search, a deep page), over loopback HTTP
# against a fresh SQLite store. Flags are passed on, e.g. -runs 3 -reps 50.
# The last line is: portal users=100000 page_p95_ms=X api_p95_ms=Y
set -eu
cd "$(dirname "$0")/../.."
bin="$(mktemp -d)/pbx2teams-bench-portal"
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./bench/portal
"$bin" "$@"
