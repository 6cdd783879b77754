#!/usr/bin/env bash
# Builds the quick start's image with no registry: a FROM scratch image holding
# Debian's static busybox (every applet linked in /bin), /www/index.html, and
# a default command serving it: `httpd -f -p 8080 -h /www`.
#
#   hack/build-example-image.sh [TAG]     (default: berth-example/hello:1)
#
# BODY sets the page's text (default: "hello from berth"). Prints the tag.
# The tests build the same kind of image through the API
# (berth::docker::BusyboxImage); this is the docker CLI version.
set -euo pipefail

tag="${1:-berth-example/hello:1}"
body="${BODY:-hello from berth}"

busybox="${BERTH_BUSYBOX:-}"
if [ -z "$busybox" ]; then
  for p in /bin/busybox /usr/bin/busybox; do
    if [ -x "$p" ]; then busybox="$p"; break; fi
  done
fi
if [ -z "$busybox" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing busybox-static..." >&2
    apt-get install -y -q busybox-static >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q busybox-static >/dev/null; }
    busybox=/bin/busybox
  else
    echo "error: no static busybox found: install Debian's busybox-static (or set BERTH_BUSYBOX)" >&2
    exit 1
  fi
fi
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/rootfs/bin" "$dir/rootfs/etc" "$dir/rootfs/www" "$dir/rootfs/tmp"
chmod 1777 "$dir/rootfs/tmp"
cp "$busybox" "$dir/rootfs/bin/busybox"
# Link the applets here rather than with a RUN step: no build container, so it
# also works on an engine without a bridge network.
for applet in $("$busybox" --list); do
  case "$applet" in busybox|*/*) continue ;; esac
  ln -s busybox "$dir/rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$dir/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$dir/rootfs/etc/group"
printf '%s\n' "$body" > "$dir/rootfs/www/index.html"
cat > "$dir/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs /
ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin
EXPOSE 8080
CMD ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]
DOCKERFILE

if ! DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$dir" >"$dir/build.log" 2>&1; then
  cat "$dir/build.log" >&2
  echo "error: docker build of $tag failed" >&2
  exit 1
fi
echo "$tag"
