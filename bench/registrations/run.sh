#!/usr/bin/env bash
# Registration benchmark (make bench-registrations).
#
# Starts Kamailio (Debian) as the PBX with USERS subscribers in SQLite, then
# RUNS times: restarts Kamailio, lets our registration engine (its own
# process) register all users in one burst and checks the bindings in
# Kamailio; restarts Kamailio and lets SIPp register the same users with its
# REGISTER-with-auth scenario (sipp_register.xml). Both get the same
# concurrency (INFLIGHT registrations in flight). Medians are printed; the
# last line is
#   registrations users=N ok=N burst_per_s=X sipp_per_s=Y ratio=R bytes_per_reg=B
#
#   USERS=10000 (default)   USERS=100000 for the 100k figure
#   RUNS=3  INFLIGHT=200  CHILDREN=2 (Kamailio UDP workers)
#   KAMAILIO_CPUS / CLIENT_CPUS: taskset CPU lists to pin Kamailio and the
#   client (our engine or SIPp) apart, e.g. KAMAILIO_CPUS=0 CLIENT_CPUS=1
#   SHARED_NONCE=false: the engine does not reuse one user's nonce for others
#   (then it sends as many messages as SIPp)
# Needs: kamailio, kamailio-sqlite-modules, sip-tester (sipp), Go.
set -euo pipefail
cd "$(dirname "$0")/../.."

USERS=${USERS:-10000}
RUNS=${RUNS:-3}
INFLIGHT=${INFLIGHT:-200}
CHILDREN=${CHILDREN:-2}
SHARED_NONCE=${SHARED_NONCE:-true}

ulimit -n 65536 2>/dev/null || true
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/registrations" ./bench/registrations

args=(run -users "$USERS" -runs "$RUNS" -inflight "$INFLIGHT" -children "$CHILDREN"
	-shared-nonce="$SHARED_NONCE" -scenario bench/registrations/sipp_register.xml)
[ -n "${KAMAILIO_CPUS:-}" ] && args+=(-kamailio-cpus "$KAMAILIO_CPUS")
[ -n "${CLIENT_CPUS:-}" ] && args+=(-client-cpus "$CLIENT_CPUS")
"$tmp/registrations" "${args[@]}"
