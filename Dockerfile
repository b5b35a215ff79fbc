# syntax=docker/dockerfile:1
#
# orders-service image: both binaries (`orders-service`, `emulator`; the web page is
# compiled into the service).
#
#   docker build -t orders-service .
#   docker run --rm -e DATABASE_URL=postgres://... -e KAFKA_BROKERS=... -p 8081:8081 orders-service
#   docker run --rm -e DATABASE_URL=postgres://... -e MIGRATION_DATABASE_URL=postgres://owner... \
#     orders-service migrate                                              # migrations only
#   docker run --rm --entrypoint emulator orders-service --brokers ... --count 100

# ---------------------------------------------------------------------------------------
# Builder
# ---------------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder

# librdkafka is built from source by rdkafka-sys (bundled, with SSL for Kafka's SSL and
# SASL_SSL/SCRAM): needs a C toolchain, make, pkg-config and OpenSSL's headers. No libpq:
# diesel-async speaks the protocol natively, over rustls for PostgreSQL TLS.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /build

# 1) Dependencies only: the manifest, the lock file and empty targets. This layer (the slow
#    part: librdkafka, actix, diesel...) is rebuilt only when Cargo.toml/Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src/bin/emulator \
 && echo 'fn main() {}' > src/main.rs \
 && echo 'fn main() {}' > src/bin/emulator/main.rs \
 && : > src/lib.rs
RUN cargo build --release --locked --bins
# Drop the placeholder crate's artifacts so the real sources are always recompiled,
# whatever the modification times of the copied files.
RUN rm -rf src \
      target/release/orders-service target/release/orders-service.d \
      target/release/emulator target/release/emulator.d \
      target/release/deps/orders_service-* target/release/deps/liborders_service-* \
      target/release/deps/emulator-* \
      target/release/.fingerprint/orders-service-*

# 2) The real sources. Migrations and the web page (static/) are embedded into the binary
#    at compile time.
COPY src ./src
COPY migrations ./migrations
COPY static ./static
RUN cargo build --release --locked --bins

# ---------------------------------------------------------------------------------------
# Runtime
# ---------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# ca-certificates for TLS endpoints (sslrootcert=system, Kafka without a CA file), libssl3
# for librdkafka, curl for the HEALTHCHECK.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libssl3 curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 orders \
 && useradd --system --uid 10001 --gid orders --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin orders

WORKDIR /app

COPY --from=builder /build/target/release/orders-service /usr/local/bin/orders-service
COPY --from=builder /build/target/release/emulator /usr/local/bin/emulator

# Defaults only; everything else comes from the environment (see .env / README).
ENV HTTP_ADDR=0.0.0.0:8081 \
    ADMIN_ADDR=127.0.0.1:9081 \
    RUST_LOG=info,orders_service=info,librdkafka=warn,rdkafka=warn

USER orders:orders

# 9081 is the admin listener; it binds to loopback unless ADMIN_ADDR says otherwise.
EXPOSE 8081 9081

# The port is taken from HTTP_ADDR so the check follows a changed listen address.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS -o /dev/null "http://127.0.0.1:${HTTP_ADDR##*:}/health/ready" || exit 1

STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/orders-service"]
