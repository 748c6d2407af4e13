"""The peers of benches/mysql.rs: one MySQL query to one Parquet file, zstd, the way each
tool is documented to do it. Run by the benchmark with the Python of the venv it makes from
benches/requirements-mysql-peers.txt; by hand:

    TRIBUTARY_BENCH_MYSQL_URL=mysql://root@127.0.0.1:3306/tp_bench \
        python benches/mysql-peers.py connectorx|duckdb QUERY OUTPUT

The URL is tributary's shard URL (mysql://user[:password]@host[:port]/database, an
`?ssl-mode=` kept), from the environment so that a password stays off the command line.
QUERY is in MySQL's dialect and runs on the server as it is.
"""

import os
import pathlib
import sys
import tempfile
import urllib.parse


def connectorx(url, query, output):
    """ConnectorX: the whole result as one Arrow table in memory (its only mode), then
    pyarrow's Parquet writer. One connection: no partition_on, as tributary's one task."""
    import connectorx as cx
    import pyarrow.parquet as pq

    table = cx.read_sql(url, query, return_type="arrow")
    pq.write_table(table, output, compression="zstd")


def duckdb(url, query, output):
    """DuckDB's mysql extension: the query passed through to the server (mysql_query), the
    rows streamed into DuckDB's Parquet writer by COPY."""
    import duckdb
    import duckdb_extension_mysql

    # The wheel ships the extension binary for the DuckDB version it pins, but names it
    # mysql.duckdb_extension: DuckDB looks for the entry point `<file name>_duckdb_cpp_init`
    # and the binary's is mysql_scanner's (the extension's real name, "mysql" its alias).
    # Loaded by path under that name, it needs no download from DuckDB's repository; the
    # signature is checked as for any extension.
    version = "v" + duckdb.__version__.lstrip("v")
    shipped = pathlib.Path(duckdb_extension_mysql.__file__).parent / "extensions" / version
    extension = pathlib.Path(tempfile.mkdtemp()) / "mysql_scanner.duckdb_extension"
    extension.symlink_to(shipped / "mysql.duckdb_extension")
    u = urllib.parse.urlsplit(url)
    options = {
        "host": u.hostname or "localhost",
        "port": str(u.port or 3306),
        "user": urllib.parse.unquote(u.username or ""),
        "database": u.path.lstrip("/"),
    }
    if u.password:
        options["password"] = urllib.parse.unquote(u.password)
    # tributary's ssl-mode is the MySQL client's option; DuckDB's is ssl_mode (default
    # preferred, as tributary's).
    ssl_mode = urllib.parse.parse_qs(u.query).get("ssl-mode")
    if ssl_mode:
        options["ssl_mode"] = ssl_mode[0].lower()
    attach = " ".join(f"{k}={v}" for k, v in options.items())
    con = duckdb.connect()
    con.execute(f"LOAD '{extension}'")
    con.execute(f"ATTACH '{attach}' AS src (TYPE mysql, READ_ONLY)")
    con.execute(
        "COPY (SELECT * FROM mysql_query('src', ?)) TO '"
        + output.replace("'", "''")
        + "' (FORMAT parquet, COMPRESSION zstd)",
        [query],
    )


if __name__ == "__main__":
    tool, query, output = sys.argv[1:]
    url = os.environ["TRIBUTARY_BENCH_MYSQL_URL"]
    {"connectorx": connectorx, "duckdb": duckdb}[tool](url, query, output)
