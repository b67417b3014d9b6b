"""One contact's state as `retention show` reports it."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb

from compliance.schema import ASSOCIATED, MEMBERSHIPS

_ENROLLMENT_NAMES = {"campaign_enrollments": "campaigns", "workflow_enrollments": "workflows",
                     "list_memberships": "lists"}


def show_contact(con: duckdb.DuckDBPyConnection, contact_id: str, *, restore_window_days: int) -> dict:
    """The contact's state, deletion dates, associated rows and enrollments.

    Args:
        con: a store connection.
        contact_id: the CRM contact id.
        restore_window_days: the settings' restore window, for restorable_until.

    Returns:
        The `show --json` document of PRODUCT.md section 3.
    """
    lifecycle = con.execute(
        "SELECT state, deleted_at, restored_at FROM contact_lifecycle WHERE contact_id = ?", [contact_id]).fetchone()
    in_store = con.execute("SELECT count(*) FROM contacts WHERE contact_id = ?", [contact_id]).fetchone()[0] > 0
    state, deleted_at, restored_at = lifecycle if lifecycle else ("active" if in_store else "unknown", None, None)
    if state == "active" and not in_store:
        state = "unknown"
    counts = {
        spec.name: con.execute(f"SELECT count(*) FROM {spec.name} WHERE contact_id = ?", [contact_id]).fetchone()[0]
        for spec in ASSOCIATED + MEMBERSHIPS
    }
    deleted = state == "deleted"
    return {
        "contact_id": contact_id,
        "state": state,
        "deleted_at": _iso(deleted_at) if deleted else None,
        "restorable_until": _iso(deleted_at + timedelta(days=restore_window_days)) if deleted else None,
        "restored_at": _iso(restored_at),
        "associated": {spec.name: counts[spec.name] for spec in ASSOCIATED},
        "enrollments": {_ENROLLMENT_NAMES[spec.name]: counts[spec.name] for spec in MEMBERSHIPS},
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None
