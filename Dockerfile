# The controller and mover image: one static-ish `ferry` binary plus rsync (the movers' delta engine).
FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev pkg-config && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src src
COPY crates crates
COPY e2e e2e
COPY manifests manifests
# `-p ferry`: the product alone, so the harness crate's `test-hooks` feature is never compiled in.
RUN cargo build --release --locked -p ferry --bin ferry

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends rsync ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/ferry /usr/local/bin/ferry
# Non-root by default (the controller, hooks). Mover pods say who they are in their securityContext:
# root with only the capabilities each side needs unless the plan asks otherwise (docs/mover.md).
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ferry"]
