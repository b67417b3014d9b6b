"""The DuckDB store: one owner-only file under the home, its schema created and migrated by the code."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from compliance.errors import InputError
from compliance.evidence.audit import personal_data_kind
from compliance.home import SHARD_FOLDER, Home, write_private
from compliance.settings import memory_bytes, valid_memory_limit
from compliance.staff import register_scope
from compliance.store.keys import KeyedHasher
from compliance.store.migrations import MIGRATIONS, SCHEMA_VERSION
from compliance.store.sql import table_exists

LOCK_INFO = "retention.lock-info.json"
DEFAULT_LOCK_WAIT_SECONDS = 300.0
COUNTDOWN_EVERY_SECONDS = 5.0
# DuckDB's limit derived from a memory budget never goes below this, however small the budget: ingesting HighLevel
# JSON pages (read with objects of up to 64MB, 4-8x that at once) ran out of memory at 512MiB with two threads.
MEMORY_LIMIT_FLOOR_BYTES = 640 * 1024 ** 2
# What the process holds outside DuckDB (Python, Dagster, Great Expectations, pyarrow), charged to the budget.
PYTHON_SIDE_BYTES = 384 * 1024 ** 2


class StoreMissing(InputError):
    """The home has history but its store file is gone: starting a new store would silently start over."""


class StoreBusy(Exception):
    """Another process held the store for longer than the configured wait (exit 1)."""


def refuse_missing_store(home: Home, *, with_dagster_runs: bool = False) -> None:
    """Refuse to create a store in a home that has history: it lost its store, and a new one would forget it all.

    Args:
        home: the home.
        with_dagster_runs: count the Dagster run history as well (the command line, before it starts a run).

    Raises:
        StoreMissing: naming what is missing, what history was found, and how to recover.
    """
    if home.store_file.exists():
        return
    history = home.history(with_dagster_runs=with_dagster_runs)
    if history:
        raise StoreMissing(
            f"the store {home.store_file} is missing but this home has history: {'; '.join(history)}. A new store "
            "would ingest old snapshots again, bring erased people back and forget every bulk action, so nothing "
            f"was run. Recover: put back store/retention.duckdb (and any retention.duckdb.wal) from your backup of "
            f"{home.root}; to start afresh on purpose, move the home aside and `retention init` a new one")


def home_of(con: duckdb.DuckDBPyConnection) -> Home | None:
    """The home whose store this connection opened (None for an in-memory database)."""
    row = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    if not row or not row[0]:
        return None
    store_dir = Path(row[0]).resolve().parent
    # <home>/store/retention.duckdb, or <home>/store/shard-<k>/retention.duckdb for a shard's store.
    match = SHARD_FOLDER.match(store_dir.name)
    if match and store_dir.parent.name == "store":
        return Home(store_dir.parent.parent, int(match.group(1)))
    return Home(store_dir.parent)


def _command_line() -> str:
    """This process's command, with any argument that looks like an email or phone left out."""
    words = [Path(sys.argv[0]).name if sys.argv else "python"]
    words += ["…" if personal_data_kind(word) else word for word in sys.argv[1:]]
    return " ".join(words)[:200]



class Store:
    """Owns the store file of one home and hands out configured connections."""

    def __init__(self, home: Home, memory_limit: str | None = None, threads: int | None = None,
                 lock_timeout: float | None = None, notify: Callable[[str], None] | None = None,
                 memory_budget: str | None = None):
        self.home = home
        # None: derived at connect time from the memory budget (None: the home's `memory_budget` setting).
        self.memory_limit = memory_limit
        self.memory_budget = memory_budget
        self.threads = threads
        # None: the home's `store_wait_seconds` setting, read only when the store is found busy.
        self.lock_timeout = lock_timeout
        self.notify = notify or _to_stderr

    @property
    def path(self):
        return self.home.store_file

    def connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        """Open the store, migrated to the current schema version.

        Args:
            read_only: open without write access (for show/status while nothing runs).

        Returns:
            A DuckDB connection in UTC with the memory limit (duckdb_memory_limit) and spill folder set.
        """
        refuse_missing_store(self.home)
        self.home.store_dir.mkdir(parents=True, exist_ok=True)
        self.home.store_dir.chmod(0o700)
        if read_only and not self.path.exists():
            read_only = False
        con = self._open(read_only)
        if read_only and schema_version(con) < SCHEMA_VERSION:
            con.close()
            read_only, con = False, self._open(False)
        configure(con, self.duckdb_memory_limit(), self.home.store_dir / "tmp", self.duckdb_threads())
        if self.home.secret_file.exists():
            KeyedHasher(self.home.secret()).register(con)
        register_scope(con)
        if not read_only:
            migrate(con)
            for path in self.home.store_dir.glob("retention.duckdb*"):
                path.chmod(0o600)
        return con

    def duckdb_memory_limit(self) -> str:
        """DuckDB's memory limit for this store's connections: memory_limit when set, else derived from the budget."""
        if self.memory_limit is not None:
            return self.memory_limit
        budget = self.memory_budget
        if budget is None:
            from compliance.settings import DEFAULT_MEMORY_BUDGET, load_settings

            try:
                budget = load_settings(self.home.settings_file).memory_budget
            except InputError:
                # Commands refuse a bad settings.yaml before they open the store; opening it must not depend on it.
                budget = DEFAULT_MEMORY_BUDGET
        return derived_memory_limit(budget)

    def duckdb_threads(self) -> int | None:
        """DuckDB's threads for this store's connections: as given, else the `threads` setting (None: every core)."""
        if self.threads is not None:
            return self.threads
        from compliance.settings import load_settings

        try:
            return load_settings(self.home.settings_file).threads
        except (InputError, OSError):
            return None

    def holder(self) -> str:
        """Who holds the store, as the last writer to open it wrote in LOCK_INFO: "pid N, command C, since T"."""
        try:
            info = json.loads((self.home.store_dir / LOCK_INFO).read_text())
            return f"pid {int(info['pid'])}, command {info['command']}, since {info['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "pid unknown, command unknown, since unknown"

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        # Another process (a scheduled run, the request sensor's run) may hold the store for a while: say so at
        # once, then wait for it with a countdown, up to the configured time.
        deadline, next_notice, holder = None, 0.0, None
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                now = time.monotonic()
                if deadline is None:
                    wait = self._wait_seconds()
                    deadline, holder = now + wait, self.holder()
                    self.notify(f"another run holds the store ({holder}); waiting up to {wait:.0f}s for it")
                    next_notice = now + COUNTDOWN_EVERY_SECONDS
                if now >= deadline:
                    raise StoreBusy(f"another run holds the store ({holder}); gave up waiting after "
                                    f"{self._wait_seconds():.0f}s (setting store_wait_seconds). Try again when it "
                                    "has finished") from None
                if now >= next_notice:
                    self.notify(f"  still waiting for the store: {deadline - now:.0f}s left")
                    next_notice = now + COUNTDOWN_EVERY_SECONDS
                time.sleep(min(0.5, max(0.0, deadline - now)))
                continue
            if not read_only:
                self._write_lock_info()
            return con

    def _wait_seconds(self) -> float:
        if self.lock_timeout is not None:
            return float(self.lock_timeout)
        from compliance.settings import load_settings

        return float(load_settings(self.home.settings_file).store_wait_seconds)

    def _write_lock_info(self) -> None:
        info = {"pid": os.getpid(), "command": _command_line(), "host": socket.gethostname(),
                "since": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")}
        # Only a courtesy for whoever waits next: never a reason to fail the run.
        with contextlib.suppress(OSError):
            write_private(self.home.store_dir / LOCK_INFO, json.dumps(info) + "\n")


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def derived_memory_limit(budget: str) -> str:
    """DuckDB's memory limit that keeps the whole process within a RAM budget.

    DuckDB's memory_limit bounds its buffer manager only; Python with Dagster, Great Expectations and pyarrow
    loaded holds another 0.3-0.4 GB (307 MiB measured with Dagster and GX imported, 392 MiB at the start of a 10M
    benchmark run). That share is a fixed allowance, not the process's resident memory at connect time: the same
    command on the same data then gets the same limit, however long the process has run (a long test process once
    left a connection at the floor, and the HighLevel reader ran out of memory there).

    Args:
        budget: the process's budget, a DuckDB memory size such as 1GB.

    Returns:
        The budget minus PYTHON_SIDE_BYTES, at least MEMORY_LIMIT_FLOOR_BYTES, in MiB.

    Raises:
        InputError: when the budget is not a number and a unit.
    """
    if not valid_memory_limit(budget):
        raise InputError(f"memory_budget: {budget!r} is not a number and a unit such as 1GB")
    return f"{max(MEMORY_LIMIT_FLOOR_BYTES, memory_bytes(budget) - PYTHON_SIDE_BYTES) // 1024 ** 2}MiB"


def configure(con: duckdb.DuckDBPyConnection, memory_limit: str, temp_directory: Path,
              threads: int | None = None, preserve_insertion_order: bool = False) -> None:
    """Set the session's time zone, memory limit, spill folder, threads and insertion order.

    Every value is a parameter, never pasted into the statement: settings.yaml and the home's path are input.

    Args:
        con: the connection.
        memory_limit: a DuckDB size such as 2GB (settings.yaml's, validated there).
        temp_directory: where DuckDB spills above the limit.
        threads: the number of threads, or None for DuckDB's default.
        preserve_insertion_order: keep rows in the order they went in where a statement does not order them.

    Raises:
        InputError: when the memory limit is not a number and a unit.
    """
    if not valid_memory_limit(memory_limit):
        raise InputError(f"memory_limit: {memory_limit!r} is not a number and a unit such as 2GB")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET memory_limit = ?", [memory_limit])
    con.execute("SET temp_directory = ?", [str(temp_directory)])
    if threads:
        con.execute("SET threads = ?", [int(threads)])
    # Off by default: what reaches a person is ordered explicitly (ORDER BY in listings, reports and invariant
    # samples), and a snapshot's row numbers come from a window DuckDB computes in file order either way; keeping
    # the order costs memory in big INSERTs, COPYs and CREATE TABLE AS.
    con.execute("SET preserve_insertion_order = ?", [bool(preserve_insertion_order)])


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The schema version recorded in the store (0 for a new file)."""
    if not table_exists(con, "schema_meta"):
        return 0
    row = con.execute("SELECT value FROM schema_meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Apply the migrations the store has not seen, each in its own transaction.

    Args:
        con: a writable connection.

    Returns:
        The schema version after migrating.
    """
    current = schema_version(con)
    if current > SCHEMA_VERSION:
        raise RuntimeError(f"the store is at schema version {current}, newer than this program ({SCHEMA_VERSION})")
    for version in range(current + 1, SCHEMA_VERSION + 1):
        with transaction(con):
            con.execute("CREATE TABLE IF NOT EXISTS schema_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
            for statement in MIGRATIONS[version - 1].statements:
                con.execute(statement)
            con.execute("INSERT OR REPLACE INTO schema_meta VALUES ('schema_version', ?)", [str(version)])
    return SCHEMA_VERSION


_open_transactions: set[int] = set()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All of the block's statements commit together, or none do; inside another transaction it joins it."""
    if id(con) in _open_transactions:
        yield con
        return
    con.execute("BEGIN TRANSACTION")
    _open_transactions.add(id(con))
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    else:
        con.execute("COMMIT")
    finally:
        _open_transactions.discard(id(con))


@contextmanager
def rolled_back(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the block's statements in a transaction that is always rolled back: a dry run of the store."""
    if id(con) in _open_transactions:
        raise RuntimeError("a dry run cannot start inside another transaction")
    con.execute("BEGIN TRANSACTION")
    _open_transactions.add(id(con))
    try:
        yield con
    finally:
        _open_transactions.discard(id(con))
        con.execute("ROLLBACK")
