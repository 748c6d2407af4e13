"""Checks the Python package against the CLI (tests/it/python.rs).

    read_sql.py CASES.json

Each case runs `tributary.read_sql` and compares its table with the Parquet file the
`tributary` binary wrote for the same query and shards: the same column names and Arrow
types, and the same rows (in the same order when the case says `ordered`, else as
multisets). A case with `error` instead expects `read_sql` to raise: the exception's class,
`exit_code`, `shard`, and text its message must contain. Prints one line per case; exits
1 with every mismatch when any case fails.
"""

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import tributary


def rows(table: pa.Table, ordered: bool):
    values = list(zip(*(col.to_pylist() for col in table.columns)))
    return values if ordered else sorted(values, key=repr)


def check_result(case, table):
    problems = []
    parquet = pq.read_table(case["parquet"])
    got = [(f.name, str(f.type)) for f in table.schema]
    want = [(f.name, str(f.type)) for f in parquet.schema]
    if got != want:
        problems.append(f"columns: read_sql {got}, the CLI's Parquet {want}")
    if table.num_rows != parquet.num_rows:
        problems.append(f"rows: read_sql {table.num_rows}, the CLI's Parquet {parquet.num_rows}")
    elif rows(table, case["ordered"]) != rows(parquet, case["ordered"]):
        for i, (g, w) in enumerate(zip(rows(table, case["ordered"]), rows(parquet, case["ordered"]))):
            if g != w:
                problems.append(f"row {i}: read_sql {g!r}, the CLI's Parquet {w!r}")
                break
    if case.get("combined") and table.schema.metadata.get(b"tributary.combine") is None:
        problems.append("the table's metadata does not say how the query was combined")
    return problems, f"{table.num_rows} rows, {len(got)} columns"


def check_error(case, call):
    want = case["error"]
    try:
        call()
    except tributary.Error as e:
        problems = []
        if type(e).__name__ != want["class"]:
            problems.append(f"raised {type(e).__name__}, expected {want['class']}: {e}")
        if e.exit_code != want["exit_code"]:
            problems.append(f"exit_code {e.exit_code}, expected {want['exit_code']}")
        if e.shard != want.get("shard"):
            problems.append(f"shard {e.shard!r}, expected {want.get('shard')!r}")
        for text in want.get("contains", []):
            if text not in str(e):
                problems.append(f"message lacks {text!r}: {e}")
        return problems, f"{type(e).__name__}(exit_code={e.exit_code}, shard={e.shard!r}): {e}"
    return [f"no exception, expected {want['class']}"], "returned"


def main():
    cases = json.loads(Path(sys.argv[1]).read_text())
    failures = []
    for case in cases:
        kwargs = dict(case.get("options", {}))
        if "partition" in kwargs:
            kwargs["partition"] = tuple(kwargs["partition"])
        call = lambda: tributary.read_sql(case["query"], case["shards"], **kwargs)  # noqa: E731
        if "error" in case:
            problems, summary = check_error(case, call)
        else:
            table = call()
            problems, summary = check_result(case, table)
            # The helpers give the same rows.
            frame = tributary.to_polars(case["query"], case["shards"], **kwargs)
            if frame.height != table.num_rows or frame.columns != table.column_names:
                problems.append(f"to_polars: {frame.shape} {frame.columns}")
            pandas = tributary.to_pandas(case["query"], case["shards"], arrow_dtypes=True, **kwargs)
            if len(pandas) != table.num_rows or list(pandas.columns) != table.column_names:
                problems.append(f"to_pandas: {pandas.shape} {list(pandas.columns)}")
        print(f"{case['name']}: {'ok' if not problems else 'MISMATCH'} ({summary})")
        failures += [f"{case['name']}: {p}" for p in problems]
    if failures:
        print("\n".join(failures))
        sys.exit(1)


main()
