"""Restore planning: who asked, for whom, and the decision per contact (restore_decide.sql), changing nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from compliance.bulk_actions import new_bulk_action_id
from compliance.deletion import subject_matches_sql
from compliance.requests.intake import CURRENT_ATTEMPT, REQUEST_SOURCE_PREFIX
from compliance.settings import Settings
from compliance.staff import authorize, recorded_requester
from compliance.store.keys import KeyedHasher
from compliance.store.sql import run_sql_file
from compliance.vocabulary import PLANNED_STATUSES, RESTORE_OUTCOMES, RequestKind, RequestStatus, SourceKind


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
        # One statement with a list parameter, not one (and a commit) per id: 4-5 s for 10,000 ids.
        con.execute("INSERT INTO restore_candidates SELECT ?, unnest(?::VARCHAR[]), NULL",
                    [manual_id, list(dict.fromkeys(manual.contact_ids))])
    run_sql_file(con, __package__, "restore_decide.sql", as_of=as_of, window=int(settings.restore_window_days))
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
    return [RestoreAction(bulk_action_id, source, source_ref, requested_by, rejection,
                          counts=dict(zip(RESTORE_OUTCOMES, counts, strict=True)))
            for bulk_action_id, source, source_ref, requested_by, rejection, *counts in rows]
