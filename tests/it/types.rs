//! Every PostgreSQL type, on the real server, read back by pyarrow, pandas, polars and
//! DuckDB and compared value by value with what PostgreSQL itself returns; type options;
//! types unified across shards; Parquet writer options and split output.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int32Type, Int64Type};
use tributary::error::{Error, exit};

use crate::harness::{self, Job, concat};
use crate::readers;

/// One fixture column: its SQL type, its value in each fixture row (SQL literals), the
/// SQL giving the canonical expected value from the column `{c}` (see
/// `tests/readers/check.py`), type options for it, and the type each reader reports
/// (pyarrow, pandas, polars, duckdb).
struct Col {
    name: &'static str,
    sql_type: &'static str,
    values: [&'static str; ROWS],
    expected: &'static str,
    options: &'static [(&'static str, &'static str)],
    types: [&'static str; 4],
}

const ROWS: usize = 4;
const NULLS: [&str; ROWS] = ["NULL", "NULL", "NULL", "NULL"];

/// Expected-value SQL for common shapes.
const JSON: &str = "to_json({c})";
const TEXT: &str = "to_json({c}::text)";
const EPOCH_US: &str = "(extract(epoch from {c}) * 1000000)::int8";
const DAYS: &str = "{c} - date '1970-01-01'";

const SETUP: &str = r#"
CREATE EXTENSION IF NOT EXISTS citext;
CREATE EXTENSION IF NOT EXISTS hstore;
CREATE EXTENSION IF NOT EXISTS ltree;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy 😀');
CREATE DOMAIN positive AS int4 CHECK (VALUE > 0);
CREATE DOMAIN label AS text;
CREATE TYPE pair AS (n int4, s text, ok bool, tags text[]);
"#;

fn columns() -> Vec<Col> {
    let c = |name, sql_type, values, expected, types| Col {
        name,
        sql_type,
        values,
        expected,
        options: &[],
        types,
    };
    vec![
        c(
            "b",
            "bool",
            ["true", "false", "NULL", "true"],
            JSON,
            ["bool", "object", "Boolean", "BOOLEAN"],
        ),
        c(
            "i2",
            "int2",
            ["32767", "-32768", "NULL", "0"],
            JSON,
            ["int16", "float64", "Int16", "SMALLINT"],
        ),
        c(
            "i4",
            "int4",
            ["2147483647", "-2147483648", "NULL", "0"],
            JSON,
            ["int32", "float64", "Int32", "INTEGER"],
        ),
        c(
            "i8",
            "int8",
            ["9223372036854775807", "-9223372036854775808", "NULL", "0"],
            JSON,
            ["int64", "float64", "Int64", "BIGINT"],
        ),
        c(
            "o",
            "oid",
            ["4294967295", "0", "NULL", "1"],
            "{c}::int8",
            ["uint32", "float64", "UInt32", "UINTEGER"],
        ),
        c(
            "f4",
            "float4",
            ["3.4028235e38", "-1.5e-45", "NULL", "'NaN'"],
            JSON,
            ["float", "float32", "Float32", "FLOAT"],
        ),
        c(
            "f8",
            "float8",
            ["1e308", "-5e-324", "NULL", "'-Infinity'"],
            JSON,
            ["double", "float64", "Float64", "DOUBLE"],
        ),
        c(
            "n",
            "numeric(12,3)",
            ["123456789.123", "-0.001", "NULL", "0"],
            TEXT,
            [
                "decimal128(12, 3)",
                "object",
                "Decimal(precision=12, scale=3)",
                "DECIMAL(12,3)",
            ],
        ),
        c(
            "n38",
            "numeric(38,10)",
            [
                "9999999999999999999999999999.9999999999",
                "-1e-10",
                "NULL",
                "0",
            ],
            TEXT,
            [
                "decimal128(38, 10)",
                "object",
                "Decimal(precision=38, scale=10)",
                "DECIMAL(38,10)",
            ],
        ),
        c(
            "nu",
            "numeric",
            ["12345678901234567890.000000001", "-1e-30", "NULL", "'NaN'"],
            TEXT,
            ["string", "str", "String", "VARCHAR"],
        ),
        Col {
            options: &[("numeric", "float64")],
            ..c(
                "nf",
                "numeric",
                ["0.1", "'-Infinity'", "NULL", "'NaN'"],
                "to_json({c}::float8)",
                ["double", "float64", "Float64", "DOUBLE"],
            )
        },
        Col {
            options: &[("numeric", "decimal(20,4)"), ("infinity", "null")],
            ..c(
                "nd",
                "numeric",
                ["1.5", "'Infinity'", "NULL", "'NaN'"],
                "CASE WHEN {c} IN ('Infinity', 'NaN') THEN NULL ELSE to_json({c}::numeric(20,4)::text) END",
                [
                    "decimal128(20, 4)",
                    "object",
                    "Decimal(precision=20, scale=4)",
                    "DECIMAL(20,4)",
                ],
            )
        },
        c(
            "m",
            "money",
            ["'92233720368547758.07'", "'-1.5'", "NULL", "0"],
            "to_json({c}::numeric::text)",
            [
                "decimal128(19, 2)",
                "object",
                "Decimal(precision=19, scale=2)",
                "DECIMAL(19,2)",
            ],
        ),
        c(
            "t",
            "text",
            [r#"'héllo ✓ "q" 😀'"#, "''", "NULL", "E'multi\\nline\\ttab'"],
            JSON,
            ["string", "str", "String", "VARCHAR"],
        ),
        c(
            "bp",
            "char(5)",
            ["'ab'", "''", "NULL", "'abcde'"],
            JSON,
            ["string", "str", "String", "VARCHAR"],
        ),
        c(
            "ch",
            "\"char\"",
            ["'a'", "'Z'", "NULL", "''"],
            TEXT,
            ["string", "str", "String", "VARCHAR"],
        ),
        c(
            "ci",
            "citext",
            ["'MiXeD'", "''", "NULL", "'ß'"],
            TEXT,
            ["string", "str", "String", "VARCHAR"],
        ),
        c(
            "x",
            "xml",
            ["'<a b=\"1\">x</a>'", "'text only'", "NULL", "'<e/>'"],
            TEXT,
            ["string", "str", "String", "VARCHAR"],
        ),
        c(
            "j",
            "json",
            [r#"'{"k": [1, 2.50, "x"]}'"#, "'[]'", "NULL", "'null'"],
            TEXT,
            [
                "extension<arrow.json>",
                "object",
                "Extension('arrow.json', String, '')",
                "JSON",
            ],
        ),
        c(
            "jb",
            "jsonb",
            [r#"'{"k": [1, 2.50, "x"]}'"#, "'{}'", "NULL", r#"'"😀"'"#],
            TEXT,
            [
                "extension<arrow.json>",
                "object",
                "Extension('arrow.json', String, '')",
                "JSON",
            ],
        ),
        c(
            "by",
            "bytea",
            [r"'\x00ff10'", r"'\x'", "NULL", r"'\xdeadbeef'"],
            "to_json(encode({c}, 'hex'))",
            ["binary", "object", "Binary", "BLOB"],
        ),
        c(
            "d",
            "date",
            ["'2024-02-29'", "'0001-01-01'", "NULL", "'9999-12-31'"],
            DAYS,
            ["date32[day]", "object", "Date", "DATE"],
        ),
        Col {
            options: &[("infinity", "null")],
            ..c(
                "d_inf",
                "date",
                ["'infinity'", "'-infinity'", "NULL", "'1970-01-01'"],
                "CASE WHEN isfinite({c}) THEN {c} - date '1970-01-01' END",
                ["date32[day]", "object", "Date", "DATE"],
            )
        },
        c(
            "tm",
            "time",
            ["'23:59:59.999999'", "'00:00:00'", "NULL", "'12:00:00.5'"],
            EPOCH_US,
            ["time64[us]", "object", "Time", "TIME"],
        ),
        c(
            "tz_time",
            "timetz",
            [
                "'12:34:56.789+02'",
                "'00:00:00-11:30'",
                "NULL",
                "'23:59:59+00'",
            ],
            "json_build_object('time', (extract(epoch from {c}::time) * 1000000)::int8, 'utc_offset', extract(timezone from {c})::int)",
            [
                "struct<time: time64[us], utc_offset: int32>",
                "object",
                "Struct({'time': Time, 'utc_offset': Int32})",
                "STRUCT(\"time\" TIME, utc_offset INTEGER)",
            ],
        ),
        Col {
            options: &[("timetz", "utc")],
            ..c(
                "tz_time_utc",
                "timetz",
                [
                    "'12:34:56.789+02'",
                    "'00:00:00-11:30'",
                    "NULL",
                    "'23:59:59+00'",
                ],
                "(extract(epoch from ({c} AT TIME ZONE 'UTC')::time) * 1000000)::int8",
                ["time64[us]", "object", "Time", "TIME"],
            )
        },
        c(
            "ts",
            "timestamp",
            [
                "'2024-02-29 12:34:56.789012'",
                "'0001-01-01 00:00:00'",
                "NULL",
                "'9999-12-31 23:59:59.999999'",
            ],
            EPOCH_US,
            [
                "timestamp[us]",
                "datetime64[us]",
                "Datetime(time_unit='us', time_zone=None)",
                "TIMESTAMP",
            ],
        ),
        c(
            "tstz",
            "timestamptz",
            [
                "'2024-02-29 12:34:56.789012+05:30'",
                "'1969-12-31 23:59:59.999999+00'",
                "NULL",
                "'2000-01-01 00:00:00-08'",
            ],
            EPOCH_US,
            [
                "timestamp[us, tz=UTC]",
                "datetime64[us, UTC]",
                "Datetime(time_unit='us', time_zone='UTC')",
                "TIMESTAMP WITH TIME ZONE",
            ],
        ),
        Col {
            options: &[("infinity", "null")],
            ..c(
                "ts_inf_null",
                "timestamp",
                ["'infinity'", "'-infinity'", "NULL", "'2024-01-01'"],
                "CASE WHEN isfinite({c}) THEN (extract(epoch from {c}) * 1000000)::int8 END",
                [
                    "timestamp[us]",
                    "datetime64[us]",
                    "Datetime(time_unit='us', time_zone=None)",
                    "TIMESTAMP",
                ],
            )
        },
        Col {
            options: &[("infinity", "clamp")],
            ..c(
                "ts_inf_clamp",
                "timestamptz",
                [
                    "'infinity'",
                    "'-infinity'",
                    "NULL",
                    "'2024-01-01 00:00:00+00'",
                ],
                "CASE WHEN {c} = 'infinity' THEN 9223372036854775807 WHEN {c} = '-infinity' THEN -9223372036854775807 ELSE (extract(epoch from {c}) * 1000000)::int8 END",
                [
                    "timestamp[us, tz=UTC]",
                    "datetime64[us, UTC]",
                    "Datetime(time_unit='us', time_zone='UTC')",
                    "TIMESTAMP WITH TIME ZONE",
                ],
            )
        },
        c(
            "iv",
            "interval",
            [
                "'1 year 2 mons 3 days 04:05:06.789'",
                "'-1 mons +2 days -00:00:01'",
                "NULL",
                "'0'",
            ],
            "json_build_object('months', (extract(year from {c}) * 12 + extract(month from {c}))::int, 'days', extract(day from {c})::int, 'microseconds', (extract(hour from {c}) * 3600000000 + extract(minute from {c}) * 60000000 + extract(microseconds from {c}))::int8)",
            [
                "struct<months: int32, days: int32, microseconds: int64>",
                "object",
                "Struct({'months': Int32, 'days': Int32, 'microseconds': Int64})",
                "STRUCT(\"months\" INTEGER, \"days\" INTEGER, \"microseconds\" BIGINT)",
            ],
        ),
        Col {
            options: &[("interval", "duration")],
            ..c(
                "iv_dur",
                "interval",
                [
                    "'1 year 2 mons 3 days 04:05:06.789'",
                    "'-1 days'",
                    "NULL",
                    "'0'",
                ],
                "(((extract(year from {c}) * 12 + extract(month from {c})) * 30 + extract(day from {c})) * 86400000000 + extract(hour from {c}) * 3600000000 + extract(minute from {c}) * 60000000 + extract(microseconds from {c}))::int8",
                [
                    "duration[us]",
                    "timedelta64[us]",
                    "Duration(time_unit='us')",
                    "BIGINT",
                ],
            )
        },
        c(
            "u",
            "uuid",
            [
                "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
                "'00000000-0000-0000-0000-000000000000'",
                "NULL",
                "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
            ],
            "to_json(replace({c}::text, '-', ''))",
            ["extension<arrow.uuid>", "object", "Binary", "UUID"],
        ),
        Col {
            options: &[("uuid", "string")],
            ..c(
                "u_str",
                "uuid",
                [
                    "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
                    "'00000000-0000-0000-0000-000000000000'",
                    "NULL",
                    "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
                ],
                TEXT,
                ["string", "str", "String", "VARCHAR"],
            )
        },
        c(
            "ip",
            "inet",
            ["'192.168.0.1'", "'10.1.0.0/16'", "NULL", "'::ffff:1.2.3.4'"],
            JSON,
            ["string", "str", "String", "VARCHAR"],
        ),
        c(
            "ip6",
            "inet",
            ["'2001:db8::1'", "'::'", "NULL", "'fe80:0:0:1:0:0:0:1/64'"],
            JSON,
            ["string", "str", "String", "VARCHAR"],
        ),
        c(
            "net",
            "cidr",
            ["'10.0.0.0/8'", "'192.168.1.1'", "NULL", "'2001:db8::/32'"],
            JSON,
            ["string", "str", "String", "VARCHAR"],
        ),
        c(
            "mac",
            "macaddr",
            [
                "'08:00:2b:01:02:03'",
                "'ff-ff-ff-ff-ff-ff'",
                "NULL",
                "'000000000000'",
            ],
            JSON,
            ["string", "str", "String", "VARCHAR"],
        ),
        c(
            "mac8",
            "macaddr8",
            [
                "'08:00:2b:01:02:03:04:05'",
                "'00:00:00:00:00:00:00:00'",
                "NULL",
                "'08002b0102030405'",
            ],
            JSON,
            ["string", "str", "String", "VARCHAR"],
        ),
        c(
            "bits",
            "varbit",
            ["B'101'", "B''", "NULL", "B'1111000011'"],
            JSON,
            ["string", "str", "String", "VARCHAR"],
        ),
        c(
            "pt",
            "point",
            ["'(1.5,-2)'", "'(0,0)'", "NULL", "'(1e300,-1e-300)'"],
            "json_build_object('x', {c}[0], 'y', {c}[1])",
            [
                "struct<x: double, y: double>",
                "object",
                "Struct({'x': Float64, 'y': Float64})",
                "STRUCT(x DOUBLE, y DOUBLE)",
            ],
        ),
        c(
            "hs",
            "hstore",
            [r#"'a=>1, "b c"=>NULL'"#, "''", "NULL", r#"'ü=>"😀"'"#],
            "hstore_to_json({c})",
            [
                "map<string ('keys'), string ('values') ('hs')>",
                "object",
                "Map(String, String)",
                "MAP(VARCHAR, VARCHAR)",
            ],
        ),
        c(
            "lt",
            "ltree",
            ["'a.b.c'", "''", "NULL", "'top'"],
            TEXT,
            ["string", "str", "String", "VARCHAR"],
        ),
        c(
            "tsv",
            "tsvector",
            ["'a fat:2 cat'", "''", "NULL", "'x:1A'"],
            TEXT,
            ["string", "str", "String", "VARCHAR"],
        ),
        c(
            "lsn",
            "pg_lsn",
            ["'16/B374D848'", "'0/0'", "NULL", "'FFFFFFFF/FFFFFFFF'"],
            TEXT,
            ["string", "str", "String", "VARCHAR"],
        ),
        c(
            "e",
            "mood",
            ["'happy 😀'", "'sad'", "NULL", "'ok'"],
            JSON,
            ["string", "str", "String", "VARCHAR"],
        ),
        Col {
            options: &[("enums", "dictionary")],
            ..c(
                "e_dict",
                "mood",
                ["'happy 😀'", "'sad'", "NULL", "'happy 😀'"],
                JSON,
                [
                    "dictionary<values=string, indices=int32, ordered=0>",
                    "category",
                    "Categorical",
                    "VARCHAR",
                ],
            )
        },
        c(
            "dom",
            "positive",
            ["1", "2147483647", "NULL", "7"],
            JSON,
            ["int32", "float64", "Int32", "INTEGER"],
        ),
        c(
            "dom_text",
            "label",
            ["'x'", "''", "NULL", "'ÿ'"],
            JSON,
            ["string", "str", "String", "VARCHAR"],
        ),
        c(
            "comp",
            "pair",
            [
                "ROW(1, 'one', true, '{a,NULL}')",
                "ROW(NULL, NULL, NULL, NULL)",
                "NULL",
                "ROW(-1, '😀', false, '{}')",
            ],
            JSON,
            [
                "struct<n: int32, s: string, ok: bool, tags: list<item: string>>",
                "object",
                "Struct({'n': Int32, 's': String, 'ok': Boolean, 'tags': List(String)})",
                "STRUCT(n INTEGER, s VARCHAR, ok BOOLEAN, tags VARCHAR[])",
            ],
        ),
        c(
            "a_i4",
            "int4[]",
            ["'{1,2,3}'", "'{}'", "NULL", "'{NULL,-2147483648}'"],
            JSON,
            ["list<item: int32>", "object", "List(Int32)", "INTEGER[]"],
        ),
        c(
            "a_text",
            "text[]",
            [r#"'{"a b","😀",""}'"#, "'{}'", "NULL", "'{NULL}'"],
            JSON,
            ["list<item: string>", "object", "List(String)", "VARCHAR[]"],
        ),
        Col {
            options: &[("array_dims", "2")],
            ..c(
                "a_2d",
                "int8[]",
                ["'{{1,2},{3,4},{5,NULL}}'", "'{}'", "NULL", "'{{7}}'"],
                JSON,
                [
                    "list<item: list<item: int64>>",
                    "object",
                    "List(List(Int64))",
                    "BIGINT[][]",
                ],
            )
        },
        c(
            "a_num",
            "numeric(10,2)[]",
            ["'{1.5,-2}'", "'{}'", "NULL", "'{NULL}'"],
            "to_json({c}::text[])",
            [
                "list<item: decimal128(10, 2)>",
                "object",
                "List(Decimal(precision=10, scale=2))",
                "DECIMAL(10,2)[]",
            ],
        ),
        c(
            "a_tstz",
            "timestamptz[]",
            [
                "'{\"2024-01-01 00:00:00+00\",NULL}'",
                "'{}'",
                "NULL",
                "'{\"1999-12-31 23:59:59.5+01\"}'",
            ],
            "COALESCE((SELECT json_agg((extract(epoch from x) * 1000000)::int8 ORDER BY o) FROM unnest({c}) WITH ORDINALITY AS u(x, o)), '[]')",
            [
                "list<item: timestamp[us, tz=UTC]>",
                "object",
                "List(Datetime(time_unit='us', time_zone='UTC'))",
                "TIMESTAMP WITH TIME ZONE[]",
            ],
        ),
        c(
            "a_uuid",
            "uuid[]",
            [
                "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'",
                "'{}'",
                "NULL",
                "'{NULL}'",
            ],
            "to_json({c}::text[])",
            ["list<item: string>", "object", "List(String)", "VARCHAR[]"],
        ),
        c(
            "a_mood",
            "mood[]",
            ["'{sad,ok}'", "'{}'", "NULL", "'{NULL,\"happy 😀\"}'"],
            JSON,
            ["list<item: string>", "object", "List(String)", "VARCHAR[]"],
        ),
        c(
            "a_comp",
            "pair[]",
            [
                "ARRAY[ROW(1, 'a', true, '{x}')::pair, NULL]",
                "'{}'",
                "NULL",
                "ARRAY[ROW(2, NULL, NULL, NULL)::pair]",
            ],
            JSON,
            [
                "list<item: struct<n: int32, s: string, ok: bool, tags: list<item: string>>>",
                "object",
                "List(Struct({'n': Int32, 's': String, 'ok': Boolean, 'tags': List(String)}))",
                "STRUCT(n INTEGER, s VARCHAR, ok BOOLEAN, tags VARCHAR[])[]",
            ],
        ),
        c(
            "r_i4",
            "int4range",
            ["'[1,5]'", "'empty'", "NULL", "'(,10)'"],
            "json_build_object('lower', lower({c}), 'upper', upper({c}), 'lower_inclusive', lower_inc({c}), 'upper_inclusive', upper_inc({c}), 'empty', isempty({c}))",
            [
                "struct<lower: int32, upper: int32, lower_inclusive: bool, upper_inclusive: bool, empty: bool>",
                "object",
                "Struct({'lower': Int32, 'upper': Int32, 'lower_inclusive': Boolean, 'upper_inclusive': Boolean, 'empty': Boolean})",
                "STRUCT(lower INTEGER, upper INTEGER, lower_inclusive BOOLEAN, upper_inclusive BOOLEAN, empty BOOLEAN)",
            ],
        ),
        c(
            "r_ts",
            "tstzrange",
            [
                "'[2024-01-01 00:00:00+00,2024-02-01 00:00:00+00)'",
                "'empty'",
                "NULL",
                "'[2024-01-01 00:00:00+00,)'",
            ],
            "json_build_object('lower', (extract(epoch from lower({c})) * 1000000)::int8, 'upper', (extract(epoch from upper({c})) * 1000000)::int8, 'lower_inclusive', lower_inc({c}), 'upper_inclusive', upper_inc({c}), 'empty', isempty({c}))",
            [
                "struct<lower: timestamp[us, tz=UTC], upper: timestamp[us, tz=UTC], lower_inclusive: bool, upper_inclusive: bool, empty: bool>",
                "object",
                "Struct({'lower': Datetime(time_unit='us', time_zone='UTC'), 'upper': Datetime(time_unit='us', time_zone='UTC'), 'lower_inclusive': Boolean, 'upper_inclusive': Boolean, 'empty': Boolean})",
                "STRUCT(lower TIMESTAMP WITH TIME ZONE, upper TIMESTAMP WITH TIME ZONE, lower_inclusive BOOLEAN, upper_inclusive BOOLEAN, empty BOOLEAN)",
            ],
        ),
        c(
            "r_num",
            "numrange",
            ["'[1.50,2.25)'", "'empty'", "NULL", "'(-1,)'"],
            "json_build_object('lower', lower({c})::text, 'upper', upper({c})::text, 'lower_inclusive', lower_inc({c}), 'upper_inclusive', upper_inc({c}), 'empty', isempty({c}))",
            [
                "struct<lower: string, upper: string, lower_inclusive: bool, upper_inclusive: bool, empty: bool>",
                "object",
                "Struct({'lower': String, 'upper': String, 'lower_inclusive': Boolean, 'upper_inclusive': Boolean, 'empty': Boolean})",
                "STRUCT(lower VARCHAR, upper VARCHAR, lower_inclusive BOOLEAN, upper_inclusive BOOLEAN, empty BOOLEAN)",
            ],
        ),
        c(
            "mr",
            "datemultirange",
            [
                "'{[2024-01-01,2024-01-10), [2024-02-01,2024-03-01)}'",
                "'{}'",
                "NULL",
                "'{(,2000-01-01)}'",
            ],
            "COALESCE((SELECT json_agg(json_build_object('lower', lower(r) - date '1970-01-01', 'upper', upper(r) - date '1970-01-01', 'lower_inclusive', lower_inc(r), 'upper_inclusive', upper_inc(r), 'empty', isempty(r)) ORDER BY r) FROM unnest({c}) AS r), '[]')",
            [
                "list<item: struct<lower: date32[day], upper: date32[day], lower_inclusive: bool, upper_inclusive: bool, empty: bool>>",
                "object",
                "List(Struct({'lower': Date, 'upper': Date, 'lower_inclusive': Boolean, 'upper_inclusive': Boolean, 'empty': Boolean}))",
                "STRUCT(lower DATE, upper DATE, lower_inclusive BOOLEAN, upper_inclusive BOOLEAN, empty BOOLEAN)[]",
            ],
        ),
        Col {
            options: &[("text", "true")],
            ..c(
                "as_text",
                "int4[]",
                ["'{1,NULL}'", "'{}'", "NULL", "'[0:1]={5,6}'"],
                TEXT,
                ["string", "str", "String", "VARCHAR"],
            )
        },
        c(
            "all_null",
            "int4",
            NULLS,
            JSON,
            ["int32", "float64", "Int32", "INTEGER"],
        ),
    ]
}

/// The fixture: one table holding every column, rows in `id` order.
fn fixture_sql(cols: &[Col]) -> String {
    let mut sql = String::from(SETUP);
    let defs: Vec<String> = cols
        .iter()
        .map(|c| format!("{} {}", c.name, c.sql_type))
        .collect();
    sql.push_str(&format!(
        "CREATE TABLE fixture (id int PRIMARY KEY, {});\n",
        defs.join(", ")
    ));
    for row in 0..ROWS {
        let values: Vec<&str> = cols.iter().map(|c| c.values[row]).collect();
        sql.push_str(&format!(
            "INSERT INTO fixture VALUES ({}, {});\n",
            row + 1,
            values.join(", ")
        ));
    }
    sql
}

/// What PostgreSQL says, column by column, in the canonical form, and the type each
/// reader reports; `overrides` replaces the expected SQL (when given) and the types of
/// some columns: (column, expected SQL, types).
async fn expected(
    cols: &[Col],
    db: &str,
    overrides: &[(&str, Option<&str>, [&str; 4])],
) -> serde_json::Value {
    let client = harness::connect(&harness::db(db)).await;
    let mut expected = Vec::new();
    for c in cols {
        let over = overrides.iter().find(|(name, ..)| *name == c.name);
        let expr = over
            .and_then(|(_, sql, _)| *sql)
            .unwrap_or(c.expected)
            .replace("{c}", c.name);
        let sql = format!(
            "SELECT CASE WHEN num_nulls({name}) = 1 THEN NULL ELSE to_json(({expr})) END FROM fixture ORDER BY id",
            name = c.name
        );
        let rows = client
            .query(&sql, &[])
            .await
            .unwrap_or_else(|e| panic!("expected values of {}: {e:?}", c.name));
        let values: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                r.get::<_, Option<serde_json::Value>>(0)
                    .unwrap_or(serde_json::Value::Null)
            })
            .collect();
        let [pyarrow, pandas, polars, duckdb] = over.map_or(c.types, |(.., types)| *types);
        let mut types = serde_json::json!({"pyarrow": pyarrow, "pandas": pandas, "polars": polars, "duckdb": duckdb});
        if let Some((_, spark)) = SPARK_TYPES.iter().find(|(name, _)| *name == c.name)
            && !overrides.is_empty()
        {
            types["spark"] = serde_json::json!(spark);
        }
        expected.push(serde_json::json!({
            "name": c.name,
            "types": types,
            "values": values,
        }));
    }
    serde_json::json!({ "columns": expected })
}

/// The fixture's columns the Spark profile writes otherwise: (column, expected SQL when
/// the values change, the types pyarrow, pandas, polars and DuckDB then report).
const FOR_SPARK: &[(&str, Option<&str>, [&str; 4])] = &[
    ("u", Some(TEXT), ["string", "str", "String", "VARCHAR"]),
    ("tm", None, ["int64", "float64", "Int64", "BIGINT"]),
    (
        "tz_time",
        None,
        [
            "struct<time: int64, utc_offset: int32>",
            "object",
            "Struct({'time': Int64, 'utc_offset': Int32})",
            "STRUCT(\"time\" BIGINT, utc_offset INTEGER)",
        ],
    ),
    ("tz_time_utc", None, ["int64", "float64", "Int64", "BIGINT"]),
];

/// What Spark reports for the fixture's columns written with `--for spark`.
const SPARK_TYPES: &[(&str, &str)] = &[
    ("b", "boolean"),
    ("i2", "smallint"),
    ("i4", "int"),
    ("i8", "bigint"),
    ("o", "bigint"),
    ("f4", "float"),
    ("f8", "double"),
    ("n", "decimal(12,3)"),
    ("n38", "decimal(38,10)"),
    ("nu", "string"),
    ("nf", "double"),
    ("nd", "decimal(20,4)"),
    ("m", "decimal(19,2)"),
    ("t", "string"),
    ("bp", "string"),
    ("ch", "string"),
    ("ci", "string"),
    ("x", "string"),
    ("j", "string"),
    ("jb", "string"),
    ("by", "binary"),
    ("d", "date"),
    ("d_inf", "date"),
    ("tm", "bigint"),
    ("tz_time", "struct<time:bigint,utc_offset:int>"),
    ("tz_time_utc", "bigint"),
    ("ts", "timestamp_ntz"),
    ("tstz", "timestamp"),
    ("ts_inf_null", "timestamp_ntz"),
    ("ts_inf_clamp", "timestamp"),
    ("iv", "struct<months:int,days:int,microseconds:bigint>"),
    ("iv_dur", "bigint"),
    ("u", "string"),
    ("u_str", "string"),
    ("ip", "string"),
    ("ip6", "string"),
    ("net", "string"),
    ("mac", "string"),
    ("mac8", "string"),
    ("bits", "string"),
    ("pt", "struct<x:double,y:double>"),
    ("hs", "map<string,string>"),
    ("lt", "string"),
    ("tsv", "string"),
    ("lsn", "string"),
    ("e", "string"),
    ("e_dict", "string"),
    ("dom", "int"),
    ("dom_text", "string"),
    (
        "comp",
        "struct<n:int,s:string,ok:boolean,tags:array<string>>",
    ),
    ("a_i4", "array<int>"),
    ("a_text", "array<string>"),
    ("a_2d", "array<array<bigint>>"),
    ("a_num", "array<decimal(10,2)>"),
    ("a_tstz", "array<timestamp>"),
    ("a_uuid", "array<string>"),
    ("a_mood", "array<string>"),
    (
        "a_comp",
        "array<struct<n:int,s:string,ok:boolean,tags:array<string>>>",
    ),
    (
        "r_i4",
        "struct<lower:int,upper:int,lower_inclusive:boolean,upper_inclusive:boolean,empty:boolean>",
    ),
    (
        "r_ts",
        "struct<lower:timestamp,upper:timestamp,lower_inclusive:boolean,upper_inclusive:boolean,empty:boolean>",
    ),
    (
        "r_num",
        "struct<lower:string,upper:string,lower_inclusive:boolean,upper_inclusive:boolean,empty:boolean>",
    ),
    (
        "mr",
        "array<struct<lower:date,upper:date,lower_inclusive:boolean,upper_inclusive:boolean,empty:boolean>>",
    ),
    ("as_text", "string"),
    ("all_null", "int"),
];

/// Every column of the type suite, written with `--for spark`: PySpark reads every value
/// as PostgreSQL returns it, and so do pyarrow, pandas, polars and DuckDB.
#[tokio::test]
async fn every_type_written_for_spark_reads_back_in_pyspark_and_the_other_readers() {
    let cols = columns();
    let url = harness::database("types_spark", &fixture_sql(&cols)).await;
    let names: Vec<&str> = cols.iter().map(|c| c.name).collect();
    let sql = format!("SELECT {} FROM fixture ORDER BY id", names.join(", "));
    let mut job = Job::new(&sql, &[("only", &url)]);
    for c in &cols {
        for (key, value) in c.options {
            job.args
                .column_types
                .push((c.name.into(), (*key).into(), (*value).into()));
        }
    }
    job.args.readers = vec!["spark".into()];
    let (report, result) = job.run().await;
    result.unwrap();
    let readers = report.readers.as_ref().expect("the profile's notes");
    assert_eq!(readers.readers, ["spark"]);
    let converted: Vec<&str> = readers
        .conversions
        .iter()
        .map(|c| c.column.as_str())
        .collect();
    assert_eq!(converted, ["tm", "tz_time.time", "tz_time_utc", "u"]);
    assert!(readers.warnings.is_empty(), "{:?}", readers.warnings);
    let meta = harness::parquet_metadata(&job.output());
    assert_eq!(meta["tributary.for"], "spark");
    assert!(
        meta["tributary.conversions"]
            .contains("\"u\":\"uuid (Parquet UUID) as 36-character text\""),
        "{}",
        meta["tributary.conversions"]
    );

    let expected = expected(&cols, "types_spark", FOR_SPARK).await;
    eprintln!("{}", readers::check(&job.output(), &expected));

    // In the same Spark session: what the reader table says of Spark, on files written
    // without the profile (refused: uuid, time, names equal but for case), and xid8,
    // which Spark reads as decimal(20,0) itself.
    let mut files = vec![(job.output(), expected)];
    for (i, (sql, error)) in [
        ("SELECT u FROM fixture", "PARQUET_TYPE_ILLEGAL"),
        ("SELECT tm FROM fixture", "UNSUPPORTED_TIME_TYPE"),
        (
            "SELECT id, i4 AS \"ID\" FROM fixture",
            "COLUMN_ALREADY_EXISTS",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut refused = Job::new(sql, &[("only", &url)]);
        refused.args.output = Some(job.dir.path().join(format!("refused-{i}.parquet")));
        refused.run_ok().await;
        files.push((refused.output(), serde_json::json!({ "error": error })));
    }
    let mut x8 = Job::new(
        "SELECT x8 FROM (VALUES (1, '18446744073709551615'::xid8), (2, NULL), (3, '0')) AS v(i, x8) ORDER BY i",
        &[("only", &url)],
    );
    x8.args.output = Some(job.dir.path().join("xid8.parquet"));
    x8.args.readers = vec!["spark".into()];
    x8.run_ok().await;
    let x8_expected = serde_json::json!({"columns": [{
        "name": "x8",
        "types": {"spark": "decimal(20,0)"},
        "values": ["18446744073709551615", null, "0"],
    }]});
    files.push((x8.output(), x8_expected));
    let files: Vec<(&std::path::Path, &serde_json::Value)> =
        files.iter().map(|(p, e)| (p.as_path(), e)).collect();
    eprintln!("{}", readers::spark(&files));
}

#[tokio::test]
async fn every_type_reads_back_in_pyarrow_pandas_polars_and_duckdb_as_postgres_returns_it() {
    let cols = columns();
    let url = harness::database("types_readers", &fixture_sql(&cols)).await;
    let names: Vec<&str> = cols.iter().map(|c| c.name).collect();
    let sql = format!("SELECT {} FROM fixture ORDER BY id", names.join(", "));
    let mut job = Job::new(&sql, &[("only", &url)]);
    for c in &cols {
        for (key, value) in c.options {
            job.args
                .column_types
                .push((c.name.into(), (*key).into(), (*value).into()));
        }
    }
    let batch = concat(&job.run_ok().await);
    assert_eq!(batch.num_rows(), ROWS);
    // The same without dictionaries: every column in its fallback encoding (the delta
    // encodings for integers, dates, timestamps and text), which readers must decode too.
    let mut plain_job = Job::new(&sql, &[("only", &url)]);
    plain_job.args.column_types = job.args.column_types.clone();
    plain_job.args.dictionary = Some(false);
    assert_eq!(concat(&plain_job.run_ok().await).num_rows(), ROWS);

    let expected = expected(&cols, "types_readers", &[]).await;
    for job in [&job, &plain_job] {
        let report = readers::check(&job.output(), &expected);
        eprintln!("{report}");
    }
}

#[tokio::test]
async fn infinity_is_an_error_naming_the_column_unless_an_option_says_otherwise() {
    let url = harness::database(
        "types_infinity",
        "CREATE TABLE t (id int, at timestamptz); INSERT INTO t VALUES (1, 'infinity'), (2, '2024-01-01');",
    )
    .await;
    let job = Job::new("SELECT id, at FROM t ORDER BY id", &[("s1", &url)]);
    let err = job.run_err().await;
    let msg = err.to_string();
    assert!(
        msg.contains("shard `s1`")
            && msg.contains("column `at`")
            && msg.contains("infinity")
            && msg.contains("clamp"),
        "{msg}"
    );
    assert_eq!(err.exit_code(), exit::DATA);

    let mut job = Job::new("SELECT id, at FROM t ORDER BY id", &[("s1", &url)]);
    job.args
        .type_options
        .push(("infinity".into(), "null".into()));
    let batch = concat(&job.run_ok().await);
    let at = batch.column(1);
    assert!(at.is_null(0) && !at.is_null(1));
}

#[tokio::test]
async fn a_type_without_a_mapping_is_read_as_text() {
    let url = harness::database("types_nomap", "SELECT 1").await;
    let job = Job::new(
        "SELECT 1 AS ok, pg_sleep(0) AS nothing, ROW(1, 'a b') AS anon",
        &[("s1", &url)],
    );
    let batch = concat(&job.run_ok().await);
    assert_eq!(batch.schema().field(1).data_type(), &DataType::Utf8);
    assert_eq!(
        harness::str_column(&batch, "anon"),
        [Some("(1,\"a b\")".to_string())]
    );
    assert_eq!(
        harness::str_column(&batch, "nothing"),
        [Some(String::new())]
    );
}

#[tokio::test]
async fn shards_typing_a_column_differently_are_unified_to_the_wider_type() {
    // The narrow shard is listed (and so usually written) first.
    let narrow = harness::database(
        "widen_narrow",
        "CREATE TABLE t (id int4, amount numeric(10,2), tags int2[]);
         INSERT INTO t SELECT g, g / 4.0, ARRAY[g::int2] FROM generate_series(1, 20000) g;",
    )
    .await;
    let wide = harness::database(
        "widen_wide",
        "CREATE TABLE t (id int8, amount numeric(12,3), tags int8[]);
         INSERT INTO t VALUES (9000000000, 123456789.125, '{9000000000}');",
    )
    .await;
    let mut job = Job::new(
        "SELECT id, amount, tags FROM t",
        &[("narrow", &narrow), ("wide", &wide)],
    );
    job.args.shard_column = Some("shard".into());
    let batch = concat(&job.run_ok().await);
    let schema = batch.schema();
    assert_eq!(
        schema.field_with_name("id").unwrap().data_type(),
        &DataType::Int64
    );
    assert_eq!(
        schema.field_with_name("amount").unwrap().data_type(),
        &DataType::Decimal128(12, 3)
    );
    assert_eq!(
        schema
            .field_with_name("tags")
            .unwrap()
            .data_type()
            .to_string(),
        "List(Int64)"
    );
    assert_eq!(batch.num_rows(), 20001);
    let ids = batch
        .column_by_name("id")
        .unwrap()
        .as_primitive::<Int64Type>();
    let amounts = batch
        .column_by_name("amount")
        .unwrap()
        .as_primitive::<arrow::datatypes::Decimal128Type>();
    let shards = harness::str_column(&batch, "shard");
    for (i, shard) in shards.iter().enumerate() {
        if shard.as_deref() == Some("wide") {
            assert_eq!(
                (ids.value(i), amounts.value(i)),
                (9_000_000_000, 123_456_789_125)
            );
        } else {
            // g / 4.0 with two decimals, at scale 3.
            assert_eq!(amounts.value(i), ids.value(i) as i128 * 250);
        }
    }
}

#[tokio::test]
async fn incompatible_types_are_an_error_naming_both_shards() {
    let a = harness::database("incompat_a", "CREATE TABLE t (v timestamp)").await;
    let b = harness::database("incompat_b", "CREATE TABLE t (v timestamptz)").await;
    let job = Job::new("SELECT v FROM t", &[("a", &a), ("b", &b)]);
    let err = job.run_err().await;
    let msg = err.to_string();
    assert!(matches!(err, Error::SchemaMismatch { .. }), "{msg}");
    assert!(
        msg.contains("`a`") && msg.contains("`b`") && msg.contains("column `v`"),
        "{msg}"
    );
}

fn orders(n: i64) -> String {
    format!(
        "CREATE TABLE t (id int8, label text);
         INSERT INTO t SELECT g, 'label ' || (g % 10) FROM generate_series(1, {n}) g;"
    )
}

#[tokio::test]
async fn parquet_writer_options_reach_the_file() {
    let url = harness::database("pq_options", &orders(5000)).await;
    let mut job = Job::new("SELECT id, label FROM t", &[("s", &url)]);
    job.args.dictionary = Some(false);
    job.args.statistics = Some("none".into());
    job.args.page_index = Some(false);
    job.args.compression = Some("snappy".into());
    job.run_ok().await;
    let footer = harness::parquet_footer(&job.output());
    let group = footer.row_group(0);
    let label = group.column(1);
    assert!(label.statistics().is_none());
    assert!(label.offset_index_offset().is_none());
    assert!(label.column_index_offset().is_none());
    assert_eq!(label.compression(), parquet::basic::Compression::SNAPPY);
    assert!(
        !label
            .encodings()
            .any(|e| matches!(e, parquet::basic::Encoding::RLE_DICTIONARY)),
        "dictionary encoding was off"
    );

    // The defaults: dictionary, page statistics and the page index.
    let job = Job::new("SELECT id, label FROM t", &[("s", &url)]);
    job.run_ok().await;
    let footer = harness::parquet_footer(&job.output());
    let label = footer.row_group(0).column(1);
    assert!(label.statistics().is_some());
    assert!(label.offset_index_offset().is_some() && label.column_index_offset().is_some());
    assert!(
        label
            .encodings()
            .any(|e| matches!(e, parquet::basic::Encoding::RLE_DICTIONARY))
    );
}

#[tokio::test]
async fn values_outside_a_dictionary_are_delta_encoded_unless_plain_is_asked() {
    use parquet::basic::Encoding;
    // `note` and `id` are unique (their dictionaries outgrow 64 KiB and give way),
    // `label` has ten values (its dictionary stays).
    let url = harness::database(
        "pq_text_encoding",
        "CREATE TABLE t (id int8, label text, note text);
         INSERT INTO t SELECT g, 'label ' || (g % 10),
                CASE WHEN g % 97 = 0 THEN NULL ELSE md5(g::text) || repeat('é', g % 5) END
         FROM generate_series(1, 20000) g;",
    )
    .await;
    let sql = "SELECT id, label, note FROM t ORDER BY id";
    let encodings = |job: &Job, column: usize| -> Vec<Encoding> {
        let mut all: Vec<Encoding> = harness::parquet_footer(&job.output())
            .row_groups()
            .iter()
            .flat_map(|g| g.column(column).encodings().collect::<Vec<_>>())
            .collect();
        all.sort_by_key(|e| *e as i32);
        all.dedup();
        all
    };
    let delta = Job::new(sql, &[("s", &url)]);
    let delta_batches = delta.run_ok().await;
    let note = encodings(&delta, 2);
    // (PLAIN is listed too: a dictionary page is always plain.)
    assert!(
        note.contains(&Encoding::DELTA_LENGTH_BYTE_ARRAY),
        "{note:?}"
    );
    let label = encodings(&delta, 1);
    assert!(label.contains(&Encoding::RLE_DICTIONARY), "{label:?}");
    assert!(
        !label.contains(&Encoding::DELTA_LENGTH_BYTE_ARRAY),
        "{label:?}"
    );
    let id = encodings(&delta, 0);
    assert!(id.contains(&Encoding::DELTA_BINARY_PACKED), "{id:?}");
    assert!(!id.contains(&Encoding::DELTA_LENGTH_BYTE_ARRAY), "{id:?}");

    let mut plain = Job::new(sql, &[("s", &url)]);
    plain.args.encoding = Some("plain".into());
    plain.args.dictionary = Some(false);
    let plain_batches = plain.run_ok().await;
    for column in [0, 1, 2] {
        let used = encodings(&plain, column);
        assert!(used.contains(&Encoding::PLAIN), "{used:?}");
        assert!(
            !used.contains(&Encoding::DELTA_LENGTH_BYTE_ARRAY)
                && !used.contains(&Encoding::DELTA_BINARY_PACKED),
            "{used:?}"
        );
    }

    // Both read back as the server's rows.
    let client = harness::connect(&harness::db("pq_text_encoding")).await;
    let rows = client
        .query("SELECT id, label, note FROM t ORDER BY id", &[])
        .await
        .unwrap();
    let ids: Vec<Option<i64>> = rows.iter().map(|r| r.get(0)).collect();
    let labels: Vec<Option<String>> = rows.iter().map(|r| r.get(1)).collect();
    let notes: Vec<Option<String>> = rows.iter().map(|r| r.get(2)).collect();
    assert_eq!(rows.len(), 20000);
    for batches in [&delta_batches, &plain_batches] {
        let batch = harness::concat(batches);
        assert_eq!(harness::i64_column(&batch, "id"), ids);
        assert_eq!(harness::str_column(&batch, "label"), labels);
        assert_eq!(harness::str_column(&batch, "note"), notes);
    }

    let mut wrong = Job::new(sql, &[("s", &url)]);
    wrong.args.encoding = Some("rle".into());
    let err = tributary::JobConfig::resolve(wrong.args.clone())
        .unwrap_err()
        .to_string();
    assert!(err.contains("encoding") && err.contains("`rle`"), "{err}");
}

#[tokio::test]
async fn a_split_output_is_numbered_files_that_appear_together() {
    let a = harness::database("split_a", &orders(25_000)).await;
    let b = harness::database("split_b", &orders(10_000)).await;
    let mut job = Job::new("SELECT id, label FROM t", &[("a", &a), ("b", &b)]);
    job.args.row_group_size = Some(4000);
    job.args.max_file_rows = Some(10_000);
    // A stale part of an earlier, longer run goes; an unrelated file stays.
    let dir = job.dir.path().to_owned();
    std::fs::write(dir.join("out-00042.parquet"), b"old").unwrap();
    std::fs::write(dir.join("out-notes.txt"), b"mine").unwrap();
    let (report, result) = job.run().await;
    result.unwrap();
    assert!(report.to_string().contains("wrote 4 files"), "{report}");
    let output = report.output.unwrap();
    assert_eq!(output.files.len(), 4, "{:?}", output.files);
    let mut total = 0;
    for (i, file) in output.files.iter().enumerate() {
        assert_eq!(file, &dir.join(format!("out-{i:05}.parquet")));
        let rows: usize = harness::read_parquet(file)
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert!(rows <= 10_000, "{} has {rows} rows", file.display());
        total += rows;
        let meta = harness::parquet_metadata(file);
        assert!(meta.contains_key("tributary.tasks"));
    }
    assert_eq!(total, 35_000);
    assert_eq!(output.rows, 35_000);
    assert!(!job.output().exists());
    assert!(!dir.join("out-00042.parquet").exists());
    assert!(dir.join("out-notes.txt").exists());
    harness::assert_no_temporaries(&dir);

    // A failure leaves no part behind.
    let mut job = Job::new(
        "SELECT id, (100 / (id - 20000))::text AS label FROM t",
        &[("a", &a)],
    );
    job.args.row_group_size = Some(1000);
    job.args.max_file_rows = Some(2000);
    job.run_err().await;
    let left: Vec<_> = std::fs::read_dir(job.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".parquet"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn type_options_change_only_what_they_name() {
    let url = harness::database(
        "types_options",
        "CREATE TABLE t (a numeric, b numeric, n int4);
         INSERT INTO t VALUES (0.1, 0.1, 1);",
    )
    .await;
    let mut job = Job::new("SELECT a, b, n FROM t", &[("s", &url)]);
    job.args
        .column_types
        .push(("b".into(), "numeric".into(), "float64".into()));
    let batch = concat(&job.run_ok().await);
    assert_eq!(harness::str_column(&batch, "a"), [Some("0.1".to_string())]);
    let b = batch.column_by_name("b").unwrap();
    assert_eq!(b.data_type(), &DataType::Float64);
    assert_eq!(
        batch
            .column_by_name("n")
            .unwrap()
            .as_primitive::<Int32Type>()
            .value(0),
        1
    );
}

#[tokio::test]
async fn declared_array_dimensions_are_read_from_the_catalog() {
    let url = harness::database(
        "types_dims",
        "CREATE TABLE t (m int4[][], v int4[]);
         INSERT INTO t VALUES ('{{1,2},{3,4}}', '{1}');",
    )
    .await;
    let job = Job::new("SELECT m, v, m AS m2 FROM t", &[("s", &url)]);
    let batch = concat(&job.run_ok().await);
    let ty = |i: usize| batch.schema().field(i).data_type().to_string();
    assert_eq!(ty(0), "List(List(Int32))");
    assert_eq!(ty(1), "List(Int32)");
    assert_eq!(
        ty(2),
        "List(List(Int32))",
        "an alias keeps the column's origin"
    );
    // An expression has no declared dimensions: a 2-D value needs the option, and says so.
    let job = Job::new("SELECT m || '{{5,6}}' AS e FROM t", &[("s", &url)]);
    let msg = job.run_err().await.to_string();
    assert!(
        msg.contains("column `e`") && msg.contains("array_dims = 2"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_split_output_leaves_out_a_failed_shard_under_allow_partial() {
    let good = harness::database("split_partial_good", &orders(12_000)).await;
    let bad = harness::database("split_partial_bad", &orders(12_000)).await;
    let mut job = Job::new(
        "SELECT id, (100 / (id - CASE WHEN current_database() LIKE '%split_partial_bad' THEN 9000 ELSE 0 END))::int8 AS q FROM t",
        &[("good", &good), ("bad", &bad)],
    );
    job.args.row_group_size = Some(1000);
    job.args.max_file_rows = Some(5000);
    job.args.allow_partial = true;
    let (report, result) = job.run().await;
    harness::assert_partial(&result, &report, 1, 2);
    let output = report.output.unwrap();
    let mut ids = Vec::new();
    for file in &output.files {
        for batch in harness::read_parquet(file) {
            ids.extend(
                batch
                    .column(0)
                    .as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .copied(),
            );
        }
    }
    ids.sort();
    assert_eq!(
        ids,
        (1..=12_000).collect::<Vec<_>>(),
        "exactly the good shard's rows"
    );
    assert_eq!(output.rows, 12_000);
    harness::assert_no_temporaries(job.dir.path());
}

#[tokio::test]
async fn a_split_by_size_starts_a_new_file_past_the_size() {
    let url = harness::database("split_size", &orders(40_000)).await;
    let mut job = Job::new("SELECT id, md5(id::text) AS h FROM t", &[("s", &url)]);
    job.args.row_group_size = Some(2000);
    job.args.compression = Some("none".into());
    job.args.max_file_size = Some("200KB".into());
    let (report, result) = job.run().await;
    result.unwrap();
    let output = report.output.unwrap();
    // 40,000 rows of ~45 bytes: several files, each past 200 KB by less than a row group.
    assert!(output.files.len() >= 3, "{:?}", output.files);
    let rows: usize = output
        .files
        .iter()
        .flat_map(|f| harness::read_parquet(f))
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, 40_000);
    for file in &output.files[..output.files.len() - 1] {
        let size = std::fs::metadata(file).unwrap().len();
        assert!(
            (200_000..400_000).contains(&size),
            "{}: {size}",
            file.display()
        );
    }
}

#[tokio::test]
async fn numeric_with_and_without_precision_unify_to_the_exact_text() {
    let a = harness::database(
        "widen_numeric_a",
        "CREATE TABLE t (id int, v numeric(10,2)); INSERT INTO t VALUES (1, 1.5);",
    )
    .await;
    let b = harness::database(
        "widen_numeric_b",
        "CREATE TABLE t (id int, v numeric); INSERT INTO t VALUES (2, 2.125), (3, 'NaN');",
    )
    .await;
    let job = Job::new("SELECT id, v FROM t", &[("a", &a), ("b", &b)]);
    let batch = concat(&job.run_ok().await);
    let mut rows: Vec<(i64, Option<String>)> = harness::i64_column(&batch, "id")
        .into_iter()
        .map(Option::unwrap)
        .zip(harness::str_column(&batch, "v"))
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            (1, Some("1.50".to_string())),
            (2, Some("2.125".to_string())),
            (3, Some("NaN".to_string()))
        ]
    );
}

#[tokio::test]
async fn an_interrupt_while_shards_are_described_stops_the_run_at_once() {
    // A server that accepts connections and never answers: the describe hangs.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = format!("postgres://postgres@127.0.0.1:{port}/silent");
    let job = Job::new("SELECT 1 AS x", &[("silent", &url)]);
    let config = tributary::JobConfig::resolve(job.args.clone()).unwrap();
    let started = std::time::Instant::now();
    let interrupt = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        "SIGINT"
    };
    let (_, result) = tributary::run(&config, false, interrupt).await;
    assert!(
        matches!(result, Err(Error::Interrupted { signal: "SIGINT" })),
        "{result:?}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(!job.output().exists());
    harness::assert_no_temporaries(job.dir.path());
    silent.abort();
}

/// Regression: `time '24:00'` (valid in PostgreSQL) overflowed Time64; now it is an error
/// naming the column unless `infinity` says otherwise, like the other values Arrow cannot
/// hold.
#[tokio::test]
async fn time_24_00_is_an_error_naming_the_column_unless_an_option_says_otherwise() {
    let url = harness::database(
        "types_time24",
        "CREATE TABLE t (id int, at time, tz timetz);
         INSERT INTO t VALUES (1, '24:00', '24:00+02'), (2, '12:30', '12:30+00');",
    )
    .await;
    let sql = "SELECT id, at FROM t ORDER BY id";
    let err = Job::new(sql, &[("s1", &url)]).run_err().await;
    let msg = err.to_string();
    assert!(
        msg.contains("shard `s1`") && msg.contains("column `at`") && msg.contains("24:00:00"),
        "{msg}"
    );
    assert_eq!(err.exit_code(), exit::DATA);

    let micros = |batch: &arrow::array::RecordBatch, i: usize| -> Vec<Option<i64>> {
        batch
            .column(i)
            .as_primitive::<arrow::datatypes::Time64MicrosecondType>()
            .iter()
            .collect()
    };
    let mut job = Job::new(sql, &[("s1", &url)]);
    job.args
        .column_types
        .push(("at".into(), "infinity".into(), "clamp".into()));
    let batch = concat(&job.run_ok().await);
    assert_eq!(
        micros(&batch, 1),
        [Some(86_400_000_000 - 1), Some(45_000_000_000)]
    );
    let mut job = Job::new(sql, &[("s1", &url)]);
    job.args
        .type_options
        .push(("infinity".into(), "null".into()));
    assert_eq!(
        micros(&concat(&job.run_ok().await), 1),
        [None, Some(45_000_000_000)]
    );
    // timetz moved to UTC wraps around midnight whatever the option: 24:00+02 is 22:00 UTC.
    let mut job = Job::new("SELECT id, tz FROM t ORDER BY id", &[("s1", &url)]);
    job.args.type_options.push(("timetz".into(), "utc".into()));
    assert_eq!(
        micros(&concat(&job.run_ok().await), 1),
        [Some(79_200_000_000), Some(45_000_000_000)]
    );
}

/// Regression: an array's lower bound (`'[0:2]={1,2,3}'`) was dropped silently; a List
/// has none, so it is an error naming the column unless `array_bounds = "ignore"`.
#[tokio::test]
async fn array_lower_bounds_are_an_error_unless_ignored() {
    let url = harness::database(
        "types_bounds",
        "CREATE TABLE t (id int, a int4[]);
         INSERT INTO t VALUES (1, '[0:2]={1,2,3}'), (2, '{4,5}');",
    )
    .await;
    let sql = "SELECT id, a FROM t ORDER BY id";
    let err = Job::new(sql, &[("s1", &url)]).run_err().await;
    let msg = err.to_string();
    assert!(
        msg.contains("shard `s1`")
            && msg.contains("column `a`")
            && msg.contains("lower bound 0")
            && msg.contains("array_bounds"),
        "{msg}"
    );
    assert_eq!(err.exit_code(), exit::DATA);

    let mut job = Job::new(sql, &[("s1", &url)]);
    job.args
        .column_types
        .push(("a".into(), "array_bounds".into(), "ignore".into()));
    let batch = concat(&job.run_ok().await);
    let lists = batch.column(1).as_list::<i32>();
    let values: Vec<Vec<i32>> = (0..2)
        .map(|r| lists.value(r).as_primitive::<Int32Type>().values().to_vec())
        .collect();
    assert_eq!(values, [vec![1, 2, 3], vec![4, 5]]);
}
