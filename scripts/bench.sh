#!/usr/bin/env bash
# Benchmarks wardle-apiserver next to its peers in one run: builds --release, starts a throwaway
# Postgres (unless WARDLE_BENCH_DATABASE_URL points at one), finds pgbench next to initdb and the
# Go sample-apiserver + etcd from scripts/go-peers.sh (built there once if Go is installed; the
# Go column is left out otherwise), runs target/release/wardle-bench and prints its table.
# Arguments go to wardle-bench (--help lists them; --seconds sets each create cell's length,
# --big fills 100k flunders and takes minutes).
# WARDLE_BENCH_PG_OPTS adds postgres -c options, e.g. "-c synchronous_commit=off".
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked --bins
target="${CARGO_TARGET_DIR:-target}"
# 1000 watchers hold 1000 connections on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

peers=()
if go_dir="$(scripts/go-peers.sh | tail -n 1)" && [ -x "$go_dir/sample-apiserver" ]; then
  peers=(--go-peers "$go_dir")
else
  echo "scripts/bench.sh: no Go peers (scripts/go-peers.sh failed); the Go column is left out" >&2
fi

# The same PostgreSQL installation for initdb, pg_ctl, postgres and pgbench.
bin=""
if command -v initdb >/dev/null; then
  bin="$(dirname "$(readlink -f "$(command -v initdb)")")"
fi
if [ -z "$bin" ] || [ ! -x "$bin/pg_ctl" ]; then
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
fi
if [ -n "$bin" ] && [ -x "$bin/pgbench" ]; then
  peers+=(--pgbench "$bin/pgbench")
fi

if [ -n "${WARDLE_BENCH_DATABASE_URL:-}" ]; then
  exec "$target/release/wardle-bench" --admin-url "$WARDLE_BENCH_DATABASE_URL" "${peers[@]}" "$@"
fi
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "scripts/bench.sh: PostgreSQL server binaries (initdb, pg_ctl) are required, or set WARDLE_BENCH_DATABASE_URL" >&2
  exit 1
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/wardle-bench-pg.XXXXXX")"
# initdb refuses to run as root: run the server as nobody then.
as=()
if [ "$(id -u)" = 0 ]; then
  as=(runuser -u nobody --)
  chown -R nobody "$dir"
  chmod 755 "$dir"
fi
started=""
cleanup() {
  if [ -n "$started" ]; then
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" stop -m fast -w >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale >/dev/null
# Durable commits (fsync on) like a real deployment; the raw baseline pays the same fsyncs.
for _ in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 40000))
  if "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 ${WARDLE_BENCH_PG_OPTS:-}" \
    start >/dev/null; then
    started=1
    break
  fi
done
if [ -z "$started" ]; then
  echo "scripts/bench.sh: could not start postgres; log:" >&2
  cat "$dir/postgres.log" >&2 || true
  exit 1
fi

"$target/release/wardle-bench" --admin-url "postgres://postgres@127.0.0.1:$port/postgres" "${peers[@]}" "$@"
