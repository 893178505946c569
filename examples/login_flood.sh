#!/usr/bin/env bash
# A 64-way password-login flood on both cores (no pinning: two actix workers,
# two argon2 slots) and the server's resident memory before, during, right
# after and 3 s after it (see docs/PERFORMANCE.md, "memory at the end of a
# 64-way flood"). Needs the release build of the server and of login_load:
#   cargo build --release --bin portcullis --example login_load
#   examples/login_flood.sh [SECONDS]
set -euo pipefail
# shellcheck source=examples/login_setup.sh
. "$(dirname "$0")/login_setup.sh"
"$bin" serve >"$work/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; sleep 1; kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT
sleep 1.5
rss() { awk '/VmRSS/ {print $2 " kB"}' "/proc/$pid/status"; }
echo "idle: $(rss)"
env BASE=http://localhost:18181 USERS=64 WORKERS=64 SECONDS="${1:-20}" MODE=password PID=$pid \
  "$root/target/release/examples/login_load"
echo "right after the last login: $(rss)"
sleep 3
echo "3 s after: $(rss)"
