"""Purge (R2, section 2): past the restore window a contact is permanently removed, and expired backups go."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from compliance.bulk_actions import BulkAction, new_bulk_action_id, record_bulk_action, record_items
from compliance.home import Home, OutsideHome
from compliance.settings import Settings
from compliance.store.backup import remove_backup
from compliance.store.connection import Store, configure, transaction
from compliance.store.keys import KeyedHasher
from compliance.store.schema import CONTACT_LINKED, MEMBERSHIPS
from compliance.store.sql import load_sql, parameters, scalar, sql_string, table_exists
from compliance.vocabulary import BulkActionKind, BulkActionStatus, Outcome

PURGED_LABEL_PREFIX = "purged:"


@dataclass(frozen=True)
class PurgeResult:
    """What a purge removed."""

    bulk_action_id: str | None
    contacts_purged: int
    rows_purged: int
    backups_expired: list[str]


def purge_scan(settings: Settings, as_of: datetime) -> tuple[str, dict[str, Any]]:
    """The purge scan (purge_scan.sql): the deleted contacts past the window, restorable while as_of <= deleted_at
    + window, with the reason of their purge item.

    Args:
        settings: the restore window.
        as_of: the run's clock.

    Returns:
        A SELECT of (contact_id, deleted_at, reason) and its named parameters, to embed in a statement.
    """
    sql = load_sql("compliance", "purge_scan.sql")
    return sql, parameters(sql, {"as_of": as_of, "window": int(settings.restore_window_days)})


def _expired_backups(con: duckdb.DuckDBPyConnection, settings: Settings, as_of: datetime) -> list[tuple[str, str]]:
    """The backups older than the backup retention that still have files."""
    return con.execute("SELECT bulk_action_id, path FROM backups WHERE expired_at IS NULL AND created_as_of + "
                       "INTERVAL (?) DAY < CAST(? AS TIMESTAMPTZ) ORDER BY bulk_action_id",
                       [int(settings.backup_retention_days), as_of]).fetchall()


def purge(con: duckdb.DuckDBPyConnection, home: Home, *, hasher: KeyedHasher, settings: Settings, as_of: datetime,
          run_id: str | None = None) -> PurgeResult:
    """Permanently remove contacts past the restore window, then the backups past the backup retention.

    The contact record, whatever associated data the cascade retained, and its lifecycle row go; what stays is a
    keyed hash of its id (so `show` can say purged), the suppression hashes of legal erasures, and bulk action
    items and membership tombstones that name it only by that hash. One `purge` bulk action records it. Backup
    folders are removed after the store commits, so nothing in the store points at a removed file for long; a
    crash in between is finished by the next run.

    Args:
        con: a writable store connection.
        home: the home (backups).
        hasher: keyed hashes.
        settings: restore window and backup retention.
        as_of: the run's clock.
        run_id: the Dagster run.

    Returns:
        The purge bulk action (None when nothing was due) and counts.
    """
    bulk_action_id, purged, rows = None, 0, 0
    scan, scan_parameters = purge_scan(settings, as_of)
    if scalar(con, f"SELECT count(*) FROM ({scan})", scan_parameters):
        bulk_action_id = new_bulk_action_id(as_of)
        with transaction(con):
            con.execute(f"CREATE OR REPLACE TEMP TABLE doomed AS {scan}", scan_parameters)
            rows = _remove_linked_rows(con)
            _relabel(con, hasher)
            record_items(con, f"SELECT ?, {_label(hasher, 'contact_id')}, ?, reason FROM doomed",
                         [bulk_action_id, PURGED_LABEL_PREFIX, Outcome.PURGED])
            con.execute(f"""
                INSERT INTO purged_contacts
                SELECT {hasher.sql('contact_id', 'contact_id')}, deleted_at, ?, ? FROM doomed
                ON CONFLICT (contact_hash) DO UPDATE SET purged_at = excluded.purged_at""", [as_of, bulk_action_id])
            con.execute("DELETE FROM contacts WHERE contact_id IN (SELECT contact_id FROM doomed)")
            con.execute("DELETE FROM contact_keys WHERE contact_id IN (SELECT contact_id FROM doomed)")
            con.execute("DELETE FROM contact_lifecycle WHERE contact_id IN (SELECT contact_id FROM doomed)")
            purged = scalar(con, "SELECT count(*) FROM doomed")
            record_bulk_action(con, BulkAction(
                bulk_action_id, BulkActionKind.PURGE, "restore window", f"{settings.restore_window_days} days",
                "system", BulkActionStatus.COMPLETED, requester_authorized=True), created_at=as_of, run_id=run_id)
            con.execute("DROP TABLE doomed")
    expired = []
    for backup_id, path in _expired_backups(con, settings, as_of):
        con.execute("UPDATE backups SET expired_at = ? WHERE bulk_action_id = ?", [as_of, backup_id])
        _remove_inside(home, path)
        expired.append(backup_id)
    # Backups recorded as expired whose removal a crash interrupted.
    for (path,) in con.execute("SELECT path FROM backups WHERE expired_at IS NOT NULL").fetchall():
        _remove_inside(home, path)
    return PurgeResult(bulk_action_id, purged, rows, expired)


def _remove_inside(home: Home, recorded: str) -> None:
    """Remove a backup folder of this home; a recorded path leading elsewhere (another home) is left alone."""
    try:
        folder = home.inside(recorded)
    except OutsideHome:
        return
    if folder.exists() or folder.with_name(folder.name + ".partial").exists():
        remove_backup(folder)


def _remove_linked_rows(con: duckdb.DuckDBPyConnection) -> int:
    """Remove the doomed contacts' remaining linked rows (what the cascade retained); the number removed."""
    return sum(scalar(con, f"DELETE FROM {spec.name} WHERE contact_id IN (SELECT contact_id FROM doomed)")
               for spec in CONTACT_LINKED)


def _relabel(con: duckdb.DuckDBPyConnection, hasher: KeyedHasher) -> None:
    """Name the doomed contacts in earlier bulk action items and tombstones by the label of their hash only."""
    con.execute(f"UPDATE bulk_action_items SET contact_id = {_label(hasher, 'contact_id')} "
                "WHERE contact_id IN (SELECT contact_id FROM doomed)", [PURGED_LABEL_PREFIX])
    # A membership's tombstone key ends with the contact id (compliance.store.schema): it keeps the label instead.
    # `ends_with` alone is a nested-loop join (tombstones x doomed: 236 s for a 1% purge at 10M contacts); the
    # equality of the last ':'-parts gives DuckDB a hash-join key, and `ends_with` keeps ids holding ':' exact.
    con.execute(f"""
        UPDATE tombstones SET row_key = left(row_key, length(row_key) - length(d.contact_id))
            || {_label(hasher, 'd.contact_id')}
        FROM doomed d
        WHERE table_name IN ({', '.join('?' for _ in MEMBERSHIPS)})
          AND string_split(row_key, ':')[-1] = string_split(d.contact_id, ':')[-1]
          AND ends_with(row_key, ':' || d.contact_id)""",
                [PURGED_LABEL_PREFIX, *(spec.name for spec in MEMBERSHIPS)])


def _label(hasher: KeyedHasher, column: str) -> str:
    """SQL naming a purged contact by its hash: PURGED_LABEL_PREFIX (one `?` parameter) and 16 hex digits."""
    return f"? || left({hasher.sql('contact_id', column)}, 16)"


PLAN_TABLES = ("plan_sources", "plan_candidates", "plan_items")
RESTORE_PLAN_TABLES = ("restore_sources", "restore_candidates", "restore_items")


def forget_plans(con: duckdb.DuckDBPyConnection, tables: tuple[str, ...] = PLAN_TABLES + RESTORE_PLAN_TABLES) -> None:
    """Drop the run's working tables once applied (plans name contacts; nothing should outlive its run)."""
    for table in tables:
        if table_exists(con, table):
            con.execute(f"DROP TABLE {table}")


def compact_store(store: Store) -> int:
    """Rewrite the store file so that the free pages of purged rows are gone, not just unreferenced.

    The caller must have closed every connection to the store. The copy is made beside the store and swapped in
    with an atomic rename; a crash leaves either the old file or the new one.

    Args:
        store: the store to rewrite.

    Returns:
        The size of the store file after compaction, in bytes.
    """
    source = store.path
    target = source.with_name(source.name + ".compact")
    for leftover in (target, target.with_name(target.name + ".wal")):
        leftover.unlink(missing_ok=True)
    with duckdb.connect() as con:
        # The copy honours the store's memory limit, spilling beside it, like every other step. It keeps each
        # table's row order: a request's attempts are told apart by rowid when they were seen at the same time.
        configure(con, store.duckdb_memory_limit(), store.home.store_dir / "tmp", preserve_insertion_order=True)
        con.execute(f"ATTACH {sql_string(str(source))} AS old")
        con.execute(f"ATTACH {sql_string(str(target))} AS new")
        con.execute("COPY FROM DATABASE old TO new")
        con.execute("DETACH new")
        con.execute("DETACH old")
    target.chmod(0o600)
    shutil.move(str(target), str(source))
    source.with_name(source.name + ".wal").unlink(missing_ok=True)
    return source.stat().st_size
