"""Snapshot ingest: every new folder under inbox/snapshots, in name order, once, set-based in DuckDB."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

import duckdb

from compliance.errors import InputError
from compliance.home import Home
from compliance.keys import KeyedHasher
from compliance.progress import count
from compliance.schema import ALLOWED_VALUES, CONTACTS, TABLES, TableSpec, email_key, phone_key
from compliance.store import transaction

Progress = Callable[[str], None]
FORMATS = ("csv", "parquet")


@dataclass(frozen=True)
class SnapshotIngest:
    """What one snapshot put into the store."""

    snapshot_id: str
    content_hash: str
    row_counts: dict[str, int]
    skipped_deleted: int
    skipped_suppressed: int


@dataclass
class IngestResult:
    """What an ingest pass did: snapshots loaded, and folders passed over."""

    ingested: list[SnapshotIngest] = field(default_factory=list)
    already_ingested: list[str] = field(default_factory=list)
    changed_after_ingest: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Source:
    spec: TableSpec
    path: Path

    @property
    def relation(self) -> str:
        quoted = str(self.path).replace("'", "''")
        if self.path.suffix == ".csv":
            return f"read_csv('{quoted}', header = true, all_varchar = true)"
        return f"read_parquet('{quoted}')"


def snapshot_hash(folder: Path) -> str:
    """sha256 over the names and bytes of a snapshot's table files."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def ingest_snapshots(con: duckdb.DuckDBPyConnection, home: Home, *, as_of: datetime,
                     progress: Progress = lambda message: None) -> IngestResult:
    """Load every snapshot folder not yet ingested, in name order, each in its own transaction.

    All pending snapshots are validated before the first is applied, so bad input changes nothing.

    Args:
        con: a writable store connection.
        home: the home whose inbox/snapshots is read.
        as_of: the run's clock.
        progress: called with a line per long step.

    Returns:
        The snapshots ingested and those passed over.

    Raises:
        InputError: naming the snapshot, table, column and row of the first problem.
    """
    result = IngestResult()
    seen = dict(con.execute("SELECT snapshot_id, content_hash FROM snapshots").fetchall())
    pending: list[tuple[str, str, list[_Source]]] = []
    # A folder starting with '.' is an upload still in progress.
    folders = sorted(p for p in home.snapshots_inbox.iterdir()
                     if p.is_dir() and not p.name.startswith(".")) if home.snapshots_inbox.exists() else []
    latest = max(seen, default=None)
    for folder in folders:
        content_hash = snapshot_hash(folder)
        if folder.name in seen:
            bucket = result.already_ingested if seen[folder.name] == content_hash else result.changed_after_ingest
            bucket.append(folder.name)
            continue
        if latest is not None and folder.name < latest:
            # A full export older than one already loaded would roll the store back.
            result.out_of_order.append(folder.name)
            continue
        pending.append((folder.name, content_hash, _sources(con, folder)))
    for snapshot_id, _, sources in pending:
        progress(f"validating snapshot {snapshot_id}")
        for source in sources:
            _validate(con, snapshot_id, source)
    hasher = KeyedHasher(home.secret()).register(con) if home.secret_file.exists() else None
    for snapshot_id, content_hash, sources in pending:
        progress(f"loading snapshot {snapshot_id}")
        result.ingested.append(_apply(con, snapshot_id, content_hash, sources, as_of, hasher))
        count(progress, "ingest", sum(result.ingested[-1].row_counts.values()))
    return result


def _sources(con: duckdb.DuckDBPyConnection, folder: Path) -> list[_Source]:
    sources = []
    for spec in TABLES:
        found = [folder / f"{spec.name}.{fmt}" for fmt in FORMATS if (folder / f"{spec.name}.{fmt}").exists()]
        if not found:
            raise InputError(f"snapshot {folder.name}: table {spec.name}: no {spec.name}.csv or {spec.name}.parquet")
        if len(found) > 1:
            raise InputError(f"snapshot {folder.name}: table {spec.name}: both .csv and .parquet given; keep one")
        source = _Source(spec, found[0])
        try:
            columns = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source.relation}").fetchall()]
        except duckdb.Error as exc:
            raise InputError(f"snapshot {folder.name}: table {spec.name}: cannot read {source.path.name}: "
                             f"{_first_line(exc)}") from None
        missing = [column for column in spec.columns if column not in columns]
        if missing:
            raise InputError(f"snapshot {folder.name}: table {spec.name}: missing required column {missing[0]}")
        sources.append(source)
    return sources


def _cast(con: duckdb.DuckDBPyConnection, source: _Source, column: str) -> str:
    sql_type = source.spec.columns[column]
    if sql_type == "VARCHAR[]":
        source_type = con.execute(
            f"SELECT typeof({column}) FROM {source.relation} LIMIT 1").fetchone()
        items = f"CAST({column} AS VARCHAR[])" if source_type and source_type[0].endswith("[]") \
            else f"string_split({column}, ',')"
        # An empty CSV cell is NULL: no tags is the empty list, as an empty Parquet list gives.
        return f"coalesce(list_filter(list_transform({items}, lambda t: trim(t)), lambda t: t <> ''), [])"
    if sql_type == "VARCHAR":
        return f"CAST({column} AS VARCHAR)"
    return f"TRY_CAST({column} AS {sql_type})"


def _validate(con: duckdb.DuckDBPyConnection, snapshot_id: str, source: _Source) -> None:
    spec, where = source.spec, f"snapshot {snapshot_id}: table {source.spec.name}"
    numbered = f"(SELECT row_number() OVER () AS _row, * FROM {source.relation})"
    for column, sql_type in spec.columns.items():
        if sql_type in ("VARCHAR", "VARCHAR[]"):
            continue
        bad = con.execute(
            f"SELECT _row, CAST({column} AS VARCHAR) FROM {numbered} "
            f"WHERE {column} IS NOT NULL AND TRY_CAST({column} AS {sql_type}) IS NULL ORDER BY _row LIMIT 1"
        ).fetchone()
        if bad:
            kind = {"BOOLEAN": "a boolean (true/false)"}.get(sql_type, "a timestamp (ISO 8601)")
            raise InputError(f"{where}: row {bad[0]}: column {column}: {bad[1]!r} is not {kind}")
    for column in spec.key:
        bad = con.execute(f"SELECT _row FROM {numbered} WHERE {column} IS NULL OR trim(CAST({column} AS VARCHAR)) = ''"
                          " ORDER BY _row LIMIT 1").fetchone()
        if bad:
            raise InputError(f"{where}: row {bad[0]}: column {column}: empty, but it identifies the row")
    key = ", ".join(spec.key)
    duplicate = con.execute(f"SELECT {key}, count(*) FROM {source.relation} GROUP BY ALL HAVING count(*) > 1 LIMIT 1"
                            ).fetchone()
    if duplicate:
        raise InputError(f"{where}: {key} {', '.join(map(str, duplicate[:-1]))} appears {duplicate[-1]} times")
    for (table, column), allowed in ALLOWED_VALUES.items():
        if table != spec.name:
            continue
        values = ", ".join(f"'{value}'" for value in allowed)
        bad = con.execute(f"SELECT _row, {column} FROM {numbered} WHERE {column} IS NULL OR lower(trim({column})) "
                          f"NOT IN ({values}) ORDER BY _row LIMIT 1").fetchone()
        if bad:
            raise InputError(f"{where}: row {bad[0]}: column {column}: {bad[1]!r} is not allowed "
                             f"(allowed: {', '.join(allowed)})")


def _staged_select(con: duckdb.DuckDBPyConnection, source: _Source, snapshot_id: str) -> str:
    spec = source.spec
    all_columns = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source.relation}").fetchall()]
    extras = [column for column in all_columns if column not in spec.columns]
    selected = []
    for column in spec.columns:
        expression = _cast(con, source, column)
        if (spec.name, column) in ALLOWED_VALUES:
            expression = f"lower(trim({expression}))"
        selected.append(f"{expression} AS {column}")
    if spec is CONTACTS:
        selected += [f"{email_key('email')} AS email_key", f"{phone_key('phone')} AS phone_key"]
    extra = ("to_json(struct_pack(" + ", ".join(f'"{c}" := "{c}"' for c in extras) + "))") if extras else "NULL"
    quoted_id = snapshot_id.replace("'", "''")
    selected += [f"CAST({extra} AS JSON) AS extra", f"'{quoted_id}' AS snapshot_id"]
    return f"SELECT {', '.join(selected)} FROM {source.relation}"


_DELETED = "SELECT contact_id FROM contact_lifecycle WHERE state = 'deleted'"


def _apply(con: duckdb.DuckDBPyConnection, snapshot_id: str, content_hash: str, sources: list[_Source],
           as_of: datetime, hasher: KeyedHasher | None) -> SnapshotIngest:
    for source in sources:
        con.execute(f"CREATE OR REPLACE TEMP TABLE stg_{source.spec.name} AS "
                    f"{_staged_select(con, source, snapshot_id)}")
    _mark_kept_out(con, hasher)
    skipped_deleted, skipped_suppressed = con.execute(
        "SELECT count(*) FILTER (WHERE why <> 'suppressed'), count(*) FILTER (WHERE why = 'suppressed') "
        "FROM stg_kept_out").fetchone()
    row_counts = {}
    with transaction(con):
        for source in sources:
            spec = source.spec
            if spec.role == "reference":
                con.execute(f"DELETE FROM {spec.name}")
                con.execute(f"INSERT INTO {spec.name} BY NAME SELECT * FROM stg_{spec.name}")
            else:
                # Deleted contacts keep their record (for restore) and whatever the cascade retained.
                con.execute(f"DELETE FROM {spec.name} WHERE contact_id IS NULL OR contact_id NOT IN ({_DELETED})")
                con.execute(
                    f"INSERT INTO {spec.name} BY NAME SELECT * FROM stg_{spec.name} s "
                    f"WHERE s.contact_id NOT IN ({_DELETED}) "
                    f"AND s.contact_id NOT IN (SELECT contact_id FROM stg_kept_out) "
                    f"AND NOT EXISTS (SELECT 1 FROM tombstones t WHERE t.table_name = '{spec.name}' "
                    f"AND t.row_key = {spec.row_key_sql('s')})")
            row_counts[spec.name] = con.execute(
                f"SELECT count(*) FROM {spec.name} WHERE snapshot_id = ?", [snapshot_id]).fetchone()[0]
        con.execute("INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?)",
                    [snapshot_id, content_hash, as_of, json.dumps(row_counts), skipped_deleted, skipped_suppressed])
    for source in sources:
        con.execute(f"DROP TABLE IF EXISTS stg_{source.spec.name}")
    return SnapshotIngest(snapshot_id, content_hash, row_counts, skipped_deleted, skipped_suppressed)


def _mark_kept_out(con: duckdb.DuckDBPyConnection, hasher: KeyedHasher | None) -> None:
    """stg_kept_out: the snapshot's contacts that must not (re)enter as active, and why.

    Deleted ones keep their record until the purge; suppressed ones match an erased person by contact_id, email or
    phone; purged ones (deleted by a rule or an internal request, past the window) stay gone.
    """
    con.execute(f"CREATE OR REPLACE TEMP TABLE stg_kept_out AS SELECT contact_id, 'deleted' AS why "
                f"FROM stg_contacts WHERE contact_id IN ({_DELETED})")
    if hasher is None:
        return
    if con.execute("SELECT count(*) FROM suppression").fetchone()[0]:
        con.execute(f"""
            INSERT INTO stg_kept_out
            SELECT DISTINCT c.contact_id, 'suppressed' FROM (
                SELECT contact_id, {hasher.sql('contact_id', 'contact_id')} AS h, 'contact_id' AS k FROM stg_contacts
                UNION ALL SELECT contact_id, {hasher.sql('email', 'email_key')}, 'email' FROM stg_contacts
                UNION ALL SELECT contact_id, {hasher.sql('phone', 'phone_key')}, 'phone' FROM stg_contacts
            ) c JOIN suppression s ON s.key_kind = c.k AND s.key_hash = c.h
            WHERE c.contact_id NOT IN (SELECT contact_id FROM stg_kept_out)""")
    if con.execute("SELECT count(*) FROM purged_contacts").fetchone()[0]:
        con.execute(f"""
            INSERT INTO stg_kept_out
            SELECT contact_id, 'purged' FROM stg_contacts
            WHERE {hasher.sql('contact_id', 'contact_id')} IN (SELECT contact_hash FROM purged_contacts)
              AND contact_id NOT IN (SELECT contact_id FROM stg_kept_out)""")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
