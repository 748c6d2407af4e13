#!/usr/bin/env bash
# Rebuilds corpus/copy_decoder: real binary COPY streams from PostgreSQL for each of the
# fuzz target's column layouts (src/lib.rs), with NULLs, boundary values and several
# rows, each behind the two control bytes the target reads (chunk size, layout).
#
#     PGHOST=127.0.0.1 PGUSER=postgres fuzz/make_corpus.sh
set -euo pipefail
cd "$(dirname "$0")"
out=corpus/copy_decoder
db=${TRIBUTARY_TEST_DB_PREFIX:-tributary}_fuzz_corpus
mkdir -p "$out"
psql -qX -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
trap 'psql -qX -d postgres -c "DROP DATABASE IF EXISTS $db"' EXIT
psql -qX -d "$db" -c "CREATE EXTENSION hstore"

layouts=(
  # 0: fixed widths only
  "SELECT * FROM (VALUES
     (1::int8, 2::int4, 1.5::float8, '2024-01-02'::date, '2024-01-02 03:04:05+00'::timestamptz),
     (NULL, -7, 'NaN', NULL, 'infinity'),
     (9223372036854775807, NULL, NULL, '1999-12-31', NULL)) t"
  # 1: the benchmark's mix
  "SELECT * FROM (VALUES
     (1::int8, 2::int4, 12.50::numeric(15,2), 0.25::float8, true, '2024-01-02'::date, '2024-01-02 03:04:05+00'::timestamptz, 'seven'::text, 'ünï'::text),
     (NULL, NULL, -0.01, NULL, false, 'infinity', NULL, '', NULL),
     (-1, 0, 9999999999999.99, -0.0, NULL, NULL, '1970-01-01 00:00:00+00', NULL, 'x')) t"
  # 2: wide decimals and text-like kinds
  "SELECT * FROM (VALUES
     (123456789.0123456789::numeric(38,10), 1200::numeric, 'NaN'::numeric, 1e-5::numeric, '{\"k\": [1, null]}'::jsonb, '\$.a'::jsonpath, 'a'::\"char\", '\\xdeadbeef'::bytea, 12.34::money),
     (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
     (-1, -1e20, '-Infinity', 3.25, '[]', '\$', '\\001'::\"char\", '\\x'::bytea, '-0.01'::money)) t"
  # 3: times, intervals, network and geometric kinds
  "SELECT * FROM (VALUES
     ('12:34:56.789'::time, '12:34:56.789+02'::timetz, '23:00:00-05'::timetz, '1 year 2 mons -3 days 04:05:06.789'::interval, '5 days'::interval, '00010203-0405-0607-0809-0a0b0c0d0e0f'::uuid, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, '2001:db8::1/64'::inet, '08:00:2b:01:02:03'::macaddr, '1010000011'::varbit, '(1.5,-2)'::point, 7::int2, 42::oid, '123'::xid8, 1.5::float4),
     ('24:00:00', '24:00:00+00', NULL, NULL, NULL, NULL, NULL, '10.0.0.1', NULL, ''::varbit, NULL, NULL, NULL, NULL, NULL),
     (NULL, NULL, '00:00:00+14', '-1 mons', NULL, NULL, NULL, NULL, NULL, NULL, NULL, '-32768'::int2, '4294967295'::oid, NULL, 'NaN')) t"
  # 4: nested kinds (pgvector is not installed here: its column is NULL)
  "SELECT * FROM (VALUES
     ('{{1,2},{3,NULL}}'::int4[], '{a,NULL,ccc}'::text[], '[2024-01-01,2024-01-10)'::daterange, '{[1,5), [7,9)}'::int8multirange, ROW(7, 'x'::text), 'a=>1, b=>NULL'::hstore, NULL::text),
     ('{}', '[0:1]={x,y}', 'empty', '{}', ROW(NULL::int4, NULL::text), ''::hstore, NULL),
     (NULL, NULL, '(,2000-01-01]', NULL, NULL, NULL, NULL)) t"
)

for i in "${!layouts[@]}"; do
  stream=$(mktemp)
  psql -qX -d "$db" -c "COPY (${layouts[$i]}) TO STDOUT (FORMAT binary)" >"$stream"
  # Control bytes: chunk size (x7 bytes), layout (the byte modulo the number of layouts).
  # With 0x80 in the layout byte the target pushes the header itself, so those inputs
  # start at the first tuple.
  for cut in 1 3 255; do
    { printf "\\x$(printf %02x "$cut")\\x$(printf %02x "$i")"; cat "$stream"; } >"$out/layout$i-cut$cut"
  done
  pick=$((128 + (i + 5 - 128 % 5) % 5))
  { printf "\\x02\\x$(printf %02x $pick)"; tail -c +20 "$stream"; } >"$out/layout$i-noheader"
  rm -f "$stream"
done
ls -l "$out"
