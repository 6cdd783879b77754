#!/usr/bin/env bash
# The status page in headless Chromium (issue 11), against a real agent and a
# real etcd of its own (hack/lib/cluster.sh) and real containers: it applies a
# component, opens the page, scales it and applies a new template with the
# page open, and asserts on the DOM that replica counts, the progress bar and
# the revision change through server-sent events, with no reload and no
# console error or exception, that the events list grows live, and that a
# second agent with --api-tokens shows the token prompt and, once a read token
# is entered, the live board (hack/page/check.py, a Chrome DevTools Protocol
# client on --remote-debugging-pipe, Python's standard library only).
#
#   hack/page-check.sh [SHOTS_DIR]     screenshots (default: target/page-check/;
#                                      `hack/page-check.sh docs` renews the README's)
#
# Writes SHOTS_DIR/status-page.png (1920x1080) and status-page-phone.png
# (390x844 at 2x). Every container it starts carries the cluster's unique
# berth.root label and is removed on exit, failed or not.
set -uo pipefail
cd "$(dirname "$0")/.."
. hack/lib/cluster.sh

shots="${1:-target/page-check}"
CHROMIUM="${CHROMIUM:-chromium}"
command -v "$CHROMIUM" >/dev/null || { echo "page-check: $CHROMIUM is not installed: run hack/install-deps.sh" >&2; exit 1; }

image="berth-page/web:1"
BODY="berth status page check" hack/build-example-image.sh "$image" >/dev/null \
  || { echo "page-check: cannot build $image" >&2; exit 1; }

trap cluster_stop EXIT
cluster_start page-check || exit 1
# A second agent with tokens only: the page there must ask for a token.
read_token="page-check-read-$RANDOM$RANDOM"
printf 'tokens:\n  - {name: viewer, token: %s, role: read}\n' "$read_token" >"$DIR/tokens.yaml"
agent_start --api-tokens "$DIR/tokens.yaml" || exit 1
auth_http="$HTTP"
agent_start --api-anonymous-read || exit 1

AUTH_URL="http://$auth_http/" READ_TOKEN="$read_token" BERTH="$(realpath "$BERTH")" BERTH_ETCD="$ETCD" BERTH_ROOT="$ROOT" CHROMIUM="$CHROMIUM" \
  python3 hack/page/check.py "http://$HTTP/" "$image" "$shots"
rc=$?
[ "$rc" -eq 0 ] || echo "page-check: FAILED (logs under $DIR, kept with KEEP_LOGS=1)" >&2
exit "$rc"
