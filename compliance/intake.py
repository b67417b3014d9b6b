"""Request intake: each new file in inbox/requests gets a status (pending, rejected, quarantined, duplicate)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from compliance.audit import personal_data_kind
from compliance.home import Home
from compliance.requests import (Request, RequestFile, archive, due_at, parse_request_file, pending_request_files,
                                 quarantine)
from compliance.settings import Settings
from compliance.staff import authorize
from compliance.store import transaction

CONFIRMATION_WORD = "DELETE"
FINAL_STATUSES = ("applied", "rejected", "quarantined", "duplicate")


@dataclass
class IntakeResult:
    """What intake did with the files it saw."""

    by_status: Counter = field(default_factory=Counter)
    files_seen: int = 0
    quarantined: list[str] = field(default_factory=list)


def take_requests(con: duckdb.DuckDBPyConnection, home: Home, *, as_of: datetime, settings: Settings,
                  move_files: bool = True) -> IntakeResult:
    """Record every request file not seen before, with its status, reason and due date.

    Valid requests by an active admin (with the exact confirmation for erasures) become `pending`; others are
    `rejected` with the reason (still planned, so their bulk action lists what was refused), `quarantined`
    (unreadable or breaking the schema: the file is moved aside with its reason) or `duplicate`.

    Args:
        con: a writable store connection.
        home: the home whose inbox/requests is read.
        as_of: the run's clock.
        settings: for the deadlines.
        move_files: False in a dry run (plan): nothing moves on disk.

    Returns:
        Counts by status.
    """
    result = IntakeResult()
    for path in pending_request_files(home.requests_inbox):
        parsed = parse_request_file(path)
        result.files_seen += 1
        known = con.execute("SELECT status FROM requests WHERE file = ? AND file_hash = ?",
                            [path.name, parsed.file_hash]).fetchall()
        if known:
            if move_files and all(status in FINAL_STATUSES for (status,) in known):
                archive(path)
            continue
        with transaction(con):
            if parsed.error:
                _record_quarantine(con, parsed, as_of)
            for request in parsed.requests:
                status = _record(con, parsed, request, as_of, settings)
                result.by_status[status] += 1
        if parsed.error:
            result.by_status["quarantined"] += 1
            result.quarantined.append(path.name)
            if move_files:
                quarantine(path, parsed.error)
        elif move_files and not _open_requests(con, path.name, parsed.file_hash):
            archive(path)
    return result


def settle_request_files(con: duckdb.DuckDBPyConnection, home: Home) -> list[Path]:
    """Move to inbox/requests/processed every file whose requests have all reached a final status."""
    moved = []
    for path in pending_request_files(home.requests_inbox):
        parsed = parse_request_file(path)
        rows = con.execute("SELECT status FROM requests WHERE file = ? AND file_hash = ?",
                           [path.name, parsed.file_hash]).fetchall()
        if rows and all(status in FINAL_STATUSES for (status,) in rows):
            moved.append(archive(path))
    return moved


def _open_requests(con: duckdb.DuckDBPyConnection, file: str, file_hash: str) -> bool:
    return con.execute("SELECT count(*) FROM requests WHERE file = ? AND file_hash = ? AND status NOT IN "
                       f"({', '.join(repr(s) for s in FINAL_STATUSES)})", [file, file_hash]).fetchone()[0] > 0


def _record_quarantine(con: duckdb.DuckDBPyConnection, parsed: RequestFile, as_of: datetime) -> None:
    con.execute("INSERT INTO requests (file, file_hash, status, reason, seen_at) VALUES (?, ?, 'quarantined', ?, ?)",
                [parsed.path.name, parsed.file_hash, parsed.error, as_of])


def _record(con: duckdb.DuckDBPyConnection, parsed: RequestFile, request: Request, as_of: datetime,
            settings: Settings) -> str:
    status, reason = _verdict(con, request)
    con.execute(
        "INSERT INTO requests (file, file_hash, request_id, kind, regulation, requested_by, status, reason,"
        " received_at, due_at, seen_at, subjects) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [parsed.path.name, parsed.file_hash, request.request_id, request.kind, request.regulation,
         _requester_record(con, request.requested_by), status, reason, request.received_at, due_at(request, settings.deadlines), as_of,
         len(request.subjects)])
    if status in ("pending", "rejected"):
        con.executemany(
            "INSERT INTO pending_subjects VALUES (?, ?, ?, ?, ?)",
            [[request.request_id, number, subject.contact_id, subject.email_key(), subject.phone_key()]
             for number, subject in enumerate(request.subjects, start=1)])
    return status


def _requester_record(con: duckdb.DuckDBPyConnection, requested_by: str) -> str:
    """The staff user_id when known; an unknown requester written as an email or phone is not kept raw."""
    user_id = authorize(con, requested_by).user_id
    if user_id:
        return user_id
    return "unknown staff member" if personal_data_kind(requested_by) else requested_by


def _verdict(con: duckdb.DuckDBPyConnection, request: Request) -> tuple[str, str | None]:
    earlier = con.execute("SELECT file, status FROM requests WHERE request_id = ? AND status <> 'duplicate' "
                          "ORDER BY seen_at LIMIT 1", [request.request_id]).fetchone()
    if earlier:
        return "duplicate", f"request_id {request.request_id} was already received in {earlier[0]} ({earlier[1]})"
    authorization = authorize(con, request.requested_by)
    if not authorization.allowed:
        return "rejected", authorization.refusal
    if request.kind == "erasure" and request.confirm != CONFIRMATION_WORD:
        got = "it is missing" if request.confirm is None else f"got {request.confirm!r}"
        return "rejected", f"confirm must be exactly {CONFIRMATION_WORD} ({got})"
    return "pending", None
