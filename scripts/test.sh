#!/usr/bin/env bash
# Runs every check and test: formatting, lints, unit tests, and integration tests against
# SQLite and a throwaway Postgres (started by the tests from the PostgreSQL binaries here).
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in cargo kubectl go sqlite3 python3; do
  command -v "$tool" >/dev/null || { echo "scripts/test.sh: $tool is required" >&2; exit 1; }
done
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ -z "${WARDLE_TEST_DATABASE_URL:-}" ]; then
  echo "scripts/test.sh: PostgreSQL server binaries (initdb, postgres) are required, or set WARDLE_TEST_DATABASE_URL" >&2
  exit 1
fi

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
# ring must be the only rustls crypto provider (see ../shared/reference/crates.md).
if cargo tree --locked -i aws-lc-rs >/dev/null 2>&1; then
  echo "scripts/test.sh: aws-lc-rs is in the dependency graph" >&2
  exit 1
fi
# The tree's shape (issue 9): no module import cycles; http/ never reaches into storage/;
# metrics and apimachinery stay below http.
python3 scripts/import-cycles.py --forbid http storage --forbid metrics http --forbid apimachinery http
# docker-compose.yml (both profiles) must stay valid; checking it needs no Docker engine.
if docker compose version >/dev/null 2>&1; then
  docker compose -f docker-compose.yml --profile k8s config -q
elif command -v docker-compose >/dev/null; then
  docker-compose -f docker-compose.yml --profile k8s config -q
else
  echo "scripts/test.sh: NOTICE: no docker compose client installed; docker-compose.yml not validated" >&2
fi
# The real kube-apiserver, kube-controller-manager and kine for tests/aggregated.rs: built once
# from the Go module proxy (22-28 min cold on 2 cores), then cached outside the repository.
WARDLE_KUBE_BINS="$(scripts/kube-bins.sh | tail -n 1)"
export WARDLE_KUBE_BINS
# The Go sample-apiserver and etcd the differential test (tests/differential.rs) compares wardle
# with: built once the same way (about 3 min cold once the kube build has filled the caches).
WARDLE_GO_PEERS="$(scripts/go-peers.sh | tail -n 1)"
export WARDLE_GO_PEERS
cargo test --locked --all-targets "$@"
