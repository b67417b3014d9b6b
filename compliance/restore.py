"""Restore (R2, R4): a deleted contact comes back inside the window, as the contact record only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from compliance.deletion import new_bulk_action_id, subject_matches_sql
from compliance.keys import KeyedHasher
from compliance.settings import Settings
from compliance.staff import authorize, recorded_requester
from compliance.store import transaction

RESTORE_OUTCOMES = ("restored", "rejected", "not_found", "already_done", "failed")


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
        hasher: keyed hashes, to recognise purged contacts.
        settings: the restore window.
        as_of: the run's clock.
        include_requests: plan pending restore requests.
        manual: a manual restore to plan.

    Returns:
        The planned restore bulk actions.
    """
    sources = []
    if include_requests:
        for request_id, file, requested_by, status, reason in con.execute(
                "SELECT request_id, file, requested_by, status, reason FROM requests WHERE kind = 'restore' "
                "AND status IN ('pending', 'rejected') AND bulk_action_id IS NULL ORDER BY received_at, request_id"
        ).fetchall():
            sources.append([new_bulk_action_id(as_of), len(sources), "request", f"request {file}", request_id,
                            requested_by, reason if status == "rejected" else None])
    if manual is not None:
        authorization = authorize(con, manual.requested_by)
        sources.append([new_bulk_action_id(as_of), len(sources), "manual", "manual",
                        f"{len(manual.contact_ids)} listed contact(s)",
                        authorization.user_id or recorded_requester(manual.requested_by),
                        authorization.refusal])
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
        FROM subjects x LEFT JOIN matches m USING (bulk_action_id, subject_no)""")
    if manual is not None:
        manual_id = sources[-1][0]
        con.executemany("INSERT INTO restore_candidates VALUES (?, ?, NULL)",
                        [[manual_id, contact_id] for contact_id in dict.fromkeys(manual.contact_ids)])
    window = int(settings.restore_window_days)
    con.execute(f"""
        CREATE OR REPLACE TABLE restore_items AS
        WITH facts AS (
            SELECT DISTINCT c.bulk_action_id, c.contact_id, c.subject, s.ord, s.rejection,
                   lc.state, lc.deleted_at, lc.restored_at, k.contact_id IS NOT NULL AS in_store,
                   p.purged_at
            FROM restore_candidates c JOIN restore_sources s USING (bulk_action_id)
            LEFT JOIN contact_lifecycle lc ON lc.contact_id = c.contact_id
            LEFT JOIN contacts k ON k.contact_id = c.contact_id
            LEFT JOIN purged_contacts p ON p.contact_hash = {hasher.sql('contact_id', 'c.contact_id')}),
        proposed AS (
            SELECT *, CASE
                WHEN rejection IS NOT NULL THEN 'rejected'
                WHEN purged_at IS NOT NULL THEN 'rejected'
                WHEN state = 'deleted' AND TIMESTAMPTZ '{as_of.isoformat()}' <= deleted_at + INTERVAL {window} DAY
                    THEN 'restored'
                WHEN state = 'deleted' THEN 'rejected'
                WHEN restored_at IS NOT NULL AND in_store THEN 'already_done'
                WHEN in_store THEN 'rejected'
                ELSE 'not_found' END AS proposal
            FROM facts),
        claimed AS (
            -- Only a source that would restore the contact claims it; a refused one must not.
            SELECT *, row_number() OVER (PARTITION BY contact_id, proposal = 'restored' ORDER BY ord) AS claim
            FROM proposed)
        SELECT bulk_action_id,
               CASE WHEN purged_at IS NOT NULL OR NOT in_store THEN NULL ELSE contact_id END AS contact_id,
               CASE WHEN proposal = 'restored' AND claim > 1 THEN 'already_done' ELSE proposal END AS outcome,
               CASE
                 WHEN proposal = 'rejected' AND rejection IS NOT NULL THEN rejection
                 WHEN proposal = 'rejected' AND purged_at IS NOT NULL THEN
                     coalesce(subject || ': ', '') || 'purged on ' || strftime(purged_at, '%Y-%m-%d')
                     || ', past the {window}-day window: it cannot be restored'
                 WHEN proposal = 'rejected' AND state = 'deleted' THEN
                     'outside the {window}-day restore window: deleted ' || strftime(deleted_at, '%Y-%m-%d')
                     || ', restorable until ' || strftime(deleted_at + INTERVAL {window} DAY, '%Y-%m-%d %H:%M')
                 WHEN proposal = 'rejected' THEN 'not deleted: nothing to restore'
                 WHEN proposal = 'not_found' THEN coalesce(subject, 'contact ' || contact_id) || ' matches no contact'
                 WHEN proposal = 'already_done' THEN 'already restored on ' || strftime(restored_at, '%Y-%m-%d')
                 WHEN claim > 1 THEN 'restored in this run by an earlier request'
               END AS reason
        FROM claimed""")
    return read_restore_plan(con)


def read_restore_plan(con: duckdb.DuckDBPyConnection) -> list[RestoreAction]:
    """The restore decisions last written to restore_sources and restore_items."""
    rows = con.execute(f"""
        SELECT s.bulk_action_id, s.source, s.source_ref, s.requested_by, s.rejection,
               {', '.join(f"count(i.outcome) FILTER (WHERE i.outcome = '{o}')" for o in RESTORE_OUTCOMES)}
        FROM restore_sources s LEFT JOIN restore_items i USING (bulk_action_id)
        GROUP BY ALL ORDER BY min(s.ord)""").fetchall()
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
            con.execute("CREATE OR REPLACE TEMP TABLE revived AS SELECT contact_id FROM restore_items "
                        "WHERE bulk_action_id = ? AND outcome = 'restored'", [action.bulk_action_id])
            revived = "FROM contacts WHERE contact_id IN (SELECT contact_id FROM revived)"
            con.execute(f"""
                DELETE FROM suppression WHERE key_hash IN (
                    SELECT {hasher.sql('contact_id', 'contact_id')} {revived}
                    UNION SELECT {hasher.sql('email', 'email_key')} {revived}
                    UNION SELECT {hasher.sql('phone', 'phone_key')} {revived})""")
            con.execute("UPDATE contact_lifecycle SET state = 'active', restored_at = ?, restored_by = ? "
                        "WHERE contact_id IN (SELECT contact_id FROM revived)", [as_of, action.bulk_action_id])
            con.execute("INSERT INTO bulk_action_items SELECT bulk_action_id, contact_id, outcome, reason "
                        "FROM restore_items WHERE bulk_action_id = ?", [action.bulk_action_id])
            counts = action.counts
            con.execute("""
                INSERT INTO bulk_actions (bulk_action_id, kind, source, source_ref, requested_by,
                    requester_authorized, created_at, applied_at, status, reason, run_id, total, done, rejected,
                    not_found, already_done, failed)
                SELECT bulk_action_id, 'restore', source, source_ref, requested_by, rejection IS NULL, ?, now(),
                       CASE WHEN rejection IS NULL THEN 'completed' ELSE 'rejected' END, rejection, ?,
                       ?, ?, ?, ?, ?, ?
                FROM restore_sources WHERE bulk_action_id = ?""",
                        [as_of, run_id, sum(counts.values()), *(counts[o] for o in RESTORE_OUTCOMES),
                         action.bulk_action_id])
            con.execute("UPDATE requests SET status = CASE WHEN status = 'pending' THEN 'applied' ELSE status END,"
                        " bulk_action_id = ? WHERE kind = 'restore' AND request_id = ? AND bulk_action_id IS NULL",
                        [action.bulk_action_id, action.source_ref])
            con.execute("DELETE FROM pending_subjects WHERE request_id = ? AND request_id IN "
                        "(SELECT source_ref FROM restore_sources WHERE source_kind = 'request')", [action.source_ref])
    return actions
