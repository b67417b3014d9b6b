"""Recording a bulk action: its per-contact items, then its record with counts taken from those items.

Deletion, restore and purge all record through here, so that every bulk action's counts agree with its items
(the bulk_action_counts invariant) and the Bulk Actions page reads one shape whatever the kind.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from compliance.operators import current_operator
from compliance.vocabulary import COUNTED_OUTCOMES, DONE_OUTCOME, BulkActionKind, BulkActionStatus


@dataclass(frozen=True)
class BulkAction:
    """The record of one bulk action, as the Bulk Actions page shows it (counts are added from its items)."""

    bulk_action_id: str
    kind: BulkActionKind
    source: str
    source_ref: str | None
    requested_by: str | None
    status: BulkActionStatus
    requester_authorized: bool
    regulation: str | None = None
    reason: str | None = None


def new_bulk_action_id(as_of: datetime) -> str:
    """A new bulk action id: the run's date and a random part (`ba-20260101-0123456789`)."""
    return f"ba-{as_of:%Y%m%d}-{uuid.uuid4().hex[:10]}"


def record_items(con: duckdb.DuckDBPyConnection, select_sql: str, params: Sequence[Any] = ()) -> None:
    """Add a bulk action's items.

    Args:
        con: the store connection, inside the bulk action's transaction.
        select_sql: a SELECT of (bulk_action_id, contact_id, outcome, reason) rows; values as `?` parameters.
        params: its parameters.
    """
    con.execute(f"INSERT INTO bulk_action_items (bulk_action_id, contact_id, outcome, reason) {select_sql}",
                list(params))


def item_counts(con: duckdb.DuckDBPyConnection, bulk_action_id: str) -> dict[str, int]:
    """The recorded items of one bulk action, counted by outcome (outcomes without items left out)."""
    return dict(con.execute("SELECT outcome, count(*) FROM bulk_action_items WHERE bulk_action_id = ? GROUP BY 1",
                            [bulk_action_id]).fetchall())


def record_bulk_action(con: duckdb.DuckDBPyConnection, action: BulkAction, *, created_at: datetime,
                       run_id: str | None) -> None:
    """Record a bulk action whose items are recorded already; its counts are those of its items.

    Args:
        con: the store connection, inside the bulk action's transaction.
        action: what to record.
        created_at: the run's clock (applied_at is the wall clock of the commit).
        run_id: the Dagster run, if any.
    """
    counted = [DONE_OUTCOME[action.kind], *COUNTED_OUTCOMES]
    operator = current_operator()
    con.execute(f"""
        INSERT INTO bulk_actions (bulk_action_id, kind, source, source_ref, requested_by, regulation,
            requester_authorized, created_at, applied_at, status, reason, run_id, os_user, host,
            total, done, {', '.join(COUNTED_OUTCOMES)})
        SELECT ?, ?, ?, ?, ?, ?, ?, ?, now(), ?, ?, ?, ?, ?,
               count(*), {', '.join('count(*) FILTER (WHERE outcome = ?)' for _ in counted)}
        FROM bulk_action_items WHERE bulk_action_id = ?""",
                [action.bulk_action_id, action.kind, action.source, action.source_ref, action.requested_by,
                 action.regulation, action.requester_authorized, created_at, action.status, action.reason, run_id,
                 operator.os_user, operator.host, *counted, action.bulk_action_id])
