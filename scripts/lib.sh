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
#   need_pkg PKG...            apt-get install the Debian packages that are not installed yet
#                              (runs `apt-get update` once per process, before the first install)
#   wait_port HOST PORT SECS   wait until HOST:PORT accepts TCP connections (returns 1 on timeout)
#   port_open HOST PORT        true if HOST:PORT accepts a TCP connection right now
#   repo_root                  print the repository root directory
#   pid_alive PID              true if PID is a live (non-zombie) process

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
