# Guichet: build the release binary, run it on a slim Debian.
#   docker compose up --build        (see docker-compose.yml and README.md)
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin guichet \
    && strip target/release/guichet

FROM debian:bookworm-slim
COPY --from=build /src/target/release/guichet /usr/local/bin/guichet
WORKDIR /srv/guichet
# Menus, prompts and call data are mounted here (docker-compose.yml).
RUN mkdir -p flows audio data && chmod 0777 data
ENV GUICHET_PATHS_FLOWS=/srv/guichet/flows \
    GUICHET_PATHS_AUDIO=/srv/guichet/audio \
    GUICHET_PATHS_DATA=/srv/guichet/data \
    GUICHET_LOG_FORMAT=json
EXPOSE 5060/udp 5060/tcp 8080/tcp
ENTRYPOINT ["guichet"]
CMD ["serve"]
