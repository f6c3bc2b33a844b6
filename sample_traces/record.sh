#!/usr/bin/env bash
# Re-record the sample recordings in sample_traces/ from scratch, as root, on a Debian 12 machine
# with the kernel facts of docs/design.md (tracepoint probe).
#
#   sudo bash sample_traces/record.sh                 # install the programs, record every sample
#   sudo bash sample_traces/record.sh nginx-after     # only these samples
#   sudo bash sample_traces/record.sh --no-install    # programs are installed already
#
# What it does: apt-get installs the traced programs (nginx, apache2-utils for ab, curl, python3,
# postgresql, haproxy) without letting their packages start any service; sets up the recorder
# (scripts/setup.sh --system); starts every server in a temporary directory, listening on
# 127.0.0.1 or a Unix socket only; drives each with a bounded number of requests; records with
# `sockopt-trace record`; stops everything it started (also on failure or Ctrl-C) and removes the
# temporary directory. Each sample is written to sample_traces/NAME/, replacing the old one, and
# the programs' versions to sample_traces/VERSIONS.txt. Nothing talks to any non-loopback address.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
ALL=(nginx-before nginx-after nginx-context curl python-asyncio pgbench haproxy-nginx-unix
     steady-before steady-after stripped)

# Ports on 127.0.0.1 (all free on a fresh machine; the script stops if one is taken).
BACKEND=18100      # nginx: `return 200`, no access log: the origin for the proxy, curl, python
PROXY=18101        # nginx: reverse proxy to BACKEND, one access-log line per request
HAPROXY=18110      # haproxy: front end for nginx on a Unix socket
PGPORT=18120       # postgres
REQUESTS=50000     # ab requests per nginx-before/after recording (the same for both)

usage() { echo "usage: sudo bash sample_traces/record.sh [--no-install] [NAME...]; NAME: ${ALL[*]}" >&2; exit 2; }

install=1
names=()
for arg in "$@"; do
  case "$arg" in
    --no-install) install=0 ;;
    -h|--help) usage ;;
    -*) usage ;;
    *) [[ " ${ALL[*]} " == *" $arg "* ]] || usage; names+=("$arg") ;;
  esac
done
[ ${#names[@]} -gt 0 ] || names=("${ALL[@]}")
[ "$(id -u)" = 0 ] || { echo "record.sh: recording needs root: sudo bash $0 $*" >&2; exit 3; }

log() { printf '\n== %s\n' "$*" >&2; }

POLICY_RC=""  # the policy-rc.d this run made, if any

install_programs() {
  local pkgs=(nginx apache2-utils curl python3 postgresql haproxy iproute2 procps)
  local missing=() p
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -gt 0 ] || return 0
  log "apt-get install ${missing[*]}"
  # Debian's packages would start nginx (on port 80), haproxy and a postgres cluster: forbid it
  # (a policy-rc.d already there is left alone; ours is removed by cleanup, whatever happens).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    POLICY_RC=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$POLICY_RC"
    chmod 755 "$POLICY_RC"
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  remove_policy_rc
}

remove_policy_rc() {
  [ -z "$POLICY_RC" ] || rm -f "$POLICY_RC"
  POLICY_RC=""
}

# --- servers: each started in the background, its pid kept, stopped by that pid -------------

W=""              # temporary directory of this run
NGINX_PID=""
HAPROXY_PID=""
RECORDER_PID=""   # a recorder running in the background (BG=1 record ...)
PG_DATA=""
PG_BIN=""

cleanup() {
  local status=$?
  set +e
  remove_policy_rc
  stop_haproxy
  stop_recorder
  stop_nginx
  stop_postgres
  [ -z "$W" ] || rm -rf "$W"
  exit "$status"
}

wait_listen() {  # wait_listen TCP-PORT|UNIX-PATH [SECONDS]: until something listens there
  local i
  for i in $(seq $((${2:-5} * 10))); do
    if [[ "$1" == /* ]]; then [ -S "$1" ] && return 0
    elif ss -Hltn "sport = :$1" | grep -q .; then return 0
    fi
    sleep 0.1
  done
  echo "record.sh: nothing listens on $1" >&2
  return 1
}

port_free() {
  if ss -Hltn "sport = :$1" | grep -q .; then
    echo "record.sh: port $1 on this machine is in use; free it first" >&2
    return 1
  fi
}

# nginx_conf LOG_FORMAT: one worker; BACKEND answers itself; PROXY passes every request to BACKEND
# on a new upstream connection and writes one access-log line per request in LOG_FORMAT.
# UNIX=1: instead, one server on a Unix socket (behind haproxy) that logs in LOG_FORMAT.
nginx_conf() {
  local format=$1 servers
  if [ "${UNIX:-0}" = 1 ]; then
    servers="server { listen unix:$W/nginx.sock; access_log $W/access.log main;
                      location / { return 200 \"hello from nginx\\n\"; } }"
  else
    servers="server { listen 127.0.0.1:$BACKEND; access_log off;
                      location / { return 200 \"hello from the backend\\n\"; } }
             server { listen 127.0.0.1:$PROXY; access_log $W/access.log main;
                      location / { proxy_pass http://127.0.0.1:$BACKEND; } }"
  fi
  cat <<EOF
worker_processes 1;
daemon off;
pid $W/nginx.pid;
error_log $W/error.log;
events { worker_connections 1024; }
http {
  log_format main '$format';
  client_body_temp_path $W/tmp/body; proxy_temp_path $W/tmp/proxy;
  fastcgi_temp_path $W/tmp/fastcgi; uwsgi_temp_path $W/tmp/uwsgi; scgi_temp_path $W/tmp/scgi;
  $servers
}
EOF
}

# The two access-log formats of the nginx before/after pair: the same line, and then $tcpinfo_rtt
# (the client connection's smoothed RTT, which nginx reads with getsockopt(TCP_INFO)).
LOG_BEFORE='$remote_addr [$time_local] "$request" $status $body_bytes_sent $request_time'
LOG_AFTER="$LOG_BEFORE"' rtt=$tcpinfo_rtt'

start_nginx() {  # start_nginx NAME LOG_FORMAT
  mkdir -p "$W/tmp"
  nginx_conf "$2" >"$W/$1.conf"
  nginx -t -q -p "$W" -e "$W/error.log" -c "$W/$1.conf"
  nginx -p "$W" -e "$W/error.log" -c "$W/$1.conf" &
  NGINX_PID=$!
  if [ "${UNIX:-0}" = 1 ]; then wait_listen "$W/nginx.sock"; else wait_listen "$PROXY"; fi
}

stop_nginx() {
  [ -n "$NGINX_PID" ] || return 0
  kill -QUIT "$NGINX_PID" 2>/dev/null
  wait "$NGINX_PID" 2>/dev/null
  NGINX_PID=""
  rm -f "$W/nginx.sock"
}

stop_haproxy() {
  [ -n "$HAPROXY_PID" ] || return 0
  kill -USR1 "$HAPROXY_PID" 2>/dev/null  # soft stop: finish the open connections, then exit
  HAPROXY_PID=""
}

start_postgres() {
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  local data="$W/pg"
  install -d -o postgres -g postgres "$data"
  runuser -u postgres -- "$PG_BIN/initdb" -D "$data" -A trust -U postgres >/dev/null
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$data" -w -l "$data/postgres.log" \
    -o "-c listen_addresses=127.0.0.1 -c port=$PGPORT -c unix_socket_directories=$data" \
    start >/dev/null
  PG_DATA=$data
}

stop_postgres() {
  [ -n "$PG_DATA" ] || return 0
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -w -m fast stop >/dev/null
  PG_DATA=""
}

# --- recording -----------------------------------------------------------------------------

# record NAME RECORDER-ARGS... [-- COMMAND ARGS]: into sample_traces/NAME/ (run from the
# repository's root, so that the files' metadata says `-o sample_traces/NAME`). With BG=1 the
# recorder runs in the background and RECORDER_PID is its pid.
record() {
  local name=$1; shift
  rm -rf "${HERE:?}/$name"
  log "$name: sockopt-trace record -o sample_traces/$name $*"
  if [ "${BG:-0}" = 1 ]; then
    "$ST" record -q -o "sample_traces/$name" "$@" &
    RECORDER_PID=$!
  else
    "$ST" record -q -o "sample_traces/$name" "$@"
  fi
}

stop_recorder() {  # the background recorder: SIGTERM closes its files cleanly
  [ -n "$RECORDER_PID" ] || return 0
  kill -TERM "$RECORDER_PID" 2>/dev/null
  wait "$RECORDER_PID" 2>/dev/null
  RECORDER_PID=""
}

# ab (apache2-utils) calls no getsockopt itself; -k keeps its connections open, so what is counted
# is nginx's per-request work. Its summary lines go to stderr.
ab_summary() { grep -E '^(Complete|Failed) requests' >&2; }

sample_nginx-before() {
  start_nginx before "$LOG_BEFORE"
  record nginx-before --comm nginx -- ab -q -k -n "$REQUESTS" -c 8 "http://127.0.0.1:$PROXY/" \
    | ab_summary
  stop_nginx
}

sample_nginx-after() {
  start_nginx after "$LOG_AFTER"
  record nginx-after --comm nginx -- ab -q -k -n "$REQUESTS" -c 8 "http://127.0.0.1:$PROXY/" \
    | ab_summary
  stop_nginx
}

# nginx-after's workload recorded with --context: which socket (peers), what it returned
# (values), which cgroup; the same requests, so its bytes per event compare with nginx-after's.
sample_nginx-context() {
  start_nginx after "$LOG_AFTER"
  record nginx-context --context --comm nginx -- ab -q -k -n "$REQUESTS" -c 8 \
    "http://127.0.0.1:$PROXY/" | ab_summary
  stop_nginx
}

# tests/workloads/steady.c, 3 runs a side (record --repeat: steady-*/1..3), replicates for diff:
# after, it has an extra call site (SO_SNDBUF), asks SO_RCVBUF twice as often, and its
# SO_PEERGROUPS calls copy 14 supplementary groups instead of 1 (about twice as slow).
steady_bin() {
  [ -x "$W/steady" ] || gcc -O2 -g -o "$W/steady" "$ROOT/tests/workloads/steady.c" -lpthread
}

sample_steady-before() {
  steady_bin
  record steady-before --repeat 3 -- "$W/steady" 600 3 >/dev/null
}

sample_steady-after() {
  steady_bin
  record steady-after --repeat 3 -- "$W/steady" 600 3 xrs >/dev/null
}

sample_curl() {
  # One curl process, 200 URLs at 40 per second, a new connection for each (Connection: close).
  start_nginx origin "$LOG_BEFORE"
  record curl -- curl -sS --fail --rate 40/s -H 'Connection: close' -o /dev/null \
    "http://127.0.0.1:$BACKEND/file-[1-200]"
  stop_nginx
}

sample_python-asyncio() {
  # Debian's CPython: 400 connections, 8 at a time, started at 100 per second.
  start_nginx origin "$LOG_BEFORE"
  record python-asyncio -- /usr/bin/python3 sample_traces/asyncio_client.py --port "$BACKEND" \
    --requests 400 --concurrency 8 --rate 100
  stop_nginx
}

sample_pgbench() {
  # pgbench's libpq client, a new connection per transaction (-C); the server is traced too.
  start_postgres
  "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PGPORT" -U postgres -i -s 1 -q postgres >/dev/null 2>&1
  record pgbench --comm postgres -- "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PGPORT" -U postgres \
    -C -S -c 2 -j 2 -t 500 postgres
  stop_postgres
}

sample_haproxy-nginx-unix() {
  # haproxy on 127.0.0.1 in front of nginx on a Unix socket whose log format asks $tcpinfo_rtt:
  # TCP_INFO on a Unix socket fails (EOPNOTSUPP) once per request. haproxy is traced from its
  # start (its listener setup asks several options) to its soft stop after the load.
  UNIX=1 start_nginx unix "$LOG_AFTER"
  cat >"$W/haproxy.cfg" <<EOF
global
  maxconn 256
defaults
  mode http
  timeout connect 2s
  timeout client 10s
  timeout server 10s
frontend web
  bind 127.0.0.1:$HAPROXY
  default_backend nginx
backend nginx
  server local $W/nginx.sock
EOF
  BG=1 record haproxy-nginx-unix --comm nginx -- haproxy -db -f "$W/haproxy.cfg"
  wait_listen "$HAPROXY" 60
  # haproxy -db writes no pid file: find it by its whole, unique command line (the recorder's
  # own command line is longer, so -x leaves it out).
  HAPROXY_PID=$(pgrep -x -f "haproxy -db -f $W/haproxy.cfg")
  ab -q -n 5000 -c 4 "http://127.0.0.1:$HAPROXY/" | ab_summary
  stop_haproxy  # soft stop: haproxy exits, and so the recording ends
  wait "$RECORDER_PID"
  RECORDER_PID=""
  stop_nginx
}

sample_stripped() {
  # tests/workloads/layers.c built with debug information, then stripped as distributions ship
  # programs; its debug file goes to sample_traces/stripped-debug/ in the .build-id layout of
  # /usr/lib/debug, for `sockopt-trace symbolize --debug-dir` (README).
  local debug="$HERE/stripped-debug" id
  gcc -O2 -g -fdebug-prefix-map="$ROOT/tests/workloads=." -o "$W/layers.full" \
    "$ROOT/tests/workloads/layers.c"
  id=$("$ROOT/.venv/bin/python" -c 'import sys; from sockopt_trace.recorder.elfsyms import ElfSymbols
print(ElfSymbols(sys.argv[1]).build_id)' "$W/layers.full")
  rm -rf "$debug"
  mkdir -p "$debug/.build-id/${id:0:2}"
  objcopy --only-keep-debug "$W/layers.full" "$debug/.build-id/${id:0:2}/${id:2}.debug"
  strip --strip-all -o "$W/layers" "$W/layers.full"
  record stripped -- "$W/layers" 1000 >/dev/null
}

write_versions() {
  local version
  version=$("$ROOT/.venv/bin/python" -c 'import sockopt_trace; print(sockopt_trace.__version__)')
  if [ ${#names[@]} -lt ${#ALL[@]} ]; then  # some samples only: say so beside the others
    for name in "${names[@]}"; do
      sed -i "/^re-recorded $name:/d" "$HERE/VERSIONS.txt"
      echo "re-recorded $name: $(date -u +%Y-%m-%dT%H:%M:%SZ), kernel $(uname -r)," \
        "sockopt-trace $version, $(gcc --version | head -1)" >>"$HERE/VERSIONS.txt"
    done
    return
  fi
  {
    echo "# What recorded the samples (written by sample_traces/record.sh)"
    echo "recorded: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "kernel: $(uname -r)"
    echo "os: Debian $(cat /etc/debian_version)"
    echo "sockopt-trace: $version"
    echo "gcc: $(gcc --version | head -1)"
    dpkg-query -W -f '${Package}: ${Version}\n' nginx apache2-utils curl python3 haproxy \
      "postgresql-[0-9]*" 2>/dev/null | grep -v ': $'
  } >"$HERE/VERSIONS.txt"
}

trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$ROOT"
[ "$install" = 0 ] || install_programs
bash scripts/setup.sh --system
ST="$ROOT/.venv/bin/sockopt-trace"
for p in $BACKEND $PROXY $HAPROXY $PGPORT; do port_free "$p"; done
W=$(mktemp -d /tmp/sockopt-samples.XXXXXX)
chmod 755 "$W"

for name in "${names[@]}"; do
  "sample_$name"
done
chmod -R a+rX "${names[@]/#/$HERE/}"
[[ " ${names[*]} " != *" stripped "* ]] || chmod -R a+rX "$HERE/stripped-debug"
write_versions
log "done: $(du -sh "$HERE" | cut -f1) in sample_traces/"
