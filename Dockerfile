# rnetd in a container: a release build, then a slim runtime image running as an unprivileged
# user with its data directory on a volume.
#
#   docker build -t resonancenet .
#   docker run -d --name rnetd -v rnet-data:/var/lib/resonancenet -p 9555:9555 resonancenet
#   docker exec rnetd rnet-cli -datadir=/var/lib/resonancenet getblockchaininfo
#
# Extra rnetd options go after the image name (`... resonancenet -testnet -inference`). RPC,
# inference, dashboard and metrics bind 127.0.0.1 inside the container unless told otherwise.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin rnetd --bin rnet-cli

FROM debian:bookworm-slim
RUN useradd --system --create-home --home-dir /var/lib/resonancenet --shell /usr/sbin/nologin rnet
COPY --from=build /src/target/release/rnetd /src/target/release/rnet-cli /usr/local/bin/
USER rnet
VOLUME ["/var/lib/resonancenet"]
# P2P (mainnet / testnet / regtest).
EXPOSE 9555 19555 29555
ENTRYPOINT ["rnetd", "-datadir=/var/lib/resonancenet", "-printtoconsole=1"]
