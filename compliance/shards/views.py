"""The home seen whole: every shard's store attached read-only and combined, for the commands that read.

`requests`, `status`, `show`, `metrics` and the run summary's deadlines read one connection. For a home of one shard
it is the store itself. For a home of N shards it is an in-memory DuckDB with each shard's store attached read-only
and, for every table of the store, a view of the same name over all of them; the request records are combined into
one record per request whose status is derived, never stored (docs/design/shards.md):

| shard statuses                                   | status of the request |
|--------------------------------------------------|-----------------------|
| any shard `rejected` / `quarantined` / `duplicate` | that status (each shard decides it alike) |
| every shard recorded it, all `applied`            | `applied` |
| otherwise (a shard `pending`, or not run yet)     | `pending` |

A shard still being written by a run cannot be attached: the command waits for it as for the single store.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from compliance.home import Home
from compliance.requests.records import SHARD_BULK_ACTIONS
from compliance.shards.placement import shard_homes
from compliance.staff import register_scope
from compliance.store.connection import Store, configure
from compliance.store.keys import KeyedHasher
from compliance.store.sql import quote_identifier, sql_string
from compliance.vocabulary import RequestStatus

# Columns of a request record taken from the shards as they are (the same in every shard that recorded it).
_REQUEST_KEY = ("file", "file_hash", "request_id")
_DECIDED_ALIKE = (RequestStatus.REJECTED, RequestStatus.QUARANTINED, RequestStatus.DUPLICATE)


@contextmanager
def whole_home(home: Home, *, memory_limit: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection that sees the whole home: the store, or every shard's store combined.

    Args:
        home: the home (any shard of it: the whole is read).
        memory_limit: settings' memory_limit, passed to the store(s).

    Yields:
        A DuckDB connection whose tables (views for a home of shards) are those of a store.
    """
    homes = shard_homes(home)
    if len(homes) == 1:
        with Store(homes[0], memory_limit=memory_limit).connect(read_only=True) as con:
            yield con
        return
    stores = [Store(shard, memory_limit=memory_limit) for shard in homes]
    for store in stores:
        # Creates and migrates a shard's store if needed, and waits while a run holds it.
        store.connect(read_only=True).close()
    con = duckdb.connect()
    try:
        configure(con, stores[0].duckdb_memory_limit(), home.whole.root / "store" / "tmp", stores[0].duckdb_threads())
        if home.secret_file.exists():
            KeyedHasher(home.secret()).register(con)
        register_scope(con)
        for k, store in enumerate(stores):
            con.execute(f"ATTACH {sql_string(str(store.path))} AS {shard_catalog(k)} (READ_ONLY)")
        _combine(con, len(stores))
        yield con
    finally:
        con.close()


def shard_catalog(k: int) -> str:
    """The name whole_home attaches shard k's store under (a home of several shards)."""
    return f"shard_{k}"


def _combine(con: duckdb.DuckDBPyConnection, shards: int) -> None:
    """A view per table of the first shard's store over every shard (`requests` combined per request)."""
    tables = [name for (name,) in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = ? AND table_schema = 'main' "
        "ORDER BY table_name", [shard_catalog(0)]).fetchall()]
    for table in tables:
        quoted = quote_identifier(table)
        union = " UNION ALL BY NAME ".join(
            f"SELECT *, {k} AS shard FROM {shard_catalog(k)}.main.{quoted}" for k in range(shards))
        if table == "requests":
            con.execute(f"CREATE TEMP VIEW requests_by_shard AS {union}")
            con.execute(f"CREATE TEMP VIEW requests AS {_combined_requests(con, shards)}")
        else:
            con.execute(f"CREATE TEMP VIEW {quoted} AS SELECT * EXCLUDE (shard) FROM ({union})")


def _combined_requests(con: duckdb.DuckDBPyConnection, shards: int) -> str:
    columns = [name for (name,) in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_catalog = ? AND table_name = 'requests' "
        "ORDER BY ordinal_position", [shard_catalog(0)]).fetchall()]
    alike = ", ".join(f"'{status.value}'" for status in _DECIDED_ALIKE)
    derived = {
        "status": f"""CASE
            WHEN bool_or(status IN ({alike})) THEN min(status) FILTER (WHERE status IN ({alike}))
            WHEN count(DISTINCT shard) = {shards} AND bool_and(status = 'applied') THEN 'applied'
            ELSE 'pending' END""",
        "reason": f"coalesce(min(reason) FILTER (WHERE status IN ({alike})), min(reason))",
        "bulk_action_id": "min(bulk_action_id)",
        "seen_at": "min(seen_at)",
        "audited": "bool_and(audited)",
        "due_at": "max(due_at)",
        "extended_at": "max(extended_at)",
        "extended_reason": "max(extended_reason)",
    }
    selected = [f"{derived[c]} AS {c}" if c in derived else
                (c if c in _REQUEST_KEY else f"any_value({c}) AS {c}") for c in columns]
    selected.append("list_sort(list(DISTINCT bulk_action_id) FILTER (WHERE bulk_action_id IS NOT NULL)) "
                    f"AS {SHARD_BULK_ACTIONS}")
    return (f"SELECT {', '.join(selected)} FROM requests_by_shard "
            f"GROUP BY {', '.join(_REQUEST_KEY)}")
