#!/usr/bin/env bash
# Installs what berth's build, tests and quick start need, then proves that each
# piece really works (not just that a command exists). Safe to run again: a
# second run installs nothing.
#
# Every Debian package berth needs is named in PACKAGES below, by explicit name
# (apt's Recommends are never relied on: that is how libprotobuf-dev, which
# etcd-client's build needs, once went missing on a fresh machine). After
# installing, each one is checked with `dpkg -s`.
#
# A Docker engine must answer `docker info`; if none does, docker.io is
# installed and dockerd is started in the background (log: /tmp/dockerd.log),
# with --storage-driver=vfs --bridge=none --iptables=false as a fallback for
# tight sandboxes.
#
# Python packages (PYPI_PACKAGES, pinned) go into .venv/ at the repository's
# top, made with the machine's python3 (3.11 or newer).
#
#   hack/install-deps.sh [--no-docker] [--bench]
#
# --bench also installs what `cargo bench --bench proxy` compares against
# (BENCH_PACKAGES: wrk, haproxy); the tests never need them.
#
# Runs as root, or through sudo when it is available.
set -euo pipefail

# The one list of Debian packages that the build, the tests and the quick
# start need, beyond what a fresh machine of this kind starts with (a Rust
# toolchain, gcc, git, iproute2, ca-certificates). curl and openssl usually
# come with it too, but the tests use them, so they are named here.
PACKAGES=(
  etcd-server        # etcd: tests, benchmarks and `berth up` start their own
  etcd-client        # etcdctl: hack/etcd.sh and debugging
  protobuf-compiler  # protoc: etcd-client's build
  libprotobuf-dev    # google/protobuf/*.proto: etcd-client's build (only a Recommends of protoc)
  busybox-static     # a static /bin/busybox: the test and example images
  openssl            # the TLS tests make their certificates with it
  curl               # the API's TLS test is an HTTPS client
  chromium           # hack/page-check.sh: the status page in a headless browser
  python3-venv       # `python3 -m venv` for .venv/ (Debian's python3 lacks ensurepip without it)
)
# PyPI packages, by explicit name and version, installed into .venv/ (ignored
# by git): hack/fuzz-api.sh runs schemathesis from there.
PYPI_PACKAGES=(
  schemathesis==4.32.5
)
VENV=.venv
# -sys crates in Cargo.lock and why none needs a package here:
# linux-raw-sys is pure Rust; core-foundation-sys (chrono's iana-time-zone),
# js-sys and windows-sys are built on macOS, wasm and Windows only.
# Installed only when no Docker engine answers.
DOCKER_PACKAGES=(docker.io)
# Installed only with --bench: the proxy benchmark's load generator and peer.
BENCH_PACKAGES=(
  wrk                # HTTP load generator (benches/proxy.rs)
  haproxy            # the peer proxy measured in the same run (benches/proxy.rs)
)

with_docker=1
for arg in "$@"; do
  case "$arg" in
    --no-docker) with_docker=0 ;;
    --bench) PACKAGES+=("${BENCH_PACKAGES[@]}") ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "install-deps: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

say() { echo "install-deps: $*" >&2; }
die() { say "$*"; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    say "not root and no sudo: can only check, not install"
  fi
fi
as_root() {
  if [ "$(id -u)" -ne 0 ] && [ ${#SUDO[@]} -eq 0 ]; then
    say "cannot run as root: $*"
    return 1
  fi
  "${SUDO[@]}" "$@"
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

apt_updated=0
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    say "apt-get not found: install these yourself: $*"
    return 1
  fi
  if [ "$apt_updated" -eq 0 ]; then
    say "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  say "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- 1. install what is missing, by explicit name -----------------------------
missing=()
for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
fi
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || die "package $p is still not installed (apt-get install $p)"
done

# PyPI packages into the venv, each at its pinned version.
cd "$(dirname "$0")/.."
if [ ! -x "$VENV/bin/python" ]; then
  say "python3 -m venv $VENV"
  python3 -m venv "$VENV" || die "cannot make a venv with python3 (Debian: apt-get install python3-venv)"
fi
for spec in "${PYPI_PACKAGES[@]}"; do
  name="${spec%%==*}" want="${spec##*==}"
  # `pip show` fails for a package not yet installed: that is "have nothing",
  # not an error (set -e with pipefail would end the script here silently).
  have=$("$VENV/bin/python" -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p' || true)
  if [ "$have" != "$want" ]; then
    say "pip install $spec"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$spec" || die "pip install $spec failed"
  fi
done

# --- 2. prove each prerequisite works ---------------------------------------------
scratch="$(mktemp -d)"
etcd_pid=""
cleanup() {
  [ -n "$etcd_pid" ] && kill "$etcd_pid" 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT

# protoc must find the well-known types, as etcd-client's build does.
cat >"$scratch/check.proto" <<'EOF'
syntax = "proto3";
import "google/protobuf/descriptor.proto";
message Check { google.protobuf.FileDescriptorProto f = 1; }
EOF
protoc --proto_path="$scratch" --descriptor_set_out=/dev/null "$scratch/check.proto" 2>"$scratch/protoc.err" \
  || die "protoc cannot compile a file importing google/protobuf/descriptor.proto ($(head -c 200 "$scratch/protoc.err")): apt-get install protobuf-compiler libprotobuf-dev"

# The busybox copied into FROM-scratch images must be statically linked.
[ -x /bin/busybox ] || die "/bin/busybox is missing: apt-get install busybox-static"
if command -v ldd >/dev/null 2>&1 && ldd /bin/busybox >/dev/null 2>&1; then
  die "/bin/busybox is dynamically linked: apt-get install busybox-static"
fi
/bin/busybox true || die "/bin/busybox does not run: apt-get install --reinstall busybox-static"

# schemathesis must run at its pinned version.
st_version=$("$VENV/bin/schemathesis" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n 1)
[ "schemathesis==$st_version" = "${PYPI_PACKAGES[0]}" ] \
  || die "schemathesis in $VENV does not run at ${PYPI_PACKAGES[0]#*==} (got '${st_version}'): rm -rf $VENV and run again"

# Chromium must render a page headless (as root it needs --no-sandbox).
chromium_args=(--headless=new --disable-gpu --dump-dom)
[ "$(id -u)" -ne 0 ] || chromium_args+=(--no-sandbox)
printf '<p id=ok>ok</p>' >"$scratch/page.html"
timeout 60 chromium "${chromium_args[@]}" "file://$scratch/page.html" 2>/dev/null | grep -q 'id="ok"' \
  || die "chromium does not render a page headless: apt-get install chromium"

# etcd must start and serve a read, on free loopback ports.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)); }
client_port=$(free_port)
peer_port=$(free_port)
etcd --name check --data-dir "$scratch/etcd" \
  --listen-client-urls "http://127.0.0.1:$client_port" --advertise-client-urls "http://127.0.0.1:$client_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "check=http://127.0.0.1:$peer_port" >"$scratch/etcd.log" 2>&1 &
etcd_pid=$!
etcd_ok=0
for _ in $(seq 1 50); do
  if ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$client_port" --command-timeout=1s put /install-deps ok >/dev/null 2>&1 \
    && ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$client_port" --command-timeout=1s get /install-deps --print-value-only 2>/dev/null | grep -qx ok; then
    etcd_ok=1
    break
  fi
  kill -0 "$etcd_pid" 2>/dev/null || break
  sleep 0.2
done
[ "$etcd_ok" -eq 1 ] || die "etcd did not start and serve a read ($(tail -n 2 "$scratch/etcd.log" | tr '\n' ' ')): apt-get install etcd-server etcd-client"
kill "$etcd_pid" 2>/dev/null || true
wait "$etcd_pid" 2>/dev/null || true
etcd_pid=""

command -v cargo >/dev/null 2>&1 || say "note: cargo is not on PATH; berth builds with a Rust toolchain (rustup.rs)"

if [ "$with_docker" -eq 0 ]; then
  say "ok (etcd $(etcd --version 2>/dev/null | sed -n 's/^etcd Version: //p'), protoc $(protoc --version | cut -d' ' -f2), schemathesis $st_version, docker skipped)"
  exit 0
fi

# --- 3. a Docker engine that answers -----------------------------------------------
docker_answers() { timeout 10 docker info >/dev/null 2>&1; }

# Starts dockerd in the background with extra flags; waits until it answers.
start_dockerd() {
  say "starting dockerd $* (log: /tmp/dockerd.log)"
  local pid
  pid=$(as_root sh -c 'nohup dockerd "$@" >>/tmp/dockerd.log 2>&1 </dev/null & echo $!' dockerd "$@")
  for _ in $(seq 1 60); do
    if docker_answers; then return 0; fi
    if ! as_root kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.5
  done
  say "dockerd $* did not answer; last lines of /tmp/dockerd.log:"
  tail -n 5 /tmp/dockerd.log >&2 || true
  as_root kill "$pid" 2>/dev/null || true
  # Wait for it to release its pid file and socket.
  for _ in $(seq 1 20); do
    as_root kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  return 1
}

if ! docker_answers; then
  if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    apt_install "${DOCKER_PACKAGES[@]}"
    for p in "${DOCKER_PACKAGES[@]}"; do
      dpkg -s "$p" >/dev/null 2>&1 || die "package $p is still not installed (apt-get install $p)"
    done
  fi
  if ! docker_answers; then
    if pgrep -x dockerd >/dev/null 2>&1; then
      die "dockerd runs but \`docker info\` fails for $(id -un): is the user in the docker group?"
    fi
    start_dockerd \
      || start_dockerd --storage-driver=vfs --bridge=none --iptables=false \
      || die "no Docker engine answers: apt-get install docker.io, then start dockerd"
  fi
fi
docker_answers || die "the Docker engine does not answer \`docker info\`: apt-get install docker.io"

say "ok (etcd $(etcd --version 2>/dev/null | sed -n 's/^etcd Version: //p'), protoc $(protoc --version | cut -d' ' -f2), schemathesis $st_version, docker $(docker version --format '{{.Server.Version}}' 2>/dev/null))"
