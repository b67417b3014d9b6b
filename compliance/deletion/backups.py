"""The backup hand-off of a deletion: every planned deletion backed up and verified before anything is removed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from compliance.errors import first_line
from compliance.home import Home, OutsideHome
from compliance.progress import Progress, count
from compliance.settings import Settings
from compliance.store.backup import BackupError, BackupManifest, remove_orphans, verify_backup, write_backup
from compliance.store.connection import home_of
from compliance.store.files import folder_bytes
from compliance.store.schema import ASSOCIATED, MEMBERSHIPS
from compliance.store.sql import table_exists
from compliance.vocabulary import Outcome


@dataclass(frozen=True)
class PlannedBackup:
    """The backup a planned bulk action needs before it deletes: where it is, or why it could not be written."""

    bulk_action_id: str
    path: str | None
    sha256: str | None
    error: str | None


def back_up(con: duckdb.DuckDBPyConnection, home: Home, settings: Settings, *,
            progress: Progress = lambda message: None) -> dict[str, BackupManifest | str]:
    """Write and verify a backup of every planned deletion, per bulk action (R5), before anything is removed.

    Each removed table is read once for the whole run (_stage_rows); each bulk action's backup is then written,
    in its own folder with its own manifest, from its staged rows.

    Args:
        con: the store with a plan.
        home: where backups go.
        settings: backup formats and cascade policy (retained data is not removed, so not backed up).
        progress: called with a line per bulk action.

    Returns:
        bulk_action_id -> its verified manifest, or the error that stops its deletion.
    """
    kept = [row[0] for row in con.execute("SELECT bulk_action_id FROM backups").fetchall()]
    committed = {row[0] for row in con.execute("SELECT bulk_action_id FROM bulk_actions").fetchall()}
    planned = [row[0] for row in con.execute(
        "SELECT DISTINCT s.bulk_action_id FROM plan_sources s JOIN plan_items i USING (bulk_action_id) "
        "WHERE i.outcome = ? AND NOT s.preview AND s.bulk_action_id NOT IN (SELECT bulk_action_id FROM bulk_actions) "
        "ORDER BY 1", [Outcome.DELETED]).fetchall()]
    # Leftovers of a run killed before its delete committed hold personal data and back nothing.
    remove_orphans(home.backups_dir, kept + planned, committed=committed, audit_file=home.audit_file)
    results: dict[str, BackupManifest | str] = {}
    if not planned:
        return results
    tables = ["contacts", *removed_tables(settings)]
    try:
        staged_error = None
        _stage_rows(con, planned, tables)
    except duckdb.Error as exc:
        staged_error = f"backup failed: staging the rows to back up: {first_line(exc)}"
    try:
        for bulk_action_id in planned:
            progress(f"backing up bulk action {bulk_action_id}")
            outcome = staged_error or _write_one(con, home, settings, bulk_action_id, tables)
            results[bulk_action_id] = outcome
            if isinstance(outcome, str):
                con.execute("UPDATE plan_sources SET backup_error = ? WHERE bulk_action_id = ?",
                            [outcome, bulk_action_id])
            else:
                count(progress, "backup", outcome.total_rows)
    finally:
        for table in tables:
            con.execute(f"DROP TABLE IF EXISTS {_staged(table)}")
        con.execute("DROP TABLE IF EXISTS backup_planned")
    return results


def _staged(table: str) -> str:
    """The temp table holding a removed table's staged rows."""
    return f"backup_staged_{table}"


def _stage_rows(con: duckdb.DuckDBPyConnection, planned: list[str], tables: list[str]) -> None:
    """One scan per table: the rows of every planned deletion of the run, with their bulk action and rowid."""
    con.execute("CREATE OR REPLACE TEMP TABLE backup_planned AS SELECT DISTINCT bulk_action_id, contact_id "
                "FROM plan_items WHERE outcome = ? AND contact_id IS NOT NULL "
                "AND bulk_action_id IN (SELECT unnest(?::VARCHAR[]))", [Outcome.DELETED, planned])
    for table in tables:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_staged(table)} AS "
                    f"SELECT t.*, p.bulk_action_id AS _backup_bulk_action_id, t.rowid AS _backup_row_id "
                    f"FROM {table} t JOIN backup_planned p ON t.contact_id = p.contact_id")


def _write_one(con: duckdb.DuckDBPyConnection, home: Home, settings: Settings, bulk_action_id: str,
               tables: list[str]) -> BackupManifest | str:
    """One bulk action's backup, from its staged rows, verified and recorded on its plan source; or why it failed."""
    folder = home.backups_dir / bulk_action_id
    # The files hold the table's own columns in the table's row order, as when each backup read the table itself.
    staged = {table: (f"SELECT * EXCLUDE (_backup_bulk_action_id, _backup_row_id) FROM {_staged(table)} "
                      f"WHERE _backup_bulk_action_id = ? ORDER BY _backup_row_id", [bulk_action_id])
              for table in tables}
    try:
        written_at = datetime.now(UTC)
        manifest = write_backup(
            con, folder=folder, bulk_action_id=bulk_action_id,
            contact_ids_sql=f"SELECT contact_id FROM {_staged('contacts')}", tables=tables[1:],
            formats=settings.backup_formats, written_at=written_at, staged=staged)
        verify_backup(folder, manifest.manifest_sha256)
    except (BackupError, OSError, duckdb.Error) as exc:
        return f"backup failed: {exc}"
    con.execute("UPDATE plan_sources SET backup_path = ?, backup_sha256 = ?, backup_written_at = ?,"
                " backup_verified_at = ?, backup_rows = ?, backup_bytes = ? WHERE bulk_action_id = ?",
                [home.relative(folder), manifest.manifest_sha256, written_at, datetime.now(UTC),
                 manifest.total_rows, folder_bytes(folder), bulk_action_id])
    return manifest


def removed_tables(settings: Settings) -> list[str]:
    """The contact-linked tables a delete removes rows from: associated data per the cascade, and memberships."""
    policy = settings.cascade.model_dump()
    return [spec.name for spec in ASSOCIATED if policy[spec.name] == "delete"] + [spec.name for spec in MEMBERSHIPS]


def planned_backups(con: duckdb.DuckDBPyConnection) -> list[PlannedBackup]:
    """The backups the plan's unrecorded, non-preview bulk actions with deletions need (none without a plan).

    Args:
        con: a store connection.

    Returns:
        One per bulk action that deletes, with its backup's path and manifest checksum, or its backup error.
    """
    if not table_exists(con, "plan_sources"):
        return []
    rows = con.execute("SELECT bulk_action_id, backup_path, backup_sha256, backup_error FROM plan_sources "
                       "WHERE bulk_action_id IN (SELECT bulk_action_id FROM plan_items WHERE outcome = ?) "
                       "AND NOT preview AND bulk_action_id NOT IN (SELECT bulk_action_id FROM bulk_actions) "
                       "ORDER BY ord", [Outcome.DELETED]).fetchall()
    return [PlannedBackup(*row) for row in rows]


def verify_planned_backups(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Re-verify, from disk, the backup of every planned deletion not yet applied: the blocking check before delete.

    The one place this rule lives: the `planned_backups_verify` asset check, apply_deletions and the benchmark
    all call it. A bulk action whose backup could not be written (its backup_error) is not a problem here: the
    delete records it `failed` and deletes nothing for it.

    Args:
        con: a store connection with a plan (without one, nothing is planned and the result is empty).

    Returns:
        bulk_action_id -> why its backup does not verify (missing, checksum or row count mismatch); empty when
        every planned backup verifies.
    """
    problems: dict[str, str] = {}
    for backup in planned_backups(con):
        if backup.error:
            continue
        if backup.path is None:
            problems[backup.bulk_action_id] = "the plan records neither a backup path nor a backup error"
            continue
        try:
            verify_backup(backup_folder(con, backup.path), backup.sha256)
        except (BackupError, OutsideHome, TypeError) as exc:
            problems[backup.bulk_action_id] = str(exc)
    return problems


def backup_folder(con: duckdb.DuckDBPyConnection, recorded: str) -> Path:
    """The folder of a backup as the store records it (relative to the home), inside the store's own home.

    Args:
        con: the store connection (its file tells the home).
        recorded: the recorded path.

    Returns:
        The absolute folder.

    Raises:
        OutsideHome: the recorded path leads outside the store's home (it is never read or removed).
    """
    home = home_of(con)
    return home.inside(recorded) if home is not None else Path(recorded)
