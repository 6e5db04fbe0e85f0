# drove's node image: a multi-stage build, then a small Debian runtime with
# the one `drove` binary, run as an unprivileged user.
#
#   docker build -t drove:dev .
#   docker run --rm drove:dev node --help
#
# Kubernetes manifests that use it: deploy/k8s/.

FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p drove-cli \
 && install -D -m 0755 target/release/drove /out/drove

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/drove --create-home drove
COPY --from=build /out/drove /usr/local/bin/drove
USER 10001
WORKDIR /var/lib/drove
# The cluster port (TCP transport and UDP gossip share it) and the admin API.
EXPOSE 4370/tcp 4370/udp 8370/tcp
ENTRYPOINT ["drove"]
CMD ["node", "--help"]
