"""The product's lifecycle vocabularies: request statuses, bulk-action kinds, statuses and outcomes, contact states.

Each value is what the store holds and what the JSON of PRODUCT.md section 3 shows, so a value never changes; a
member is a `str`, so it binds as a SQL parameter and serialises as its value. SQL files name them as `$` parameters
(see `SQL_VOCABULARY`) rather than as quoted literals. What leaves compliance/ (results, documents, counts) carries
plain values, not members: Dagster's serialiser refuses Enum instances in metadata, so the ordered tuples below are
of values.
"""

from __future__ import annotations

from enum import StrEnum


class RequestKind(StrEnum):
    """What a request file asks for."""

    ERASURE = "erasure"
    RESTORE = "restore"


class Regulation(StrEnum):
    """The law under which a request is made; `internal` is a company decision with no statutory deadline."""

    GDPR = "gdpr"
    CCPA = "ccpa"
    INTERNAL = "internal"


class RequestStatus(StrEnum):
    """A request record's status in the requests view."""

    PENDING = "pending"
    APPLIED = "applied"
    REJECTED = "rejected"
    QUARANTINED = "quarantined"
    DUPLICATE = "duplicate"


class BulkActionKind(StrEnum):
    """What a bulk action did."""

    DELETE = "delete"
    RESTORE = "restore"
    PURGE = "purge"


class BulkActionStatus(StrEnum):
    """How a recorded bulk action ended."""

    COMPLETED = "completed"
    REJECTED = "rejected"
    FAILED = "failed"


class Outcome(StrEnum):
    """What a bulk action did to one contact (or one unmatched request subject)."""

    DELETED = "deleted"
    RESTORED = "restored"
    PURGED = "purged"
    BLOCKED = "blocked"
    REJECTED = "rejected"
    NOT_FOUND = "not_found"
    ALREADY_DONE = "already_done"
    FAILED = "failed"


class ContactState(StrEnum):
    """A contact's state: `active` and `deleted` are kept in contact_lifecycle; `purged` and `unknown` are derived."""

    ACTIVE = "active"
    DELETED = "deleted"
    PURGED = "purged"
    UNKNOWN = "unknown"


class SourceKind(StrEnum):
    """Where a planned bulk action comes from."""

    REQUEST = "request"
    RULE = "rule"
    MANUAL = "manual"


class Deadline(StrEnum):
    """Where a request stands against its due date."""

    OVERDUE = "overdue"
    DUE_SOON = "due_soon"
    OPEN = "open"
    ANSWERED = "answered"


def values(*members: StrEnum) -> tuple[str, ...]:
    """The members' plain values, in order."""
    return tuple(member.value for member in members)


# The order of a delete's counts in plans, reports and JSON.
DELETE_OUTCOMES = values(Outcome.DELETED, Outcome.BLOCKED, Outcome.REJECTED, Outcome.NOT_FOUND, Outcome.ALREADY_DONE,
                         Outcome.FAILED)
RESTORE_OUTCOMES = values(Outcome.RESTORED, Outcome.REJECTED, Outcome.NOT_FOUND, Outcome.ALREADY_DONE, Outcome.FAILED)
# A bulk action stores its kind's own outcome as `done`, and each of these in a column named after it.
DONE_OUTCOME = {kind.value: outcome.value for kind, outcome in (
    (BulkActionKind.DELETE, Outcome.DELETED), (BulkActionKind.RESTORE, Outcome.RESTORED),
    (BulkActionKind.PURGE, Outcome.PURGED))}
COUNTED_OUTCOMES = values(Outcome.BLOCKED, Outcome.REJECTED, Outcome.NOT_FOUND, Outcome.ALREADY_DONE, Outcome.FAILED)

# Requests whose subjects are planned (a rejected one too, so that its bulk action lists what was refused).
PLANNED_STATUSES = values(RequestStatus.PENDING, RequestStatus.REJECTED)
ANSWERED_STATUSES = values(RequestStatus.APPLIED, RequestStatus.REJECTED)
FINAL_STATUSES = values(RequestStatus.APPLIED, RequestStatus.REJECTED, RequestStatus.QUARANTINED,
                        RequestStatus.DUPLICATE)
# Statutory erasures: they suppress the person, override active enrollments, and their deadlines can be extended.
LEGAL_REGULATIONS = values(Regulation.GDPR, Regulation.CCPA)

_SQL_PREFIX = {RequestKind: "request_kind", RequestStatus: "request", BulkActionKind: "kind",
               BulkActionStatus: "status", Outcome: "outcome", ContactState: "state", SourceKind: "source"}
# `$outcome_deleted`, `$state_deleted`, `$source_request`, ...: the vocabulary as named SQL parameters.
SQL_VOCABULARY: dict[str, StrEnum] = {f"{prefix}_{member.value}": member
                                      for enum, prefix in _SQL_PREFIX.items() for member in enum}
