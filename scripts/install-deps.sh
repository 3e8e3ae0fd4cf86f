#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks start as real peers:
# PostgreSQL, Kamailio, SIPp, baresip, rtpengine and Chromium. Idempotent: it
# runs apt-get only when something is missing.
set -euo pipefail
pkgs=(postgresql kamailio kamailio-sqlite-modules sip-tester baresip-core rtpengine-daemon rtpengine-utils
      chromium chromium-driver sqlite3 procps iproute2 ca-certificates)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Packaged daemons must not hold the ports and files the tests use.
for svc in kamailio rtpengine-daemon; do
  systemctl stop "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
done
pkill -x kamailio 2>/dev/null || true
pkill -x rtpengine 2>/dev/null || true
echo "test dependencies present"
