#!/usr/bin/env bash
# One replica against two, behind nginx, on one PostgreSQL (docs/SCALING.md):
# the release server twice, each replica pinned to its own core (taskset),
# nginx (2 workers, keep-alive upstreams) and wrk floating. Interleaved
# rounds (one, two, one, two, ...) so that a drift of the machine hits both.
#   PG_URL=postgres://postgres:postgres@127.0.0.1:5432 examples/scale_out.sh [ROUNDS] [SECONDS]
# Scenarios: client_credentials and introspection (no statement) and a pushed authorization
# request (POST /par: the request checked, then stored). Prints req/s per
# setup, the statements per request the replicas counted, and the CPU time
# per request of the replicas and of PostgreSQL (from /proc, all rounds) —
# the inputs of the model in docs/SCALING.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release/portcullis
PG=${PG_URL:-postgres://postgres:postgres@127.0.0.1:5432}
ROUNDS=${1:-2}
SECS=${2:-8}
command -v nginx >/dev/null && command -v wrk >/dev/null || { echo "needs nginx and wrk" >&2; exit 2; }
work=$(mktemp -d)
db=scaleout_$$
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  sleep 0.5
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
psql "$PG/postgres" -qc "CREATE DATABASE $db"
export PORTCULLIS_DATABASE_URL=$PG/$db PORTCULLIS_ISSUER=http://127.0.0.1:18300 PORTCULLIS_LOG=warn
PORTCULLIS_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
export PORTCULLIS_MASTER_KEY
field() { python3 -c "import sys,json; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
"$bin" migrate >/dev/null
svc=$("$bin" client add svc --grant client_credentials --scope api:read --json | field client_secret)
web=$("$bin" client add web --redirect-uri https://app.example/cb --scope openid --json | field client_secret)
for i in 1 2; do
  PORTCULLIS_BIND=127.0.0.1:1830$i taskset -c $((i - 1)) "$bin" serve >"$work/r$i.log" 2>&1 &
  pids+=($!)
done
cat >"$work/nginx.conf" <<NGINX
$([ "$(id -u)" = 0 ] && echo "user root;")
worker_processes 2;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nt; proxy_temp_path $work/nt; fastcgi_temp_path $work/nt;
  uwsgi_temp_path $work/nt; scgi_temp_path $work/nt;
  upstream one { server 127.0.0.1:18301; keepalive 64; }
  upstream two { server 127.0.0.1:18301; server 127.0.0.1:18302; keepalive 128; }
  server { listen 127.0.0.1:18310;
    location / { proxy_pass http://one; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:18320;
    location / { proxy_pass http://two; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
NGINX
mkdir -p "$work/nt"
nginx -c "$work/nginx.conf" >"$work/nginx.log" 2>&1 &
pids+=($!)
for port in 18301 18302 18310 18320; do
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
done
basic() { printf 'Basic %s' "$(printf '%s:%s' "$1" "$2" | base64 -w0)"; }
lua=$root/../shared/bench/load.lua
[ -f "$lua" ] || { echo "needs ../shared/bench/load.lua" >&2; exit 2; }
challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM
token=$(curl -sf -H "Authorization: $(basic svc "$svc")" -d "grant_type=client_credentials&scope=api%3Aread" \
  http://127.0.0.1:18310/token | field access_token)
cpu_of() { # pids... -> CPU ticks (user + system)
  local t=0 f
  for p in "$@"; do read -r -a f <"/proc/$p/stat" 2>/dev/null || continue; t=$((t + f[13] + f[14])); done
  echo "$t"
}
replicas=("${pids[0]}" "${pids[1]}")
hz=$(getconf CLK_TCK)
run() { # port scenario -> rps, and appends "requests replica_ticks postgres_ticks" to $work/cpu.$2
  local port=$1 path body auth
  case $2 in
    client_credentials) path=/token body="grant_type=client_credentials&scope=api%3Aread" auth=$(basic svc "$svc") ;;
    introspection) path=/introspect body="token=$token" auth=$(basic svc "$svc") ;;
    par) path=/par auth=$(basic web "$web")
      body="response_type=code&client_id=web&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=openid&state=s&nonce=n&code_challenge=$challenge&code_challenge_method=S256" ;;
  esac
  local r0 p0
  r0=$(cpu_of "${replicas[@]}"); p0=$(cpu_of $(pgrep -u postgres))
  WRK_PATH=$path WRK_BODY=$body WRK_AUTH=$auth wrk -t2 -c64 -d"${SECS}s" -s "$lua" "http://127.0.0.1:$port" >"$work/out"
  echo "$(awk '/requests in/ {print $1}' "$work/out") $(($(cpu_of "${replicas[@]}") - r0)) $(($(cpu_of $(pgrep -u postgres)) - p0))" >>"$work/cpu.$2"
  local bad; bad=$(awk '/Non-2xx/ {print $NF}' "$work/out")
  [ -z "$bad" ] || echo "  ($2 on $port: $bad non-2xx)" >&2
  awk '/^Requests\/sec/ {print $2}' "$work/out"
}
statements() { # route -> total statements / requests over both replicas
  local s=0 n=0 t
  for port in 18301 18302; do
    t=$(curl -sf "http://127.0.0.1:$port/metrics")
    s=$((s + $(echo "$t" | awk -v r="route=\"$1\"" 'index($0, "portcullis_db_statements_total{") == 1 && index($0, r) {print $NF}' | head -1 | sed 's/^$/0/')))
    n=$((n + $(echo "$t" | awk -v r="route=\"$1\"" 'index($0, "portcullis_http_requests_total{") == 1 && index($0, r) {sum += $NF} END {print sum + 0}')))
  done
  awk -v s="$s" -v n="$n" 'BEGIN {printf "%.2f", (n ? s / n : 0)}'
}
printf '%-20s %10s %10s %8s %11s %14s %14s\n' scenario one_rps two_rps two/one statements app_us/req postgres_us/req
for sc in client_credentials introspection par; do
  one=(); two=()
  for _ in $(seq 1 "$ROUNDS"); do one+=("$(run 18310 $sc)"); two+=("$(run 18320 $sc)"); done
  o=$(printf '%s\n' "${one[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')
  t=$(printf '%s\n' "${two[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')
  case $sc in client_credentials) route=/token ;; introspection) route=/introspect ;; par) route=/par ;; esac
  per=$(awk -v hz="$hz" '{n += $1; a += $2; p += $3} END {printf "%14.1f %14.1f", a / hz * 1e6 / n, p / hz * 1e6 / n}' "$work/cpu.$sc")
  printf '%-20s %10.0f %10.0f %8.2f %11s %s\n' "$sc" "$o" "$t" "$(awk -v a="$t" -v b="$o" 'BEGIN {print a / b}')" "$(statements $route)" "$per"
done
