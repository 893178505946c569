#!/usr/bin/env bash
# The login load with the server and the load generator on separate cores:
# a fresh SQLite database with 64 users and a `bench` client, the release
# server pinned to core 0, examples/login_load pinned to core 1.
#   examples/login_pinned.sh WORKERS SECONDS [probe|-] [password|passkey]
# (see docs/PERFORMANCE.md). The issuer is http://localhost:18181 so that
# passkeys are on; MODE=passkey signs in without a password.
set -euo pipefail
# shellcheck source=examples/login_setup.sh
. "$(dirname "$0")/login_setup.sh"
secret=$("$bin" --json client add bench --grant client_credentials |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
taskset -c 0 "$bin" serve >"$work/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
sleep 1.5
probe=()
if [ "${3:-}" = probe ]; then probe=(CLIENT=bench "SECRET=$secret"); fi
env BASE=http://localhost:18181 USERS=64 WORKERS="${1:-64}" SECONDS="${2:-20}" MODE="${4:-password}" "${probe[@]}" PID=$pid \
  taskset -c 1 "$root/target/release/examples/login_load"
