# Multi-stage build of rmq2pg on Debian 12: a build stage running the README's build scripts, and a
# slim non-root runtime stage with only the shared libraries.
FROM debian:bookworm-slim AS build
WORKDIR /src
COPY . .
# The same scripts as the README's build: scripts/deps.sh and scripts/build.sh.
RUN scripts/deps.sh --build-only && rm -rf /var/lib/apt/lists/* \
 && scripts/build.sh -DRMQ2PG_BUILD_TESTS=OFF -DCMAKE_INSTALL_PREFIX=/opt/rmq2pg \
 && cmake --install build

FROM debian:bookworm-slim
# The runtime libraries (scripts/deps.sh lists them); apt runs only for those missing.
COPY scripts/deps.sh /tmp/deps.sh
RUN /tmp/deps.sh --runtime && rm -rf /var/lib/apt/lists/* /tmp/deps.sh \
 && useradd --system --no-create-home rmq2pg
COPY --from=build /opt/rmq2pg /opt/rmq2pg
COPY config/rmq2pg.example.yaml /etc/rmq2pg/rmq2pg.yaml
USER rmq2pg
ENTRYPOINT ["/opt/rmq2pg/bin/rmq2pg"]
CMD ["--config", "/etc/rmq2pg/rmq2pg.yaml"]
