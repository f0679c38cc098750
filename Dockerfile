# wardle-apiserver container image: build with the Rust toolchain, run on a small Debian base as
# a non-root user. Used by docker-compose.yml; `docker build -t wardle-apiserver .` works alone.

# ---- build ----
# Plain Dockerfile syntax (no BuildKit-only `RUN --mount`), so the classic builder of older
# compose clients (Debian's docker-compose 1.29) builds it too.
FROM rust:1.94-slim-bookworm AS builder
# make: jemalloc (the server's allocator, tikv-jemalloc-sys) is built from its C sources.
RUN apt-get update \
 && apt-get install -y --no-install-recommends make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The commit for `--version` and /version (build.rs; the build context has no .git):
# `docker build --build-arg WARDLE_GIT_COMMIT=$(git rev-parse --short HEAD) .`
ARG WARDLE_GIT_COMMIT=""
COPY Cargo.toml Cargo.lock build.rs ./
COPY src src
COPY migrations migrations
COPY reports reports
RUN cargo build --release --locked --bin wardle-apiserver \
 && install -m 0755 target/release/wardle-apiserver /usr/local/bin/wardle-apiserver \
 && rm -rf target

# ---- run ----
FROM debian:bookworm-slim
# ca-certificates: TLS to Postgres/Kubernetes; curl: the /readyz healthcheck.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 wardle \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /var/lib/wardle wardle \
 && mkdir -p /var/lib/wardle && chown 65532:65532 /var/lib/wardle
COPY --from=builder /usr/local/bin/wardle-apiserver /usr/local/bin/wardle-apiserver
USER 65532:65532
WORKDIR /var/lib/wardle
EXPOSE 8443
# Anonymous GET /readyz is always allowed; the serving cert is self-signed in standalone mode.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=12 \
  CMD curl -fsk https://127.0.0.1:8443/readyz || exit 1
ENTRYPOINT ["wardle-apiserver"]
# A container is reached through its network interface, not its loopback: listen on all.
CMD ["--cert-dir", "/var/lib/wardle", "--bind-address", "0.0.0.0"]
