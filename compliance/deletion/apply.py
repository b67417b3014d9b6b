"""Applying a deletion plan: per bulk action, one transaction that cascades, suppresses, records and settles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from compliance.bulk_actions import item_counts
from compliance.deletion.backups import Progress, backup_folder, removed_tables, verify_planned_backups
from compliance.deletion.planning import OUTCOMES, PlanSource
from compliance.deletion.recording import record_deletion, settle_request
from compliance.deletion.suppression import suppress_erased
from compliance.home import OutsideHome
from compliance.keys import KeyedHasher
from compliance.progress import count
from compliance.schema import BY_NAME
from compliance.settings import Settings
from compliance.store import transaction
from compliance.vocabulary import BulkActionStatus, ContactState, Outcome, SourceKind

_MEMBERSHIP_OBJECTS = {"campaign_enrollments": ("campaign", "campaign_id"),
                       "workflow_enrollments": ("workflow", "workflow_id"),
                       "list_memberships": ("list", "list_id")}


@dataclass(frozen=True)
class AppliedAction:
    """A bulk action recorded by apply."""

    bulk_action_id: str
    source: str
    status: str
    counts: dict[str, int]
    backup: str | None
    reason: str | None = None


def apply_deletions(con: duckdb.DuckDBPyConnection, *, hasher: KeyedHasher, settings: Settings, as_of: datetime,
                    run_id: str | None = None, progress: Progress = lambda message: None) -> list[AppliedAction]:
    """Record every planned bulk action and apply its deletions, each in one transaction.

    A bulk action whose backup is missing or no longer verifies (verify_planned_backups) deletes nothing and is
    recorded `failed`.

    Args:
        con: the store with a plan and its backups.
        hasher: keyed hashes for the suppression list of legal erasures.
        settings: the cascade policy.
        as_of: the run's clock: the contacts' deleted_at.
        run_id: the Dagster run, recorded on each bulk action.
        progress: called with a line per bulk action.

    Returns:
        The bulk actions recorded.
    """
    unverified = verify_planned_backups(con)
    applied = []
    for source, backup_path, backup_error in _unrecorded_sources(con):
        planned = dict(con.execute("SELECT outcome, count(*) FROM plan_items WHERE bulk_action_id = ? GROUP BY 1",
                                   [source.bulk_action_id]).fetchall())
        if not planned and source.source_kind != SourceKind.REQUEST:
            continue
        if backup_error is None and source.bulk_action_id in unverified:
            backup_error = f"backup did not verify before delete: {unverified[source.bulk_action_id]}"
        progress(f"applying bulk action {source.bulk_action_id} ({source.source})")
        with transaction(con):
            status = _apply_one(con, source, hasher, settings, as_of, run_id, backup_error)
        final = item_counts(con, source.bulk_action_id)
        applied.append(AppliedAction(
            source.bulk_action_id, source.source, status.value, {o: final.get(o, 0) for o in OUTCOMES},
            _shown_backup(con, backup_path) if status == BulkActionStatus.COMPLETED and final.get(Outcome.DELETED)
            else None,
            source.rejection or backup_error))
        count(progress, "apply", final.get(Outcome.DELETED, 0), "contacts")
    return applied


def _shown_backup(con: duckdb.DuckDBPyConnection, recorded: str | None) -> str | None:
    """The backup folder as an absolute path for the caller (the store records it relative to the home)."""
    if recorded is None:
        return None
    try:
        return str(backup_folder(con, recorded))
    except OutsideHome:
        return recorded


def _unrecorded_sources(con: duckdb.DuckDBPyConnection) -> list[tuple[PlanSource, str | None, str | None]]:
    """The plan's non-preview sources not recorded yet, in order, each with its backup path and backup error."""
    rows = con.execute(
        "SELECT bulk_action_id, ord, source_kind, source, source_ref, requested_by, regulation, legal, rejection,"
        " preview, backup_path, backup_error FROM plan_sources "
        "WHERE NOT preview AND bulk_action_id NOT IN (SELECT bulk_action_id FROM bulk_actions) ORDER BY ord"
    ).fetchall()
    return [(PlanSource(*row[:10]), row[10], row[11]) for row in rows]


def _apply_one(con: duckdb.DuckDBPyConnection, source: PlanSource, hasher: KeyedHasher, settings: Settings,
               as_of: datetime, run_id: str | None, backup_error: str | None) -> BulkActionStatus:
    """One bulk action, inside the caller's transaction: cascade, suppress, record, settle."""
    cascade(con, source.bulk_action_id, settings, as_of, deleting=not backup_error)
    if source.legal and not backup_error:
        suppress_erased(con, hasher, source.bulk_action_id, as_of)
    status = record_deletion(con, source, as_of=as_of, run_id=run_id, backup_error=backup_error)
    settle_request(con, source, backup_error)
    return status


def cascade(con: duckdb.DuckDBPyConnection, bulk_action_id: str, settings: Settings, as_of: datetime, *,
            deleting: bool = True) -> None:
    """Delete a bulk action's planned contacts: their linked rows (leaving tombstones), then the contacts.

    The contacts deleted are left in the temp table `doomed` for the steps that follow in the transaction.

    Args:
        con: the store connection, inside the bulk action's transaction.
        bulk_action_id: the bulk action whose `deleted` items go.
        settings: the cascade policy (retained associated data stays).
        as_of: the run's clock: the contacts' deleted_at.
        deleting: False when the backup failed: nothing is deleted, and `doomed` is empty.
    """
    if deleting:
        con.execute("CREATE OR REPLACE TEMP TABLE doomed AS SELECT contact_id FROM plan_items "
                    "WHERE bulk_action_id = ? AND outcome = ?", [bulk_action_id, Outcome.DELETED])
    else:
        con.execute("CREATE OR REPLACE TEMP TABLE doomed (contact_id VARCHAR)")
    for name in removed_tables(settings):
        spec = BY_NAME[name]
        con.execute(f"INSERT INTO tombstones SELECT ?, {spec.row_key_sql('t')}, ? FROM {name} t "
                    f"WHERE t.contact_id IN (SELECT contact_id FROM doomed)", [name, bulk_action_id])
        if name in _MEMBERSHIP_OBJECTS:
            _keep_enrollment_metrics(con, name)
        con.execute(f"DELETE FROM {name} WHERE contact_id IN (SELECT contact_id FROM doomed)")
    con.execute("""
        INSERT INTO contact_lifecycle (contact_id, state, deleted_at, deleted_by)
        SELECT contact_id, ?, ?, ? FROM doomed
        ON CONFLICT (contact_id) DO UPDATE SET state = excluded.state, deleted_at = excluded.deleted_at,
            deleted_by = excluded.deleted_by, restored_at = NULL, restored_by = NULL""",
                [ContactState.DELETED, as_of, bulk_action_id])


def _keep_enrollment_metrics(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Count the enrollments a delete removes per campaign/workflow/list, so aggregate metrics survive (R12)."""
    kind, id_column = _MEMBERSHIP_OBJECTS[table]
    # `active` here is the CRM's own campaign and enrollment status (compliance.schema), not a contact state.
    active = "status = 'active'" if table == "workflow_enrollments" else (
        f"{id_column} IN (SELECT campaign_id FROM campaigns WHERE status = 'active')"
        if table == "campaign_enrollments" else "false")
    con.execute(f"""
        INSERT INTO enrollment_metrics
        SELECT ?, {id_column}, count(*), count(*) FILTER (WHERE {active}) FROM {table}
        WHERE contact_id IN (SELECT contact_id FROM doomed) GROUP BY {id_column}
        ON CONFLICT (object_kind, object_id) DO UPDATE SET
            removed_by_deletion = removed_by_deletion + excluded.removed_by_deletion,
            removed_active = removed_active + excluded.removed_active""", [kind])
