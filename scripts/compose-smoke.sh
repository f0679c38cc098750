#!/usr/bin/env bash
# Runs README "Running with docker compose" steps 1-5 as written, on a real Docker engine:
# build and start the stack, copy the admin kubeconfig out, create and read a flunder with
# kubectl, run a report in the container, restart wardle and read the flunder again, tear down.
# Not part of CI (CI has no Docker engine); run it by hand where `docker info` works and the base
# images can be pulled or are present. Uses its own compose project name, so an existing stack
# of this checkout is left alone, but it needs 127.0.0.1:8443 free.
set -euo pipefail
cd "$(dirname "$0")/.."

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null; then
  compose=(docker-compose)
else
  echo "compose-smoke: needs docker compose (v2) or docker-compose" >&2
  exit 1
fi
docker info >/dev/null 2>&1 || {
  echo "compose-smoke: no Docker engine answers (docker info failed); start dockerd first" >&2
  exit 1
}

export COMPOSE_PROJECT_NAME="wardle-smoke-$$"
work="$(mktemp -d)"
cleanup() {
  "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

wait_healthy() {
  local id status
  id="$("${compose[@]}" ps -q wardle)"
  for _ in $(seq 1 120); do
    status="$(docker inspect --format '{{.State.Health.Status}}' "$id" 2>/dev/null || echo none)"
    [ "$status" = healthy ] && return 0
    sleep 2
  done
  echo "compose-smoke: wardle not healthy after 240 s (last: $status)" >&2
  "${compose[@]}" logs wardle | tail -n 30 >&2
  return 1
}

step() { printf '\n== %s\n' "$*"; }

step "1. ${compose[*]} up --build -d"
"${compose[@]}" up --build -d
wait_healthy

step "2. copy the admin kubeconfig out"
"${compose[@]}" exec -T wardle cat /var/lib/wardle/admin.kubeconfig > "$work/wardle.kubeconfig"
grep -Eq 'server: "?https://127.0.0.1:8443' "$work/wardle.kubeconfig"

step "3. kubectl get flunders -A"
kc=(kubectl --kubeconfig "$work/wardle.kubeconfig")
"${kc[@]}" create -f artifacts/flunders/01-flunder.yaml
"${kc[@]}" get flunders -A | grep -q my-first-flunder

step "4. report in the container"
"${compose[@]}" exec -T wardle wardle-apiserver report flunders-per-namespace | grep -q '^default'

step "restart: the data stays"
"${compose[@]}" restart wardle
wait_healthy
"${kc[@]}" get flunder my-first-flunder >/dev/null

step "published on 127.0.0.1 only"
port_line="$("${compose[@]}" port wardle 8443)"
case "$port_line" in
  127.0.0.1:8443) ;;
  *) echo "compose-smoke: wardle published as $port_line, want 127.0.0.1:8443" >&2; exit 1 ;;
esac

step "5. ${compose[*]} down -v"
"${compose[@]}" down -v
echo "compose-smoke: ok"
