#!/usr/bin/env bash
# Runs once, from /docker-entrypoint-initdb.d after init.sh, on the cluster profile's primary
# (pg-primary) when its data volume is empty, as the superuser:
#   - a login role for the standbys' streaming replication (REPLICATION, nothing else);
#   - pg_hba.conf lets it open replication connections from the compose network;
#   - synchronous_standby_names = 'FIRST 1 (SYNCHRONOUS_STANDBY)': from the real start on, a
#     commit returns only once that standby has it too (synchronous_commit=on), so promoting
#     it loses no committed order. Set with ALTER SYSTEM, read at the real start: set now,
#     the init scripts' own commits would wait for a standby that cannot exist yet.
#
# Settings (environment of the container):
#   REPLICATION_USER       (default replicator)
#   REPLICATION_PASSWORD   (required)
#   SYNCHRONOUS_STANDBY    (default pg_sync) the application_name of the synchronous standby
set -euo pipefail

REPLICATION_USER="${REPLICATION_USER:-replicator}"
: "${REPLICATION_PASSWORD:?REPLICATION_PASSWORD is not set}"
SYNCHRONOUS_STANDBY="${SYNCHRONOUS_STANDBY:-pg_sync}"

echo "replication: role ${REPLICATION_USER}, synchronous standby ${SYNCHRONOUS_STANDBY}"
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres \
  -v repl_user="$REPLICATION_USER" -v repl_password="$REPLICATION_PASSWORD" \
  -v sync_names="FIRST 1 ($SYNCHRONOUS_STANDBY)" <<'SQL'
CREATE ROLE :"repl_user" LOGIN REPLICATION PASSWORD :'repl_password'
  NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOBYPASSRLS;
ALTER SYSTEM SET synchronous_standby_names = :'sync_names';
SQL
printf '\n# Streaming replication for the standbys (docker/postgres/replication.sh).\nhost replication %s all scram-sha-256\n' \
  "$REPLICATION_USER" >>"$PGDATA/pg_hba.conf"
echo "replication: done"
