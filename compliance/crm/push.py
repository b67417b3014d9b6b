"""Push: every contact the store deleted that came from the CRM gets `DELETE /contacts/{id}` once, via an outbox.

Crash safety: a contact enters the outbox only once its delete committed with a verified backup (the push step
runs after the delete step, and the enqueue joins `backups`). Each DELETE is counted in the outbox before it is
sent and settled after; a run killed in between sends it again next time, and the CRM's 404 makes that
`already_gone`, a success. So every owed contact ends `pushed` exactly once or `already_gone`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import duckdb

from compliance.crm.client import CrmAuthError, CrmError, HighLevelClient
from compliance.settings import Crm
from compliance.store.connection import transaction
from compliance.store.sql import scalar


class PushState(StrEnum):
    """Where one contact's CRM delete stands."""

    PENDING = "pending"
    PUSHED = "pushed"
    ALREADY_GONE = "already_gone"
    FAILED = "failed"


RESTORE_IN_CRM = "restore in the CRM too"


@dataclass
class PushResult:
    """What one push did: the mode, how many rows it enqueued, and the outcome counts of what it sent."""

    mode: str
    enqueued: int = 0
    would_send: int = 0
    counts: dict[str, int] = field(default_factory=dict)


def enqueue(con: duckdb.DuckDBPyConnection, crm: Crm, *, as_of: datetime) -> int:
    """Add to the outbox every contact deleted with a verified backup, from the CRM's locations, not yet in it.

    Args:
        con: the store.
        crm: the `crm:` settings (its locations are what "came from the CRM" means).
        as_of: the run's clock.

    Returns:
        The rows added.
    """
    with transaction(con):
        before = scalar(con, "SELECT count(*) FROM crm_outbox")
        # The join with `backups` is the guarantee: that row commits with the delete, after its backup verified.
        con.execute("""
            INSERT INTO crm_outbox (contact_id, location_id, bulk_action_id, state, http_status, attempts, updated_at)
            SELECT DISTINCT lc.contact_id, c.location_id, lc.deleted_by, 'pending', NULL, 0, ?
            FROM contact_lifecycle lc
            JOIN backups b ON b.bulk_action_id = lc.deleted_by AND b.verified_at IS NOT NULL
            JOIN contacts c ON c.contact_id = lc.contact_id
            WHERE lc.state = 'deleted' AND list_contains(?, c.location_id)
              AND NOT EXISTS (SELECT 1 FROM crm_outbox o
                              WHERE o.contact_id = lc.contact_id AND o.bulk_action_id = lc.deleted_by)""",
                    [as_of, list(crm.location_ids)])
        # A purged contact keeps no id anywhere: its settled outbox rows go with it.
        con.execute("DELETE FROM crm_outbox WHERE state <> 'pending' AND contact_id NOT IN "
                    "(SELECT contact_id FROM contact_lifecycle)")
        return scalar(con, "SELECT count(*) FROM crm_outbox") - before


def push_deletions(con: duckdb.DuckDBPyConnection, crm: Crm, client_factory: Callable[[], HighLevelClient], *,
                   as_of: datetime, progress: Callable[[str], None] = lambda message: None) -> PushResult:
    """Send the outbox's owed deletes (pending, or failed before) and record each outcome.

    Args:
        con: the store.
        crm: the `crm:` settings; `push: off` does nothing, `dry_run` enqueues and sends nothing.
        client_factory: opens the HighLevel client (called only when something is to be sent).
        as_of: the run's clock (the outbox's updated_at).
        progress: progress lines.

    Returns:
        The push's result.

    Raises:
        CrmAuthError: the CRM refused the token; what was not settled stays pending.
    """
    if crm.kind is None or crm.push == "off":
        return PushResult("off")
    result = PushResult(crm.push, enqueued=enqueue(con, crm, as_of=as_of))
    owed = con.execute("SELECT contact_id, location_id, bulk_action_id FROM crm_outbox "
                       "WHERE state IN ('pending', 'failed') ORDER BY updated_at, bulk_action_id, contact_id"
                       ).fetchall()
    if crm.push == "dry_run":
        result.would_send = len(owed)
        progress(f"CRM push dry run: would send {len(owed)} DELETE(s)")
        return result
    if not owed:
        return result
    with client_factory() as client:
        for number, (contact_id, location_id, bulk_action_id) in enumerate(owed, start=1):
            state, status = _push_one(con, client, contact_id, location_id, bulk_action_id, as_of)
            result.counts[state] = result.counts.get(state, 0) + 1
            if number % 100 == 0:
                progress(f"CRM push: {number} of {len(owed)} contacts")
    return result


def _push_one(con: duckdb.DuckDBPyConnection, client: HighLevelClient, contact_id: str, location_id: str,
              bulk_action_id: str, as_of: datetime) -> tuple[str, int | None]:
    key = [contact_id, bulk_action_id]
    con.execute("UPDATE crm_outbox SET attempts = attempts + 1, updated_at = ? "
                "WHERE contact_id = ? AND bulk_action_id = ?", [as_of, *key])
    try:
        status: int | None = client.delete_contact(contact_id, location_id=location_id)
        state = PushState.ALREADY_GONE if status == 404 else PushState.PUSHED
    except CrmAuthError:
        raise
    except CrmError as exc:
        status = exc.status
        state = PushState.FAILED
    con.execute("UPDATE crm_outbox SET state = ?, http_status = ?, updated_at = ? "
                "WHERE contact_id = ? AND bulk_action_id = ?", [str(state), status, as_of, *key])
    return str(state), status


def crm_outcomes(con: duckdb.DuckDBPyConnection, bulk_action_id: str) -> dict[str, str]:
    """Per contact of one bulk action, where its CRM delete stands (for `retention status <id>`).

    A delete maps each of its contacts to its outbox state; a restore maps each restored contact whose CRM
    delete was pushed to "restore in the CRM too" (HighLevel restores from its own Restore page only).

    Args:
        con: the store.
        bulk_action_id: the bulk action.

    Returns:
        contact_id -> outcome, only for contacts the outbox knows.
    """
    rows = con.execute("""
        SELECT o.contact_id, o.state FROM crm_outbox o WHERE o.bulk_action_id = ?
        UNION ALL
        SELECT DISTINCT i.contact_id, ? FROM bulk_action_items i
        JOIN bulk_actions a ON a.bulk_action_id = i.bulk_action_id AND a.kind = 'restore'
        WHERE i.bulk_action_id = ? AND i.outcome = 'restored'
          AND i.contact_id IN (SELECT contact_id FROM crm_outbox WHERE state = 'pushed')""",
                       [bulk_action_id, RESTORE_IN_CRM, bulk_action_id]).fetchall()
    return dict(rows)
