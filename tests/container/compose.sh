#!/usr/bin/env bash
# docker/compose.yaml's arrangement, run with podman-compose (issue #23): two
# replicas of the image built by tests/container/run.sh on one PostgreSQL
# (the machine's cluster: PG_ADMIN_URL, a scratch database is made and
# dropped); a person logs in on one replica and the other knows them.
#   tests/container/compose.sh postgres://postgres:postgres@127.0.0.1:5432/postgres
set -euo pipefail
cd "$(dirname "$0")/../.."
admin=${1:?PostgreSQL admin URL}
work=target/container
fail() { echo "compose check FAILED: $*" >&2; exit 1; }
# podman-compose from PyPI: Debian's 1.0.3 cannot combine network_mode: host with its default network.
if [ ! -x target/compose-venv/bin/podman-compose ]; then
  python3 -m venv target/compose-venv
  target/compose-venv/bin/pip install -q --disable-pip-version-check podman-compose==1.6.0
fi
export CONTAINERS_CONF=$PWD/$work/containers.conf
db=portcullis_compose_$$
psql -q "$admin" -c "CREATE DATABASE $db" >/dev/null
export PC_DATABASE_URL=${admin%/*}/$db
dir=$work/compose-$$
mkdir -p "$dir"
cp tests/container/compose.ci.yaml "$dir/compose.yaml"
head -c 32 /dev/urandom | base64 > "$dir/master.key"
chmod 644 "$dir/master.key"
compose() { (cd "$dir" && "$OLDPWD/target/compose-venv/bin/podman-compose" -p "pc$$" "$@"); }
cleanup() {
  compose down >/dev/null 2>&1 || true
  psql -q "$admin" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
# The first replica migrates the database; the second starts once it is ready.
compose up -d portcullis-a >/dev/null 2>&1 || fail "podman-compose up"
ready() {
  for _ in $(seq 1 150); do curl -fsS "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0; sleep 0.2; done
  compose logs >&2 || true
  fail "replica on $1 is not ready"
}
ready 18401
compose up -d portcullis-b >/dev/null 2>&1 || fail "podman-compose up (b)"
ready 18402
a=$(podman ps --filter "name=pc$$_portcullis-a" --format '{{.Names}}' | head -1)
printf 'violet anvil tramline' | podman exec -i "$a" /usr/local/bin/portcullis user add cara --password-stdin >/dev/null \
  || fail "creating a user with the CLI inside a replica"
jar=$dir/cookies
page=$(curl -fsS -c "$jar" -b "$jar" http://127.0.0.1:18401/login)
csrf=$(printf '%s' "$page" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -1)
[ -n "$csrf" ] || fail "no CSRF token on the login page"
code=$(curl -s -o /dev/null -w '%{http_code}' -c "$jar" -b "$jar" \
  --data-urlencode "csrf=$csrf" --data-urlencode username=cara --data-urlencode 'password=violet anvil tramline' \
  http://127.0.0.1:18401/login)
[ "$code" = "303" ] || fail "login on replica A answered $code"
account=$(curl -fsS -b "$jar" -w '\n%{http_code}' http://127.0.0.1:18402/account)
[ "$(printf '%s' "$account" | tail -1)" = "200" ] || fail "replica B does not know the session made on A"
printf '%s' "$account" | grep -q cara || fail "replica B's account page does not name the user"
echo "compose checks passed (two replicas, one PostgreSQL, one session)"
