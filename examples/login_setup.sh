# Sourced by examples/login_pinned.sh and examples/login_flood.sh: a fresh
# SQLite database in a temporary directory ($work) with 64 users load-0 …
# load-63 (password "violet anvil tramline"), the environment a release
# server needs to serve it on http://localhost:18181 (passkeys on), and $bin.
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
export PORTCULLIS_DATABASE_URL="sqlite://$work/p.db?mode=rwc" PORTCULLIS_BIND=127.0.0.1:18181 \
  PORTCULLIS_ISSUER=http://localhost:18181 PORTCULLIS_LOG=warn PORTCULLIS_LOGIN_IP_MAX_ATTEMPTS=100000000
PORTCULLIS_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
export PORTCULLIS_MASTER_KEY
bin=$root/target/release/portcullis
"$bin" migrate >/dev/null
for i in $(seq 0 63); do printf 'violet anvil tramline\n' | "$bin" user add "load-$i" --password-stdin >/dev/null; done
