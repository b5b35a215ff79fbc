#!/usr/bin/env bash
# Entrypoint of the cluster profile's standbys (pg-sync, pg-async): on an empty data volume,
# copy the primary with pg_basebackup and make the copy a hot standby that streams from it
# under STANDBY_NAME (the application_name synchronous_standby_names refers to); then start
# PostgreSQL through the image's own entrypoint, which finds the data and skips initdb.
#
# Settings (environment of the container):
#   PRIMARY_HOST           (required) the primary's host name
#   PRIMARY_PORT           (default 5432)
#   STANDBY_NAME           (required) e.g. pg_sync, pg_async
#   REPLICATION_USER       (default replicator)
#   REPLICATION_PASSWORD   (required)
set -euo pipefail

: "${PRIMARY_HOST:?PRIMARY_HOST is not set}" "${STANDBY_NAME:?STANDBY_NAME is not set}"
: "${REPLICATION_PASSWORD:?REPLICATION_PASSWORD is not set}"
PRIMARY_PORT="${PRIMARY_PORT:-5432}"
REPLICATION_USER="${REPLICATION_USER:-replicator}"
PGDATA="${PGDATA:-/var/lib/postgresql/data}"

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  echo "standby: copying ${PRIMARY_HOST}:${PRIMARY_PORT} into $PGDATA as ${STANDBY_NAME}"
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  chmod 700 "$PGDATA"
  until PGPASSWORD="$REPLICATION_PASSWORD" gosu postgres pg_basebackup \
    --host "$PRIMARY_HOST" --port "$PRIMARY_PORT" --username "$REPLICATION_USER" \
    --pgdata "$PGDATA" --wal-method stream --checkpoint fast --no-password; do
    echo "standby: pg_basebackup failed; again in 2 s" >&2
    rm -rf "${PGDATA:?}"/*
    sleep 2
  done
  # The primary's address, as this standby's name; standby.signal keeps it a standby.
  gosu postgres bash -c "cat >>'$PGDATA/postgresql.auto.conf'" <<CONF
primary_conninfo = 'host=${PRIMARY_HOST} port=${PRIMARY_PORT} user=${REPLICATION_USER} password=${REPLICATION_PASSWORD} application_name=${STANDBY_NAME}'
CONF
  gosu postgres touch "$PGDATA/standby.signal"
fi

exec docker-entrypoint.sh postgres -c hot_standby=on -c wal_log_hints=on \
  -c max_connections=200 -c max_wal_senders=10 -c max_wal_size=4GB
