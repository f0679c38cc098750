#!/usr/bin/env bash
# Test double for a container registry: builds local stand-ins for the base images that
# docker-compose.yml and the Dockerfile name (debian:bookworm-slim, rust:1.94-slim-bookworm,
# postgres:17-alpine) from Debian packages with debootstrap, for a machine whose Docker engine
# cannot pull them. They are Debian-based doubles of those images, good enough for
# scripts/compose-smoke.sh: the Rust one carries this machine's stable toolchain and CA bundle,
# the Postgres one (PostgreSQL 15) an entrypoint that honours POSTGRES_USER/_PASSWORD/_DB.
# Needs root, debootstrap and a running Docker engine. Never run in CI.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "compose-standins: run as root (debootstrap, chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "compose-standins: apt-get install debootstrap" >&2; exit 1; }
toolchain="$(rustc --print sysroot)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

base="$work/base"
debootstrap --variant=minbase --include=ca-certificates bookworm "$base" http://deb.debian.org/debian
printf '#!/bin/sh\nexit 101\n' > "$base/usr/sbin/policy-rc.d"   # no services start in chroots
chmod +x "$base/usr/sbin/policy-rc.d"
tar -C "$base" -c . | docker import - debian:bookworm-slim

# chroot_install DIR PACKAGES...: a copy of the base with Debian packages added.
chroot_install() {
  local dir="$1"; shift
  cp -a "$base" "$dir"
  cp /etc/resolv.conf "$dir/etc/resolv.conf"
  chroot "$dir" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $*"
}

rust="$work/rust"
chroot_install "$rust" gcc libc6-dev
mkdir -p "$rust/usr/local/rust"
cp -a "$toolchain/." "$rust/usr/local/rust/"
rm -rf "$rust/usr/local/rust/share/doc"
# This machine's CA bundle: cargo inside the build reaches crates.io through the same network.
cp /etc/ssl/certs/ca-certificates.crt "$rust/etc/ssl/certs/ca-certificates.crt"
tar -C "$rust" -c . | docker import \
  --change 'ENV PATH=/usr/local/rust/bin:/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV CARGO_HOME=/usr/local/cargo' - rust:1.94-slim-bookworm

pg="$work/pg"
chroot_install "$pg" postgresql-15
cat > "$pg/usr/local/bin/docker-entrypoint.sh" <<'ENTRY'
#!/bin/sh
# Stand-in for the postgres image's entrypoint: first start initialises $PGDATA with
# POSTGRES_USER (password POSTGRES_PASSWORD) and creates POSTGRES_DB; then serves on every interface.
set -e
PGDATA=${PGDATA:-/var/lib/postgresql/data}
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /run/postgresql
  chown -R postgres:postgres "$PGDATA" /run/postgresql
  chmod 700 "$PGDATA"
  exec runuser -u postgres -- "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  printf '%s\n' "$POSTGRES_PASSWORD" > /tmp/pw
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile=/tmp/pw --auth-host=scram-sha-256 --auth-local=trust
  rm /tmp/pw
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
  createdb -U "$POSTGRES_USER" "$POSTGRES_DB" || true
  pg_ctl -D "$PGDATA" -m fast -w stop
fi
exec postgres -D "$PGDATA" -c listen_addresses='*'
ENTRY
chmod +x "$pg/usr/local/bin/docker-entrypoint.sh"
tar -C "$pg" -c . | docker import \
  --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' - postgres:17-alpine
echo "compose-standins: debian:bookworm-slim, rust:1.94-slim-bookworm, postgres:17-alpine built locally"
