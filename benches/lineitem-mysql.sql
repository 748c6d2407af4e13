-- The MariaDB benchmark table: lineitem.sql's 15 columns in MariaDB's types, with the same
-- values row for row (each a function of the row number, never of RAND()), about 1% NULLs
-- in the nullable columns. `:first`, `:last`, `:table` and `:stamp` are replaced by the
-- harness (benches/mysql.rs). MariaDB only: the rows come from the SEQUENCE engine's
-- `seq_FIRST_to_LAST` table, which MySQL does not have.
--
-- Types: bigint -> BIGINT, int -> INT, numeric(15,2) -> DECIMAL(15,2), double precision ->
-- DOUBLE, bool -> BOOL (TINYINT(1)), date -> DATE, timestamptz -> TIMESTAMP(6) (an instant,
-- microseconds; the values lie within TIMESTAMP's 1970-2038), text -> VARCHAR/CHAR.
--
-- One autocommitted INSERT ... SELECT. Measured on MariaDB 10.11 (1M rows, 2 busy cores):
-- 9-10 s, as fast as ten 100k-row chunks or a FOR loop over them, while the empty-table
-- bulk load that `unique_checks = 0` in an explicit transaction enables took 15-16 s.
SET SESSION time_zone = '+00:00';
DROP TABLE IF EXISTS :table_new;
CREATE TABLE :table_new (
    l_id            BIGINT NOT NULL PRIMARY KEY,
    l_orderkey      BIGINT NOT NULL,
    l_partkey       INT NOT NULL,
    l_suppkey       INT NULL,
    l_linenumber    INT NOT NULL,
    l_quantity      DECIMAL(15,2) NULL,
    l_extendedprice DECIMAL(15,2) NOT NULL,
    l_discount      DOUBLE NULL,
    l_tax           DOUBLE NOT NULL,
    l_returned      BOOL NULL,
    l_shipdate      DATE NULL,
    l_committed_at  TIMESTAMP(6) NULL,
    l_shipmode      VARCHAR(10) NOT NULL,
    l_status        CHAR(1) NULL,
    l_comment       VARCHAR(100) NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_general_ci
  -- The generator's stamp: only a complete table is renamed to its name (below).
  COMMENT = ':stamp';
INSERT INTO :table_new
SELECT g,
       g DIV 4 + 1,
       (g * 7919) % 200000 + 1,
       CASE WHEN h % 100 = 0 THEN NULL ELSE (g * 104729) % 10000 + 1 END,
       g % 7 + 1,
       CASE WHEN h % 100 = 1 THEN NULL ELSE ((g * 31) % 5000 + 100) / 100 END,
       ((g * 2654435761) % 10000000 + 90000) / 100,
       CASE WHEN h % 100 = 2 THEN NULL ELSE ((g * 13) % 11) / 100.0 END,
       ((g * 17) % 9) / 100.0,
       CASE WHEN h % 100 = 3 THEN NULL ELSE h % 3 = 0 END,
       CASE WHEN h % 100 = 4 THEN NULL ELSE DATE '1992-01-01' + INTERVAL (g * 37) % 2557 DAY END,
       CASE WHEN h % 100 = 5 THEN NULL
            ELSE TIMESTAMP '1992-01-01 00:00:00' + INTERVAL (g * 7907) % 220000000 SECOND END,
       ELT(g % 7 + 1, 'AIR', 'MAIL', 'SHIP', 'TRUCK', 'RAIL', 'FOB', 'REG AIR'),
       CASE WHEN h % 100 = 6 THEN NULL ELSE ELT(h % 3 + 1, 'F', 'O', 'P') END,
       CASE WHEN h % 100 = 7 THEN NULL
            ELSE LEFT(CONCAT(MD5(g), ' carefully final deposits ', MD5(g * 3)), 20 + h % 70) END
FROM (SELECT seq AS g, (seq * 2246822519) % 1000003 AS h FROM seq_:first_to_:last) AS s;
-- Statistics now, as lineitem.sql's ANALYZE.
ANALYZE TABLE :table_new;
-- Swapped in last, so that a table of this name with the stamp is complete.
DROP TABLE IF EXISTS :table;
RENAME TABLE :table_new TO :table;
