-- The demo and test schema: the table config/rmq2pg.example.yaml writes to.
-- Apply with: psql "$DATABASE_URL" -f sql/001_orders.sql  (idempotent)
CREATE TABLE IF NOT EXISTS public.orders (
    id          bigint PRIMARY KEY,
    account     varchar(64) NOT NULL,
    amount      numeric(12, 2),
    currency    text,
    payload     jsonb,
    routing_key text,
    message_id  text,
    -- Set by PostgreSQL when the row is written: the commit-side clock for latency figures.
    received_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
