"""Fan SQL out across many database shards at once and get the merged result as a
``pyarrow.Table``: the engine of the ``tributary`` command line, in the notebook.

    >>> import tributary
    >>> table = tributary.read_sql(
    ...     "SELECT region, sum(total) AS revenue FROM orders WHERE day >= :since GROUP BY region",
    ...     shards="shards.toml",
    ...     params={"since": "2025-01-01"},
    ... )

``read_sql`` takes what ``tributary run`` takes, as keyword arguments, and runs the same
engine: the query is split across the shards when it needs it and combined exactly, the
columns have the types ``docs/types.md`` gives, and a failure raises
:class:`tributary.Error` with the CLI's message, its exit code and the shard.
"""

from __future__ import annotations

import datetime
import decimal
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

import pyarrow

from . import _tributary
from ._tributary import (
    ConfigError,
    DataError,
    Error,
    QueryTimeout,
    ShardUnavailable,
    __version__,
)

__all__ = [
    "read_sql",
    "to_polars",
    "to_pandas",
    "Error",
    "ConfigError",
    "DataError",
    "ShardUnavailable",
    "QueryTimeout",
    "__version__",
]

PathLike = Union[str, "os.PathLike[str]"]


def read_sql(
    query: PathLike,
    shards: Union[PathLike, Mapping[str, Any], None] = None,
    *,
    params: Optional[Mapping[str, Any]] = None,
    partition: Union[Tuple[str, int], Mapping[str, Any], None] = None,
    combine: bool = True,
    job: Optional[PathLike] = None,
    merge: Optional[str] = None,
    shard_column: Optional[str] = None,
    concurrency: Optional[int] = None,
    query_timeout: Optional[float] = None,
    retries: Optional[int] = None,
    memory_limit: Optional[str] = None,
    readers: Union[str, Sequence[str], None] = None,
    types: Optional[Mapping[str, str]] = None,
    snapshot: bool = True,
) -> pyarrow.Table:
    """Runs ``query`` on every shard and returns the merged result.

    query
        The SQL, with ``:name`` parameters; or a query file: a ``pathlib.Path``, or a
        str ending in ``.sql`` that names an existing file.
    shards
        A shards file (``shards.toml``), or its ``[shards]`` table as a dict:
        ``{"eu1": "postgres://reader@db-eu1/sales", "local": "sqlite://data/a.db"}``,
        a value being a URL, a libpq conninfo string or a dict with ``url`` and the
        shard's options. May be left out when ``job`` names the shards.
    params
        The query's parameters (``--param``): str, int, float, Decimal, bool, date or
        datetime values, or relative dates such as ``"@today-7d"``.
    partition
        ``(column, n)`` or ``{"on": column, "partitions": n}``: each shard is read in
        ``n`` range partitions of ``column`` (``--partition-on``/``--partitions``), from
        one snapshot unless ``snapshot=False``.
    combine
        ``False`` concatenates each shard's rows as they are (``--combine off``) instead
        of combining a query that aggregates, sorts, limits or deduplicates.
    job
        A job file whose settings the other arguments override, as on the command line.
    merge
        SQL over a table ``shards`` holding every shard's rows, run after them
        (``--merge``).
    shard_column, concurrency, retries, memory_limit
        As ``--shard-column``, ``--concurrency``, ``--retries``, ``--memory-limit``.
    query_timeout
        Each query's deadline in seconds; past it the statement is cancelled on the server.
    readers
        ``--for``: the readers the columns' types are chosen for (default ``any``).
    types
        Type options for every column (``--type``), e.g. ``{"numeric": "float64"}``.

    Raises :class:`ConfigError` (before any connection) for an invalid query, shards or
    option; :class:`DataError`, :class:`ShardUnavailable` or :class:`QueryTimeout` for a
    shard's failure, naming the shard (also in its ``shard`` attribute); and
    ``KeyboardInterrupt`` on Ctrl-C, once the running queries are cancelled.
    """
    query_text, query_file = _query(query)
    shards_file, shard_table = _shards(shards)
    partition_on, partitions = _partition(partition)
    if isinstance(readers, str):
        readers = [readers]
    stream = _tributary.read_sql(
        query_text,
        query_file=query_file,
        shards_file=shards_file,
        shard_table=shard_table,
        job=os.fspath(job) if job is not None else None,
        params=[(str(k), _param(k, v)) for k, v in (params or {}).items()],
        partition_on=partition_on,
        partitions=partitions,
        combine=combine,
        merge=merge,
        shard_column=shard_column,
        concurrency=concurrency,
        query_timeout=query_timeout,
        retries=retries,
        memory_limit=memory_limit,
        readers=list(readers or []),
        type_options=[(str(k), str(v)) for k, v in (types or {}).items()],
        no_snapshot=not snapshot,
    )
    return pyarrow.table(stream)


def to_polars(query: PathLike, shards: Union[PathLike, Mapping[str, Any], None] = None, **options):
    """:func:`read_sql`, as a ``polars.DataFrame`` (the Arrow buffers are shared, not
    copied, where polars' types allow)."""
    import polars

    return polars.from_arrow(read_sql(query, shards, **options))


def to_pandas(
    query: PathLike,
    shards: Union[PathLike, Mapping[str, Any], None] = None,
    *,
    arrow_dtypes: bool = False,
    **options,
):
    """:func:`read_sql`, as a ``pandas.DataFrame``. With ``arrow_dtypes=True`` every
    column keeps its Arrow type (``pandas.ArrowDtype``): exact decimals stay decimals
    rather than ``decimal.Decimal`` objects."""
    table = read_sql(query, shards, **options)
    if arrow_dtypes:
        import pandas

        return table.to_pandas(types_mapper=pandas.ArrowDtype)
    return table.to_pandas()


def _query(query: PathLike) -> Tuple[Optional[str], Optional[str]]:
    if isinstance(query, os.PathLike):
        return None, os.fspath(query)
    if not isinstance(query, str):
        raise TypeError(f"query must be SQL text or a query file's path, not {type(query).__name__}")
    if query.endswith(".sql") and "\n" not in query and Path(query).is_file():
        return None, query
    return query, None


def _shards(shards) -> Tuple[Optional[str], Optional[dict]]:
    if shards is None:
        return None, None
    if isinstance(shards, Mapping):
        return None, dict(shards)
    if isinstance(shards, (str, os.PathLike)):
        return os.fspath(shards), None
    raise TypeError(f"shards must be a shards file's path or a dict, not {type(shards).__name__}")


def _partition(partition) -> Tuple[Optional[str], Optional[int]]:
    if partition is None:
        return None, None
    if isinstance(partition, Mapping):
        unknown = set(partition) - {"on", "partitions"}
        if unknown:
            raise TypeError(f"partition: unknown key {sorted(unknown)[0]!r} (keys: 'on', 'partitions')")
        return partition.get("on"), partition.get("partitions")
    column, count = partition
    return column, count


def _param(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime.date, datetime.datetime, datetime.time)):
        return value.isoformat()
    if isinstance(value, (str, int, float, decimal.Decimal)):
        return str(value)
    raise TypeError(f"params[{name!r}]: a {type(value).__name__} cannot be a parameter's value")
