"""Reads a Delta Lake table written by tributary with the `deltalake` package and with
DuckDB's delta extension (delta_scan), and compares it with a Parquet export of the same
rows read by the same reader: the same columns, of the same types, holding the same rows.

Usage:
  delta.py check TABLE EXPORT.parquet KEY_COLUMN [STORAGE_OPTIONS_JSON]
  delta.py poll TABLE STOP_FILE OUT.json

`check` compares rows in KEY_COLUMN's order; text columns compare equal whatever the
reader's text type. A remote TABLE (s3://...) is read by `deltalake` alone, with the
storage options given. Prints, for each reader, the rows and types it read and the
table's version; one line per mismatch; exits 1 on any mismatch.

`poll` reads the table's row count with `deltalake` over and over until STOP_FILE exists
(at most 10 minutes; a missing table counts as no rows) and writes the distinct
(version, rows) pairs it saw to OUT.json.
"""

import json
import os
import sys
import time

import duckdb
import duckdb_extension_delta
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable


def normal(t):
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_fixed_size_binary(t)
    ):
        return "binary"
    if pa.types.is_timestamp(t) and t.tz in ("UTC", "+00:00", "Etc/UTC"):
        return f"timestamp[{t.unit}, tz=UTC]"
    if pa.types.is_dictionary(t):
        return normal(t.value_type)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return f"list<{normal(t.value_type)}>"
    return str(t)


def plain(table):
    """The table with dictionary columns decoded (readers differ in what they keep), and
    extension columns as their storage: a Delta table has no extension types (a Parquet
    UUID column is binary in it)."""
    columns = []
    for column in table.columns:
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if isinstance(column.type, pa.BaseExtensionType):
            column = pa.chunked_array([c.storage for c in column.chunks], type=column.type.storage_type)
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def compare(reader, got, want, key, problems):
    got = plain(got).sort_by(key)
    want = plain(want).sort_by(key)
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


def duckdb_delta():
    """A DuckDB connection with the delta extension of the installed wheel loaded."""
    root = os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions")
    (version,) = os.listdir(root)
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{os.path.join(root, version, 'delta.duckdb_extension')}'")
    con.execute("SET TimeZone = 'UTC'")
    return con


def check(table, export, key, options):
    problems = []
    dt = DeltaTable(table, storage_options=options or None)
    print(f"version: {dt.version()}")
    got = pa.table(dt.to_pyarrow_dataset().to_table())
    compare("deltalake", got, pq.read_table(export), key, problems)
    if not options:
        con = duckdb_delta()
        got = con.sql(f"SELECT * FROM delta_scan('{table}')").to_arrow_table()
        want = con.sql(f"SELECT * FROM read_parquet('{export}')").to_arrow_table()
        compare("duckdb", got, want, key, problems)
    for p in problems:
        print(p)
    return 1 if problems else 0


def poll(table, stop, out):
    seen = set()
    end = time.monotonic() + 600
    while not os.path.exists(stop) and time.monotonic() < end:
        if not os.path.isdir(os.path.join(table, "_delta_log")):
            seen.add((-1, 0))
            continue
        try:
            dt = DeltaTable(table)
            seen.add((dt.version(), dt.to_pyarrow_dataset().count_rows()))
        except Exception as e:
            seen.add((-1, repr(e)))
        time.sleep(0.01)
    with open(out, "w") as f:
        json.dump(sorted(seen, key=str), f)
    return 0


def main():
    if sys.argv[1] == "check":
        options = json.loads(sys.argv[5]) if len(sys.argv) > 5 else None
        sys.exit(check(sys.argv[2], sys.argv[3], sys.argv[4], options))
    if sys.argv[1] == "poll":
        sys.exit(poll(sys.argv[2], sys.argv[3], sys.argv[4]))
    sys.exit(f"unknown command {sys.argv[1]}")


if __name__ == "__main__":
    main()
