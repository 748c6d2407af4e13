"""Reads a Hive-partitioned dataset written by tributary with pyarrow, polars and DuckDB,
each with its Hive partitioning given the partition columns' types from the dataset's
_SUCCESS manifest, and compares it with the same query's unpartitioned export read by the
same reader: the same columns, of the same types, holding the same rows.

Usage: hive.py DATASET_DIR EXPORT.parquet KEY_COLUMN

Rows are compared in KEY_COLUMN's order. Text columns compare equal whatever the reader's
text type (string, large_string, string_view). Prints one line per mismatch and, for
each reader, the rows and types it read; exits 1 on any mismatch.
"""

import json
import os
import sys

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

# Arrow's type names (as the manifest gives them) in each reader's terms.
ARROW = {"Utf8": pa.string(), "Int64": pa.int64(), "Int32": pa.int32(), "Date32": pa.date32()}
POLARS = {"Utf8": pl.String, "Int64": pl.Int64, "Int32": pl.Int32, "Date32": pl.Date}
DUCKDB = {"Utf8": "VARCHAR", "Int64": "BIGINT", "Int32": "INTEGER", "Date32": "DATE"}


def normal(t):
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    return str(t)


def compare(reader, got, want, key, problems):
    got = got.sort_by(key)
    want = want.sort_by(key)
    if sorted(got.column_names) != sorted(want.column_names):
        problems.append(f"{reader}: columns {sorted(got.column_names)} != {sorted(want.column_names)}")
        return
    if got.num_rows != want.num_rows:
        problems.append(f"{reader}: {got.num_rows} rows, the export has {want.num_rows}")
        return
    for name in want.column_names:
        g, w = got.column(name), want.column(name)
        if normal(g.type) != normal(w.type):
            problems.append(f"{reader}: column {name} is {g.type}, in the export {w.type}")
            continue
        gv, wv = g.to_pylist(), w.to_pylist()
        if gv != wv:
            diffs = [(i, a, b) for i, (a, b) in enumerate(zip(gv, wv)) if a != b]
            problems.append(f"{reader}: column {name} differs in {len(diffs)} rows, first {diffs[:3]}")
    types = ", ".join(f"{n}: {normal(got.column(n).type)}" for n in sorted(got.column_names))
    print(f"{reader}: {got.num_rows} rows; {types}")


def main():
    root, export, key = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(os.path.join(root, "_SUCCESS")) as f:
        manifest = json.load(f)
    columns = manifest["partition_by"]
    problems = []

    # pyarrow: its dataset API, which skips files named _* and .* (the manifest).
    schema = pa.schema([(c["name"], ARROW[c["type"]]) for c in columns])
    got = ds.dataset(root, format="parquet", partitioning=ds.partitioning(schema, flavor="hive")).to_table()
    compare("pyarrow", got, pq.read_table(export), key, problems)

    # polars
    glob = os.path.join(root, "**", "*.parquet")
    hive_schema = {c["name"]: POLARS[c["type"]] for c in columns}
    got = pl.scan_parquet(glob, hive_partitioning=True, hive_schema=hive_schema).collect().to_arrow()
    compare("polars", got, pl.read_parquet(export).to_arrow(), key, problems)

    # DuckDB
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    hive_types = "{" + ", ".join(f"'{c['name']}': '{DUCKDB[c['type']]}'" for c in columns) + "}"
    got = con.sql(
        f"SELECT * FROM read_parquet('{glob}', hive_partitioning = true, hive_types = {hive_types})"
    ).to_arrow_table()
    want = con.sql(f"SELECT * FROM read_parquet('{export}')").to_arrow_table()
    compare("duckdb", got, want, key, problems)

    for p in problems:
        print(p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
