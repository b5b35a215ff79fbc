#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# scripts/lib.sh — shared helpers for the orders-service shell tooling.
#
# Usage (from another script):
#   # shellcheck source=scripts/lib.sh
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Provides:
#   log MSG...                 message to stderr, prefixed with the calling script's name
#   die MSG...                 log MSG and exit 1
#   usage                      print the calling script's header comment (from line 3 to the
#                              line before `set -euo pipefail`) on stderr and exit 2
#   need_pkg PKG...            apt-get install the Debian packages that are not installed yet
#                              (runs `apt-get update` once per process, before the first install)
#   repo_root                  print the repository root directory
#   abs_dir DIR                absolute path of DIR (which need not exist); dies if DIR is empty
#   export_line NAME VALUE     print `export NAME='VALUE'`, safe to eval whatever VALUE holds
#
# Ports:
#   port_open HOST PORT        true if HOST:PORT accepts a TCP connection right now
#   wait_port HOST PORT SECS   wait until HOST:PORT accepts TCP connections (returns 1 on timeout)
#   check_port PORT            die unless PORT is a number in 1..65535 that nothing listens on
#                              (127.0.0.1), and warn if it lies in the kernel's ephemeral range
#   stored_port DIR            the port recorded in DIR/port (returns 1 if none)
#
# Processes:
#   pid_alive PID              true if PID is a live (non-zombie) process
#   pid_from_file FILE REGEX   print the pid in FILE if that process is alive and its command
#                              line matches REGEX (returns 1 otherwise)
#   children_of PID            pids whose parent is PID
#   wait_gone SECS PID...      wait until none of the PIDs exists any more (zombies included)
#   kill_hard SECS PID...      SIGKILL the PIDs (a crash), then wait_gone SECS (returns 1 if
#                              one is still there)
#   spawn_detached PIDFILE LOG DIR CMD...
#                              start CMD in DIR in a session of its own (it outlives the caller
#                              and its Ctrl-C), stdout+stderr appended to LOG, its pid in PIDFILE
#   print_status PID PORT      "running pid=PID port=PORT" (return 0), or "stopped" (return 3)
#                              when PID is empty: what every `status` subcommand prints
#
# Test TLS material (one recipe for PostgreSQL's TLS and Kafka's SSL/SASL_SSL listeners):
#   tls_ca DIR                 a private CA in DIR (ca.crt, ca.key), made once
#   tls_server_cert CA_DIR OUT_DIR
#                              OUT_DIR/server.crt + server.key for DNS:localhost, IP:127.0.0.1,
#                              signed by CA_DIR's CA; made again when missing or not signed by it
#   Keys are EC P-256; the CA certificate is what clients verify with (PostgreSQL's
#   sslrootcert, librdkafka's ssl.ca.location).

# Guard against double sourcing.
if [[ -n "${_ORDERS_LIB_SH:-}" ]]; then
  return 0
fi
_ORDERS_LIB_SH=1

_LIB_PROG="$(basename "${0:-lib.sh}")"
_APT_UPDATED=0

log() {
  printf '[%s] %s\n' "$_LIB_PROG" "$*" >&2
}

die() {
  log "error: $*"
  exit 1
}

repo_root() {
  (cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
}

# pkg_installed PKG — true if the Debian package is fully installed.
pkg_installed() {
  local status
  status="$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)"
  [[ "$status" == "install ok installed" ]]
}

need_pkg() {
  local missing=() p
  for p in "$@"; do
    pkg_installed "$p" || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  local sudo=()
  if [[ "$(id -u)" -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to install: ${missing[*]}"
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  local out
  out="$(mktemp)"
  if [[ "$_APT_UPDATED" -eq 0 ]]; then
    log "apt-get update"
    if ! "${sudo[@]}" apt-get update -q >"$out" 2>&1; then
      cat "$out" >&2
      rm -f "$out"
      die "apt-get update failed"
    fi
    _APT_UPDATED=1
  fi
  log "installing: ${missing[*]}"
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" >"$out" 2>&1; then
    tail -n 40 "$out" >&2
    rm -f "$out"
    die "apt-get install failed: ${missing[*]}"
  fi
  rm -f "$out"
}

port_open() {
  local host="$1" port="$2"
  # Bash's /dev/tcp: no external tool needed. Subshell so the fd is closed at once.
  (exec 3<>"/dev/tcp/${host}/${port}") 2>/dev/null
}

wait_port() {
  local host="$1" port="$2" timeout="${3:-30}"
  local deadline=$((SECONDS + timeout))
  while ! port_open "$host" "$port"; do
    if ((SECONDS >= deadline)); then
      return 1
    fi
    sleep 0.2
  done
  return 0
}

pid_alive() {
  local pid="$1" stat
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # Field 3 of /proc/PID/stat is the state; Z = zombie (dead, not yet reaped).
  stat="$(cat "/proc/$pid/stat" 2>/dev/null || true)"
  [[ -n "$stat" ]] || return 1
  stat="${stat##*) }"
  [[ "${stat:0:1}" != "Z" ]]
}

usage() {
  sed -n '3,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

abs_dir() {
  local d="$1"
  [[ -n "$d" ]] || die "DIR missing"
  [[ "$d" == /* ]] || d="$PWD/$d"
  realpath -m "$d"
}

export_line() {
  local q="'\\''"
  printf "export %s='%s'\n" "$1" "${2//\'/$q}"
}

stored_port() {
  [[ -f "$1/port" ]] || return 1
  tr -dc '0-9' <"$1/port"
}

# ephemeral_range — the kernel's range for outgoing connections' local ports ("LOW HIGH").
ephemeral_range() {
  local r
  r="$(cat /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true)"
  [[ -n "$r" ]] || r="32768 60999"
  printf '%s\n' "$r"
}

check_port() {
  local port="$1" low high
  if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
    die "bad port: $port"
  fi
  ! port_open 127.0.0.1 "$port" || die "port $port is already in use by another process"
  read -r low high <<<"$(ephemeral_range)"
  if ((port >= low && port <= high)); then
    # A client whose connect() to a closed port in this range is given that same port as
    # its source port connects to itself (TCP simultaneous open) and then holds the port,
    # so the server cannot start again there: outage tests flake.
    log "warning: port $port lies in the ephemeral range $low-$high; a client retrying" \
      "while the server is down can connect to itself and keep the port from the server"
  fi
}

pid_from_file() {
  local file="$1" regex="$2" pid
  [[ -f "$file" ]] || return 1
  pid="$(tr -dc '0-9' <"$file")"
  pid_alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -Eq -- "$regex" || return 1
  printf '%s\n' "$pid"
}

children_of() {
  local want="$1" f st s pp
  for f in /proc/[0-9]*/stat; do
    st="$(cat "$f" 2>/dev/null || true)"
    [[ -n "$st" ]] || continue
    st="${st##*) }"
    read -r s pp _ <<<"$st"
    if [[ "$pp" == "$want" && "$s" != Z ]]; then
      f="${f#/proc/}"
      printf '%s\n' "${f%/stat}"
    fi
  done
}

# Zombies count as present: PID 1 here may reap orphans only after a while, and a zombie
# postmaster's pid still makes a new postmaster refuse to start.
wait_gone() {
  local deadline=$((SECONDS + $1)) p
  shift
  for p in "$@"; do
    while kill -0 "$p" 2>/dev/null; do
      ((SECONDS < deadline)) || return 1
      sleep 0.1
    done
  done
}

kill_hard() {
  local secs="$1"
  shift
  kill -KILL "$@" 2>/dev/null || true
  wait_gone "$secs" "$@"
}

spawn_detached() {
  local pidfile="$1" logfile="$2" dir="$3" deadline
  shift 3
  rm -f "$pidfile"
  # setsid: a session of its own, so the process outlives this script and the caller's
  # Ctrl-C; the inner shell writes its own pid (the program's, after exec) first.
  # shellcheck disable=SC2016 # $$ is for the inner shell
  (
    cd "$dir" || exit 1
    setsid nohup bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$pidfile" "$@" \
      </dev/null >>"$logfile" 2>&1 &
  )
  deadline=$((SECONDS + 10))
  until [[ -s "$pidfile" ]]; do
    ((SECONDS < deadline)) || die "could not start $1 (log: $logfile)"
    sleep 0.05
  done
}

print_status() {
  if [[ -n "$1" ]]; then
    printf 'running pid=%s port=%s\n' "$1" "$2"
    return 0
  fi
  printf 'stopped\n'
  return 3
}

# ---------------------------------------------------------------- test TLS material

# _tls_conf FILE — the openssl extensions both certificates are made with.
_tls_conf() {
  cat >"$1" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
CNF
}

tls_ca() {
  local dir="$1" cnf
  [[ -s "$dir/ca.crt" && -s "$dir/ca.key" ]] && return 0
  command -v openssl >/dev/null 2>&1 || need_pkg openssl
  mkdir -p "$dir"
  chmod 755 "$dir"
  cnf="$(mktemp)"
  _tls_conf "$cnf"
  log "creating a private test CA in $dir"
  # Written under temporary names and renamed: a failed run leaves no half-made CA.
  if ! (umask 077 && openssl req -x509 -new -config "$cnf" -extensions v3_ca \
    -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 3650 \
    -subj "/O=orders-service/CN=orders-service test CA $(openssl rand -hex 4)" \
    -keyout "$dir/ca.key.tmp" -out "$dir/ca.crt.tmp") >/dev/null 2>&1; then
    rm -f "$cnf" "$dir/ca.key.tmp" "$dir/ca.crt.tmp"
    die "openssl could not create the CA in $dir"
  fi
  rm -f "$cnf"
  chmod 644 "$dir/ca.crt.tmp"
  mv "$dir/ca.key.tmp" "$dir/ca.key"
  mv "$dir/ca.crt.tmp" "$dir/ca.crt"
}

tls_server_cert() {
  local ca="$1" out="$2" cnf
  if [[ -s "$out/server.key" ]] &&
    openssl verify -CAfile "$ca/ca.crt" "$out/server.crt" >/dev/null 2>&1; then
    return 0
  fi
  mkdir -p "$out"
  chmod 755 "$out"
  cnf="$(mktemp)"
  _tls_conf "$cnf"
  log "creating a server certificate in $out (DNS:localhost, IP:127.0.0.1)"
  if ! (umask 077 && openssl req -new -config "$cnf" \
    -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
    -subj "/O=orders-service/CN=localhost" -keyout "$out/server.key.tmp" -out "$out/server.csr" &&
    openssl x509 -req -in "$out/server.csr" -CA "$ca/ca.crt" -CAkey "$ca/ca.key" \
      -set_serial "0x$(openssl rand -hex 16)" -sha256 -days 825 -extfile "$cnf" \
      -extensions v3_server -out "$out/server.crt.tmp") >/dev/null 2>&1; then
    rm -f "$cnf" "$out/server.key.tmp" "$out/server.crt.tmp" "$out/server.csr"
    die "openssl could not create the server certificate in $out"
  fi
  rm -f "$cnf" "$out/server.csr"
  chmod 644 "$out/server.crt.tmp"
  mv "$out/server.key.tmp" "$out/server.key"
  mv "$out/server.crt.tmp" "$out/server.crt"
}
