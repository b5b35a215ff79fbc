#!/usr/bin/env bash
# Runs once, from /docker-entrypoint-initdb.d, when the postgres data volume is empty, as the
# superuser. Creates the application database and two login roles whose rights are limited
# to that database:
#   owner    owns the database and its `public` schema; runs the migrations (DDL).
#   runtime  what the service runs as: CONNECT on the database, USAGE on schema public,
#            SELECT+INSERT on the tables and USAGE+SELECT on the sequences the owner creates
#            there (default privileges); no UPDATE, DELETE, TRUNCATE, no DDL, nothing else.
# PUBLIC loses CONNECT on every database and all rights on schema public, so neither role
# can even open the other databases.
#
# Settings (environment of the postgres container):
#   APP_DB_NAME             (default orders)
#   APP_DB_OWNER            (default orders_owner)  the owner / migration role
#   APP_DB_OWNER_PASSWORD   (default orders_owner)
#   APP_DB_USER             (default orders_app)    the runtime role
#   APP_DB_PASSWORD         (default orders_app)
set -euo pipefail

APP_DB_NAME="${APP_DB_NAME:-orders}"
APP_DB_OWNER="${APP_DB_OWNER:-orders_owner}"
APP_DB_OWNER_PASSWORD="${APP_DB_OWNER_PASSWORD:-orders_owner}"
APP_DB_USER="${APP_DB_USER:-orders_app}"
APP_DB_PASSWORD="${APP_DB_PASSWORD:-orders_app}"

if [[ "$APP_DB_OWNER" == "$APP_DB_USER" ]]; then
  echo "init: APP_DB_OWNER and APP_DB_USER must be two different roles" >&2
  exit 1
fi

psql_admin() {
  psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" \
    -v app_db="$APP_DB_NAME" \
    -v owner_user="$APP_DB_OWNER" -v owner_password="$APP_DB_OWNER_PASSWORD" \
    -v app_user="$APP_DB_USER" -v app_password="$APP_DB_PASSWORD" \
    "$@"
}

echo "init: creating roles ${APP_DB_OWNER} (owner), ${APP_DB_USER} (runtime) and database ${APP_DB_NAME}"

psql_admin --dbname postgres <<'SQL'
CREATE ROLE :"owner_user" LOGIN PASSWORD :'owner_password'
  NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS;
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password'
  NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS;
CREATE DATABASE :"app_db" OWNER :"owner_user" ENCODING 'UTF8' TEMPLATE template0;

-- Only explicitly granted roles may connect, to any database.
REVOKE ALL ON DATABASE :"app_db" FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC;
GRANT CONNECT ON DATABASE :"app_db" TO :"app_user";
SQL

psql_admin --dbname "$APP_DB_NAME" <<'SQL'
BEGIN;
-- The owner creates the objects (the migrations, diesel's table) and so owns them.
ALTER SCHEMA public OWNER TO :"owner_user";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app_user";
-- The runtime role reads and appends, nothing more, on whatever the owner creates there.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_user" IN SCHEMA public
  GRANT SELECT, INSERT ON TABLES TO :"app_user";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_user" IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO :"app_user";
-- Nothing exists yet on a fresh volume; kept so the script states the whole model.
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO :"app_user";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app_user";
COMMIT;
SQL

echo "init: done"
