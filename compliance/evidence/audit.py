"""The audit trail: an append-only file of hash-chained JSON lines that holds no raw email or phone."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

from compliance.clock import utc_iso

GENESIS = "0" * 64
KEYS = frozenset({"seq", "at", "event", "fields", "prev", "hash"})

_PHONE_NOISE = re.compile(r"[\s\-().]")
_TAIL_CHUNK = 1 << 16


class AuditError(Exception):
    """The log cannot be appended to or read: its last line is not a complete entry."""


@dataclass(frozen=True)
class AuditVerification:
    """The result of walking the hash chain (and of comparing it with its anchor, when there is one)."""

    ok: bool
    entries: int
    path: str
    first_bad_entry: int | None
    reason: str | None
    anchored_entries: int | None = None


class AuditAnchor(Protocol):
    """Where the log's head is kept outside the log (the store), so a rewritten chain cannot pass for intact."""

    def read(self) -> tuple[int, str] | None:
        """(entries, head hash) as last anchored; None when nothing was anchored yet."""

    def write(self, entries: int, head: str) -> None:
        """Record the log's head after an append."""


def canonical(value: Any) -> str:
    """The one JSON text of a value that hashes are taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def entry_hash(entry: dict) -> str:
    """sha256 hex of an entry's canonical JSON without its own hash."""
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k != "hash"}).encode()).hexdigest()


def personal_data_kind(text: str) -> str | None:
    """'email' or 'phone' when the text looks like one, else None.

    An email is anything with an '@' followed later by a dot; a phone is 7 or more digits once spaces, dashes,
    parentheses, dots and a leading + are removed.
    """
    at = text.find("@")
    if at >= 0 and "." in text[at + 1:]:
        return "email"
    digits = _PHONE_NOISE.sub("", text.strip())
    digits = digits[1:] if digits.startswith("+") else digits
    if len(digits) >= 7 and digits.isascii() and digits.isdigit():
        return "phone"
    return None


class AuditLog:
    """One audit log file: each line an entry carrying the hash of the one before."""

    def __init__(self, path: Path, anchor: AuditAnchor | None = None):
        self.path = Path(path)
        self.anchor = anchor

    def append(self, event: str, at: datetime, **fields: Any) -> dict:
        """Append one entry under an exclusive lock, chained to the last one, and fsync it.

        Args:
            event: what happened, e.g. "backup_written".
            at: when (the run's clock); stored as ISO 8601 UTC.
            **fields: JSON-able details; dates and datetimes become ISO text.

        Returns:
            The entry written, with its seq, prev and hash.

        Raises:
            ValueError: a field (or the event) holds something that looks like an email address or phone number.
            AuditError: the log ends in a line that is not a complete entry, so nothing can be chained to it, or
                it no longer extends the head its anchor recorded.
        """
        event = _clean(event, "event")
        fields = _clean(fields, "fields")
        if not isinstance(event, str) or not event:
            raise ValueError("audit event must be a non-empty string")
        created = not self.path.parent.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if created:
            self.path.parent.chmod(0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.fchmod(fd, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            last = _last_entry(fd, self.path)
            if self.anchor is not None:
                self._check_anchor(self.anchor, last)
            entry: dict[str, Any] = {
                "seq": last["seq"] + 1 if last else 1,
                "at": utc_iso(at),
                "event": event,
                "fields": fields,
                "prev": last["hash"] if last else GENESIS,
            }
            entry["hash"] = entry_hash(entry)
            os.write(fd, (canonical(entry) + "\n").encode())
            os.fsync(fd)
            if self.anchor is not None:
                self.anchor.write(entry["seq"], entry["hash"])
        finally:
            os.close(fd)
        return entry

    def _check_anchor(self, anchor: AuditAnchor, last: dict | None) -> None:
        """Refuse to append to a log whose head is not the anchored one (nor a verified extension of it)."""
        anchored = anchor.read()
        if anchored is None:
            return
        entries, head = anchored
        if last is not None and (last["seq"], last["hash"]) == (entries, head):
            return
        verification = self.verify(_locked=True)
        if not verification.ok:
            raise AuditError(f"{self.path}: entry {verification.first_bad_entry}: {verification.reason}; "
                             "nothing more is written until it is repaired (see `retention audit verify`)")

    def entries(self) -> list[dict]:
        """Every entry, oldest first.

        Raises:
            AuditError: a line is not a JSON object.
        """
        result = []
        for number, line in self._lines():
            parsed = _parse(line)
            if parsed is None:
                raise AuditError(f"{self.path}: line {number} is not a JSON object")
            result.append(parsed)
        return result

    def verify(self, _locked: bool = False) -> AuditVerification:
        """Walk the hash chain from the first line to the last.

        When the log has an anchor, the chain must also pass through the anchored head: it may have grown since
        (an append whose anchor update a crash cut off), but not shrunk or been rewritten.

        Returns:
            ok with the number of entries, or the first bad entry (its 1-based line number) and why.
        """
        anchored = self.anchor.read() if self.anchor is not None else None
        prev, count, anchor_seen = GENESIS, 0, anchored is None or anchored[0] == 0
        for number, line, complete in self._lines_with_ends(lock=not _locked):
            entry = _parse(line)
            reason = None
            if not complete:
                reason = "the line has no newline at its end: the file was cut short or written by another program"
            elif entry is None:
                reason = "not a JSON object"
            elif set(entry) != KEYS:
                reason = f"keys {sorted(entry)} are not {sorted(KEYS)}"
            elif entry["seq"] != number:
                reason = f"seq {entry['seq']!r} where {number} was expected (an entry was removed or reordered)"
            elif entry["prev"] != prev:
                reason = "prev does not match the hash of the entry before"
            elif entry["hash"] != entry_hash(entry):
                reason = "hash does not match the entry's content (it was edited)"
            elif anchored is not None and number == anchored[0]:
                if entry["hash"] != anchored[1]:
                    reason = (f"the chain was rewritten: entry {number}'s hash is not the one the store anchored "
                              "after it was written")
                anchor_seen = True
            if reason or entry is None:
                return AuditVerification(False, count, str(self.path), number, reason, _entries(anchored))
            prev, count = entry["hash"], number
        if not anchor_seen and anchored is not None:
            return AuditVerification(False, count, str(self.path), count + 1,
                                     f"entries {count + 1} to {anchored[0]} are missing: the store anchored "
                                     f"{anchored[0]} entries", _entries(anchored))
        return AuditVerification(True, count, str(self.path), None, None, _entries(anchored))

    def head(self) -> tuple[int, str]:
        """(number of entries, hash of the last one); (0, GENESIS) for an empty or missing log.

        Raises:
            AuditError: the last line is not a complete entry.
        """
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return 0, GENESIS
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            last = _last_entry(fd, self.path)
        finally:
            os.close(fd)
        return (last["seq"], last["hash"]) if last else (0, GENESIS)

    def _lines_with_ends(self, lock: bool = True) -> Iterator[tuple[int, str, bool]]:
        """Each line with its number and whether it ends in a newline (only the last one may not)."""
        for number, line in self._raw_lines(lock):
            yield number, line.rstrip("\n"), line.endswith("\n")

    def _lines(self) -> Iterator[tuple[int, str]]:
        for number, line in self._raw_lines():
            yield number, line.rstrip("\n")

    def _raw_lines(self, lock: bool = True) -> Iterator[tuple[int, str]]:
        # An append holding the exclusive lock verifies through here too: a second lock would wait for itself.
        try:
            handle = self.path.open("r", encoding="utf-8", errors="replace", newline="\n")
        except FileNotFoundError:
            return
        with handle:
            if lock:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
            yield from enumerate(handle, start=1)


def _entries(anchored: tuple[int, str] | None) -> int | None:
    return anchored[0] if anchored is not None else None


def _clean(value: Any, where: str) -> Any:
    """The value as plain JSON data, refusing anything that looks like an email or phone, keys included."""
    if isinstance(value, datetime):
        return utc_iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        kind = personal_data_kind(value)
        if kind:
            raise ValueError(f"audit {where}: refused, it looks like a raw {kind}; log a contact id or keyed hash")
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, dict):
        return {_clean(str(key), f"{where} key"): _clean(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [_clean(item, f"{where}[{index}]") for index, item in enumerate(items)]
    raise TypeError(f"audit {where}: {type(value).__name__} is not JSON data")


def _parse(line: str) -> dict | None:
    try:
        parsed = json.loads(line)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _last_entry(fd: int, path: Path) -> dict | None:
    """The last line of the file as an entry, read backwards from the end (the log can be long)."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    if os.pread(fd, 1, size - 1) != b"\n":
        raise AuditError(f"{path}: the last line is incomplete (no newline); run `retention audit verify`")
    end, start, tail = size - 1, size - 1, b""
    while start > 0:
        step = min(_TAIL_CHUNK, start)
        start -= step
        tail = os.pread(fd, step, start) + tail
        if b"\n" in tail[: end - start]:
            break
    line = tail[: end - start].rsplit(b"\n", 1)[-1]
    entry = _parse(line.decode("utf-8", errors="replace"))
    if entry is None or not isinstance(entry.get("seq"), int) or not isinstance(entry.get("hash"), str):
        raise AuditError(f"{path}: the last line is not an audit entry; run `retention audit verify`")
    return entry
