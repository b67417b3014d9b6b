"""Bulk action and request records: the Bulk Actions page, the requests view, and their audit trail entries."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import duckdb

from compliance.clock import utc_iso
from compliance.evidence.audit import AuditLog, personal_data_kind
from compliance.requests.redaction import audited_requester, redact_text
from compliance.store.sql import one_row
from compliance.vocabulary import (
    ANSWERED_STATUSES,
    COUNTED_OUTCOMES,
    DONE_OUTCOME,
    FINAL_STATUSES,
    Deadline,
    RequestStatus,
    values,
)

DONE_FIELD = DONE_OUTCOME
_ACTION_COLUMNS = ("bulk_action_id", "kind", "source", "source_ref", "requested_by", "regulation", "created_at",
                   "applied_at", "status", "reason", "run_id", "total", "done", "blocked", "rejected", "not_found",
                   "already_done", "failed")
_REQUEST_COLUMNS = ("file", "request_id", "kind", "regulation", "requested_by", "status", "reason", "received_at",
                    "due_at", "bulk_action_id", "seen_at", "subjects", "extended_reason", "extended_at")
# The column of the combined request records of a home of shards naming every shard's bulk action.
SHARD_BULK_ACTIONS = "bulk_action_ids"
DUE_SOON_DAYS = 7
DEADLINE_FLAGS = values(Deadline.OVERDUE, Deadline.DUE_SOON)


def _iso(value: Any) -> Any:
    return utc_iso(value) if isinstance(value, datetime) else value


def _action_document(row: tuple, iso: bool = True) -> dict[str, Any]:
    record = dict(zip(_ACTION_COLUMNS, row, strict=True))
    counts = {"total": record.pop("total"), DONE_FIELD[record["kind"]]: record.pop("done")}
    for outcome in COUNTED_OUTCOMES:
        counts[outcome] = record.pop(outcome)
    return {**{key: _iso(value) if iso else value for key, value in record.items()}, "counts": counts}


def bulk_actions(con: duckdb.DuckDBPyConnection, bulk_action_id: str | None = None) -> list[dict[str, Any]]:
    """The Bulk Actions page (R8): every bulk action, newest first, or one with its items.

    Args:
        con: a store connection.
        bulk_action_id: one bulk action to show with its per-contact items.

    Returns:
        The `status --json` objects of PRODUCT.md section 3.
    """
    where, params = ("WHERE bulk_action_id = ?", [bulk_action_id]) if bulk_action_id else ("", [])
    rows = con.execute(f"SELECT {', '.join(_ACTION_COLUMNS)} FROM bulk_actions {where} "
                       "ORDER BY applied_at DESC NULLS LAST, created_at DESC, bulk_action_id", params).fetchall()
    documents = [_action_document(row) for row in rows]
    if bulk_action_id and documents:
        items = con.execute("SELECT contact_id, outcome, reason FROM bulk_action_items WHERE bulk_action_id = ? "
                            "ORDER BY contact_id NULLS LAST, reason", [bulk_action_id]).fetchall()
        documents[0]["items"] = [dict(zip(("contact_id", "outcome", "reason"), item, strict=True)) for item in items]
    return documents


def request_records(con: duckdb.DuckDBPyConnection, *, as_of: datetime) -> list[dict[str, Any]]:
    """Every request file seen, with status, reason, due date and whether it is overdue or due soon.

    Args:
        con: a store connection.
        as_of: the clock against which deadlines are judged.

    Returns:
        The `requests --json` objects of PRODUCT.md section 3, plus `deadline`: overdue, due_soon, met or null.
    """
    # The whole home of several shards (compliance.shards.views) also lists each shard's bulk action of a request.
    columns = _REQUEST_COLUMNS + tuple(
        name for (name,) in con.execute("SELECT column_name FROM (DESCRIBE requests)").fetchall()
        if name == SHARD_BULK_ACTIONS)
    rows = con.execute(f"SELECT {', '.join(columns)} FROM requests ORDER BY seen_at, file, request_id").fetchall()
    records = []
    for row in rows:
        record = dict(zip(columns, row, strict=True))
        record["deadline"] = _deadline(record, as_of)
        records.append({key: _iso(value) for key, value in record.items()})
    return records


def _deadline(record: dict[str, Any], as_of: datetime) -> str | None:
    due = record["due_at"]
    if due is None or record["status"] in (RequestStatus.QUARANTINED, RequestStatus.DUPLICATE):
        return None
    if record["status"] in ANSWERED_STATUSES:
        return Deadline.ANSWERED.value
    if as_of > due:
        return Deadline.OVERDUE.value
    return (Deadline.DUE_SOON if as_of + timedelta(days=DUE_SOON_DAYS) >= due else Deadline.OPEN).value


def deadline_report(con: duckdb.DuckDBPyConnection, *, as_of: datetime) -> dict[str, list[dict[str, Any]]]:
    """The requests past their due date, and those due within DUE_SOON_DAYS days, still unanswered.

    Args:
        con: a store connection.
        as_of: the clock against which deadlines are judged.

    Returns:
        {"overdue": [...], "due_soon": [...]}: request records as in request_records, earliest due first.
    """
    records = request_records(con, as_of=as_of)
    return {flag: sorted((r for r in records if r["deadline"] == flag), key=lambda r: (r["due_at"], r["file"]))
            for flag in DEADLINE_FLAGS}


def audit_new_records(con: duckdb.DuckDBPyConnection, log: AuditLog, *, at: datetime) -> int:
    """Append to the audit trail every bulk action and final request record not yet in it.

    Entries carry ids, counts, statuses and reasons, never an email or phone. A crash between the append and
    the flag update repeats an entry on the next run rather than losing it.

    Args:
        con: a writable store connection.
        log: the audit log.
        at: the run's clock.

    Returns:
        The number of entries appended.
    """
    appended = 0
    staff_ids = {row[0] for row in con.execute("SELECT user_id FROM staff").fetchall()}
    for row in con.execute(f"SELECT {', '.join(_ACTION_COLUMNS)} FROM bulk_actions WHERE NOT audited "
                           "ORDER BY applied_at, bulk_action_id").fetchall():
        document = _audit_safe(_action_document(row, iso=False), staff_ids)
        os_user, host = one_row(con, "SELECT os_user, host FROM bulk_actions WHERE bulk_action_id = ?",
                                    [document["bulk_action_id"]])
        document["operator"] = _audit_safe({"os_user": os_user, "host": host}, staff_ids)
        log.append(f"bulk_action.{document['kind']}", at, **document)
        con.execute("UPDATE bulk_actions SET audited = true WHERE bulk_action_id = ?", [document["bulk_action_id"]])
        appended += 1
    for row in con.execute(f"SELECT rowid, {', '.join(_REQUEST_COLUMNS)} FROM requests WHERE NOT audited AND status "
                           f"IN ({', '.join('?' for _ in FINAL_STATUSES)}) ORDER BY seen_at, file",
                           list(FINAL_STATUSES)).fetchall():
        record = _audit_safe(dict(zip(_REQUEST_COLUMNS, row[1:], strict=True)), staff_ids)
        if record["reason"] != row[1 + _REQUEST_COLUMNS.index("reason")]:
            # A record stored before intake redacted reasons: its raw email or phone leaves the store as well.
            con.execute("UPDATE requests SET reason = ? WHERE rowid = ?", [record["reason"], row[0]])
        log.append(f"request.{record['status']}", at, **record)
        con.execute("UPDATE requests SET audited = true WHERE rowid = ?", [row[0]])
        appended += 1
    return appended


def _audit_safe(document: dict[str, Any], staff_ids: set[str]) -> dict[str, Any]:
    """The entry's fields as the audit trail accepts them, so that no record can stop the audit (and with it every
    later run): a numeric staff id is written as one, and any other text that looks like an email or phone (a
    record written before intake redacted it) is redacted here."""
    safe = {}
    for key, value in document.items():
        if key == "requested_by":
            value = audited_requester(value, staff_ids)
        elif isinstance(value, str) and personal_data_kind(value):
            value = redact_text(value)
        safe[key] = value
    return safe
