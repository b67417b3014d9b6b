"""The audit trail: hash chain, tamper detection, head, owner-only files, and refusal of raw emails and phones."""

from __future__ import annotations

import json
import stat
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from compliance.evidence.audit import GENESIS, AuditError, AuditLog, entry_hash

AT = datetime(2026, 1, 1, 12, tzinfo=UTC)


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    audit = AuditLog(tmp_path / "audit" / "audit.jsonl")
    audit.append("backup_written", AT, bulk_action_id="ba-1", contacts=2, files=["contacts.csv"])
    audit.append("contacts_deleted", AT + timedelta(minutes=1), bulk_action_id="ba-1", counts={"deleted": 2})
    audit.append("contacts_purged", AT + timedelta(days=61), bulk_action_id="ba-2", contact_ids=["c-1", "c-2"])
    return audit


def lines(log: AuditLog) -> list[str]:
    return log.path.read_text().splitlines()


def write_lines(log: AuditLog, rows: list[str]) -> None:
    log.path.write_text("".join(row + "\n" for row in rows))


def test_three_entries_verify(log):
    result = log.verify()
    assert (result.ok, result.entries, result.first_bad_entry, result.reason) == (True, 3, None, None)
    assert result.path == str(log.path)
    entries = log.entries()
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert entries[0]["prev"] == GENESIS
    assert entries[1]["prev"] == entries[0]["hash"] and entries[2]["prev"] == entries[1]["hash"]
    assert entries[1]["fields"] == {"bulk_action_id": "ba-1", "counts": {"deleted": 2}}
    assert entries[0]["at"] == "2026-01-01T12:00:00Z"


def test_lines_are_canonical_json(log):
    for line, entry in zip(lines(log), log.entries(), strict=True):
        assert line == json.dumps(entry, sort_keys=True, separators=(",", ":"))
        assert entry["hash"] == entry_hash(entry)


def test_append_returns_the_entry_written(tmp_path):
    audit = AuditLog(tmp_path / "a.jsonl")
    entry = audit.append("x", datetime(2026, 1, 1, 13, tzinfo=timezone(timedelta(hours=1))), n=1)
    assert entry == audit.entries()[0]
    assert entry["at"] == "2026-01-01T12:00:00Z"


def test_edited_field_is_detected(log):
    rows = lines(log)
    rows[1] = rows[1].replace('"deleted":2', '"deleted":1')
    write_lines(log, rows)
    result = log.verify()
    assert (result.ok, result.entries, result.first_bad_entry) == (False, 1, 2)
    assert "hash" in result.reason


def test_deleted_line_is_detected(log):
    rows = lines(log)
    write_lines(log, [rows[0], rows[2]])
    result = log.verify()
    assert (result.ok, result.first_bad_entry) == (False, 2)
    assert "seq" in result.reason


def test_renumbered_line_after_a_deletion_is_detected(log):
    rows = [json.loads(row) for row in lines(log)]
    rows[2]["seq"] = 2
    rows[2]["hash"] = entry_hash(rows[2])
    write_lines(log, [json.dumps(rows[0]), json.dumps(rows[2])])
    result = log.verify()
    assert (result.ok, result.first_bad_entry) == (False, 2)
    assert "prev" in result.reason


def test_garbage_line_is_detected(log):
    with log.path.open("a") as handle:
        handle.write("not json\n")
    result = log.verify()
    assert (result.ok, result.entries, result.first_bad_entry) == (False, 3, 4)
    with pytest.raises(AuditError):
        log.append("more", AT)
    with pytest.raises(AuditError):
        log.entries()


def test_torn_last_line_refuses_to_chain(log):
    with log.path.open("a") as handle:
        handle.write('{"seq":4')
    with pytest.raises(AuditError, match="incomplete"):
        log.append("more", AT)
    assert log.verify().first_bad_entry == 4


def test_empty_and_missing_logs_are_ok(tmp_path):
    missing = AuditLog(tmp_path / "nowhere" / "audit.jsonl")
    assert missing.verify().ok and missing.verify().entries == 0
    assert missing.head() == (0, GENESIS)
    assert missing.entries() == []
    (tmp_path / "empty.jsonl").write_text("")
    assert AuditLog(tmp_path / "empty.jsonl").verify().ok


def test_head_follows_appends(log):
    count, last = log.head()
    assert (count, last) == (3, log.entries()[-1]["hash"])
    entry = log.append("run_finished", AT + timedelta(days=62))
    assert log.head() == (4, entry["hash"]) != (count, last)
    assert entry["prev"] == last and entry["seq"] == 4
    assert log.verify().entries == 4


def test_head_reads_long_lines(tmp_path):
    audit = AuditLog(tmp_path / "a.jsonl")
    audit.append("a", AT, ids=[f"c-{n}" for n in range(20_000)])
    entry = audit.append("b", AT, ids=[f"c-{n}" for n in range(30_000)])
    assert audit.head() == (2, entry["hash"])
    assert audit.append("c", AT)["prev"] == entry["hash"]


def test_files_are_owner_only(tmp_path):
    audit = AuditLog(tmp_path / "private" / "audit.jsonl")
    audit.append("x", AT)
    assert stat.S_IMODE(audit.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(audit.path.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("fields", [
    {"subject": "ann@example.com"},
    {"subject": " Ann.Lee@Example.COM "},
    {"phone": "+15551230001"},
    {"phone": "+44 20 7946 0004"},
    {"phone": "(555) 123-4567"},
    {"phone": "555.123.4567"},
    {"request": {"subjects": [{"contact_id": "c-1"}, {"email": "bob@example.com"}]}},
    {"nested": [["ok", ["+1 555 123 0002"]]]},
    {"by_person": {"cy@example.org": 1}},
])
def test_raw_emails_and_phones_are_refused(tmp_path, fields):
    audit = AuditLog(tmp_path / "a.jsonl")
    with pytest.raises(ValueError, match="looks like a raw"):
        audit.append("erasure_applied", AT, **fields)
    assert audit.head() == (0, GENESIS)


def test_refused_event_text(tmp_path):
    with pytest.raises(ValueError):
        AuditLog(tmp_path / "a.jsonl").append("erased ann@example.com", AT)


def test_ids_counts_and_hashes_are_accepted(tmp_path):
    audit = AuditLog(tmp_path / "a.jsonl")
    entry = audit.append(
        "erasure_applied", AT, contact_ids=["c-0000123", "c-1"], count=1_000_000, total=12345678,
        request_id="GDPR-2026-0042", key_hash="9f" * 32, ratio=0.5, authorized=True, reason=None,
        due=date(2026, 2, 1), window_ends=AT + timedelta(days=60), path=Path("backups/ba-1"),
        note="replied @ noon", tags={"b", "a"})
    assert entry["fields"]["contact_ids"] == ["c-0000123", "c-1"]
    assert entry["fields"]["due"] == "2026-02-01"
    assert entry["fields"]["window_ends"] == "2026-03-02T12:00:00Z"
    assert entry["fields"]["tags"] == ["a", "b"]
    assert audit.verify().ok


def test_six_digits_are_not_a_phone(tmp_path):
    entry = AuditLog(tmp_path / "a.jsonl").append("x", AT, code="123-456")
    assert entry["fields"]["code"] == "123-456"
