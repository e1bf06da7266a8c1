#!/usr/bin/env bash
# Ticket-decision load run (issue 3's benchmark): seeds N residents with signed consents, starts
# `tsunagu serve`, and drives POST /v1/exchange/tickets with `tsunagu dev load`.
#
#   scripts/bench-tickets.sh sqlite 10000 30          # backend, residents, seconds
#   scripts/bench-tickets.sh postgres 100000 30       # needs TSUNAGU_TEST_DATABASE_URL
#   TSUNAGU_BIN=/path/to/tsunagu scripts/bench-tickets.sh sqlite 10000 30
#
# Each ticket is a full decision: client assertion verified and its jti consumed, consent
# looked up, ticket signed, ticket row + jti + ledger leaf committed durably before the answer.
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:-sqlite}
residents=${2:-10000}
seconds=${3:-30}
connections=${CONNECTIONS:-64}
# TSUNAGU_BIN=path measures that binary (e.g. an earlier commit's, for a before/after).
if [ -n "${TSUNAGU_BIN:-}" ]; then
  bin=$TSUNAGU_BIN
else
  bin=target/release/tsunagu
  cargo build --release --quiet -p tsunagu
fi
work=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
"$bin" dev jpki init --dir "$work/ca" >/dev/null
# A committee of one, who approves the benchmark's services.
jwk=$("$bin" admin keygen --out "$work/chair.pem")
x=$(printf '%s' "$jwk" | sed -n 's/.*"x": *"\([^"]*\)".*/\1/p')
y=$(printf '%s' "$jwk" | sed -n 's/.*"y": *"\([^"]*\)".*/\1/p')
storage="data_dir = \"$work/data\""
if [ "$backend" = postgres ]; then
  : "${TSUNAGU_TEST_DATABASE_URL:?set TSUNAGU_TEST_DATABASE_URL for the PostgreSQL run}"
  schema="bench_$(date +%s)_$RANDOM"
  psql "$TSUNAGU_TEST_DATABASE_URL" -qc "create schema $schema" >/dev/null
  trap 'kill "${server:-}" 2>/dev/null || true; psql "$TSUNAGU_TEST_DATABASE_URL" -qc "drop schema $schema cascade" >/dev/null 2>&1; rm -rf "$work"' EXIT
  sep='?'; case "$TSUNAGU_TEST_DATABASE_URL" in *\?*) sep='&';; esac
  storage="$storage
database_url = \"${TSUNAGU_TEST_DATABASE_URL}${sep}options=-c%20search_path%3D${schema}\""
fi
cat >"$work/config.toml" <<TOML
[server]
bind = "127.0.0.1:$port"
sweep_interval_seconds = 3600
[storage]
$storage
[identity]
jpki_trust_anchors = ["$work/ca/ca.pem"]
jpki_crls = ["$work/ca/ca.crl"]
[governance]
quorum = 1
members = [{ id = "chair", jwk = { kty = "EC", crv = "P-256", x = "$x", y = "$y" } }]
[exchange]
consumer_rate_per_second = 1000000
consumer_burst = 1000000
resident_rate_per_minute = 1000000
TOML
# The seeder goes through the platform's services (the committee's votes, enrollment with
# simulated cards, signed consents); binaries before it wrote rows directly.
seed_args=()
if "$bin" dev seed --help | grep -q -- '--member'; then
  seed_args=(--member "chair=$work/chair.pem" --jpki "$work/ca")
fi
"$bin" dev seed --config "$work/config.toml" --residents "$residents" --out "$work/seed" "${seed_args[@]}"
RUST_LOG=warn "$bin" serve --config "$work/config.toml" 2>"$work/serve.log" &
server=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
presign=$(( seconds * 15000 ))
echo "== $backend, $residents residents, $connections connections, $seconds s =="
"$bin" dev load --url "http://127.0.0.1:$port" --seed "$work/seed" --duration "$seconds" \
  --connections "$connections" --presign "$presign"
