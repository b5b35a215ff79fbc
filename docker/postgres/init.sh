#!/usr/bin/env bash
# Runs once, from /docker-entrypoint-initdb.d, when the postgres data volume is empty.
# Creates the application database and a dedicated login role whose rights are limited to
# that database: it can connect to it and create objects in its `public` schema (the service
# runs its own migrations), and nothing else. PUBLIC loses CONNECT on every database, so the
# app role cannot even open the others.
#
# Settings (environment of the postgres container):
#   APP_DB_NAME      (default orders)
#   APP_DB_USER      (default orders_app)
#   APP_DB_PASSWORD  (default orders_app)
set -euo pipefail

APP_DB_NAME="${APP_DB_NAME:-orders}"
APP_DB_USER="${APP_DB_USER:-orders_app}"
APP_DB_PASSWORD="${APP_DB_PASSWORD:-orders_app}"

psql_admin() {
  psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" \
    -v app_db="$APP_DB_NAME" -v app_user="$APP_DB_USER" -v app_password="$APP_DB_PASSWORD" \
    "$@"
}

echo "init: creating role ${APP_DB_USER} and database ${APP_DB_NAME}"

psql_admin --dbname postgres <<'SQL'
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password'
  NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS;
CREATE DATABASE :"app_db" ENCODING 'UTF8' TEMPLATE template0;

-- Only explicitly granted roles may connect, to any database.
REVOKE ALL ON DATABASE :"app_db" FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"app_db" TO :"app_user";
SQL

psql_admin --dbname "$APP_DB_NAME" <<'SQL'
-- The app role owns what it creates (its tables, the diesel migrations table).
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO :"app_user";
SQL

echo "init: done"
