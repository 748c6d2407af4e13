-- Every order placed in a time window, from every shard.
SELECT id, region, customer_id, product, quantity, unit_price, ordered_at
FROM orders
WHERE ordered_at >= :from AND ordered_at < :to
