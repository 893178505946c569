#!/usr/bin/env bash
# The container image, checked as an operator would (issue #23): build the
# image around a Portcullis binary (docker/Dockerfile.binary) on a Debian
# base made here with debootstrap (cached in target/container/), run it with
# podman, and check: /readyz answers; the process is not root; the image's
# health check command works inside; a user created before a restart is
# there after it (the /data volume); the master key comes from a secret file;
# a read-only root filesystem works; SIGTERM stops it cleanly within the
# grace period; no secret or test data is in the image's layers.
#
#   tests/container/run.sh [BINARY]     (default target/debug/portcullis)
#
# Installs podman, runc and debootstrap with apt-get when they are missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/debug/portcullis}
work=target/container
mkdir -p "$work"
fail() { echo "container check FAILED: $*" >&2; exit 1; }
step() { echo "--- $*"; }

if ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null || ! command -v runc >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null
fi
# Podman's defaults do not work on these machines (no systemd cgroups, no ulimit changes).
cat > "$work/containers.conf" <<CONF
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
CONF
export CONTAINERS_CONF=$PWD/$work/containers.conf
pm() { podman --runtime runc "$@"; }

base=localhost/debian:bookworm-slim
if ! pm image exists "$base"; then
  step "base image from debootstrap (cached: $work/rootfs.tar)"
  if [ ! -f "$work/rootfs.tar" ]; then
    rm -rf "$work/rootfs"
    debootstrap --variant=minbase --include=ca-certificates bookworm "$work/rootfs" >"$work/debootstrap.log" 2>&1 || fail "debootstrap (see $work/debootstrap.log)"
    tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
    rm -rf "$work/rootfs"
  fi
  pm import "$work/rootfs.tar" "$base" >/dev/null
fi

step "image around $bin"
ctx=$work/context
rm -rf "$ctx" && mkdir -p "$ctx/data"
cp "$bin" "$ctx/portcullis"
pm build -q --format docker --build-arg RUNTIME_IMAGE="$base" -f docker/Dockerfile.binary -t localhost/portcullis:test "$ctx" >/dev/null

name=portcullis-ct-$$
vol=portcullis-ct-data-$$
secret_dir=$work/secret-$$
port=18391
cleanup() {
  pm rm -f "$name" >/dev/null 2>&1 || true
  pm volume rm -f "$vol" >/dev/null 2>&1 || true
  rm -rf "$secret_dir"
}
trap cleanup EXIT
mkdir -p "$secret_dir"
key=$(head -c 32 /dev/urandom | base64)
printf '%s' "$key" > "$secret_dir/master_key"
chmod 644 "$secret_dir/master_key"
pm volume create "$vol" >/dev/null

run() {
  # (The health check is run by hand below: podman's timer needs systemd.)
  pm run -d --name "$name" --network host --read-only --no-healthcheck \
    -v "$vol:/data" -v "$PWD/$secret_dir/master_key:/run/secrets/master_key:ro" \
    -e PORTCULLIS_BIND=127.0.0.1:$port -e PORTCULLIS_ISSUER=http://127.0.0.1:$port \
    -e PORTCULLIS_MASTER_KEY_FILE=/run/secrets/master_key \
    localhost/portcullis:test >/dev/null
}
ready() {
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  pm logs "$name" >&2 || true
  fail "/readyz did not answer"
}

step "start (read-only root, master key from a secret file, /data volume)"
run
ready
uid=$(pm top "$name" huser | tail -n +2 | head -1 | tr -d ' ')
[ "$uid" != "0" ] && [ "$uid" != "root" ] || fail "the server runs as root"
pm exec "$name" /usr/local/bin/portcullis healthcheck || fail "the health check command fails inside the container"
pm exec -e PORTCULLIS_BIND=127.0.0.1:$port "$name" /usr/local/bin/portcullis user add cara --email cara@example.com >/dev/null \
  || fail "cannot create a user with the CLI inside the container"

step "SIGTERM stops it cleanly within the grace period"
start=$(date +%s)
pm stop -t 10 "$name" >/dev/null
took=$(( $(date +%s) - start ))
code=$(pm inspect "$name" --format '{{.State.ExitCode}}')
[ "$code" = "0" ] || fail "exit code $code after SIGTERM"
[ "$took" -lt 10 ] || fail "stopping took ${took}s: SIGTERM was not honoured (killed at the grace period)"

step "restart: the data survived"
pm rm "$name" >/dev/null
run
ready
pm exec "$name" /usr/local/bin/portcullis user list | grep -q cara || fail "the user created before the restart is gone"
curl -fsS "http://127.0.0.1:$port/.well-known/openid-configuration" | grep -q "\"issuer\":\"http://127.0.0.1:$port\"" \
  || fail "discovery does not name the configured issuer"

step "no secret or test data in the image's layers"
rm -f "$work/image.tar"
pm save -o "$work/image.tar" localhost/portcullis:test >/dev/null
layers=$work/layers && rm -rf "$layers" && mkdir -p "$layers"
tar -xf "$work/image.tar" -C "$layers"
for l in $(find "$layers" -name '*.tar' -o -name 'layer.tar'); do
  tar -tf "$l" 2>/dev/null
done > "$work/files.txt" || true
# (The base image's public CA certificates are expected.)
suspect=$(grep -E '(\.db|\.db-wal|\.key|master_key|\.pem|\.p12)$' "$work/files.txt" | grep -Ev 'etc/ssl/|usr/lib/ssl/|usr/share/ca-certificates/' || true)
[ -z "$suspect" ] || fail "the image carries a database, key or certificate file: $(echo "$suspect" | head -3)"
pm image inspect localhost/portcullis:test --format '{{json .Config.Healthcheck}}' | grep -q healthcheck \
  || fail "the image declares no health check"
pm image inspect localhost/portcullis:test --format '{{.Config.User}}' | grep -q '^65532' \
  || fail "the image's user is not 65532"
if grep -rqa "$key" "$layers"; then fail "the master key is in the image"; fi
rm -rf "$layers" "$work/image.tar"
echo "container checks passed ($(pm image inspect localhost/portcullis:test --format '{{.Size}}') bytes image)"
