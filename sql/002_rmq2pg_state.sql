-- rmq2pg's own state: the dedupe inbox and the delete tombstones, in their own schema (not
-- "rmq2pg": a schema named like the database user would capture its unqualified CREATE TABLEs). `rmq2pg --migrate` runs exactly
-- this file (it is compiled into the binary); apply it yourself if you manage migrations. Idempotent.
CREATE SCHEMA IF NOT EXISTS rmq2pg_state;

-- One row per processed message id of a pipeline with `dedupe:`, written in the same transaction
-- as the batch, so a redelivered message is skipped even when its body differs.
CREATE TABLE IF NOT EXISTS rmq2pg_state.inbox (
    pipeline     text        NOT NULL,
    message_id   text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, message_id)
);
CREATE INDEX IF NOT EXISTS inbox_processed_at ON rmq2pg_state.inbox (processed_at);

-- A delete remembered with its version, so that an older update arriving later does not bring
-- the row back. Kept for tombstone_retention_s: that bounds how late a stale update may arrive.
CREATE TABLE IF NOT EXISTS rmq2pg_state.tombstones (
    table_name text        NOT NULL,
    key        jsonb       NOT NULL,
    version    jsonb       NOT NULL,
    deleted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, key)
);
CREATE INDEX IF NOT EXISTS tombstones_deleted_at ON rmq2pg_state.tombstones (deleted_at);

-- Streams: the next offset of each (pipeline, stream), written in the same transaction as the
-- rows it covers, and the lease of the worker that reads it. `epoch` grows with every change of
-- owner (and every replay): a batch's offset UPDATE names the epoch its worker claimed, so a
-- worker that lost its lease updates 0 rows and its whole transaction rolls back. Lease times are
-- PostgreSQL's now(), never an instance's clock.
CREATE TABLE IF NOT EXISTS rmq2pg_state.stream_offsets (
    pipeline      text        NOT NULL,
    stream        text        NOT NULL,
    next_offset   bigint,               -- null: start at `start_at`, else at the pipeline's start:
    start_at      text,                 -- set by `rmq2pg replay --from TIME`
    epoch         bigint      NOT NULL DEFAULT 0,
    owner         text,                 -- "host pid N worker W"; null: released
    lease_until   timestamptz,
    lease_changes bigint      NOT NULL DEFAULT 0,
    committed_at  timestamptz,
    PRIMARY KEY (pipeline, stream)
);

-- The workers reading a pipeline's streams, each renewing `alive_until` every third of lease_s:
-- the streams are shared out among the live ones.
CREATE TABLE IF NOT EXISTS rmq2pg_state.stream_members (
    pipeline    text        NOT NULL,
    member      text        NOT NULL,
    alive_until timestamptz NOT NULL,
    PRIMARY KEY (pipeline, member)
);
