#!/usr/bin/env bash
# OpenID Connect benchmark: tsunagu's OpenID Provider beside the npm `oidc-provider`, same flow,
# same load client (bench/oidc/client.mjs, openid-client), same machine.
#
#   scripts/bench-oidc.sh                         # tsunagu on SQLite, then the reference OP
#   scripts/bench-oidc.sh sqlite postgres         # each backend in turn, then the reference
#   scripts/bench-oidc.sh postgres=postgres://postgres@127.0.0.1:5432/test
#
# `postgres` alone takes the URL from TSUNAGU_TEST_DATABASE_URL; each run gets a fresh schema,
# dropped afterwards. For each backend: a release build of `tsunagu serve` starts on a free
# loopback port with a fresh data directory, `tsunagu dev oidc-seed` registers and approves two
# services (private_key_jwt, client_secret_basic), enrolls a verified resident, logs in and
# consents once, and `bench/oidc/run.sh setup FILE` measures each service. Then
# `bench/oidc/run.sh oidc-provider` measures the reference, and a comparison table is printed.
#
# Sizes: BENCH_N, BENCH_M, BENCH_C, BENCH_CHUNK, BENCH_THREADS (bench/oidc/README.md).
# SKIP_REFERENCE=1 leaves out the reference OP. KEEP=1 keeps the working directory.
# TSUNAGU_BIN=path measures that binary instead of building target/release/tsunagu.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[ $# -gt 0 ] || set -- sqlite
if [ -n "${TSUNAGU_BIN:-}" ]; then
  bin=$(cd "$(dirname "$TSUNAGU_BIN")" && pwd)/$(basename "$TSUNAGU_BIN")
else
  bin=$root/target/release/tsunagu
  echo "== cargo build --release -p tsunagu" >&2
  cargo build --release --quiet -p tsunagu
fi
command -v node >/dev/null || { echo "node (>= 20.19) is needed for bench/oidc" >&2; exit 2; }

work=$(mktemp -d -t tsunagu-bench-oidc-XXXXXX)
server=""
schema=""
db_url=""
cleanup() {
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  if [ -n "$schema" ]; then
    psql "$db_url" -qc "drop schema if exists $schema cascade" >/dev/null 2>&1 || true
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "working directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
results=$work/results.tsv
: >"$results"

# One committee member (quorum 1) and the simulated JPKI, shared by every backend's run.
"$bin" dev jpki init --dir "$work/ca" >/dev/null
jwk=$("$bin" admin keygen --out "$work/chair.pem" | tr -d '\n' | sed -E 's/"([a-z_]+)": /\1 = /g')

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# summary LOG LABEL: appends the JSON lines under "== summary" of a run.sh log, labelled.
summary() {
  sed -n '/^== summary/,$p' "$1" | grep '^{' | sed "s/^/$2\t/" >>"$results" || true
}

for spec in "$@"; do
  case "$spec" in
    sqlite) ;;
    postgres | postgres=*)
      url=${spec#postgres}; url=${url#=}
      [ -n "${url:-${TSUNAGU_TEST_DATABASE_URL:-}}" ] \
        || { echo "postgres: give postgres=URL or set TSUNAGU_TEST_DATABASE_URL" >&2; exit 2; }
      ;;
    *) echo "unknown backend: $spec (sqlite, postgres, postgres=URL)" >&2; exit 2 ;;
  esac
done

status=0
for spec in "$@"; do
  backend=${spec%%=*}
  case "$backend" in
    sqlite) label="tsunagu (SQLite)"; storage="" ;;
    postgres)
      db_url=${spec#postgres}; db_url=${db_url#=}
      db_url=${db_url:-${TSUNAGU_TEST_DATABASE_URL:-}}
      [ -n "$db_url" ] || { echo "postgres: give postgres=URL or set TSUNAGU_TEST_DATABASE_URL" >&2; exit 2; }
      schema="bench_oidc_$(date +%s)_$RANDOM"
      psql "$db_url" -qc "create schema $schema" >/dev/null
      sep='?'; case "$db_url" in *\?*) sep='&';; esac
      storage="database_url = \"${db_url}${sep}options=-c%20search_path%3D${schema}\""
      label="tsunagu (PostgreSQL)"
      ;;
    *) echo "unknown backend: $spec (sqlite, postgres, postgres=URL)" >&2; exit 2 ;;
  esac
  dir=$work/$backend
  mkdir -p "$dir"
  port=$(free_port)
  # The session cookie the load client presents must outlive the run: the resident's session
  # lasts identity.session_ttl_seconds (default 900 s), here a day.
  cat >"$dir/config.toml" <<TOML
[server]
bind = "127.0.0.1:$port"
sweep_interval_seconds = 3600
[storage]
data_dir = "$dir/data"
$storage
[identity]
jpki_trust_anchors = ["$work/ca/ca.pem"]
jpki_crls = ["$work/ca/ca.crl"]
session_ttl_seconds = 86400
[governance]
quorum = 1
members = [{ id = "chair", jwk = $jwk }]
[dev]
simulated_jpki = "$work/ca"
TOML
  RUST_LOG=warn "$bin" serve --config "$dir/config.toml" 2>"$dir/serve.log" &
  server=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { echo "tsunagu serve exited:" >&2; cat "$dir/serve.log" >&2; exit 1; }
    sleep 0.1
  done
  echo
  echo "== $label on http://127.0.0.1:$port: dev oidc-seed"
  "$bin" dev oidc-seed --url "http://127.0.0.1:$port" --config "$dir/config.toml" \
    --out "$dir/setup" --member "chair=$work/chair.pem"
  # The OP's CPU is read from /proc: tsunagu's process, and for PostgreSQL every `postgres`
  # process on the machine too (the database's work for the OP).
  op_pids=$server
  if [ "$backend" = postgres ]; then op_pids="$op_pids,comm:postgres"; fi
  for auth in jwt basic; do
    echo
    echo "== $label, $auth"
    BENCH_OP_PID=$op_pids bench/oidc/run.sh setup "$dir/setup/setup-tsunagu-$auth.json" \
      | tee "$dir/run-$auth.log" || status=1
    summary "$dir/run-$auth.log" "$label"
  done
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  server=""
  if grep -v -e '^$' "$dir/serve.log" | grep -q -i -e error -e panic; then
    echo "== $label: errors in the server log" >&2
    grep -i -e error -e panic "$dir/serve.log" | head -n 20 >&2
  fi
  if [ -n "$schema" ]; then
    psql "$db_url" -qc "drop schema if exists $schema cascade" >/dev/null 2>&1 || true
    schema=""
  fi
done

if [ "${SKIP_REFERENCE:-0}" != 1 ]; then
  echo
  echo "== reference: oidc-provider"
  bench/oidc/run.sh oidc-provider | tee "$work/reference.log" || status=1
  summary "$work/reference.log" "oidc-provider"
fi

echo
echo "== comparison (machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1))"
node bench/oidc/compare.mjs "$results"
[ "$status" -eq 0 ] || echo "== ONE OR MORE RUNS FAILED (see above)"
exit "$status"
