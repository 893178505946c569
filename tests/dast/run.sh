#!/usr/bin/env bash
# DAST pass over a running Portcullis (CI runs it after the test suites):
#  1. check_http.py: security headers, cookie flags and error bodies on every
#     route (first: the fuzzer below changes users' passwords);
#  2. schemathesis against the admin API's OpenAPI document, with an admin
#     token: no 5xx, status codes, content types and bodies as documented,
#     invalid input refused.
# Usage: tests/dast/run.sh [path/to/portcullis]   (default target/debug/portcullis)
set -euo pipefail
BIN=${1:-target/debug/portcullis}
ST=${SCHEMATHESIS:-st}
MAX_EXAMPLES=${DAST_MAX_EXAMPLES:-25}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export PORTCULLIS_DATABASE_URL="sqlite://$work/dast.db?mode=rwc"
export PORTCULLIS_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
export PORTCULLIS_BIND="127.0.0.1:$port"
export PORTCULLIS_ISSUER="http://127.0.0.1:$port"
export PORTCULLIS_LOG=warn
base=$PORTCULLIS_ISSUER

"$BIN" migrate >/dev/null
secret=$("$BIN" --json client add dast-admin --grant client_credentials --role admin --resource "$base/admin" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
"$BIN" client add dast-web --redirect-uri "http://127.0.0.1:9/cb" >/dev/null
for u in alice bob carol; do "$BIN" user add "$u" --email "$u@example.com" >/dev/null; done
printf 'violet anvil tramline\n' | "$BIN" user add dana --password-stdin >/dev/null

"$BIN" serve >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.1; done

token=$(curl -sf -u "dast-admin:$secret" -d grant_type=client_credentials -d "resource=$base/admin" "$base/token" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

echo "== headers, cookies and error bodies on every route"
python3 "$(dirname "$0")/check_http.py" "$base" dana 'violet anvil tramline'


echo "== schemathesis: admin API ($MAX_EXAMPLES examples per operation)"
# Deleting clients is left out: a generated id could be the fuzzer's own.
"$ST" run "$base/admin/api/openapi.json" \
  -H "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection \
  --exclude-path-regex '^/admin/api/v1/clients/\{client_id\}$' --exclude-method DELETE \
  --max-examples "$MAX_EXAMPLES" --workers 2 --seed 1 --no-color \
  --generation-database none --suppress-health-check all

if grep -Ei 'panicked|violet anvil' "$work/server.log"; then
  echo "the server log shows a panic or a secret" >&2
  exit 1
fi
echo "DAST pass: OK"
