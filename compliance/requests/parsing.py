"""Request files dropped in the inbox: parsed, validated, given a due date, and moved once handled."""

from __future__ import annotations

import calendar
import codecs
import csv
import hashlib
import io
import json
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from compliance import identifiers
from compliance.settings import Deadlines
from compliance.vocabulary import Regulation, RequestKind, values

REQUEST_CSV_COLUMNS = (
    "request_id", "kind", "regulation", "requested_by", "received_at", "confirm", "contact_id", "email", "phone",
)
OPTIONAL_CSV_COLUMNS = ("extension_reason",)
KINDS = values(*RequestKind)
REGULATIONS = values(*Regulation)
DEFAULT_REGULATION = Regulation.INTERNAL.value
IDENTIFIERS = ("contact_id", "email", "phone")
JSON_KEYS = ("request_id", "kind", "regulation", "requested_by", "received_at", "confirm", "subjects", "extension")
REQUEST_SUFFIXES = (".json", ".csv")
QUARANTINE_DIR = "quarantine"
PROCESSED_DIR = "processed"
REASON_SUFFIX = ".reason.txt"

_REQUEST_LEVEL = ("kind", "regulation", "requested_by", "received_at", "confirm", "extension_reason")
_JSON_TYPES = {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string",
               list: "array", dict: "object"}


@dataclass(frozen=True)
class Subject:
    """One person named by a request: any of their contact id, email or phone."""

    contact_id: str | None
    email: str | None
    phone: str | None

    def email_key(self) -> str | None:
        """The email's match key, by compliance.identifiers.email_key (the same function the ingest uses).

        Returns:
            The key, or None when there is no email.
        """
        return identifiers.email_key(self.email)

    def phone_key(self, region: str = identifiers.DEFAULT_REGION) -> str | None:
        """The phone's match key, by compliance.identifiers.phone_key (the digits of its E.164 form).

        Args:
            region: the region of a phone written without a country code (settings `default_region`).

        Returns:
            The key, or None when there is no phone or it has no digits.
        """
        return identifiers.phone_key(self.phone, region)


@dataclass(frozen=True)
class Request:
    """One erasure or restore request, as written in its file."""

    request_id: str
    kind: str
    regulation: str
    requested_by: str
    received_at: datetime
    confirm: str | None
    subjects: tuple[Subject, ...]
    extended: bool = False
    extension_reason: str | None = None


@dataclass(frozen=True)
class RequestFile:
    """One request file read from the inbox: its requests, or why it must be quarantined."""

    path: Path
    file_hash: str
    requests: tuple[Request, ...]
    error: str | None = None


class _Invalid(Exception):
    """A breach of the request file schema; the message names the row or field but never the file."""


class _DuplicateKey(ValueError):
    pass


def pending_request_files(requests_dir: Path) -> list[Path]:
    """The request files waiting directly in the requests folder.

    Args:
        requests_dir: the inbox folder for request files; it may not exist yet.

    Returns:
        The *.json and *.csv entries (any case of the suffix) in the folder itself, sorted by name; hidden files,
        reason files and sub-folders such as processed/ and quarantine/ are left out. A symbolic link or a FIFO
        with such a name is listed, so that parse_request_file refuses it (and intake quarantines it) by name.
    """
    if not requests_dir.is_dir():
        return []
    return sorted(
        (path for path in requests_dir.iterdir()
         if not stat.S_ISDIR(os.lstat(path).st_mode) and not path.name.startswith(".")
         and not path.name.endswith(REASON_SUFFIX) and path.suffix.lower() in REQUEST_SUFFIXES),
        key=lambda path: path.name,
    )


def parse_request_file(path: Path) -> RequestFile:
    """Read and validate one request file; bad content is reported, never raised.

    Args:
        path: a .json file (one request) or .csv file (one subject per row, rows grouped by request_id).

    Returns:
        The file's sha256 and its requests; when the file breaks the schema, no requests and an error
        of one line naming the file and the row or field (never a subject's email or phone). A symbolic link or
        anything but a regular file is refused unread (its hash is then that of what it is and points to).

    Raises:
        OSError: when the file itself cannot be read.
    """
    odd = odd_file(path)
    if odd:
        fingerprint = hashlib.sha256(f"{odd}\0{os.readlink(path) if path.is_symlink() else ''}".encode())
        return RequestFile(path=path, file_hash=fingerprint.hexdigest(), requests=(), error=f"{path.name}: {odd}")
    data = path.read_bytes()
    file_hash = hashlib.sha256(data).hexdigest()
    try:
        requests = _parse(path, data)
    except _Invalid as exc:
        return RequestFile(path=path, file_hash=file_hash, requests=(), error=f"{path.name}: {exc}")
    return RequestFile(path=path, file_hash=file_hash, requests=requests)


def odd_file(path: Path) -> str | None:
    """Why an inbox entry is not read: a symbolic link (it could name any file the runner can read) or not a
    regular file (a FIFO would block the read); None for a regular file. Decided without following or opening it.
    """
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        return "a symbolic link; request files must be regular files (copy the file in instead)"
    if not stat.S_ISREG(mode):
        return "not a regular file (a device, FIFO or socket); refused"
    return None


def due_at(request: Request, deadlines: Deadlines) -> datetime | None:
    """When the answer to a request is due.

    GDPR Art. 12(3): the same day gdpr_months later (the month's last day when it has no such day), plus
    gdpr_extension_months when extended. CCPA regs 7021: ccpa_days later, plus ccpa_extension_days when
    extended. Internal requests: internal_days later when set (an extension changes nothing), else no deadline.

    Args:
        request: the request, with its received_at and extension.
        deadlines: the deadline settings.

    Returns:
        The due time (same time of day as received), or None when the request has no deadline.
    """
    received = request.received_at
    if request.regulation == Regulation.GDPR:
        months = deadlines.gdpr_months + (deadlines.gdpr_extension_months if request.extended else 0)
        return add_months(received, months)
    if request.regulation == Regulation.CCPA:
        days = deadlines.ccpa_days + (deadlines.ccpa_extension_days if request.extended else 0)
        return received + timedelta(days=days)
    if request.regulation == Regulation.INTERNAL:
        return None if deadlines.internal_days is None else received + timedelta(days=deadlines.internal_days)
    raise ValueError(f"unknown regulation {request.regulation!r} (allowed: {', '.join(REGULATIONS)})")


def add_months(moment: datetime, months: int) -> datetime:
    """Calendar-month arithmetic: the same day and time `months` later, clamped to that month's last day.

    Args:
        moment: the start.
        months: how many months to add (may be negative).

    Returns:
        E.g. 31 Jan + 1 -> 28 Feb (29 Feb in a leap year); 31 Mar + 1 -> 30 Apr; 31 Dec + 1 -> 31 Jan.
    """
    years, month_index = divmod(moment.month - 1 + months, 12)
    year, month = moment.year + years, month_index + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def quarantine(path: Path, reason: str) -> Path:
    """Move a rejected request file into <its folder>/quarantine/ and write why beside it.

    Args:
        path: the request file.
        reason: why it was rejected, written to <new name>.reason.txt.

    Returns:
        The file's new path; a numeric suffix is added when the name is taken.
    """
    target = _move_into(path, path.parent / QUARANTINE_DIR)
    reason_file = target.with_name(target.name + REASON_SUFFIX)
    reason_file.write_text(reason if reason.endswith("\n") else reason + "\n", encoding="utf-8")
    return target


def archive(path: Path) -> Path:
    """Move a handled request file into <its folder>/processed/.

    Args:
        path: the request file.

    Returns:
        The file's new path; a numeric suffix is added when the name is taken.
    """
    return _move_into(path, path.parent / PROCESSED_DIR)


def _move_into(path: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stem, suffix = path.stem, path.suffix
    target, number = folder / path.name, 0
    # A stale reason file must not be taken for this file's reason.
    while target.exists() or target.with_name(target.name + REASON_SUFFIX).exists():
        number += 1
        target = folder / f"{stem}-{number}{suffix}"
    return path.rename(target)


def _parse(path: Path, data: bytes) -> tuple[Request, ...]:
    suffix = path.suffix.lower()
    if suffix not in REQUEST_SUFFIXES:
        raise _Invalid(f"not a request file (expected {' or '.join(REQUEST_SUFFIXES)})")
    # Decoded after the byte-order mark, so that the offset of a bad byte counts from the file's first byte.
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        text = data[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = bom + exc.start
        raise _Invalid(f"not UTF-8 text (byte 0x{data[offset]:02x} at offset {offset})") from None
    return (_parse_json(text),) if suffix == ".json" else _parse_csv(text)


def _parse_json(text: str) -> Request:
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise _Invalid(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except _DuplicateKey as exc:
        raise _Invalid(f"not valid JSON: {exc}") from None
    except RecursionError:
        raise _Invalid("not valid JSON: nested too deeply") from None
    if not isinstance(document, dict):
        raise _Invalid(f"expected a JSON object at the top, found {_json_type(document)}")
    _reject_unknown_keys(document, JSON_KEYS, "")
    for key in ("request_id", "kind", "requested_by", "received_at", "subjects"):
        if key not in document:
            raise _Invalid(f"{key}: required key is missing")
    extension = document.get("extension")
    reason = None
    if extension is not None:
        if not isinstance(extension, dict):
            raise _Invalid(f'extension: expected an object {{"reason": ...}}, got {_json_type(extension)}')
        _reject_unknown_keys(extension, ("reason",), "extension")
        reason = _required_string(extension.get("reason"), "extension.reason")
    return Request(
        request_id=_required_string(document["request_id"], "request_id"),
        kind=_choice(document["kind"], "kind", KINDS, default=None),
        regulation=_choice(document.get("regulation"), "regulation", REGULATIONS, default=DEFAULT_REGULATION),
        requested_by=_required_string(document["requested_by"], "requested_by"),
        received_at=_timestamp(document["received_at"], "received_at"),
        confirm=_optional_string(document.get("confirm"), "confirm", strip=False),
        subjects=_json_subjects(document["subjects"]),
        extended=reason is not None,
        extension_reason=reason,
    )


def _json_subjects(value: Any) -> tuple[Subject, ...]:
    if not isinstance(value, list):
        raise _Invalid(f"subjects: expected an array of objects, got {_json_type(value)}")
    if not value:
        raise _Invalid("subjects: needs at least one subject")
    subjects = []
    for index, item in enumerate(value):
        where = f"subjects[{index}]"
        if not isinstance(item, dict):
            raise _Invalid(f"{where}: expected an object with contact_id, email or phone, got {_json_type(item)}")
        _reject_unknown_keys(item, IDENTIFIERS, where)
        identifiers = {key: _optional_string(item.get(key), f"{where}.{key}") for key in IDENTIFIERS}
        subjects.append(_subject(identifiers, where))
    return tuple(subjects)


def _parse_csv(text: str) -> tuple[Request, ...]:
    if not text.strip():
        raise _Invalid(f"empty file (expected a header row: {','.join(REQUEST_CSV_COLUMNS)})")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        records = list(reader)
    except csv.Error as exc:
        raise _Invalid(f"line {reader.line_num}: not valid CSV ({exc})") from None
    header = [name.strip().lower() for name in records[0]]
    _check_header(header)
    groups: dict[str, dict[str, Any]] = {}
    for number, cells in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue
        where = f"row {number}"
        if len(cells) != len(header):
            raise _Invalid(f"{where}: has {len(cells)} cells but the header has {len(header)} columns")
        row = {name: (cell if cell.strip() else None) for name, cell in zip(header, cells, strict=True)}
        request_id = _required_string(row["request_id"], f"{where}: request_id")
        fields = _csv_request_fields(row, where)
        subject = _subject({key: _optional_string(row[key], f"{where}: {key}") for key in IDENTIFIERS}, where)
        group = groups.setdefault(request_id, {"fields": fields, "row": number, "subjects": []})
        for name in _REQUEST_LEVEL:
            if fields[name] != group["fields"][name]:
                raise _Invalid(
                    f"{where}: {name} {_cell(row.get(name))} disagrees with row {group['row']} of request "
                    f"{_show(request_id)} ({_cell(group['fields'][name + '_text'])}); a request's rows must agree")
        group["subjects"].append(subject)
    if not groups:
        raise _Invalid("no requests (only a header row)")
    return tuple(
        Request(
            request_id=request_id,
            kind=group["fields"]["kind"],
            regulation=group["fields"]["regulation"],
            requested_by=group["fields"]["requested_by"],
            received_at=group["fields"]["received_at"],
            confirm=group["fields"]["confirm"],
            subjects=tuple(group["subjects"]),
            extended=group["fields"]["extension_reason"] is not None,
            extension_reason=group["fields"]["extension_reason"],
        )
        for request_id, group in groups.items()
    )


def _check_header(header: list[str]) -> None:
    allowed = REQUEST_CSV_COLUMNS + OPTIONAL_CSV_COLUMNS
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise _Invalid(f"header: column {', '.join(map(repr, repeated))} appears more than once")
    missing = [name for name in REQUEST_CSV_COLUMNS if name not in header]
    if missing:
        raise _Invalid(f"header: missing column {', '.join(map(repr, missing))} "
                       f"(needed: {','.join(REQUEST_CSV_COLUMNS)})")
    unknown = [name for name in header if name not in allowed]
    if unknown:
        raise _Invalid(f"header: unknown column {', '.join(map(repr, unknown))} (allowed: {', '.join(allowed)})")


def _csv_request_fields(row: dict[str, str | None], where: str) -> dict[str, Any]:
    fields = {
        "kind": _choice(row["kind"], f"{where}: kind", KINDS, default=None),
        "regulation": _choice(row["regulation"], f"{where}: regulation", REGULATIONS, default=DEFAULT_REGULATION),
        "requested_by": _required_string(row["requested_by"], f"{where}: requested_by"),
        "received_at": _timestamp(row["received_at"], f"{where}: received_at"),
        "confirm": row["confirm"],
        "extension_reason": _optional_string(row.get("extension_reason"), f"{where}: extension_reason"),
    }
    fields.update({f"{name}_text": row.get(name) for name in _REQUEST_LEVEL})
    return fields


def _subject(identifiers: dict[str, str | None], where: str) -> Subject:
    subject = Subject(**identifiers)
    if not any(identifiers.values()):
        raise _Invalid(f"{where}: needs at least one of {', '.join(IDENTIFIERS)}")
    # A phone without digits would match no one, and the erasure would pass as "already gone".
    if subject.phone is not None and subject.phone_key() is None:
        raise _Invalid(f"{where}: phone has no digits")
    return subject


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _DuplicateKey(f"key {key!r} appears twice in one object")
        document[key] = value
    return document


def _reject_unknown_keys(mapping: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = [key for key in mapping if key not in allowed]
    if unknown:
        prefix = f"{where}: " if where else ""
        raise _Invalid(f"{prefix}unknown key {', '.join(_show(key) for key in unknown)} "
                       f"(allowed: {', '.join(allowed)})")


def _required_string(value: Any, field: str) -> str:
    text = _optional_string(value, field)
    if text is None:
        raise _Invalid(f"{field}: required, must be a non-empty string")
    return text


def _optional_string(value: Any, field: str, strip: bool = True) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Invalid(f"{field}: expected a string, got {_json_type(value)}")
    if strip:
        return value.strip() or None
    return value


def _choice(value: Any, field: str, allowed: tuple[str, ...], default: str | None) -> str:
    text = _optional_string(value, field)
    if text is None:
        if default is None:
            raise _Invalid(f"{field}: required (allowed: {', '.join(allowed)})")
        return default
    if text.lower() not in allowed:
        raise _Invalid(f"{field}: {_show(text)} is not allowed (allowed: {', '.join(allowed)})")
    return text.lower()


def _timestamp(value: Any, field: str) -> datetime:
    text = _required_string(value, field)
    try:
        moment = datetime.fromisoformat(text[:-1] + "Z" if text.endswith("z") else text)
    except ValueError:
        raise _Invalid(f"{field}: {_show(text)} is not an ISO 8601 timestamp (e.g. 2026-11-01T09:30:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _cell(value: str | None) -> str:
    return "(empty)" if value is None else _show(value)


def _show(value: Any, limit: int = 60) -> str:
    # A value that could be an email or a phone is never repeated: the reason is stored, audited and printed.
    if isinstance(value, str) and identifiers.could_identify(value):
        return f"(a value of {len(value)} characters, not shown)"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"
