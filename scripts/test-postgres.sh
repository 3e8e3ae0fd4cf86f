#!/usr/bin/env bash
# test-postgres.sh makes the local PostgreSQL 15 cluster available for the
# store tests and prints the URL to put in PBX2TEAMS_TEST_POSTGRES:
#
#   export PBX2TEAMS_TEST_POSTGRES="$(scripts/test-postgres.sh)"
#
# It is idempotent: it creates the cluster if missing, starts it if down,
# waits until it accepts connections, and creates (or resets) a login role
# that may create databases (each test creates and drops its own database).
# It needs the Debian package `postgresql` and must run as root. Only the URL
# goes to stdout; progress goes to stderr.
set -euo pipefail

VERSION="${PG_VERSION:-15}"
CLUSTER="${PG_CLUSTER:-main}"
ROLE="${PG_TEST_ROLE:-pbx2teams}"
PASSWORD="${PG_TEST_PASSWORD:-pbx2teams}"

log() { echo "test-postgres: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
	log "must run as root (it starts the cluster and runs psql as user postgres)"
	exit 1
fi
for cmd in pg_lsclusters pg_createcluster pg_ctlcluster; do
	if ! command -v "$cmd" >/dev/null; then
		log "$cmd not found: install the Debian package postgresql"
		exit 1
	fi
done

# cluster_field N prints column N of this cluster's pg_lsclusters line
# (1 version, 2 name, 3 port, 4 status).
cluster_field() {
	pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" -v f="$1" '$1 == v && $2 == c { print $f }'
}

if [ -z "$(cluster_field 2)" ]; then
	log "creating cluster $VERSION/$CLUSTER"
	pg_createcluster "$VERSION" "$CLUSTER" >&2
fi

PORT="$(cluster_field 3)"
case "$(cluster_field 4)" in
online*) ;;
*)
	log "starting cluster $VERSION/$CLUSTER on port $PORT"
	pg_ctlcluster "$VERSION" "$CLUSTER" start >&2
	;;
esac

ready=
for _ in $(seq 1 120); do
	if pg_isready -q -h 127.0.0.1 -p "$PORT"; then
		ready=1
		break
	fi
	sleep 0.5
done
if [ -z "$ready" ]; then
	log "cluster $VERSION/$CLUSTER did not become ready on 127.0.0.1:$PORT"
	exit 1
fi

# Create the role, or reset its password and rights if it exists, so a rerun
# always leaves the same state. Role and password are quoted by format().
runuser -u postgres -- psql -X -q -p "$PORT" -d postgres -v ON_ERROR_STOP=1 \
	-v role="$ROLE" -v password="$PASSWORD" >&2 <<'SQL'
SELECT format(
	CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role')
	THEN 'ALTER ROLE %I WITH LOGIN CREATEDB PASSWORD %L'
	ELSE 'CREATE ROLE %I WITH LOGIN CREATEDB PASSWORD %L' END,
	:'role', :'password') \gexec
SQL

echo "postgres://${ROLE}:${PASSWORD}@127.0.0.1:${PORT}/postgres?sslmode=disable"
