-- Every order of a shard, for an incremental job (examples/new_orders.toml): the run
-- restricts it to the orders past the shard's mark. `:at` names the run's output.
SELECT id, region, customer_id, product, quantity, unit_price, ordered_at, :at AS read_at
FROM orders
