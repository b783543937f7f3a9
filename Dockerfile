# driftwatch: multi-stage build, small non-root runtime image.
# Build: docker build -t driftwatch:local .   (docker-compose.yml does this for you)

FROM rust:1.95-bookworm AS build
WORKDIR /src
# librdkafka is built from source (rdkafka's bundled build): make, gcc and zlib headers are in
# this image already.
COPY . .
RUN cargo build --release --locked --bin driftwatch \
 && strip target/release/driftwatch

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /var/lib/driftwatch driftwatch
COPY --from=build /src/target/release/driftwatch /usr/local/bin/driftwatch
USER driftwatch
WORKDIR /var/lib/driftwatch
ENV DRIFTWATCH__HTTP__ADDR=0.0.0.0:8080 \
    DRIFTWATCH__STORAGE__DATA_DIR=/var/lib/driftwatch
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["driftwatch", "probe", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["driftwatch"]
CMD ["serve"]
