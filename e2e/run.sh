#!/usr/bin/env bash
# The end-to-end story of a new customer, against the service as
# `pbx2teams serve --sandbox` wires it, Kamailio as the PBX, SIPp phones
# and Chromium (cmd/pbx2teams/e2e_test.go, build tag e2e). Each step is a
# subtest; the last line counts them: e2e passed=N failed=M.
set -uo pipefail
cd "$(dirname "$0")/.."
export CI="${CI:-true}" # never skip for a missing peer here
log=$(mktemp)
trap 'rm -f "$log"' EXIT
go test -tags e2e -count=1 -timeout 15m -run '^TestE2E$' -v ./cmd/pbx2teams/ 2>&1 | tee "$log" |
  grep -E '^\s*(--- (PASS|FAIL|SKIP)|(ok|FAIL)\s)|e2e_test\.go' || true
passed=$(grep -cE '^\s+--- PASS: TestE2E/' "$log")
failed=$(grep -cE '^\s+--- FAIL: TestE2E/' "$log")
if ! grep -qE '^--- PASS: TestE2E ' "$log" && [ "$failed" -eq 0 ]; then
  failed=1 # the test did not run to its end (build error, panic, timeout)
  tail -n 40 "$log"
fi
echo "e2e passed=$passed failed=$failed"
[ "$failed" -eq 0 ]
