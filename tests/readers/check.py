"""Reads a Parquet file written by tributary with pyarrow, pandas, polars and DuckDB, and
compares every column's type and every value with what PostgreSQL returned. pandas reads
twice: as notebooks do by default (numpy backend, types checked) and with
dtype_backend="pyarrow" (values only, held to exactness like the others).

Usage: check.py FILE.parquet EXPECTED.json

EXPECTED.json holds {"columns": [{"name", "types": {reader: type}, "values": [...]}]}, the
values in the canonical form below (built by tests/it/types.rs from PostgreSQL's own
answers). Prints one line per mismatch and the types each reader reports; exits 1 on any
mismatch.

Canonical form of a value, whatever the reader's objects:
- NULL -> None; booleans, integers, strings as themselves
- floats as numbers, NaN and infinities as "NaN", "Infinity", "-Infinity"
- decimals as their exact text with all scale digits ("12.50")
- bytes as lowercase hex
- timestamps as microseconds since 1970-01-01 (UTC for time zone aware ones), dates as
  days since 1970-01-01, times as microseconds since midnight, durations as microseconds
- uuid as 32 hex digits (readers give UUID objects or 16 bytes); lists as lists; structs as objects; maps as objects

Documented reader behaviour, allowed here and written up in docs/types.md:
- pandas (default numpy backend) reads integer columns and integer lists holding NULLs as
  float64, and shows NULL as NaN in those and in `str` columns: for pandas a NULL may read
  as NaN, and integers are compared as floats.
- DuckDB reads the `infinity = "clamp"` timestamps as its own ±infinity: top-level
  timestamps are read through epoch_us(), and ±infinity as ±(2^63 - 1).
"""

import datetime
import decimal
import json
import math
import sys
import uuid

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

EPOCH = datetime.datetime(1970, 1, 1)
EPOCH_DATE = datetime.date(1970, 1, 1)
MICRO = datetime.timedelta(microseconds=1)


def canon(v):
    """A reader's value in the canonical form."""
    if v is None:
        return None
    if isinstance(v, (np.ndarray, pa.Array)):
        return [canon(x) for x in list(v)]
    if v is pd.NaT or v is pd.NA:
        return None
    if isinstance(v, np.generic):
        v = v.item()
        if v is None:
            return None
    if isinstance(v, pd.Timestamp):
        if v.tzinfo is not None:
            v = v.tz_convert("UTC").tz_localize(None)
        return int(v.asm8.astype("datetime64[us]").view("i8"))
    if isinstance(v, pd.Timedelta):
        return int(v.asm8.astype("timedelta64[us]").view("i8"))
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return v
    if isinstance(v, decimal.Decimal):
        if v.is_nan():
            return "NaN"
        if v.is_infinite():
            return "Infinity" if v > 0 else "-Infinity"
        return format(v, "f")
    if isinstance(v, str):
        return v
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return (v - EPOCH) // MICRO
    if isinstance(v, datetime.date):
        return (v - EPOCH_DATE).days
    if isinstance(v, datetime.time):
        return ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000 + v.microsecond
    if isinstance(v, datetime.timedelta):
        return v // MICRO
    if isinstance(v, uuid.UUID):
        return v.hex
    if isinstance(v, dict):
        return {k: canon(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [canon(x) for x in v]
    raise TypeError(f"no canonical form for {type(v).__name__}: {v!r}")


def as_map(v):
    """A map read as pairs, {key: [...], value: [...]} or a dict -> a dict."""
    if v is None:
        return None
    if isinstance(v, dict):
        if set(v) == {"key", "value"} and isinstance(v["key"], list):
            return dict(zip(v["key"], v["value"]))
        return v
    out = {}
    for pair in v:
        if isinstance(pair, dict):
            k, val = list(pair.values())
        else:
            k, val = pair
        out[k] = val
    return out


def with_maps(v, t):
    """Applies `as_map` wherever the Arrow type `t` has a map, after `canon`."""
    if v is None:
        return None
    if pa.types.is_map(t):
        return as_map(v)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return [with_maps(x, t.value_type) for x in v]
    if pa.types.is_struct(t):
        return {f.name: with_maps(v.get(f.name), f.type) for f in t}
    return v


def arrow_values(column):
    """Python values of an Arrow array; temporal values as the integers stored, since
    Python's datetime stops at year 9999."""
    t = column.type
    if pa.types.is_timestamp(t) or pa.types.is_time64(t) or pa.types.is_duration(t):
        return column.cast(pa.int64()).to_pylist()
    if pa.types.is_date32(t):
        return column.cast(pa.int32()).to_pylist()
    return column.to_pylist()


def readers(path):
    """{reader: {column: (type name, [values])}}."""
    out = {}
    table = pq.read_table(path)
    out["pyarrow"] = {
        name: (str(table.column(name).type), arrow_values(table.column(name)))
        for name in table.column_names
    }
    df = pd.read_parquet(path)
    out["pandas"] = {name: (str(df[name].dtype), df[name].tolist()) for name in df.columns}
    # pandas as docs/types.md recommends for exact columns (types not checked).
    df = pd.read_parquet(path, dtype_backend="pyarrow")
    out["pandas-pyarrow"] = {
        name: (str(df[name].dtype), arrow_values(pa.array(df[name].array)))
        for name in df.columns
    }
    pdf = pl.read_parquet(path)
    out["polars"] = {}
    for name in pdf.columns:
        s = pdf[name]
        if s.dtype == pl.Time:
            values = [None if v is None else v // 1000 for v in s.to_physical().to_list()]
        elif s.dtype in (pl.Date, pl.Duration) or isinstance(s.dtype, (pl.Datetime, pl.Duration)):
            values = s.to_physical().to_list()
        else:
            values = s.to_list()
        out["polars"][name] = (str(s.dtype), values)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    rel = con.sql(f"SELECT * FROM read_parquet('{path}')")
    select = []
    for name, t in zip(rel.columns, rel.types):
        c = '"' + name.replace('"', '""') + '"'
        if str(t) in ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE"):
            c = (f"CASE WHEN {c} IS NULL THEN NULL WHEN NOT isinf({c}) THEN epoch_us({c}) "
                 f"WHEN {c}::VARCHAR = 'infinity' THEN 9223372036854775807 "
                 f"ELSE -9223372036854775807 END")
        select.append(c)
    rows = con.sql(f"SELECT {', '.join(select)} FROM read_parquet('{path}')").fetchall()
    out["duckdb"] = {
        name: (str(t), [row[i] for row in rows])
        for i, (name, t) in enumerate(zip(rel.columns, rel.types))
    }
    return out, table.schema


def same(reader, want, got, pandas_float):
    if want == got:
        return True
    if reader == "pandas" and want is None and got == "NaN":
        return True
    if isinstance(want, float) or isinstance(got, float):
        if isinstance(want, (int, float)) and isinstance(got, (int, float)):
            return float(want) == float(got) or (
                # float4 columns: PostgreSQL prints the shortest float4 text.
                np.float32(want) == np.float32(got)
            )
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        return all(same(reader, w, g, pandas_float) for w, g in zip(want, got))
    if isinstance(want, dict) and isinstance(got, dict) and set(want) == set(got):
        return all(same(reader, want[k], got[k], pandas_float) for k in want)
    return False


def main():
    path, expected_path = sys.argv[1], sys.argv[2]
    with open(expected_path) as f:
        expected = json.load(f)
    got, schema = readers(path)
    problems = []
    report = {}
    for column in expected["columns"]:
        name = column["name"]
        t = schema.field(name).type
        for reader, by_column in got.items():
            if name not in by_column:
                problems.append(f"{reader}: no column {name}")
                continue
            type_name, values = by_column[name]
            report.setdefault(name, {})[reader] = type_name
            want_type = column["types"].get(reader)
            if want_type is not None and want_type != type_name:
                problems.append(f"{reader}: column {name} is {type_name}, expected {want_type}")
            try:
                values = [with_maps(canon(v), t) for v in values]
            except Exception as e:  # noqa: BLE001 - reported as a mismatch
                problems.append(f"{reader}: column {name}: cannot read values: {e!r}")
                continue
            pandas_float = type_name.startswith("float")
            for i, (want, value) in enumerate(zip(column["values"], values)):
                if not same(reader, want, value, pandas_float):
                    problems.append(
                        f"{reader}: column {name} row {i}: {json.dumps(value, default=str)}, "
                        f"expected {json.dumps(want)}"
                    )
            if len(values) != len(column["values"]):
                problems.append(f"{reader}: column {name} has {len(values)} rows")
    print("reader versions: " + json.dumps({
        "pyarrow": pa.__version__, "pandas": pd.__version__,
        "polars": pl.__version__, "duckdb": duckdb.__version__,
    }))
    print("types: " + json.dumps(report))
    for p in problems:
        print("MISMATCH " + p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
