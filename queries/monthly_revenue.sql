-- Orders, units and revenue per region and month (PostgreSQL shards, see docker-compose.yml).
-- Revenue stays exact: numeric(14,2) lands in Parquet as DECIMAL(14,2).
SELECT region,
       date_trunc('month', ordered_at)::date        AS month,
       count(*)                                     AS orders,
       sum(quantity)::bigint                        AS units,
       sum(quantity * unit_price)::numeric(14, 2)   AS revenue
FROM orders
WHERE ordered_at >= :from AND ordered_at < :to
GROUP BY region, month
ORDER BY region, month
