# Shared by scripts/bench-ingest and scripts/bench-read (sourced).
# shellcheck shell=bash

bench_setup() {
  root="$(repo_root)"
  bench_dir="$root/.run/bench"
  mkdir -p "$bench_dir"
  export PG_PORT="${BENCH_PG_PORT:-56432}" KAFKA_PORT="${BENCH_KAFKA_PORT:-49092}"
  eval "$("$here/infra" up --no-browser "$bench_dir/infra")"
  if [[ -n "${BENCH_BIN:-}" ]]; then
    # Another build's binaries (e.g. an older commit's, for a before/after comparison).
    bin="$BENCH_BIN"
    log "using the binaries in $bin"
  else
    log "building release binaries"
    (cd "$root" && cargo build --release --locked --bins --quiet)
    bin="${CARGO_TARGET_DIR:-$root/target}/release"
  fi
  service_pid=""
  trap 'bench_stop_service; "$here/infra" down "$bench_dir/infra" >/dev/null 2>&1 || true' EXIT
}

# bench_fresh NAME: a new database and a 6-partition topic; sets db_url and topic.
bench_fresh() {
  local id="bench_${1}_$(date +%s%N)"
  psql -q "$ADMIN_DATABASE_URL" -c "CREATE DATABASE \"$id\" OWNER orders_app" >/dev/null
  db_url="${ADMIN_DATABASE_URL/postgres:postgres@/orders_app:orders_app@}"
  db_url="${db_url%/*}/$id"
  topic="orders_$id"
  "$here/kafka" create-topic "$KAFKA_PORT" "$topic" 6 >/dev/null 2>&1
}

# bench_start_service [VAR=value ...]: starts the release service on free ports; sets base
# (public listener) and admin (admin listener). $service_bin, if set, is run instead.
bench_start_service() {
  local out="$bench_dir/service.out"
  : >"$out"
  env DATABASE_URL="$db_url" KAFKA_BROKERS="$KAFKA_BROKERS" KAFKA_TOPIC="$topic" \
    KAFKA_GROUP_ID="group_$topic" KAFKA_DLQ_TOPIC="" HTTP_ADDR=127.0.0.1:0 ADMIN_ADDR=127.0.0.1:0 RUST_LOG=warn \
    MIGRATION_DATABASE_URL="" "$@" \
    "${service_bin:-$bin/orders-service}" >"$out" 2>"$bench_dir/service.log" &
  service_pid=$!
  base=""
  for _ in $(seq 1 1200); do
    # The address comes first; "ready" once migrations, warm-up and Kafka are done.
    base="$(sed -n 's/^orders-service listening on //p' "$out")"
    admin="$(sed -n 's/^orders-service admin on //p' "$out")"
    [[ -n "$base" ]] && grep -q '^orders-service ready' "$out" && return 0
    kill -0 "$service_pid" 2>/dev/null || die "service exited: $(tail -5 "$bench_dir/service.log")"
    sleep 0.05
  done
  die "service did not start"
}

bench_stop_service() {
  if [[ -n "${service_pid:-}" ]]; then
    kill -TERM "$service_pid" 2>/dev/null || true
    wait "$service_pid" 2>/dev/null || true
    service_pid=""
  fi
}

sql() { psql -qtA "$db_url" -c "$1"; }

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
