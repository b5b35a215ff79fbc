# Shared by the scripts/bench-* commands (sourced).
# shellcheck shell=bash
#
# Every benchmark runs the service as users run it: its shipped defaults, logging included
# (RUST_LOG unset: info, the access log on), with a DLQ topic (made by bench_fresh), its log
# written to a file (what a log collector reading its stderr takes). Only the deployment's
# own addresses are set. A figure that needs another setting passes it to
# bench_start_service and names it beside the figure.

bench_setup() {
  root="$(repo_root)"
  bench_dir="$root/.run/bench"
  mkdir -p "$bench_dir"
  export PG_PORT="${BENCH_PG_PORT:-26432}" KAFKA_PORT="${BENCH_KAFKA_PORT:-26092}"
  eval "$("$here/infra" up --no-browser "$bench_dir/infra")"
  # The clusters outlive a run: drop the databases and topics of earlier runs (a 1M run
  # leaves 1.1 GB, a 10M run ~19 GB). One benchmark at a time: the ports are fixed anyway.
  local old olds
  olds="$(psql -qtA "$ADMIN_DATABASE_URL" -c "SELECT datname FROM pg_database WHERE datname LIKE 'bench\_%'")" ||
    die "cannot list the earlier benchmark databases"
  for old in $olds; do
    psql -q "$ADMIN_DATABASE_URL" -c "DROP DATABASE \"$old\" WITH (FORCE)" >/dev/null
  done
  "$here/kafka" topics "$KAFKA_PORT" --delete --if-exists --topic 'orders_bench_.*' >/dev/null 2>&1 ||
    log "warning: could not delete the earlier benchmark topics (their log stays on disk)"
  if [[ -n "${BENCH_BIN:-}" ]]; then
    # Another build's binaries (e.g. an older commit's, for a before/after comparison).
    bin="$BENCH_BIN"
    log "using the binaries in $bin"
  else
    log "building release binaries"
    # bench_cargo_args: what else a benchmark builds with them (e.g. --example NAME).
    (cd "$root" && cargo build --release --locked --bins ${bench_cargo_args[@]+"${bench_cargo_args[@]}"} --quiet)
    bin="${CARGO_TARGET_DIR:-$root/target}/release"
  fi
  service_pid=""
  bench_pids=()
  trap 'bench_stop_service; bench_stop_others; "$here/infra" down "$bench_dir/infra" >/dev/null 2>&1 || true' EXIT
}

# Other processes a benchmark started (bench_pids+=("$!")): stopped on exit.
bench_stop_others() {
  local pid
  for pid in "${bench_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  bench_pids=()
}

# bench_fresh NAME: a new database, a 6-partition topic and its DLQ topic; sets db_url,
# topic and dlq_topic.
bench_fresh() {
  local id="bench_${1}_$(date +%s%N)"
  psql -q "$ADMIN_DATABASE_URL" -c "CREATE DATABASE \"$id\" OWNER orders_app" >/dev/null
  db_url="${ADMIN_DATABASE_URL/postgres:postgres@/orders_app:orders_app@}"
  db_url="${db_url%/*}/$id"
  topic="orders_$id"
  # Beside the topic rather than the default orders.dlq: one per run, removed with the run's
  # topic by the next bench_setup.
  dlq_topic="${topic}_dlq"
  "$here/kafka" create-topic "$KAFKA_PORT" "$topic" 6 >/dev/null 2>&1 ||
    die "cannot create the topic $topic"
  "$here/kafka" create-topic "$KAFKA_PORT" "$dlq_topic" 1 >/dev/null 2>&1 ||
    die "cannot create the DLQ topic $dlq_topic"
}

# bench_start_service [VAR=value ...]: starts the release service on free ports with its
# shipped defaults plus these settings; sets base (public listener), admin (admin listener)
# and service_pid. $service_bin, if set, is run instead. Its log (stderr) goes to
# $bench_dir/service.log, emptied at each start.
bench_start_service() {
  local out="$bench_dir/service.out" exe
  : >"$out"
  exe="$(realpath "${service_bin:-$bin/orders-service}")"
  # Started in / so that the service's dotenv search finds no .env: the local run's settings
  # there (HTTP_IDLE_POLL_US) must not change what the benchmarks measure, the defaults.
  # A clean environment for the same reason: a shell that exports RUST_LOG or ACCESS_LOG
  # would otherwise change what is measured.
  (cd / && exec env -i PATH="$PATH" HOME="${HOME:-/}" \
    DATABASE_URL="$db_url" KAFKA_BROKERS="$KAFKA_BROKERS" KAFKA_TOPIC="$topic" \
    KAFKA_GROUP_ID="group_$topic" KAFKA_DLQ_TOPIC="$dlq_topic" \
    HTTP_ADDR=127.0.0.1:0 ADMIN_ADDR=127.0.0.1:0 MIGRATION_DATABASE_URL="" "$@" \
    "$exe") >"$out" 2>"$bench_dir/service.log" &
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

# bench_wait_stored N: waits until the running service has stored N orders, by its own
# counter (orders_stored_total, one process storing into a fresh database). Polling
# `count(*)` instead would load PostgreSQL inside the measured window: at 1M rows a count
# every 0.25 s is a tenth of a core. Dies if the service exits, or after an hour.
bench_wait_stored() {
  local n=0
  for _ in $(seq 1 36000); do
    n="$(metric orders_stored_total)"
    [[ "${n:-0}" -ge "$1" ]] && return 0
    kill -0 "$service_pid" 2>/dev/null ||
      die "service exited with ${n:-0} of $1 orders stored: $(tail -5 "$bench_dir/service.log")"
    sleep 0.1
  done
  die "only ${n:-0} of $1 orders stored"
}

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$service_pid/status"; }
# A COMPARE_BIN without an admin listener serves /metrics on the public one.
metric() { curl -s "${admin:-$base}/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
# The running service's start-up warm-up, in whole milliseconds.
warmup_ms() { awk -v s="$(metric orders_warmup_seconds)" 'BEGIN {printf "%.0f", s * 1000}'; }

# wrk's latency ("61.00us", "1.23ms", "2.00s") in microseconds.
to_us() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else print n * 1000000 }'; }
cpu_ticks() { proc_ticks "$service_pid"; }
# proc_ticks PID: the CPU time of process PID (user + system, all its threads), in clock ticks.
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# single_run [PATH]: one connection, one request at a time for 5 s, to random ids from $ids
# (or to PATH); prints p50 µs, p99 µs and the service's CPU µs per request.
single_run() {
  local before after requests
  before="$(cpu_ticks)"
  if [[ -n "${1:-}" ]]; then
    wrk -t1 -c1 -d5s --latency "$base$1" >"$bench_dir/wrk1.out"
  else
    IDS_FILE="$ids" wrk -t1 -c1 -d5s --latency -s "$here/bench/random-ids.lua" "$base" \
      >"$bench_dir/wrk1.out"
  fi
  after="$(cpu_ticks)"
  requests="$(awk '/requests in/ {print $1}' "$bench_dir/wrk1.out")"
  echo "$(to_us "$(awk '$1 == "50%" {print $2}' "$bench_dir/wrk1.out")")" \
    "$(to_us "$(awk '$1 == "99%" {print $2}' "$bench_dir/wrk1.out")")" \
    "$(awk -v t="$((after - before))" -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')"
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
