"""Who may delete and restore (R1): an active admin of the newest staff table."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from compliance.evidence.audit import personal_data_kind

UNKNOWN_REQUESTER = "unknown staff member"


def register_scope(con: duckdb.DuckDBPyConnection) -> None:
    """Define `retention_out_of_scope(location_ids, location_id)` on the connection: the one statement of the rule
    that an admin with locations (empty or NULL: every location) may act only on contacts of those locations, used by
    the deletion and restore decisions and the `deletions_trace_to_admin` invariant."""
    con.execute("CREATE OR REPLACE TEMP MACRO retention_out_of_scope(location_ids, location_id) AS "
                "coalesce(len(location_ids), 0) > 0 AND NOT coalesce(list_contains(location_ids, location_id), false)")


@dataclass(frozen=True)
class Authorization:
    """The verdict on one requester: the staff user_id found, and why it is refused (None when allowed)."""

    user_id: str | None
    refusal: str | None

    @property
    def allowed(self) -> bool:
        return self.refusal is None


def authorize(con: duckdb.DuckDBPyConnection, who: str | None) -> Authorization:
    """Check that `who` (a staff user_id or email) is an active admin.

    Args:
        con: a store connection.
        who: the requester as written in the request, rule or command.

    Returns:
        The staff user_id and, when refused, the reason.
    """
    if not who or not who.strip():
        return Authorization(None, "no requester given: only an active admin can delete or restore")
    row = con.execute(
        "SELECT user_id, role, active FROM staff WHERE user_id = ? OR lower(trim(email)) = lower(trim(?)) "
        "ORDER BY user_id = ? DESC LIMIT 1", [who.strip(), who, who.strip()]).fetchone()
    if row is None:
        # An unknown email or phone may be a contact's: the reason is recorded and audited, so it is not repeated.
        kind = personal_data_kind(who)
        who_text = f"the requester's {kind} matches no staff member" if kind else f"{who.strip()} is not a staff member"
        return Authorization(None, f"{who_text}: only an active admin can delete or restore")
    user_id, role, active = row
    if role != "admin":
        return Authorization(user_id, f"{user_id} is not an admin (role {role}): only admins can delete or restore")
    if not active:
        return Authorization(user_id, f"{user_id} is an inactive admin: only active admins can delete or restore")
    return Authorization(user_id, None)


def recorded_requester(who: str | None) -> str | None:
    """How a requester who is not a known staff member is recorded: as written, unless it looks like an email or
    phone, which is never kept raw (records and the audit trail hold no personal data).

    Args:
        who: the requester as written in the request, rule or command.

    Returns:
        The trimmed text, or UNKNOWN_REQUESTER in place of an email address or phone number.
    """
    if who is None:
        return None
    return UNKNOWN_REQUESTER if personal_data_kind(who) else who.strip()
