"""Restore (R2, R4): a deleted contact comes back inside the window, as the contact record only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from compliance.bulk_actions import BulkAction, new_bulk_action_id, record_bulk_action, record_items
from compliance.deletion import subject_matches_sql
from compliance.intake import CURRENT_ATTEMPT, REQUEST_SOURCE_PREFIX
from compliance.keys import KeyedHasher
from compliance.settings import Settings
from compliance.sql import run_sql_file
from compliance.staff import authorize, recorded_requester
from compliance.store import transaction
from compliance.vocabulary import (PLANNED_STATUSES, RESTORE_OUTCOMES, BulkActionKind, BulkActionStatus, ContactState,
                                   Outcome, RequestKind, RequestStatus, SourceKind)

__all__ = ["RESTORE_OUTCOMES", "ManualRestore", "RestoreAction", "apply_restores", "plan_restores",
           "read_restore_plan"]


@dataclass(frozen=True)
class ManualRestore:
    """`retention restore --contact ... --as-user ...`."""

    requested_by: str
    contact_ids: tuple[str, ...]


@dataclass(frozen=True)
class RestoreAction:
    """One restore bulk action with its counts by outcome."""

    bulk_action_id: str
    source: str
    source_ref: str
    requested_by: str | None
    rejection: str | None
    counts: dict[str, int]


def plan_restores(con: duckdb.DuckDBPyConnection, *, hasher: KeyedHasher, settings: Settings, as_of: datetime,
                  include_requests: bool = True, manual: ManualRestore | None = None) -> list[RestoreAction]:
    """Decide every restore of this run: pending restore requests and a manual restore.

    A contact is `restored` while as_of <= deleted_at + restore_window_days (inclusive); otherwise `rejected`
    (outside the window, never deleted, purged) or `not_found`; one restored earlier is `already_done`.

    Args:
        con: a writable store connection (the decisions go to restore_sources and restore_items).
        hasher: keyed hashes, to recognise purged contacts (its macro registered on con, as Store.connect does).
        settings: the restore window.
        as_of: the run's clock.
        include_requests: plan pending restore requests.
        manual: a manual restore to plan.

    Returns:
        The planned restore bulk actions.
    """
    sources = _restore_sources(con, as_of, include_requests, manual)
    con.execute("CREATE OR REPLACE TABLE restore_sources (bulk_action_id VARCHAR, ord INTEGER, source_kind VARCHAR,"
                " source VARCHAR, source_ref VARCHAR, requested_by VARCHAR, rejection VARCHAR)")
    if sources:
        con.executemany("INSERT INTO restore_sources VALUES (?, ?, ?, ?, ?, ?, ?)", sources)
    con.execute("CREATE OR REPLACE TABLE restore_candidates (bulk_action_id VARCHAR, contact_id VARCHAR,"
                " subject VARCHAR)")
    con.execute(f"""
        INSERT INTO restore_candidates
        {subject_matches_sql('restore_sources')}
        SELECT x.bulk_action_id, coalesce(m.contact_id, x.contact_id),
               CASE WHEN m.contact_id IS NULL THEN 'subject ' || x.subject_no END
        FROM subjects x LEFT JOIN matches m USING (bulk_action_id, subject_no)""", [SourceKind.REQUEST])
    if manual is not None:
        manual_id = sources[-1][0]
        con.executemany("INSERT INTO restore_candidates VALUES (?, ?, NULL)",
                        [[manual_id, contact_id] for contact_id in dict.fromkeys(manual.contact_ids)])
    run_sql_file(con, "compliance", "restore_decide.sql", as_of=as_of, window=int(settings.restore_window_days))
    return read_restore_plan(con)


def _restore_sources(con: duckdb.DuckDBPyConnection, as_of: datetime, include_requests: bool,
                     manual: ManualRestore | None) -> list[list[Any]]:
    """The restore sources, as restore_sources rows: pending restore requests by received_at, then a manual one."""
    sources: list[list[Any]] = []
    if include_requests:
        for request_id, file, requested_by, status, reason in con.execute(
                "SELECT request_id, file, requested_by, status, reason FROM requests r WHERE kind = ? "
                f"AND status IN (?, ?) AND bulk_action_id IS NULL AND {CURRENT_ATTEMPT} "
                "ORDER BY received_at, request_id",
                [RequestKind.RESTORE, *PLANNED_STATUSES]).fetchall():
            sources.append([new_bulk_action_id(as_of), len(sources), SourceKind.REQUEST,
                            REQUEST_SOURCE_PREFIX + file, request_id, requested_by,
                            reason if status == RequestStatus.REJECTED else None])
    if manual is not None:
        authorization = authorize(con, manual.requested_by)
        sources.append([new_bulk_action_id(as_of), len(sources), SourceKind.MANUAL, "manual",
                        f"{len(manual.contact_ids)} listed contact(s)",
                        authorization.user_id or recorded_requester(manual.requested_by),
                        authorization.refusal])
    return sources


def read_restore_plan(con: duckdb.DuckDBPyConnection) -> list[RestoreAction]:
    """The restore decisions last written to restore_sources and restore_items."""
    rows = con.execute(f"""
        SELECT s.bulk_action_id, s.source, s.source_ref, s.requested_by, s.rejection,
               {', '.join('count(i.outcome) FILTER (WHERE i.outcome = ?)' for _ in RESTORE_OUTCOMES)}
        FROM restore_sources s LEFT JOIN restore_items i USING (bulk_action_id)
        GROUP BY ALL ORDER BY min(s.ord)""", list(RESTORE_OUTCOMES)).fetchall()
    return [RestoreAction(*row[:5], counts=dict(zip(RESTORE_OUTCOMES, row[5:]))) for row in rows]


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
               if not con.execute("SELECT count(*) FROM bulk_actions WHERE bulk_action_id = ?",
                                  [a.bulk_action_id]).fetchone()[0]]
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
