#!/usr/bin/env bash
# Rollout step latency from the cluster events (issue 8, BENCHMARKS.md):
# four release `berth agent`s on a throwaway etcd roll 20 replicas from one
# image to another, ROUNDS times; for each rollout it prints the total and
# the time from an agent's Ready/Stopped event (stamped when the agent sees
# the change) to the coordinator's next RolloutStep event (stamped after
# the step's fenced write).
#
#   cargo build --release --bin berth && cargo bench --bench rollout  # builds the images
#   hack/bench/step-latency.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS="${1:-3}"
B="$PWD/target/release/berth"
dir="$(mktemp -d)"
port=24791
E=(--etcd "http://127.0.0.1:$port" --root /steplat)
cleanup() {
  pkill -f -- "--root /steplat agent" || true
  [ -n "${etcd_pid:-}" ] && kill "$etcd_pid" 2>/dev/null || true
  docker ps -aq --filter label=berth.root=/steplat | xargs -r docker rm -f >/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
etcd --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$port" \
  --advertise-client-urls "http://127.0.0.1:$port" --listen-peer-urls "http://127.0.0.1:$((port + 1))" \
  --unsafe-no-fsync >"$dir/etcd.log" 2>&1 &
etcd_pid=$!
sleep 2
for i in 0 1 2 3; do
  "$B" "${E[@]}" agent --node "sl$i" --address "127.0.0.$((i + 2))" --proxy-bind "127.0.0.$((i + 2))" \
    --lease-ttl 5s --forward-port $((27946 + i)) >"$dir/agent$i.log" 2>&1 &
done
sleep 3
manifest() {
  cat <<EOF
apiVersion: berth/v1
kind: Project
metadata: {name: bench}
---
apiVersion: berth/v1
kind: Component
metadata: {name: web, project: bench}
spec:
  image: $1
  command: [/bin/sh, -c, "/bin/httpd -f -p 8080 -h /www & trap 'kill \$!; exit 0' TERM; wait"]
  ports: [{name: http, container: 8080, external: 28080, protocol: http}]
  placement: {replicas: 20}
  readyChecks: [{http: {port: 8080, path: /}, interval: 1s, timeout: 2s}]
  termination: {signals: [SIGTERM], gracePeriod: 2s}
  rollout: {maxUnavailable: 1, maxSurge: 1}
EOF
}
for _ in $(seq "$ROUNDS"); do
  manifest berth-bench/roll:1 | "$B" "${E[@]}" apply -f - >/dev/null
  "$B" "${E[@]}" rollout status web -p bench --timeout 120s >/dev/null
  manifest berth-bench/roll:2 | "$B" "${E[@]}" apply -f - >/dev/null
  "$B" "${E[@]}" rollout status web -p bench --timeout 120s >/dev/null
  "$B" "${E[@]}" events -p bench -o json >"$dir/events.json"
  python3 - "$dir/events.json" <<'PY'
import json, statistics, sys
from datetime import datetime
t = lambda s: datetime.fromisoformat(s.replace('Z', '+00:00'))
ev = sorted(json.load(open(sys.argv[1]))['items'], key=lambda e: e['time'])
# The last rollout: from its first step to its completion.
end = max(i for i, e in enumerate(ev) if e['reason'] == 'RolloutComplete')
first = [i for i, e in enumerate(ev[:end]) if e['reason'] == 'RolloutComplete']
ev = ev[(first[-1] + 1 if first else 0):end + 1]
start = next(t(e['time']) for e in ev if e['reason'] == 'RolloutStep')
gaps = []
for i, e in enumerate(ev):
    if e['reason'] in ('Ready', 'Stopped'):
        for f in ev[i + 1:]:
            if f['reason'] == 'RolloutStep':
                gaps.append((t(f['time']) - t(e['time'])).total_seconds() * 1000)
                break
            if f['reason'] in ('Ready', 'Stopped'):
                break
gaps.sort()
print(f"rollout {(t(ev[-1]['time']) - start).total_seconds():.2f} s; change -> step: "
      f"n={len(gaps)} median {statistics.median(gaps):.1f} ms p90 {gaps[int(len(gaps) * 0.9)]:.1f} ms max {gaps[-1]:.1f} ms")
PY
  "$B" "${E[@]}" delete component web -p bench >/dev/null
  sleep 4
  ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$port" del --prefix /steplat/events/ >/dev/null
done
