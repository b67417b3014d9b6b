"""Recording a deletion's bulk action (items, record, backup) and settling the erasure request it answers."""

from __future__ import annotations

from datetime import datetime

import duckdb

from compliance.bulk_actions import BulkAction, record_bulk_action, record_items
from compliance.deletion.planning import PlanSource
from compliance.vocabulary import BulkActionKind, BulkActionStatus, Outcome, RequestStatus, SourceKind


def deletion_status(source: PlanSource, backup_error: str | None) -> BulkActionStatus:
    """`failed` when the backup is not there to delete against, `rejected` when the source was refused."""
    if backup_error:
        return BulkActionStatus.FAILED
    return BulkActionStatus.REJECTED if source.rejection else BulkActionStatus.COMPLETED


def record_deletion(con: duckdb.DuckDBPyConnection, source: PlanSource, *, as_of: datetime, run_id: str | None,
                    backup_error: str | None) -> BulkActionStatus:
    """Record the bulk action of one plan source, its items and, when it deleted contacts, its backup.

    With a backup error, the contacts it would have deleted are recorded `failed`, with the error: nothing was.

    Args:
        con: the store connection, inside the bulk action's transaction (after the cascade: `doomed` holds the
            contacts deleted).
        source: the plan source.
        as_of: the run's clock.
        run_id: the Dagster run.
        backup_error: why the backup is missing or does not verify, if so.

    Returns:
        The bulk action's status.
    """
    if backup_error:
        record_items(con, "SELECT bulk_action_id, contact_id, CASE WHEN outcome = ? THEN ? ELSE outcome END, "
                          "CASE WHEN outcome = ? THEN ? ELSE reason END FROM plan_items WHERE bulk_action_id = ?",
                     [Outcome.DELETED, Outcome.FAILED, Outcome.DELETED, f"{backup_error}; nothing deleted",
                      source.bulk_action_id])
    else:
        record_items(con, "SELECT bulk_action_id, contact_id, outcome, reason FROM plan_items WHERE bulk_action_id = ?",
                     [source.bulk_action_id])
    status = deletion_status(source, backup_error)
    record_bulk_action(con, BulkAction(
        source.bulk_action_id, BulkActionKind.DELETE, source.source, source.source_ref, source.requested_by, status,
        requester_authorized=source.rejection is None, regulation=source.regulation,
        reason=source.rejection or backup_error), created_at=as_of, run_id=run_id)
    if status == BulkActionStatus.COMPLETED and con.execute("SELECT count(*) FROM doomed").fetchone()[0]:
        con.execute("""
            INSERT INTO backups (bulk_action_id, path, written_at, verified_at, created_as_of, manifest_sha256,
                                 contacts, total_rows)
            SELECT s.bulk_action_id, s.backup_path, s.backup_written_at, s.backup_verified_at, ?, s.backup_sha256,
                   (SELECT count(*) FROM doomed), s.backup_rows
            FROM plan_sources s WHERE s.bulk_action_id = ?""", [as_of, source.bulk_action_id])
    return status


def settle_request(con: duckdb.DuckDBPyConnection, source: PlanSource, backup_error: str | None) -> None:
    """Answer the erasure request a source stands for: applied (or kept rejected), or pending with why it waits.

    Its subjects leave pending_subjects once answered: from then on the person is kept only as hashes.

    Args:
        con: the store connection, inside the bulk action's transaction.
        source: the plan source (nothing to do unless it is a request).
        backup_error: why the delete could not run; the request stays pending and is retried on the next run.
    """
    if source.source_kind != SourceKind.REQUEST:
        return
    if backup_error:
        con.execute("UPDATE requests SET reason = ? WHERE request_id = ? AND status = ?",
                    [f"{backup_error}; will retry on the next run (bulk action {source.bulk_action_id})",
                     source.source_ref, RequestStatus.PENDING])
        return
    con.execute("UPDATE requests SET status = CASE WHEN status = ? THEN ? ELSE status END, bulk_action_id = ? "
                "WHERE request_id = ? AND status IN (?, ?) AND bulk_action_id IS NULL",
                [RequestStatus.PENDING, RequestStatus.APPLIED, source.bulk_action_id, source.source_ref,
                 RequestStatus.PENDING, RequestStatus.REJECTED])
    con.execute("DELETE FROM pending_subjects WHERE request_id = ?", [source.source_ref])
