#!/bin/sh
# The PostgreSQL image of the compose test (made from Debian's postgresql-15 by
# scripts/compose_images.sh), honouring what docker-compose.yml relies on from the official
# image: POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, and the *.sql files of
# /docker-entrypoint-initdb.d applied once, when the data directory is first made.
set -eu
PGDATA=/var/lib/postgresql/data
BIN=/usr/lib/postgresql/15/bin
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}" >"$pwfile"
    chown postgres "$pwfile"
    runuser -u postgres -- "$BIN/initdb" -D "$PGDATA" -U "$user" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    # The init scripts run against a server only the socket reaches, as the official image does.
    runuser -u postgres -- "$BIN/pg_ctl" -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    if [ "$db" != postgres ]; then
        runuser -u postgres -- psql -v ON_ERROR_STOP=1 -U "$user" -d postgres -qc "CREATE DATABASE \"$db\""
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sql) echo "init: $f"; runuser -u postgres -- psql -v ON_ERROR_STOP=1 -U "$user" -d "$db" -qf "$f" ;;
            *) [ -e "$f" ] && echo "init: ignoring $f" ;;
        esac
    done
    runuser -u postgres -- "$BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec runuser -u postgres -- "$BIN/postgres" -D "$PGDATA"
