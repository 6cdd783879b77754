#!/usr/bin/env bash
# Fuzzes the REST API with schemathesis against the committed api/openapi.json
# and real `berth agent`s with a real etcd (their own, on free loopback ports,
# a unique root and node names: hack/lib/cluster.sh). Fails on any 5xx and on
# any response that does not conform to the document (status code, content
# type, headers, body schema). Configuration: hack/schemathesis.toml.
# Every JSON answer, success or error, has its body schema in the document
# (src/api/bodies.rs), so bodies are checked too. `?watch=true` (an event
# stream) and logs (text/plain) have none; watches are not fuzzed.
#
#   hack/fuzz-api.sh        (hack/install-deps.sh installs schemathesis into
#                            .venv/; the berth binary must be built)
#
# Two runs, each against its own agent:
#  1. admin: an agent with --api-tokens only, every request with an admin
#     token (writes included); schemathesis also checks that requests
#     without the token are refused (401).
#  2. anonymous: an agent with --api-anonymous-read, no token: reads answer,
#     writes must answer 403 as documented.
# Bounded: FUZZ_EXAMPLES test cases per operation (default 150), and
# `timeout` FUZZ_SECS per run (default 240). The seed is fixed (FUZZ_SEED).
#
# Checks: `--checks all`, minus those that cannot apply (why, per check):
#  - positive_data_acceptance: expects every schema-valid request to be
#    accepted, but a well-formed name can rightly be 404 (no such object) and
#    a well-formed manifest rightly 400 (it does not validate); an OpenAPI
#    document cannot say which names exist.
#  - use_after_free, ensure_resource_availability: stateful checks following
#    OpenAPI links from a create to a read; the document has no links
#    (`apply` takes a manifest, not a resource).
# The anonymous run uses the committed document with its top-level
# `security` made optional (`[{}, {"bearer": []}]`, OpenAPI's way to say so),
# which is what --api-anonymous-read means; otherwise schemathesis takes every
# answered request without a token as a failure of auth.
set -uo pipefail
cd "$(dirname "$0")/.."
. hack/lib/cluster.sh

SCHEMATHESIS="${SCHEMATHESIS:-.venv/bin/schemathesis}"
examples="${FUZZ_EXAMPLES:-150}"
secs="${FUZZ_SECS:-240}"
seed="${FUZZ_SEED:-11}"
admin="fuzz-admin-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
excluded=positive_data_acceptance,use_after_free,ensure_resource_availability

[ -x "$SCHEMATHESIS" ] || { echo "fuzz-api: $SCHEMATHESIS is missing: run hack/install-deps.sh" >&2; exit 1; }
trap cluster_stop EXIT
cluster_start fuzz-api || exit 1
printf 'tokens:\n  - {name: fuzz, token: %s, role: admin}\n' "$admin" >"$DIR/tokens.yaml"

# Objects for the fuzzer to find (a stopped component runs no container).
b apply -f - >/dev/null <<'YAML' || { echo "fuzz-api: seeding failed" >&2; exit 1; }
apiVersion: berth/v1
kind: Project
metadata: {name: fuzz}
---
apiVersion: berth/v1
kind: Component
metadata: {name: web, project: fuzz}
spec: {image: 'busybox:1', state: stopped, placement: {replicas: 1}}
YAML

# The document as an agent with --api-anonymous-read serves it.
python3 - api/openapi.json "$DIR/openapi-anonymous.json" <<'PY' || exit 1
import json, sys
doc = json.load(open(sys.argv[1]))
doc["security"] = [{}, {"bearer": []}]
json.dump(doc, open(sys.argv[2], "w"), indent=2)
PY

# One schemathesis run of document $2 against the agent at $HTTP (node $NODE).
run() {
  local label="$1" doc="$2"; shift 2
  sed "s/@NODE@/$NODE/g" hack/schemathesis.toml >"$DIR/schemathesis.toml"
  echo "fuzz-api: $label run against http://$HTTP" >&2
  timeout "$secs" "$SCHEMATHESIS" --config-file "$DIR/schemathesis.toml" \
    run "$doc" --url "http://$HTTP" \
    --checks all --exclude-checks "$excluded" \
    --max-examples "$examples" --seed "$seed" --request-timeout 10 --workers 1 \
    --suppress-health-check too_slow,filter_too_much \
    "$@"
}

failed=0
agent_start --api-tokens "$DIR/tokens.yaml" || exit 1
run admin api/openapi.json -H "Authorization: Bearer $admin" || failed=1
curl -sf "http://$HTTP/healthz" >/dev/null || { echo "fuzz-api: agent $NODE stopped answering" >&2; failed=1; }

agent_start --api-anonymous-read || exit 1
run anonymous "$DIR/openapi-anonymous.json" || failed=1
curl -sf "http://$HTTP/healthz" >/dev/null || { echo "fuzz-api: agent $NODE stopped answering" >&2; failed=1; }

if [ "$failed" -ne 0 ]; then
  echo "fuzz-api: FAILED (agent logs under $DIR, kept with KEEP_LOGS=1)" >&2
fi
exit "$failed"
