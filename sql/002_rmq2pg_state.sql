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
