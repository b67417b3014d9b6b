"""Restore applied: the contact record comes back (never its associated data), one transaction per bulk action."""

from __future__ import annotations

from datetime import datetime

import duckdb

from compliance.bulk_actions import BulkAction, record_bulk_action, record_items
from compliance.requests.intake import REQUEST_SOURCE_PREFIX
from compliance.restore.planning import RestoreAction, read_restore_plan
from compliance.store.connection import transaction
from compliance.store.keys import KeyedHasher
from compliance.store.sql import scalar
from compliance.vocabulary import (
    BulkActionKind,
    BulkActionStatus,
    ContactState,
    Outcome,
    RequestKind,
    RequestStatus,
    SourceKind,
)


def apply_restores(con: duckdb.DuckDBPyConnection, *, hasher: KeyedHasher, as_of: datetime,
                   run_id: str | None = None) -> list[RestoreAction]:
    """Apply the planned restores, one transaction per bulk action: the contact record only (R4).

    Associated data and memberships stay gone (their rows were deleted, and their tombstones keep later snapshots
    from bringing them back). The contact leaves the suppression list.

    Args:
        con: the store with a restore plan.
        hasher: keyed hashes, to lift the contact's suppression.
        as_of: the run's clock: restored_at.
        run_id: the Dagster run.

    Returns:
        The restore bulk actions recorded.
    """
    actions = [a for a in read_restore_plan(con)
               if not scalar(con, "SELECT count(*) FROM bulk_actions WHERE bulk_action_id = ?",
                                  [a.bulk_action_id])]
    for action in actions:
        with transaction(con):
            _restore_one(con, action, hasher, as_of, run_id)
    return actions


def _restore_one(con: duckdb.DuckDBPyConnection, action: RestoreAction, hasher: KeyedHasher, as_of: datetime,
                 run_id: str | None) -> None:
    """One restore bulk action, inside the caller's transaction: revive, record, settle the request."""
    con.execute("CREATE OR REPLACE TEMP TABLE revived AS SELECT contact_id FROM restore_items "
                "WHERE bulk_action_id = ? AND outcome = ?", [action.bulk_action_id, Outcome.RESTORED])
    revived = "FROM contact_identifiers WHERE contact_id IN (SELECT contact_id FROM revived)"
    # Every identifier of the contact, additional ones included: one left suppressed would keep the restored
    # contact out of the next snapshot.
    con.execute(f"""
        DELETE FROM suppression WHERE key_hash IN (
            SELECT {hasher.sql('contact_id', 'contact_id')} FROM revived
            UNION SELECT {hasher.sql('email', 'key')} {revived} AND kind = 'email'
            UNION SELECT {hasher.sql('phone', 'key')} {revived} AND kind = 'phone')""")
    con.execute("UPDATE contact_lifecycle SET state = ?, restored_at = ?, restored_by = ? "
                "WHERE contact_id IN (SELECT contact_id FROM revived)",
                [ContactState.ACTIVE, as_of, action.bulk_action_id])
    record_items(con, "SELECT bulk_action_id, contact_id, outcome, reason FROM restore_items WHERE bulk_action_id = ?",
                 [action.bulk_action_id])
    record_bulk_action(con, BulkAction(
        action.bulk_action_id, BulkActionKind.RESTORE, action.source, action.source_ref, action.requested_by,
        BulkActionStatus.COMPLETED if action.rejection is None else BulkActionStatus.REJECTED,
        requester_authorized=action.rejection is None, reason=action.rejection), created_at=as_of, run_id=run_id)
    con.execute("UPDATE requests SET status = CASE WHEN status = ? THEN ? ELSE status END, bulk_action_id = ? "
                "WHERE kind = ? AND request_id = ? AND file = ? AND bulk_action_id IS NULL",
                [RequestStatus.PENDING, RequestStatus.APPLIED, action.bulk_action_id, RequestKind.RESTORE,
                 action.source_ref, action.source.removeprefix(REQUEST_SOURCE_PREFIX)])
    con.execute("DELETE FROM pending_subjects WHERE request_id = ? AND request_id IN "
                "(SELECT source_ref FROM restore_sources WHERE source_kind = ?)",
                [action.source_ref, SourceKind.REQUEST])
