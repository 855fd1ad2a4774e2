# syntax=docker/dockerfile:1

# Build stage: the release binary. The SQL migrations and the HTML templates are compiled
# into it, so the runtime stage needs nothing but the binary. testdata/ (test keys) is only
# read by tests and never enters the image.
FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY migrations ./migrations
COPY templates ./templates
# The crate registry and the target directory are BuildKit cache mounts: a rebuild after a
# source change recompiles the workspace crates, not every dependency. The binary is
# copied out of the cache in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin tessera \
    && install -D -m 0755 target/release/tessera /out/tessera

# Runtime stage.
FROM debian:bookworm-slim
# CA certificates: the resource server verifies the issuer's https certificate (keys,
# metadata, introspection) against the system's trust store.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 tessera \
    && useradd --system --uid 10001 --gid tessera --home-dir /var/lib/tessera \
       --create-home --shell /usr/sbin/nologin tessera
COPY --from=builder /out/tessera /usr/local/bin/tessera
USER 10001:10001
# The working directory is where a default sqlite://tessera.db would be created.
WORKDIR /var/lib/tessera
# Listen on every interface: the loopback default is unreachable from outside a container.
# `tessera authz` then refuses to start without TESSERA_ISSUER, the public URL (`tessera
# serve` issues as http://localhost:8080 without it), and both refuse to start without a
# master key (TESSERA_MASTER_KEY, or a secret file named by
# TESSERA_MASTER_KEY_FILE) that seals its private signing keys at rest.
ENV TESSERA_AUTHZ_ADDR=0.0.0.0:8080 \
    TESSERA_RESOURCE_ADDR=0.0.0.0:8081
EXPOSE 8080 8081
# No HEALTHCHECK: the image has no HTTP client. Probe GET /healthz of the authorization
# server from the orchestrator or load balancer instead.
ENTRYPOINT ["tessera"]
CMD ["authz"]
