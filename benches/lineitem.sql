-- The benchmark table: a lineitem-like result of 15 columns covering the common types,
-- generated deterministically (the values are functions of the row number, never of
-- random()), about 1% NULLs in the nullable columns. `:first` and `:last` (the row numbers)
-- are replaced by the harness.
-- UNLOGGED: the table is a fixture and need not survive a crash; it loads without WAL.
DROP TABLE IF EXISTS lineitem_new;
CREATE UNLOGGED TABLE lineitem_new (
    l_id            bigint PRIMARY KEY,
    l_orderkey      bigint NOT NULL,
    l_partkey       int NOT NULL,
    l_suppkey       int,
    l_linenumber    int NOT NULL,
    l_quantity      numeric(15,2),
    l_extendedprice numeric(15,2) NOT NULL,
    l_discount      double precision,
    l_tax           double precision NOT NULL,
    l_returned      bool,
    l_shipdate      date,
    l_committed_at  timestamptz,
    l_shipmode      text NOT NULL,
    l_status        text,
    l_comment       text
);
INSERT INTO lineitem_new
SELECT g,
       g / 4 + 1,
       (g * 7919) % 200000 + 1,
       CASE WHEN h % 100 = 0 THEN NULL ELSE (g * 104729) % 10000 + 1 END,
       (g % 7)::int + 1,
       CASE WHEN h % 100 = 1 THEN NULL ELSE ((g * 31) % 5000 + 100)::numeric / 100 END,
       ((g * 2654435761) % 10000000 + 90000)::numeric / 100,
       CASE WHEN h % 100 = 2 THEN NULL ELSE ((g * 13) % 11) / 100.0 END,
       ((g * 17) % 9) / 100.0,
       CASE WHEN h % 100 = 3 THEN NULL ELSE h % 3 = 0 END,
       CASE WHEN h % 100 = 4 THEN NULL ELSE date '1992-01-01' + ((g * 37) % 2557)::int END,
       CASE WHEN h % 100 = 5 THEN NULL
            ELSE timestamptz '1992-01-01 00:00:00+00' + make_interval(secs => (g * 7907) % 220000000) END,
       (ARRAY['AIR','MAIL','SHIP','TRUCK','RAIL','FOB','REG AIR'])[(g % 7)::int + 1],
       CASE WHEN h % 100 = 6 THEN NULL ELSE (ARRAY['F','O','P'])[(h % 3)::int + 1] END,
       CASE WHEN h % 100 = 7 THEN NULL
            ELSE left(md5(g::text) || ' carefully final deposits ' || md5((g * 3)::text),
                      20 + (h % 70)::int) END
FROM (SELECT g, (g * 2246822519) % 1000003 AS h
      FROM generate_series(:first::bigint, :last) AS g) AS s;
-- Hint bits and statistics now, so that the first timed read does not write the table.
VACUUM (FREEZE, ANALYZE) lineitem_new;
DROP TABLE IF EXISTS :table;
ALTER TABLE lineitem_new RENAME TO :table;
ALTER INDEX lineitem_new_pkey RENAME TO :table_pkey;
COMMENT ON TABLE :table IS ':stamp';
