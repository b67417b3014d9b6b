"""Request intake: each new file in inbox/requests gets a status (pending, rejected, quarantined, duplicate)."""

from __future__ import annotations

import hashlib
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import duckdb

from compliance.errors import InputError
from compliance.evidence.audit import AuditLog, personal_data_kind
from compliance.home import Home, shard_name
from compliance.requests.parsing import (
    Request,
    RequestFile,
    add_months,
    archive,
    due_at,
    parse_request_file,
    pending_request_files,
    quarantine,
)
from compliance.requests.redaction import redact_text
from compliance.settings import Deadlines, Settings
from compliance.shards.placement import shard_count
from compliance.staff import authorize, recorded_requester
from compliance.store.connection import transaction
from compliance.store.sql import scalar
from compliance.vocabulary import (
    ANSWERED_STATUSES,
    FINAL_STATUSES,
    LEGAL_REGULATIONS,
    PLANNED_STATUSES,
    RequestKind,
    RequestStatus,
)

CONFIRMATION_WORD = "DELETE"
EXTENDABLE_REGULATIONS = LEGAL_REGULATIONS
RECORD_RETENTION_MONTHS = 24
# Stands in for the sha256 of a file that could not be read; such a file is never taken for one seen before.
UNREADABLE_HASH = "unreadable"
WITHHELD_REASON = "given in the request file (not kept here: it looked like it held an email or phone)"
# Earlier requests of a request_id that a new file may try again: a refused or unreadable attempt answers nothing.
RETRIABLE_STATUSES = (RequestStatus.REJECTED, RequestStatus.QUARANTINED)
# A plan source's label for a request record; settling by it keeps two attempts of one request_id apart.
REQUEST_SOURCE_PREFIX = "request "
# SQL over the request record `r`: it is the current attempt of its request_id, not a rejected one that a later
# file tried again before the rejection was planned (pending_subjects are keyed by request_id, so only one attempt
# of a request_id may be planned at a time).
CURRENT_ATTEMPT = (
    "NOT EXISTS (SELECT 1 FROM requests n WHERE n.request_id = r.request_id AND n.status NOT IN ('duplicate', "
    "'quarantined') AND (n.seen_at > r.seen_at OR (n.seen_at = r.seen_at AND n.rowid > r.rowid)))")


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
    (unreadable or breaking the schema: the file is moved aside with its reason) or `duplicate` (a request_id
    received before; after a `rejected` or `quarantined` one, a file is a new attempt instead).

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
        parsed = _read(path)
        if parsed is None:
            continue
        parsed, name = _screened(parsed)
        result.files_seen += 1
        known = [] if parsed.file_hash == UNREADABLE_HASH else con.execute(
            "SELECT status FROM requests WHERE file = ? AND file_hash = ?", [name, parsed.file_hash]).fetchall()
        if known:
            if move_files and all(status in FINAL_STATUSES for (status,) in known):
                settle_across_shards(home, path, name, parsed.file_hash, archive)
            continue
        with transaction(con):
            if parsed.error:
                _record_quarantine(con, name, parsed, as_of)
            for request in parsed.requests:
                status = _record(con, name, parsed, request, as_of, settings)
                result.by_status[status.value] += 1
        error = parsed.error
        if error:
            result.by_status[RequestStatus.QUARANTINED.value] += 1
            result.quarantined.append(name)
            if move_files:
                settle_across_shards(home, path, name, parsed.file_hash, partial(quarantine, reason=error))
        elif move_files and not _open_requests(con, name, parsed.file_hash):
            settle_across_shards(home, path, name, parsed.file_hash, archive)
    return result


def settle_request_files(con: duckdb.DuckDBPyConnection, home: Home) -> list[Path]:
    """Move to inbox/requests/processed every file whose requests have all reached a final status."""
    moved = []
    for path in pending_request_files(home.requests_inbox):
        parsed = _read(path)
        if parsed is None or parsed.file_hash == UNREADABLE_HASH:
            continue
        name = recorded_name(path, parsed.file_hash)
        rows = con.execute("SELECT status FROM requests WHERE file = ? AND file_hash = ?",
                           [name, parsed.file_hash]).fetchall()
        if rows and all(status in FINAL_STATUSES for (status,) in rows):
            moved_to = settle_across_shards(home, path, name, parsed.file_hash, archive)
            if moved_to is not None:
                moved.append(moved_to)
    return moved


def settle_across_shards(home: Home, path: Path, name: str, file_hash: str,
                         move: Callable[[Path], Path]) -> Path | None:
    """Move a request file this store has settled, once every shard of the home has settled it too.

    Every shard reads every request file and records it in its own store; the file leaves inbox/requests only
    when the last shard has settled it, so a shard that has not yet run (or crashed) still finds it there. Each
    shard leaves a receipt (store/request-receipts/<key>/shard-k, the key a hash of the name and content); the shard
    that completes the set moves the file. With one shard the file moves at once.

    Returns:
        Where the file went, or None while other shards have yet to settle it (or another shard moved it first).
    """
    if home.shard is None:
        return move(path)
    receipts = home.request_receipts_dir / hashlib.sha256(f"{name}\0{file_hash}".encode()).hexdigest()[:32]
    receipts.mkdir(parents=True, exist_ok=True)
    (receipts / shard_name(home.shard)).touch()
    if {entry.name for entry in receipts.iterdir()} < {shard_name(k) for k in range(shard_count(home))}:
        return None
    try:
        moved = move(path)
    except FileNotFoundError:
        return None
    shutil.rmtree(receipts, ignore_errors=True)
    return moved


def _read(path: Path) -> RequestFile | None:
    """The parsed file; one that cannot be read is an error to quarantine, one that vanished is None."""
    try:
        return parse_request_file(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return RequestFile(path=path, file_hash=UNREADABLE_HASH, requests=(),
                           error=f"{path.name}: cannot be read ({exc.strerror or type(exc).__name__})")


def recorded_name(path: Path, file_hash: str) -> str:
    """The name a request file is recorded under (in the store, the audit trail and Dagster's run tags).

    Its own name, unless it holds an email or an international phone number (a file named after the person), which
    the records, the audit trail and the run's metadata never hold; a name of digits alone (a date, a reference
    number) is kept.

    Args:
        path: the request file.
        file_hash: its sha256 (names that hold an email or phone become request-<its first 12 digits>).

    Returns:
        The file's own name, or the stand-in.
    """
    stem = path.stem.strip()
    if personal_data_kind(path.name) == "email" or (stem.startswith("+") and personal_data_kind(stem) == "phone"):
        return f"request-{file_hash[:12]}{path.suffix.lower()}"
    return path.name


def _screened(parsed: RequestFile) -> tuple[RequestFile, str]:
    """The file and the name it is recorded under; a request_id that looks like an email or phone quarantines it
    (the id is kept in the records and the audit trail)."""
    name = recorded_name(parsed.path, parsed.file_hash)
    error = parsed.error
    if error is None and any(personal_data_kind(request.request_id) for request in parsed.requests):
        error = (f"{parsed.path.name}: request_id looks like an email address or phone number; use a reference "
                 "that names no person")
    if error is not None and name != parsed.path.name:
        error = error.replace(parsed.path.name, name, 1)
    # A schema error quotes what the file held (a `kind` or `regulation` that is an email): redacted before it is
    # stored, written beside the file or audited, so the record cannot stop the audit of every later run.
    error = redact_text(error)
    return replace(parsed, requests=() if error else parsed.requests, error=error), name


def _open_requests(con: duckdb.DuckDBPyConnection, file: str, file_hash: str) -> bool:
    return scalar(con, "SELECT count(*) FROM requests WHERE file = ? AND file_hash = ? AND status NOT IN "
                       f"({', '.join('?' for _ in FINAL_STATUSES)})", [file, file_hash, *FINAL_STATUSES]) > 0


def _record_quarantine(con: duckdb.DuckDBPyConnection, name: str, parsed: RequestFile,
                       as_of: datetime) -> None:
    con.execute("INSERT INTO requests (file, file_hash, status, reason, seen_at) VALUES (?, ?, ?, ?, ?)",
                [name, parsed.file_hash, RequestStatus.QUARANTINED, parsed.error, as_of])


def _record(con: duckdb.DuckDBPyConnection, name: str, parsed: RequestFile, request: Request, as_of: datetime,
            settings: Settings) -> RequestStatus:
    status, reason = _verdict(con, request)
    extended = request.extension_reason if status != RequestStatus.DUPLICATE else None
    if extended and personal_data_kind(extended):
        # The records and the audit trail never hold a raw email or phone; the file itself keeps the words.
        extended = WITHHELD_REASON
    if status == RequestStatus.DUPLICATE and request.extension_reason:
        reason = f"{reason}; {_extend_from_file(con, request, as_of, settings.deadlines)}"
    con.execute(
        "INSERT INTO requests (file, file_hash, request_id, kind, regulation, requested_by, status, reason,"
        " received_at, due_at, seen_at, subjects, extended_reason, extended_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [name, parsed.file_hash, request.request_id, request.kind, request.regulation,
         authorize(con, request.requested_by).user_id or recorded_requester(request.requested_by), status,
         redact_text(reason),
         request.received_at, due_at(request, settings.deadlines), as_of, len(request.subjects), extended,
         as_of if extended else None])
    if status in PLANNED_STATUSES:
        # A new attempt replaces the subjects of an earlier refused attempt not yet planned (same run).
        con.execute("DELETE FROM pending_subjects WHERE request_id = ?", [request.request_id])
        # One statement over parallel lists, not a statement (and a commit) per subject: 0.8 s for 1,000 subjects.
        subjects = request.subjects
        con.execute(
            "INSERT INTO pending_subjects SELECT ?, unnest(?::INTEGER[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]),"
            " unnest(?::VARCHAR[])",
            [request.request_id, list(range(1, len(subjects) + 1)), [subject.contact_id for subject in subjects],
             [subject.email_key() for subject in subjects],
             [subject.phone_key(settings.default_region) for subject in subjects]])
    return status


def _verdict(con: duckdb.DuckDBPyConnection, request: Request) -> tuple[RequestStatus, str | None]:
    """The status of a new request record: a duplicate unless every earlier record of its request_id was refused
    or unreadable (then it is a new attempt), else as the requester and the confirmation allow."""
    earlier = con.execute("SELECT file, status FROM requests WHERE request_id = ? AND status NOT IN (?, ?, ?) "
                          "ORDER BY seen_at LIMIT 1",
                          [request.request_id, RequestStatus.DUPLICATE, *RETRIABLE_STATUSES]).fetchone()
    if earlier:
        return (RequestStatus.DUPLICATE,
                f"request_id {request.request_id} was already received in {earlier[0]} ({earlier[1]})")
    authorization = authorize(con, request.requested_by)
    if not authorization.allowed:
        return RequestStatus.REJECTED, authorization.refusal
    if request.kind == RequestKind.ERASURE and request.confirm != CONFIRMATION_WORD:
        got = "it is missing" if request.confirm is None else f"got {request.confirm!r}"
        return RequestStatus.REJECTED, f"confirm must be exactly {CONFIRMATION_WORD} ({got})"
    return RequestStatus.PENDING, None


def _extend_from_file(con: duckdb.DuckDBPyConnection, request: Request, as_of: datetime,
                      deadlines: Deadlines) -> str:
    """A second file for a received request that carries an extension extends the first; says what happened."""
    try:
        extension = extend_request(con, request.request_id, request.extension_reason, as_of, deadlines=deadlines,
                                   requested_by=request.requested_by)
    except InputError as exc:
        return f"extension not recorded: {exc}"
    return f"extension recorded: now due {extension['due_at']:%Y-%m-%d %H:%M} UTC"


def extend_request(con: duckdb.DuckDBPyConnection, request_id: str, reason: str | None, as_of: datetime, *,
                   deadlines: Deadlines | None = None, requested_by: str | None = None) -> dict[str, Any]:
    """Extend an open request's deadline once, with notice of why (GDPR Art. 12(3), CCPA regs 7021(b)).

    The new due date is compliance.requests.parsing.due_at of the request as extended: received_at plus gdpr_months plus
    gdpr_extension_months (GDPR), or ccpa_days plus ccpa_extension_days (CCPA). The requester must be told of
    the extension within the first period, so it is refused once the original due date has passed; it is also
    refused for a request already answered, already extended, or without a statutory deadline (internal).

    Args:
        con: a writable store connection.
        request_id: the request, as received (its latest attempt; duplicates are not extended).
        reason: why more time is needed, as told to the requester (no personal data: it goes to the audit trail).
        as_of: when the extension is recorded.
        deadlines: the deadline settings (default: the defaults).
        requested_by: who records it, when known: a staff user_id or email that must be an active admin.

    Returns:
        {"request_id", "regulation", "previous_due_at", "due_at", "extended_reason", "extended_at"}.

    Raises:
        InputError: why the extension was refused; nothing changed.
    """
    reason = (reason or "").strip()
    if not reason:
        raise InputError("an extension needs a reason (it is told to the requester)")
    if personal_data_kind(reason):
        raise InputError("the extension reason looks like it holds an email or phone; state it without personal "
                         "data (it is kept in the request records and the audit trail)")
    if requested_by is not None:
        authorization = authorize(con, requested_by)
        if not authorization.allowed:
            raise InputError(f"extension of {request_id} refused: {authorization.refusal}")
    row = con.execute(
        "SELECT rowid, kind, regulation, requested_by, received_at, due_at, status, extended_reason, extended_at "
        "FROM requests WHERE request_id = ? AND status NOT IN (?, ?) ORDER BY seen_at DESC LIMIT 1",
        [request_id, RequestStatus.DUPLICATE, RequestStatus.QUARANTINED]).fetchone()
    if row is None:
        raise InputError(f"no request {request_id} has been received (see `retention requests`)")
    rowid, kind, regulation, owner, received_at, previous_due, status, extended_reason, extended_at = row
    if status in ANSWERED_STATUSES:
        raise InputError(f"request {request_id} is already answered ({status}); there is no deadline to extend")
    if regulation not in EXTENDABLE_REGULATIONS:
        raise InputError(f"request {request_id} is {regulation}: only {' and '.join(EXTENDABLE_REGULATIONS)} "
                         "deadlines can be extended")
    if extended_reason is not None:
        raise InputError(f"request {request_id} was already extended on {extended_at:%Y-%m-%d}; "
                         "the law allows one extension")
    if previous_due is not None and as_of > previous_due:
        raise InputError(f"request {request_id} was due {previous_due:%Y-%m-%d %H:%M} UTC: an extension must be "
                         "notified before the original due date")
    extended = Request(request_id=request_id, kind=kind, regulation=regulation, requested_by=owner,
                       received_at=received_at, confirm=None, subjects=(), extended=True, extension_reason=reason)
    new_due = due_at(extended, deadlines or Deadlines())
    con.execute("UPDATE requests SET due_at = ?, extended_reason = ?, extended_at = ? WHERE rowid = ?",
                [new_due, reason, as_of, rowid])
    return {"request_id": request_id, "regulation": regulation, "previous_due_at": previous_due, "due_at": new_due,
            "extended_reason": reason, "extended_at": as_of}


def prune_request_records(con: duckdb.DuckDBPyConnection, as_of: datetime,
                          months: int = RECORD_RETENTION_MONTHS, *, log: AuditLog | None = None) -> int:
    """Delete the request records kept longer than the retention period (CCPA regs 7101: at least 24 months).

    A record is kept while its latest date (received, seen by the pipeline, or answered by its bulk action) is
    within `months` calendar months of as_of, inclusive; open records and those not yet in the audit trail are
    always kept.

    Args:
        con: a writable store connection.
        as_of: the run's clock.
        months: the retention period in calendar months.
        log: the audit trail, to record the prune when it removed anything.

    Returns:
        The number of request records deleted.
    """
    cutoff = add_months(as_of, -months)
    expired = (
        "SELECT r.rowid FROM requests r LEFT JOIN bulk_actions b USING (bulk_action_id) "
        f"WHERE r.audited AND r.status IN ({', '.join('?' for _ in FINAL_STATUSES)}) "
        "AND greatest(r.seen_at, coalesce(r.received_at, r.seen_at), coalesce(b.applied_at, r.seen_at)) < ?")
    with transaction(con):
        count = scalar(con, f"SELECT count(*) FROM ({expired})", [*FINAL_STATUSES, cutoff])
        if count:
            con.execute(f"DELETE FROM requests WHERE rowid IN ({expired})", [*FINAL_STATUSES, cutoff])
            con.execute("DELETE FROM pending_subjects WHERE request_id NOT IN "
                        "(SELECT request_id FROM requests WHERE request_id IS NOT NULL)")
    if count and log is not None:
        log.append("requests.pruned", as_of, records=count, received_or_answered_before=cutoff,
                   retention_months=months)
    return count
