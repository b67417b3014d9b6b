"""The CRM tables a snapshot carries: required columns, their types, keys and how each relates to a contact."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from compliance import identifiers

Role = Literal["contact", "associated", "membership", "reference"]


@dataclass(frozen=True)
class TableSpec:
    """One snapshot table as the store keeps it."""

    name: str
    columns: dict[str, str]
    key: tuple[str, ...]
    role: Role
    # Columns a snapshot may leave out (an empty list then); older exports and stores predate them.
    optional: dict[str, str] = field(default_factory=dict)

    @property
    def all_columns(self) -> dict[str, str]:
        """The required columns, then the optional ones."""
        return {**self.columns, **self.optional}

    def row_key_sql(self, alias: str = "") -> str:
        """An expression naming one row across snapshots (used for tombstones of deleted rows)."""
        prefix = f"{alias}." if alias else ""
        return " || ':' || ".join(f"CAST({prefix}{column} AS VARCHAR)" for column in self.key)


TS = "TIMESTAMPTZ"
TABLES: tuple[TableSpec, ...] = (
    TableSpec("contacts", {
        "contact_id": "VARCHAR", "location_id": "VARCHAR", "first_name": "VARCHAR", "last_name": "VARCHAR",
        "email": "VARCHAR", "phone": "VARCHAR", "tags": "VARCHAR[]", "dnd": "BOOLEAN",
        "created_at": TS, "updated_at": TS, "last_activity_at": TS,
    }, ("contact_id",), "contact", {"additional_emails": "VARCHAR[]", "additional_phones": "VARCHAR[]"}),
    TableSpec("conversations", {
        "conversation_id": "VARCHAR", "contact_id": "VARCHAR", "channel": "VARCHAR",
        "last_message_at": TS, "last_message_body": "VARCHAR",
    }, ("conversation_id",), "associated"),
    TableSpec("notes", {"note_id": "VARCHAR", "contact_id": "VARCHAR", "body": "VARCHAR", "created_at": TS},
              ("note_id",), "associated"),
    TableSpec("tasks", {"task_id": "VARCHAR", "contact_id": "VARCHAR", "title": "VARCHAR", "status": "VARCHAR",
                        "due_at": TS}, ("task_id",), "associated"),
    TableSpec("activities", {"activity_id": "VARCHAR", "contact_id": "VARCHAR", "activity_type": "VARCHAR",
                             "occurred_at": TS}, ("activity_id",), "associated"),
    TableSpec("campaigns", {"campaign_id": "VARCHAR", "name": "VARCHAR", "status": "VARCHAR"},
              ("campaign_id",), "reference"),
    TableSpec("campaign_enrollments", {"campaign_id": "VARCHAR", "contact_id": "VARCHAR", "enrolled_at": TS},
              ("campaign_id", "contact_id"), "membership"),
    TableSpec("workflows", {"workflow_id": "VARCHAR", "name": "VARCHAR", "status": "VARCHAR"},
              ("workflow_id",), "reference"),
    TableSpec("workflow_enrollments", {"workflow_id": "VARCHAR", "contact_id": "VARCHAR", "status": "VARCHAR"},
              ("workflow_id", "contact_id"), "membership"),
    TableSpec("lists", {"list_id": "VARCHAR", "name": "VARCHAR"}, ("list_id",), "reference"),
    TableSpec("list_memberships", {"list_id": "VARCHAR", "contact_id": "VARCHAR"},
              ("list_id", "contact_id"), "membership"),
    TableSpec("staff", {"user_id": "VARCHAR", "email": "VARCHAR", "name": "VARCHAR", "role": "VARCHAR",
                        "active": "BOOLEAN"}, ("user_id",), "reference",
              # The locations an admin may act on; empty: every location (an agency admin).
              {"location_ids": "VARCHAR[]"}),
)
BY_NAME = {spec.name: spec for spec in TABLES}
CONTACTS = BY_NAME["contacts"]
ASSOCIATED = tuple(spec for spec in TABLES if spec.role == "associated")
MEMBERSHIPS = tuple(spec for spec in TABLES if spec.role == "membership")
CONTACT_LINKED = ASSOCIATED + MEMBERSHIPS

ALLOWED_VALUES = {
    ("campaigns", "status"): ("active", "paused", "completed"),
    ("workflows", "status"): ("published", "draft"),
    ("workflow_enrollments", "status"): ("active", "finished"),
    ("staff", "role"): ("admin", "user"),
}

# Match keys the store derives from a contact's identifiers at ingest (normalised once, never per comparison).
CONTACT_KEY_COLUMNS = {"email_key": "VARCHAR", "phone_key": "VARCHAR",
                       "additional_email_keys": "VARCHAR[]", "additional_phone_keys": "VARCHAR[]"}


def email_key(column: str) -> str:
    """SQL for an email's match key (compliance.identifiers.email_key; the connection needs identifiers.register)."""
    return identifiers.email_key_sql(column)


def phone_key(column: str) -> str:
    """SQL for a phone's match key (compliance.identifiers.phone_key; the connection needs identifiers.register)."""
    return identifiers.phone_key_sql(column)
