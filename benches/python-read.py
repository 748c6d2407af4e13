"""The contenders of `cargo bench --bench pg -- python`: one PostgreSQL query read into one
pyarrow.Table in memory, the way each library documents it. Run by the benchmark with the
Python of the venv it makes from benches/requirements-python-peers.txt; by hand:

    TRIBUTARY_BENCH_PG_URL=postgres://postgres@127.0.0.1:5432/tp_bench?sslmode=disable \\
        python benches/python-read.py tributary|connectorx QUERY

Prints the table's rows and its Arrow size in bytes. The URL comes from the environment, so
that a password stays off the command line.
"""

import os
import sys


def main():
    tool, query = sys.argv[1:3]
    url = os.environ["TRIBUTARY_BENCH_PG_URL"]
    if tool == "tributary":
        import tributary

        # One shard, one task: as ConnectorX without partition_on.
        table = tributary.read_sql(query, {"bench": url})
    elif tool == "connectorx":
        import connectorx as cx

        table = cx.read_sql(url, query, return_type="arrow")
    else:
        sys.exit(f"unknown tool {tool!r}: tributary or connectorx")
    print(table.num_rows, table.nbytes)


main()
