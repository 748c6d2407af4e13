-- Orders, units and revenue per region and month (SQLite shards, as `tributary demo` makes).
SELECT region,
       strftime('%Y-%m', ordered_at) AS month,
       count(*)                      AS orders,
       sum(quantity)                 AS units,
       round(sum(quantity * unit_price), 2) AS revenue
FROM orders
WHERE ordered_at >= :from AND ordered_at < :to
GROUP BY region, month
ORDER BY region, month
