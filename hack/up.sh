#!/usr/bin/env bash
# The README's "run berth" command: a one-machine cluster with the example app.
# Installs what is missing (etcd, protoc, Docker), builds berth and the example
# image, then runs `berth up -f manifests/examples/hello.yaml` (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
hack/install-deps.sh
hack/build-example-image.sh berth-example/hello:1 >/dev/null
cargo build --release --bin berth
exec target/release/berth up -f "${1:-manifests/examples/hello.yaml}"
