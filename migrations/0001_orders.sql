-- The example schema: one table of orders per shard. Portable between PostgreSQL
-- (docker-compose.yml loads it into every shard) and SQLite (`tributary demo`).
CREATE TABLE orders (
    id          BIGINT PRIMARY KEY,
    region      TEXT NOT NULL,
    customer_id BIGINT NOT NULL,
    product     TEXT NOT NULL,
    quantity    INTEGER NOT NULL,
    unit_price  NUMERIC(10, 2) NOT NULL,
    ordered_at  TIMESTAMP NOT NULL
);

CREATE INDEX orders_ordered_at ON orders (ordered_at);
