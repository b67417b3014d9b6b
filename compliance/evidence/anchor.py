"""The audit log's head kept in the store: a log rewritten or cut short no longer matches it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

from compliance.evidence.audit import AuditLog, AuditVerification
from compliance.home import Home


class StoreAuditAnchor:
    """The anchor of a home's audit log: one row of the store's `audit_anchor` table."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con

    def read(self) -> tuple[int, str] | None:
        row = self.con.execute("SELECT entries, head_hash FROM audit_anchor WHERE log = 'audit'").fetchone()
        return (int(row[0]), row[1]) if row else None

    def write(self, entries: int, head: str) -> None:
        self.con.execute("INSERT OR REPLACE INTO audit_anchor VALUES ('audit', ?, ?, ?)",
                         [entries, head, datetime.now(UTC)])


def anchored_log(con: duckdb.DuckDBPyConnection, home: Home) -> AuditLog:
    """The home's audit log, anchored in the store the connection opens.

    Args:
        con: a connection to the home's store (read-only is enough to verify; appending writes the anchor).
        home: the home whose audit log it is.

    Returns:
        An AuditLog that refuses to append to, and fails to verify, a chain that does not pass the anchor.
    """
    return AuditLog(home.audit_file, anchor=StoreAuditAnchor(con))


def verify_before_writing(con: duckdb.DuckDBPyConnection, home: Home) -> AuditVerification:
    """Check the audit log against its anchor before a run writes anything; anchor an unanchored, intact log.

    Raises:
        AuditLogBroken: the chain is broken or does not pass the anchored head.
    """
    anchor = StoreAuditAnchor(con)
    log = AuditLog(home.audit_file, anchor=anchor)
    walked = _walked.get(home.audit_file)
    if walked is not None and walked[0] == (_file_state(home.audit_file), anchor.read()):
        # Several steps of one run check before they write; a log unchanged since its last walk is not walked again.
        return walked[1]
    verification = log.verify()
    if not verification.ok:
        raise AuditLogBroken(
            f"the audit log {verification.path} is not intact at entry {verification.first_bad_entry}: "
            f"{verification.reason}. Nothing was changed. Restore the log from a copy, or move it aside and "
            "record why; `retention audit verify` shows the state")
    anchored = anchor.read()
    # Only a log that grew past its anchor (a store from before anchors, or a crash between an append and its
    # anchor) moves it here; an empty or anchored log leaves the store untouched.
    if verification.entries > (anchored[0] if anchored else 0):
        entries, head = log.head()
        anchor.write(entries, head)
    _walked[home.audit_file] = ((_file_state(home.audit_file), anchor.read()), verification)
    return verification


# Per log: its file's (size, modification time) and its anchor when a walk last found it intact, and that finding.
_walked: dict[Path, tuple[tuple, AuditVerification]] = {}


def _file_state(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return (-1, -1)
    return (stat.st_size, stat.st_mtime_ns)


class AuditLogBroken(Exception):
    """The audit log cannot be trusted: a run refuses to write until it is repaired."""
