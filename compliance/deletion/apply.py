"""Applying a deletion plan: every unrecorded bulk action of the run in one transaction, each table read once.

Why one transaction is safe: a crash (SIGKILL, power loss) anywhere inside it rolls back all the run did to the
store (cascades, tombstones, enrollment counts, suppression, items, records, request answers), so each bulk action
is still all there or not there at all, only now together with the run's others. Its requests stay pending, and the
next run plans and applies them again, once. The backups are written and verified before the transaction starts;
the folder of a bulk action that never committed names no committed or audited bulk action, so the next run's
back_up removes it as an orphan and writes its own. Rows are deleted by rowid: the rowids are read in the same
transaction, on a store no other process writes (the store's lock), so they still name the staged rows. What a
crash loses is the run's work instead of the bulk action in flight; in exchange each removed table is read once per
run instead of three times per bulk action. A bulk action whose backup failed stages no contacts, deletes nothing
and is recorded `failed` in the same transaction.
"""

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
from compliance.progress import count
from compliance.settings import Settings
from compliance.store.connection import transaction
from compliance.store.keys import KeyedHasher
from compliance.store.schema import BY_NAME
from compliance.store.sql import scalar
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
    """Record every planned bulk action and apply its deletions, all in one transaction (see the module's docstring).

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
    work = []
    for source, backup_path, backup_error in _unrecorded_sources(con):
        planned = scalar(con, "SELECT count(*) FROM plan_items WHERE bulk_action_id = ?",
                              [source.bulk_action_id])
        if not planned and source.source_kind != SourceKind.REQUEST:
            continue
        if backup_error is None and source.bulk_action_id in unverified:
            backup_error = f"backup did not verify before delete: {unverified[source.bulk_action_id]}"
        work.append((source, backup_path, backup_error))
    applied: list[AppliedAction] = []
    if not work:
        return applied
    with transaction(con):
        _stage_doomed(con, [source.bulk_action_id for source, _, error in work if not error])
        _cascade_staged(con, settings, as_of)
        for source, backup_path, backup_error in work:
            progress(f"applying bulk action {source.bulk_action_id} ({source.source})")
            status = _apply_one(con, source, hasher, as_of, run_id, backup_error)
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


def _apply_one(con: duckdb.DuckDBPyConnection, source: PlanSource, hasher: KeyedHasher, as_of: datetime,
               run_id: str | None, backup_error: str | None) -> BulkActionStatus:
    """One bulk action, inside the run's transaction after the cascade: suppress, record, settle.

    `doomed` is narrowed to this bulk action's contacts, and `doomed_later` holds those the run's later bulk actions
    delete: they still count as active for this one's suppression, as when each bulk action committed on its own.
    """
    con.execute("CREATE OR REPLACE TEMP TABLE doomed AS SELECT contact_id FROM run_doomed WHERE bulk_action_id = ?",
                [source.bulk_action_id])
    if source.legal and not backup_error:
        con.execute("CREATE OR REPLACE TEMP TABLE doomed_later AS SELECT contact_id FROM run_doomed WHERE ord > ?",
                    [source.ord])
        suppress_erased(con, hasher, source.bulk_action_id, as_of)
    status = record_deletion(con, source, as_of=as_of, run_id=run_id, backup_error=backup_error)
    settle_request(con, source, backup_error)
    return status


def cascade(con: duckdb.DuckDBPyConnection, bulk_action_id: str, settings: Settings, as_of: datetime, *,
            deleting: bool = True) -> None:
    """Delete a bulk action's planned contacts: their linked rows (leaving tombstones), then the contacts.

    The contacts deleted are left in the temp table `doomed` for the steps that follow in the transaction.
    apply_deletions cascades the whole run at once; this is the same cascade for one bulk action.

    Args:
        con: the store connection, inside the bulk action's transaction.
        bulk_action_id: the bulk action whose `deleted` items go.
        settings: the cascade policy (retained associated data stays).
        as_of: the run's clock: the contacts' deleted_at.
        deleting: False when the backup failed: nothing is deleted, and `doomed` is empty.
    """
    _stage_doomed(con, [bulk_action_id] if deleting else [])
    _cascade_staged(con, settings, as_of)
    con.execute("CREATE OR REPLACE TEMP TABLE doomed AS SELECT contact_id FROM run_doomed")


def _stage_doomed(con: duckdb.DuckDBPyConnection, bulk_action_ids: list[str]) -> None:
    """The temp table `run_doomed`: the contacts the given bulk actions delete, each once, with its source's ord."""
    # A contact is deleted by the first source that claims it (decide.sql); DISTINCT ON keeps that even if two did.
    con.execute("""
        CREATE OR REPLACE TEMP TABLE run_doomed AS
        SELECT DISTINCT ON (i.contact_id) i.contact_id, i.bulk_action_id, s.ord
        FROM plan_items i JOIN plan_sources s USING (bulk_action_id)
        WHERE i.outcome = ? AND i.contact_id IS NOT NULL AND i.bulk_action_id IN (SELECT unnest(?::VARCHAR[]))
        ORDER BY i.contact_id, s.ord""", [Outcome.DELETED, bulk_action_ids])


def _cascade_staged(con: duckdb.DuckDBPyConnection, settings: Settings, as_of: datetime) -> None:
    """Delete the contacts of `run_doomed`: per removed table one scan stages the rows, then tombstones, enrollment
    metrics and the DELETE (by rowid, in the same transaction) read the staged rows; then the lifecycle rows."""
    for name in removed_tables(settings):
        spec = BY_NAME[name]
        metric_columns = ""
        if name in _MEMBERSHIP_OBJECTS:
            metric_columns = f", t.{_MEMBERSHIP_OBJECTS[name][1]} AS object_id, {_active_sql(name)} AS active"
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE removed_rows AS
            SELECT t.rowid AS row_id, d.bulk_action_id, {spec.row_key_sql('t')} AS row_key{metric_columns}
            FROM {name} t JOIN run_doomed d ON t.contact_id = d.contact_id""")
        con.execute("INSERT INTO tombstones SELECT ?, row_key, bulk_action_id FROM removed_rows", [name])
        if name in _MEMBERSHIP_OBJECTS:
            _keep_enrollment_metrics(con, name)
        con.execute(f"DELETE FROM {name} WHERE rowid IN (SELECT row_id FROM removed_rows)")
    con.execute("DROP TABLE IF EXISTS removed_rows")
    con.execute("""
        INSERT INTO contact_lifecycle (contact_id, state, deleted_at, deleted_by)
        SELECT contact_id, ?, ?, bulk_action_id FROM run_doomed
        ON CONFLICT (contact_id) DO UPDATE SET state = excluded.state, deleted_at = excluded.deleted_at,
            deleted_by = excluded.deleted_by, restored_at = NULL, restored_by = NULL""",
                [ContactState.DELETED, as_of])


def _active_sql(table: str) -> str:
    """Whether a membership row (alias t) is active, for the enrollment metrics."""
    # `active` here is the CRM's own campaign and enrollment status (compliance.store.schema), not a contact state.
    if table == "workflow_enrollments":
        return "t.status = 'active'"
    if table == "campaign_enrollments":
        return "t.campaign_id IN (SELECT campaign_id FROM campaigns WHERE status = 'active')"
    return "false"


def _keep_enrollment_metrics(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Count the enrollments a delete removes per campaign/workflow/list, so aggregate metrics survive (R12).

    Reads the table's staged `removed_rows` (all bulk actions of the run at once: the counts add up the same).
    """
    con.execute("""
        INSERT INTO enrollment_metrics
        SELECT ?, object_id, count(*), count(*) FILTER (WHERE active) FROM removed_rows GROUP BY object_id
        ON CONFLICT (object_kind, object_id) DO UPDATE SET
            removed_by_deletion = removed_by_deletion + excluded.removed_by_deletion,
            removed_active = removed_active + excluded.removed_active""", [_MEMBERSHIP_OBJECTS[table][0]])
