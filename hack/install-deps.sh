#!/usr/bin/env bash
# Installs what berth's build, tests and quick start need, and only what is
# missing (safe to run again: a second run changes nothing):
#   - etcd and etcdctl      (Debian: etcd-server, etcd-client)
#   - protoc                (Debian: protobuf-compiler; etcd-client's build needs it)
#   - a static /bin/busybox (Debian: busybox-static; the test images are built from it)
#   - a Docker engine that answers `docker info` (Debian: docker.io); if none
#     answers, dockerd is started in the background (log: /tmp/dockerd.log),
#     with --storage-driver=vfs --bridge=none --iptables=false as a fallback for
#     tight sandboxes.
#
#   hack/install-deps.sh [--no-docker]
#
# Runs as root, or through sudo when it is available.
set -euo pipefail

with_docker=1
for arg in "$@"; do
  case "$arg" in
    --no-docker) with_docker=0 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "install-deps: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

say() { echo "install-deps: $*" >&2; }

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

# A busybox that works inside a FROM scratch image must be statically linked.
static_busybox() {
  [ -x /bin/busybox ] || return 1
  if command -v ldd >/dev/null 2>&1 && ldd /bin/busybox >/dev/null 2>&1; then
    return 1 # dynamically linked
  fi
  return 0
}

packages=()
command -v etcd >/dev/null 2>&1 || packages+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || packages+=(etcd-client)
command -v protoc >/dev/null 2>&1 || packages+=(protobuf-compiler)
static_busybox || packages+=(busybox-static)
if [ ${#packages[@]} -gt 0 ]; then
  apt_install "${packages[@]}"
fi
for tool in etcd etcdctl protoc; do
  command -v "$tool" >/dev/null 2>&1 || { say "$tool is still missing"; exit 1; }
done
static_busybox || { say "a static /bin/busybox is still missing"; exit 1; }

if ! command -v cargo >/dev/null 2>&1; then
  say "note: cargo is not on PATH; berth builds with a Rust toolchain (rustup.rs)"
fi

if [ "$with_docker" -eq 0 ]; then
  say "ok (etcd $(etcd --version 2>/dev/null | sed -n 's/^etcd Version: //p'), docker skipped)"
  exit 0
fi

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
    apt_install docker.io
  fi
  if ! docker_answers; then
    if pgrep -x dockerd >/dev/null 2>&1; then
      say "dockerd runs but \`docker info\` fails for $(id -un): is the user in the docker group?"
      exit 1
    fi
    start_dockerd \
      || start_dockerd --storage-driver=vfs --bridge=none --iptables=false \
      || { say "no Docker engine answers"; exit 1; }
  fi
fi

say "ok (etcd $(etcd --version 2>/dev/null | sed -n 's/^etcd Version: //p'), docker $(docker version --format '{{.Server.Version}}' 2>/dev/null))"
