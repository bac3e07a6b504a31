# Multi-stage build of rmq2pg on Debian 12; the build steps are the README's.
FROM debian:bookworm-slim AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config librabbitmq-dev libpqxx-dev libpq-dev libspdlog-dev \
      libfmt-dev libyaml-cpp-dev libsimdjson-dev libsystemd-dev libcpp-httplib-dev catch2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRMQ2PG_BUILD_TESTS=OFF \
 && cmake --build build -j"$(nproc)" \
 && cmake --install build --prefix /opt/rmq2pg

FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librabbitmq4 libpqxx-6.4 libspdlog1.10 libyaml-cpp0.7 libsimdjson14 libcpp-httplib0.11 \
      libsystemd0 \
 && rm -rf /var/lib/apt/lists/* && useradd --system --no-create-home rmq2pg
COPY --from=build /opt/rmq2pg /opt/rmq2pg
USER rmq2pg
ENTRYPOINT ["/opt/rmq2pg/bin/rmq2pg"]
CMD ["--config", "/etc/rmq2pg/rmq2pg.yaml"]
