#!/usr/bin/env bash
# OIDC benchmark runner.
#
#   bench/oidc/run.sh oidc-provider     start the reference OP (provider.mjs) on a free loopback
#                                       port, measure it with client.mjs for client_secret_basic
#                                       and private_key_jwt, stop it, print the results
#   bench/oidc/run.sh setup FILE        measure any provider described by a setup JSON FILE
#                                       (this is how tsunagu is measured)
#
# Sizes: BENCH_N (latency flows, default 300), BENCH_M (codes exchanged for throughput,
# default 4000), BENCH_C (concurrency, default 16), BENCH_CHUNK (codes collected then
# exchanged per chunk, default 1000), BENCH_THREADS (threads doing the exchanges, default 2).
# PORT fixes the reference OP's port (default: any free).
# BENCH_OP_PID (setup mode): the OP's processes (pids, comm:NAME), whose CPU is reported;
# the oidc-provider mode sets it itself.
# Exit status is non-zero if any client run failed or counted failures.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
orig_pwd="$PWD"
cd "$here"

usage() {
  sed -n '2,16p' "$here/$(basename "$0")" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

ensure_deps() {
  if [ ! -d node_modules ]; then
    echo "== npm ci" >&2
    npm ci --no-audit --no-fund >&2
  fi
}

# run_client SETUP_FILE SUMMARY_FILE: human-readable output to stdout, last JSON line appended
# to SUMMARY_FILE.
run_client() {
  local setup="$1" summary="$2" log rc=0
  log="$(mktemp)"
  node client.mjs "$setup" | tee "$log" || rc=$?
  grep '^{' "$log" | tail -n 1 >> "$summary" || true
  rm -f "$log"
  return "$rc"
}

cmd="${1:-}"
case "$cmd" in
  oidc-provider)
    ensure_deps
    work="$(mktemp -d)"
    summary="$work/summary.jsonl"
    : > "$summary"
    node provider.mjs --port "${PORT:-0}" --setup-dir "$work" > "$work/provider.out" 2> "$work/provider.err" &
    op_pid=$!
    cleanup() {
      if kill -0 "$op_pid" 2>/dev/null; then
        kill "$op_pid" 2>/dev/null || true
        wait "$op_pid" 2>/dev/null || true
      fi
      rm -rf "$work"
    }
    trap cleanup EXIT

    for _ in $(seq 1 300); do
      grep -qx ready "$work/provider.out" 2>/dev/null && break
      if ! kill -0 "$op_pid" 2>/dev/null; then
        echo "provider.mjs exited before it was ready:" >&2
        cat "$work/provider.err" >&2
        exit 1
      fi
      sleep 0.1
    done
    if ! grep -qx ready "$work/provider.out"; then
      echo "provider.mjs not ready after 30 s:" >&2
      cat "$work/provider.err" >&2
      exit 1
    fi
    echo "== reference OP: $(grep '^\[provider\]' "$work/provider.err" | head -n 1)"

    status=0
    for s in setup-basic.json setup-jwt.json; do
      echo
      echo "== client.mjs $s"
      BENCH_OP_PID=$op_pid run_client "$work/$s" "$summary" || status=1
    done

    if grep -v -e 'Unsupported runtime' -e '^\[provider\] .* listening' "$work/provider.err" | grep -q .; then
      echo
      echo "== provider stderr"
      cat "$work/provider.err"
    fi
    echo
    echo "== summary"
    cat "$summary"
    [ "$status" -eq 0 ] || echo "== ONE OR MORE RUNS FAILED (see above)"
    exit "$status"
    ;;
  setup)
    [ $# -eq 2 ] || usage
    case "$2" in /*) setup_file="$2" ;; *) setup_file="$orig_pwd/$2" ;; esac
    [ -f "$setup_file" ] || { echo "no such setup file: $2" >&2; exit 2; }
    ensure_deps
    summary="$(mktemp)"
    status=0
    echo "== client.mjs $setup_file"
    run_client "$setup_file" "$summary" || status=1
    echo
    echo "== summary"
    cat "$summary"
    rm -f "$summary"
    [ "$status" -eq 0 ] || echo "== RUN FAILED (see above)"
    exit "$status"
    ;;
  *)
    usage
    ;;
esac
