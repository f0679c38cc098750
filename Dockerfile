# wardle-apiserver container image: build with the Rust toolchain, run on a small Debian base as
# a non-root user. Used by docker-compose.yml; `docker build -t wardle-apiserver .` works alone.

# ---- build ----
FROM rust:1.94-slim-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY reports reports
# The caches keep crates and incremental output between builds (BuildKit); the binary is copied
# out of the cached target dir because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin wardle-apiserver \
 && install -m 0755 target/release/wardle-apiserver /usr/local/bin/wardle-apiserver

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
CMD ["--cert-dir", "/var/lib/wardle"]
