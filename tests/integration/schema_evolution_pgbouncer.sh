#!/usr/bin/env bash
# schema_evolution.sh through PgBouncer in transaction pooling: the DDL's advisory lock and the
# catalog reads keep no session state.
RMQ2PG_EVOLUTION_VIA_PGBOUNCER=1 exec bash "$(dirname "$0")/schema_evolution.sh"
