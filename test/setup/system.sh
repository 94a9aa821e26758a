#!/usr/bin/env bash
# What the test suite needs from the machine, made to be there: PostgreSQL and Redis answering
# on their default ports (started when they are not), and the Debian packages the tests drive
# (installed when missing). `npm test` and .ci/run both run this first.
#
# Prints one line per thing it starts or installs, and nothing when everything is already there.
# Needs root (or sudo) only when it has something to start or install.
set -euo pipefail

say() { printf '[test setup] %s\n' "$*"; }
fail() { say "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else fail "needs root to run: $*"
  fi
}

# --- Debian packages, each with the reason the tests need it ---------------------------------
declare -A why=(
  [chromium]="/usr/bin/chromium, the headless browser test/e2e/browser.test.ts drives (no browser is ever downloaded)"
  [openssl]="makes the TLS test certificates of test/e2e/transport.test.ts"
  [python3-grpcio]="the Python gRPC client of test/e2e/python-client.test.ts"
  [python3-protobuf]="the protobuf runtime of that Python client"
  [protobuf-compiler]="protoc, which generates the Python client's stubs from proto/"
  [protobuf-compiler-grpc]="grpc_python_plugin, protoc's plugin for the Python service stubs"
  [libprotobuf-dev]="google/protobuf/*.proto, which protoc needs to compile the imports of proto/"
)
order=(chromium openssl python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc libprotobuf-dev)

installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]; }

missing=()
for pkg in "${order[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  for pkg in "${missing[@]}"; do say "installing Debian package $pkg: ${why[$pkg]}"; done
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  # Other checkouts on the same machine may be installing too: wait for dpkg's lock, not fail.
  apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -y -q)
  if ! { as_root "${apt[@]}" update && as_root "${apt[@]}" install --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    fail "apt-get could not install ${missing[*]} (its output is above)"
  fi
fi

# --- PostgreSQL and Redis ----------------------------------------------------------------------
pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }
wait_for() { for _ in $(seq 1 30); do "$1" && return 0; sleep 1; done; return 1; }

if ! pg_up; then
  cluster=$(ls /etc/postgresql | head -n1)
  say "starting PostgreSQL $cluster (nothing answered on 127.0.0.1:5432)"
  as_root pg_ctlcluster --skip-systemctl-redirect "$cluster" main start >/dev/null 2>&1 || true
  wait_for pg_up || fail "PostgreSQL did not start: see /var/log/postgresql/postgresql-$cluster-main.log"
fi

if ! redis_up; then
  say "starting Redis (nothing answered on 127.0.0.1:6379)"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for redis_up || fail "Redis did not start: see /var/log/redis/ci.log"
fi
