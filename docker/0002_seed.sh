#!/bin/sh
# Seeds shard $SHARD (0, 1, ... of $SHARDS) with $ORDERS orders placed during 2025.
# The shards are split by customer, as sharded databases usually are: this shard holds
# the customers whose id is $SHARD modulo $SHARDS, and customer c lives in region
# (c / $SHARDS) % 4, so every region has orders on every shard. Order ids are unique
# across the shards.
set -e
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" \
  -v shard="${SHARD:-0}" -v shards="${SHARDS:-1}" -v orders="${ORDERS:-100000}" <<'SQL'
SELECT setseed(0.1 * (:shard + 1));
INSERT INTO orders (id, region, customer_id, product, quantity, unit_price, ordered_at)
SELECT g * :shards + :shard,
       (ARRAY['eu', 'us', 'apac', 'latam'])[1 + k % 4],
       k * :shards + :shard,
       (ARRAY['keyboard', 'monitor', 'mouse', 'laptop', 'headset', 'webcam'])[1 + (g % 6)],
       1 + (random() * 4)::int,
       (ARRAY[49.90, 219.00, 19.99, 1249.00, 89.50, 64.25])[1 + (g % 6)],
       timestamp '2025-01-01' + random() * interval '365 days'
FROM (SELECT g, 1 + (random() * (4999 / :shards))::int AS k
      FROM generate_series(1, :orders) g) AS o;
ANALYZE orders;
SQL
