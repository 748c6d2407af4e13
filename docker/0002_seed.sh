#!/bin/sh
# Seeds one shard with $ORDERS orders of region $REGION placed during 2025.
set -e
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" \
  -v region="$REGION" -v orders="${ORDERS:-100000}" <<'SQL'
SELECT setseed(0.42);
INSERT INTO orders (id, region, customer_id, product, quantity, unit_price, ordered_at)
SELECT g,
       :'region',
       1 + (random() * 4999)::int,
       (ARRAY['keyboard', 'monitor', 'mouse', 'laptop', 'headset', 'webcam'])[1 + (g % 6)],
       1 + (random() * 4)::int,
       (ARRAY[49.90, 219.00, 19.99, 1249.00, 89.50, 64.25])[1 + (g % 6)],
       timestamp '2025-01-01' + random() * interval '365 days'
FROM generate_series(1, :orders) g;
ANALYZE orders;
SQL
