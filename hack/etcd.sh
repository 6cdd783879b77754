#!/usr/bin/env bash
# A throwaway etcd for developers and benchmarks: free loopback ports, a temp
# data dir, fast elections. Prints its endpoint (http://127.0.0.1:PORT).
#
#   hack/etcd.sh [start]   start one (or print the endpoint of the one running)
#   hack/etcd.sh env       print `export BERTH_ETCD=...` (eval "$(hack/etcd.sh env)")
#   hack/etcd.sh status    print the endpoint if it answers, exit 1 otherwise
#   hack/etcd.sh stop      stop it and delete its data
#
# State (pid, endpoint, data dir) lives in $BERTH_ETCD_STATE
# (default: /tmp/berth-etcd.<uid>). The log is <data dir>/etcd.log.
set -euo pipefail

state="${BERTH_ETCD_STATE:-/tmp/berth-etcd.$(id -u)}"

die() { echo "hack/etcd.sh: $*" >&2; exit 1; }

command -v etcd >/dev/null 2>&1 || die "etcd is not installed: run hack/install-deps.sh"

read_state() {
  pid="" endpoint="" dir=""
  [ -f "$state" ] || return 1
  # shellcheck disable=SC1090
  . "$state"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

answers() {
  if command -v etcdctl >/dev/null 2>&1; then
    ETCDCTL_API=3 etcdctl --endpoints "$1" --dial-timeout 1s --command-timeout 1s \
      endpoint health >/dev/null 2>&1
  else
    (exec 3<>"/dev/tcp/127.0.0.1/${1##*:}") 2>/dev/null
  fi
}

# A port nothing listens on (random in 20000-59999; etcd's own bind is the
# final check, so a start that loses a race is retried).
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
}

start() {
  if read_state; then
    echo "$endpoint"
    return
  fi
  local attempt client peer ep data
  for attempt in 1 2 3 4 5; do
    client=$(free_port)
    peer=$(free_port)
    [ "$client" != "$peer" ] || continue
    ep="http://127.0.0.1:$client"
    data=$(mktemp -d "${TMPDIR:-/tmp}/berth-etcd.XXXXXX")
    nohup etcd --name dev --data-dir "$data/data" \
      --listen-client-urls "$ep" --advertise-client-urls "$ep" \
      --listen-peer-urls "http://127.0.0.1:$peer" \
      --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
      --initial-cluster "dev=http://127.0.0.1:$peer" \
      --heartbeat-interval 10 --election-timeout 100 \
      >"$data/etcd.log" 2>&1 </dev/null &
    local p=$!
    for _ in $(seq 1 100); do
      if ! kill -0 "$p" 2>/dev/null; then break; fi
      if answers "$ep"; then
        printf 'pid=%s\nendpoint=%s\ndir=%s\n' "$p" "$ep" "$data" >"$state"
        echo "$ep"
        return
      fi
      sleep 0.1
    done
    kill "$p" 2>/dev/null || true
    if grep -q "address already in use" "$data/etcd.log" 2>/dev/null; then
      rm -rf "$data"
      continue
    fi
    echo "hack/etcd.sh: etcd did not start; its log ($data/etcd.log) ends with:" >&2
    tail -n 10 "$data/etcd.log" >&2 || true
    exit 1
  done
  die "no free port pair after 5 attempts"
}

stop() {
  if read_state; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  if [ -n "${dir:-}" ] && [ -d "$dir" ]; then
    case "$dir" in
      */berth-etcd.*) rm -rf "$dir" ;;
    esac
  fi
  rm -f "$state"
  echo "stopped" >&2
}

case "${1:-start}" in
  start) start ;;
  env) echo "export BERTH_ETCD=$(start)" ;;
  status)
    if read_state && answers "$endpoint"; then echo "$endpoint"; else exit 1; fi ;;
  stop) stop ;;
  -h|--help) sed -n '2,12p' "$0" ;;
  *) die "usage: hack/etcd.sh [start|env|status|stop]" ;;
esac
