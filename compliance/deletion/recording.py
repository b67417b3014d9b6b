"""Recording a deletion's bulk action (items, record, backup) and settling the erasure request it answers."""

from __future__ import annotations

from datetime import datetime

import duckdb

from compliance.bulk_actions import BulkAction, record_bulk_action, record_items
from compliance.deletion.planning import PlanSource
from compliance.requests.intake import REQUEST_SOURCE_PREFIX
from compliance.store.sql import one_row, scalar
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
        con: the store connection, inside the run's transaction (after the cascade: `doomed` holds the
            contacts this bulk action deleted).
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
    if status == BulkActionStatus.COMPLETED and scalar(con, "SELECT count(*) FROM doomed"):
        con.execute("""
            INSERT INTO backups (bulk_action_id, path, written_at, verified_at, created_as_of, manifest_sha256,
                                 contacts, total_rows, bytes)
            SELECT s.bulk_action_id, s.backup_path, s.backup_written_at, s.backup_verified_at, ?, s.backup_sha256,
                   (SELECT count(*) FROM doomed), s.backup_rows, s.backup_bytes
            FROM plan_sources s WHERE s.bulk_action_id = ?""", [as_of, source.bulk_action_id])
    return status


def settle_request(con: duckdb.DuckDBPyConnection, source: PlanSource, backup_error: str | None) -> None:
    """Answer the erasure request a source stands for: applied (or kept rejected), or pending with why it waits.

    A request with `blocked` contacts stays pending, its reason naming what blocks, and keeps only the subjects that
    matched a blocked contact: every later run plans those again, until none is blocked and it is applied. The
    subjects of an answered request leave pending_subjects: from then on the person is kept only as hashes.

    Args:
        con: the store connection, inside the run's transaction (the plan's tables still there).
        source: the plan source (nothing to do unless it is a request).
        backup_error: why the delete could not run; the request stays pending and is retried on the next run.
    """
    if source.source_kind != SourceKind.REQUEST:
        return
    this_attempt = ("request_id = ? AND file = ? AND bulk_action_id IS NULL",
                    [source.source_ref, source.source.removeprefix(REQUEST_SOURCE_PREFIX)])
    if backup_error:
        con.execute(f"UPDATE requests SET reason = ? WHERE {this_attempt[0]} AND status = ?",
                    [f"{backup_error}; will retry on the next run (bulk action {source.bulk_action_id})",
                     *this_attempt[1], RequestStatus.PENDING])
        return
    blocked, blockers = one_row(
        con, "SELECT count(*), string_agg(DISTINCT reason, '; ' ORDER BY reason) FROM plan_items "
        "WHERE bulk_action_id = ? AND outcome = ?", [source.bulk_action_id, Outcome.BLOCKED])
    if blocked:
        con.execute(f"UPDATE requests SET reason = ? WHERE {this_attempt[0]} AND status = ?",
                    [f"waiting: {blocked} contact{'s' if blocked != 1 else ''} blocked ({blockers}); tried again "
                     f"on every run until none is blocked (last: bulk action {source.bulk_action_id})",
                     *this_attempt[1], RequestStatus.PENDING])
        con.execute("""
            DELETE FROM pending_subjects WHERE request_id = ? AND subject_no NOT IN (
                SELECT c.subject_no FROM plan_candidates c JOIN plan_items i USING (bulk_action_id, contact_id)
                WHERE i.bulk_action_id = ? AND i.outcome = ?)""",
                    [source.source_ref, source.bulk_action_id, Outcome.BLOCKED])
        return
    # Once applied, a pending request's reason (why it waited) no longer holds.
    con.execute(f"UPDATE requests SET status = CASE WHEN status = ? THEN ? ELSE status END, "
                f"reason = CASE WHEN status = ? THEN NULL ELSE reason END, bulk_action_id = ? "
                f"WHERE {this_attempt[0]} AND status IN (?, ?)",
                [RequestStatus.PENDING, RequestStatus.APPLIED, RequestStatus.PENDING, source.bulk_action_id,
                 *this_attempt[1], RequestStatus.PENDING, RequestStatus.REJECTED])
    con.execute("DELETE FROM pending_subjects WHERE request_id = ?", [source.source_ref])
