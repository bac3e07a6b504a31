#!/usr/bin/env bash
# Packaging without servers: `cmake --install` puts the binary, the unit, the config and sql/ in
# the usual places; cpack builds a .deb whose Depends names the Debian runtime packages; the
# compose file is valid (docker-compose config; no engine here) and the Dockerfile builds with
# the README's own scripts.
set -euo pipefail
: "${RMQ2PG_SOURCE_DIR:?}"
WORK=$(mktemp -d /tmp/rmq2pg-packaging-XXXX)
trap 'status=$?; ((status == 0)) && rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

BUILD_DIR="$WORK/build" "$RMQ2PG_SOURCE_DIR/scripts/build.sh" -DCMAKE_INSTALL_PREFIX=/usr \
    -DRMQ2PG_BUILD_TESTS=OFF >"$WORK/build.log" 2>&1 || { tail -20 "$WORK/build.log"; fail "build"; }
DESTDIR="$WORK/root" cmake --install "$WORK/build" >/dev/null
for f in usr/bin/rmq2pg usr/bin/rmq2pg-publish etc/rmq2pg/rmq2pg.yaml \
    lib/systemd/system/rmq2pg.service usr/share/rmq2pg/sql/002_rmq2pg_state.sql \
    usr/share/doc/rmq2pg/README.md; do
    [[ -e "$WORK/root/$f" ]] || [[ -e "$WORK/root/usr/$f" ]] || fail "not installed: $f"
done
"$WORK/root/usr/bin/rmq2pg" --version | grep -q "rmq2pg " || fail "installed binary does not run"

(cd "$WORK/build" && cpack -G DEB >"$WORK/cpack.log" 2>&1) || { tail -20 "$WORK/cpack.log"; fail "cpack"; }
deb=$(ls "$WORK"/build/rmq2pg_*.deb)
depends=$(dpkg-deb -f "$deb" Depends)
echo "package: $(basename "$deb"), Depends: $depends"
for lib in librabbitmq4 libpqxx-6.4 libyaml-cpp0.7 libsimdjson14; do
    grep -q "$lib" <<<"$depends" || fail "Depends lacks $lib"
done
dpkg-deb -c "$deb" >"$WORK/contents"
for f in ./etc/rmq2pg/rmq2pg.yaml ./usr/bin/rmq2pg ./usr/lib/systemd/system/rmq2pg.service; do
    grep -q " $f\$" "$WORK/contents" || fail "$f not in the package"
done

if command -v docker-compose >/dev/null; then
    (cd "$RMQ2PG_SOURCE_DIR" && docker-compose -f docker-compose.yml config -q) || fail "docker-compose.yml invalid"
else
    fail "docker-compose (Debian package) missing: scripts/deps.sh installs it"
fi
grep -q "scripts/deps.sh --build-only" "$RMQ2PG_SOURCE_DIR/Dockerfile" &&
    grep -q "scripts/build.sh" "$RMQ2PG_SOURCE_DIR/Dockerfile" ||
    fail "the Dockerfile no longer builds with the README's scripts"
echo "PASS"
