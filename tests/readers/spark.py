"""Reads Parquet files written by tributary with PySpark (local mode, one session for all
of them: Spark's start-up is the slow part) and compares every value with what
PostgreSQL returned, like check.py does for the other readers.

Usage: spark.py EXPECTED.json FILE.parquet [EXPECTED.json FILE.parquet ...]

EXPECTED.json is check.py's: {"columns": [{"name", "types": {reader: type}, "values"}]};
a "spark" entry in "types" is checked against Spark's simpleString() of the column.
{"error": "CLASS"} instead says that Spark must refuse the file with that error class.
Values are compared in check.py's canonical form. Top-level timestamps and dates are
taken through Spark SQL (unix_micros, unix_date, decimals as Spark's text), in Spark itself, since Python's datetime
stops at years 1 to 9999 and Spark converts timestamps through the local zone; nested ones
as the Python objects Spark returns (the process runs with TZ=UTC).

Prints the Spark version, the types Spark reports per file and one line per mismatch;
exits 1 on any mismatch or unreadable file.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pyarrow.parquet as pq  # noqa: E402
from check import canon, same, with_maps  # noqa: E402
from pyspark.sql import Row, SparkSession  # noqa: E402


def plain(v):
    """Spark's Rows (structs) as dicts, recursively."""
    if isinstance(v, Row):
        return {k: plain(x) for k, x in v.asDict(recursive=False).items()}
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


def quoted(name):
    return "`" + name.replace("`", "``") + "`"


def check(spark, expected_path, path, problems):
    with open(expected_path) as f:
        expected = json.load(f)
    if "error" in expected:
        # A file Spark must refuse, with this error class: what the reader table says.
        try:
            spark.read.parquet(path).collect()
        except Exception as e:  # noqa: BLE001 - the refusal expected
            message = str(e).splitlines()[0]
            if expected["error"] not in message:
                problems.append(f"spark: {path}: refused with {message}, expected {expected['error']}")
            else:
                print(f"spark refuses {os.path.basename(path)}: {message}")
            return
        problems.append(f"spark: {path}: read, expected a refusal with {expected['error']}")
        return
    df = spark.read.parquet(path)
    select = []
    for field in df.schema.fields:
        c = quoted(field.name)
        t = field.dataType.simpleString()
        if t == "timestamp":
            c = f"unix_micros({c})"
        elif t == "timestamp_ntz":
            c = f"unix_micros(cast({c} AS timestamp))"
        elif t == "date":
            c = f"unix_date({c})"
        elif t.startswith("decimal("):
            # Spark's own text of the decimal, with all its scale digits: Python's
            # Decimal from collect() may carry more (-1E-10 at scale 10 came back with
            # 12 digits after the point).
            c = f"cast({c} AS string)"
        select.append(f"{c} AS {quoted(field.name)}")
    rows = df.selectExpr(*select).collect()
    arrow = pq.read_schema(path)
    types = {}
    for column in expected["columns"]:
        name = column["name"]
        if name not in df.columns:
            problems.append(f"spark: {path}: no column {name}")
            continue
        type_name = df.schema[name].dataType.simpleString()
        types[name] = type_name
        want_type = column["types"].get("spark")
        if want_type is not None and want_type != type_name:
            problems.append(f"spark: column {name} is {type_name}, expected {want_type}")
        t = arrow.field(name).type
        try:
            values = [with_maps(canon(plain(row[name])), t) for row in rows]
        except Exception as e:  # noqa: BLE001 - reported as a mismatch
            problems.append(f"spark: column {name}: cannot read values: {e!r}")
            continue
        for i, (want, value) in enumerate(zip(column["values"], values)):
            if not same("spark", want, value, False):
                problems.append(
                    f"spark: column {name} row {i}: {json.dumps(value, default=str)}, "
                    f"expected {json.dumps(want)}"
                )
        if len(values) != len(column["values"]):
            problems.append(f"spark: column {name} has {len(values)} rows")
    print(f"spark types of {os.path.basename(path)}: " + json.dumps(types))


def main():
    args = sys.argv[1:]
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("tributary-reader-check")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    print("spark version: " + spark.version)
    problems = []
    for expected_path, path in zip(args[::2], args[1::2]):
        try:
            check(spark, expected_path, path, problems)
        except Exception as e:  # noqa: BLE001 - an unreadable file is a mismatch
            problems.append(f"spark: {path}: {str(e).splitlines()[0]}")
    spark.stop()
    for p in problems:
        print("MISMATCH " + p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
