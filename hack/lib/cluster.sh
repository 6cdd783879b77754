# A throwaway berth cluster for the API checks (hack/fuzz-api.sh,
# hack/page-check.sh): its own etcd on free loopback ports and `berth agent`s
# with unique node names under a unique root. Sourced, not run.
#
#   cluster_start NAME     etcd only; sets DIR, ETCD, ROOT
#   agent_start [ARGS...]  one more agent, node "$ROOT-<n>" minus the slash;
#                          sets NODE and HTTP (its --http address)
#   cluster_stop           kills them, removes every container carrying
#                          berth.root=$ROOT, deletes DIR (unless KEEP_LOGS)
#
# The caller sets `trap cluster_stop EXIT`, so a failure cleans up too.
# BERTH (default target/debug/berth) is the binary; it must be built.

BERTH="${BERTH:-target/debug/berth}"
DIR="" ETCD="" ROOT="" NODE="" HTTP=""
pids=()

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Polls `$@` until it succeeds, for at most $1 seconds (no fixed sleeps).
wait_for() {
  local secs="$1"; shift
  local end=$(($(date +%s) + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.2
  done
}

# berth against this cluster's etcd and root.
b() { "$BERTH" --etcd "$ETCD" --root "$ROOT" "$@"; }

cluster_start() {
  local name="$1"
  [ -x "$BERTH" ] || { echo "$name: $BERTH is not built (cargo build --bin berth)" >&2; return 1; }
  command -v etcd >/dev/null || { echo "$name: etcd is not installed (hack/install-deps.sh)" >&2; return 1; }
  DIR="$(mktemp -d "/tmp/$name.XXXXXX")"
  ROOT="/$name-$$-$RANDOM"
  local cport pport
  cport=$(free_port) pport=$(free_port)
  ETCD="http://127.0.0.1:$cport"
  etcd --name "$name" --data-dir "$DIR/etcd" --heartbeat-interval 10 --election-timeout 100 \
    --listen-client-urls "$ETCD" --advertise-client-urls "$ETCD" \
    --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "$name=http://127.0.0.1:$pport" >"$DIR/etcd.log" 2>&1 &
  pids+=($!)
  wait_for 20 b get projects || { echo "$name: etcd did not answer (log: $DIR/etcd.log)" >&2; return 1; }
}

agent_start() {
  NODE="${ROOT#/}-${#pids[@]}"
  HTTP="127.0.0.1:$(free_port)"
  "$BERTH" agent --etcd "$ETCD" --root "$ROOT" --node "$NODE" --http "$HTTP" \
    --proxy-bind 127.0.0.1 --forward-port 0 "$@" >"$DIR/$NODE.log" 2>&1 &
  pids+=($!)
  wait_for 60 curl -sf "http://$HTTP/readyz" || {
    echo "agent $NODE did not get ready (log: $DIR/$NODE.log)" >&2
    tail -n 5 "$DIR/$NODE.log" >&2
    return 1
  }
}

# A signal ends the script through its EXIT trap (cluster_stop).
trap 'exit 143' TERM
trap 'exit 130' INT

cluster_stop() {
  # `timeout` and Ctrl-C signal the whole process group, once more may come:
  # the cleanup must not be cut short by it.
  trap '' TERM INT
  local i pid end
  # Agents first (newest first), etcd last; SIGKILL after 10 s.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid="${pids[$i]}"
    kill "$pid" 2>/dev/null
    end=$(($(date +%s) + 10))
    while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  pids=()
  if [ -n "$ROOT" ] && command -v docker >/dev/null; then
    # A create an agent sent just before it died still lands in the engine,
    # so removal repeats until the label has listed nothing for 2 s (at
    # most 20 s).
    local ids quiet_since end
    quiet_since="" end=$(($(date +%s) + 20))
    while [ "$(date +%s)" -lt "$end" ]; do
      ids=$(docker ps -aq --filter "label=berth.root=$ROOT" 2>/dev/null || true)
      if [ -n "$ids" ]; then
        # shellcheck disable=SC2086
        docker rm -f $ids >/dev/null 2>&1 || true
        quiet_since=""
      elif [ -z "$quiet_since" ]; then
        quiet_since=$(date +%s)
      elif [ $(($(date +%s) - quiet_since)) -ge 2 ]; then
        break
      fi
      sleep 0.5
    done
  fi
  if [ -n "$DIR" ] && [ -z "${KEEP_LOGS:-}" ]; then rm -rf "$DIR"; fi
  return 0
}
