"""One contact's state as `retention show` reports it."""

from __future__ import annotations

from datetime import timedelta

import duckdb

from compliance.clock import utc_iso
from compliance.store.keys import KeyedHasher
from compliance.store.schema import ASSOCIATED, MEMBERSHIPS
from compliance.store.sql import scalar
from compliance.vocabulary import ContactState

# A restore sticks: a contact an admin restored is passed over by rules until a later snapshot carries an
# updated_at after its restore (its data changed in the CRM). A re-deletion clears restored_at, so this never
# names a deleted contact; requests and manual deletes do not read it.
RULE_EXEMPT_IDS = ("SELECT lc.contact_id FROM contact_lifecycle lc JOIN contacts k USING (contact_id) "
                   "WHERE lc.restored_at IS NOT NULL AND NOT coalesce(k.updated_at > lc.restored_at, false)")

_ENROLLMENT_NAMES = {"campaign_enrollments": "campaigns", "workflow_enrollments": "workflows",
                     "list_memberships": "lists"}


def show_contact(con: duckdb.DuckDBPyConnection, contact_id: str, *, restore_window_days: int,
                 hasher: KeyedHasher | None = None) -> dict:
    """The contact's state, deletion dates, associated rows and enrollments.

    Args:
        con: a store connection.
        contact_id: the CRM contact id.
        restore_window_days: the settings' restore window, for restorable_until.
        hasher: the home's keyed hashes, to recognise a purged contact (kept only as a hash of its id).

    Returns:
        The `show --json` document of PRODUCT.md section 3, with `rule_exempt` (section 5: restored, and not yet
        changed by a later snapshot, so rules pass it over).
    """
    lifecycle = con.execute(
        "SELECT state, deleted_at, restored_at FROM contact_lifecycle WHERE contact_id = ?", [contact_id]).fetchone()
    in_store = scalar(con, "SELECT count(*) FROM contacts WHERE contact_id = ?", [contact_id]) > 0
    state, deleted_at, restored_at = lifecycle if lifecycle else (
        ContactState.ACTIVE if in_store else ContactState.UNKNOWN, None, None)
    if state == ContactState.ACTIVE and not in_store:
        state = ContactState.UNKNOWN
    purged = None
    if state == ContactState.UNKNOWN and hasher is not None:
        purged = con.execute("SELECT deleted_at, purged_at FROM purged_contacts WHERE contact_hash = ?",
                             [hasher.hash("contact_id", contact_id)]).fetchone()
        if purged:
            state, deleted_at = ContactState.PURGED, purged[0]
    counts = {
        spec.name: scalar(con, f"SELECT count(*) FROM {spec.name} WHERE contact_id = ?", [contact_id])
        for spec in ASSOCIATED + MEMBERSHIPS
    }
    deleted = state in (ContactState.DELETED, ContactState.PURGED)
    rule_exempt = state == ContactState.ACTIVE and scalar(
        con, f"SELECT count(*) FROM ({RULE_EXEMPT_IDS}) WHERE contact_id = ?", [contact_id]) > 0
    return {
        "contact_id": contact_id,
        "state": ContactState(state).value,
        "deleted_at": utc_iso(deleted_at) if deleted else None,
        "restorable_until": utc_iso(deleted_at + timedelta(days=restore_window_days)) if deleted else None,
        "restored_at": utc_iso(restored_at),
        "purged_at": utc_iso(purged[1]) if purged else None,
        "rule_exempt": rule_exempt,
        "associated": {spec.name: counts[spec.name] for spec in ASSOCIATED},
        "enrollments": {_ENROLLMENT_NAMES[spec.name]: counts[spec.name] for spec in MEMBERSHIPS},
    }
