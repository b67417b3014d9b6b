"""Poison records: a request field holding an email or phone, or a numeric staff id, never stops the audit."""

from __future__ import annotations

import json

import pytest

from compliance.evidence.audit import AuditLog, personal_data_kind
from compliance.requests.redaction import WITHHELD_TEXT, redact_text
from support.crm import base_tables, run_deletion, write_request, write_snapshot

RAW = ("ann.lee@example.com", "+1 555 010 9999", "bob@example.com")


def audit_text(home) -> str:
    return home.audit_file.read_text() if home.audit_file.exists() else ""


@pytest.mark.parametrize("field, value", [
    ("kind", "ann.lee@example.com"),
    ("regulation", "+1 555 010 9999"),
    ("confirm", "bob@example.com"),
    ("received_at", "ann.lee@example.com"),
    ("requested_by", "bob@example.com"),
])
def test_a_request_field_holding_an_email_or_phone_is_redacted_and_other_requests_still_apply(
        home, con, field, value):
    write_snapshot(home.snapshots_inbox / "s1")
    write_request(home, "poison", **{field: value}, subjects=[{"contact_id": "c-4"}])
    write_request(home, "good", subjects=[{"contact_id": "c-2"}], regulation="internal")

    run = run_deletion(con, home)
    again = run_deletion(con, home, as_of="2026-01-02T12:00:00Z")

    assert run.action("request good.json").status == "completed"
    assert again.audited == 0
    stored = con.execute("SELECT coalesce(reason, '') || coalesce(requested_by, '') FROM requests").fetchall()
    assert not [text for (text,) in stored if any(raw in text for raw in RAW)]
    assert not any(raw in audit_text(home) for raw in RAW)
    assert AuditLog(home.audit_file).verify().ok
    assert con.execute("SELECT status FROM requests WHERE request_id = 'good'").fetchone() == ("applied",)


def test_a_quarantine_reason_written_beside_the_file_holds_no_raw_email(home, con):
    write_snapshot(home.snapshots_inbox / "s1")
    write_request(home, "poison", kind="ann.lee@example.com")

    run_deletion(con, home)

    [reason_file] = (home.requests_inbox / "quarantine").glob("*.reason.txt")
    reason = reason_file.read_text()
    assert "ann.lee@example.com" not in reason and "example.com" not in reason
    # The file names the field and why, and says the value is withheld rather than quoting it.
    assert reason.startswith("poison.json: kind: ") and "not shown" in reason and "is not allowed" in reason


def test_a_staff_id_made_only_of_digits_works_as_a_requester_and_is_audited(home, con):
    tables = base_tables()
    tables["staff"].append(dict(user_id="10234567", email="ops@crm.example", name="Ops", role="admin",
                                active="true"))
    write_snapshot(home.snapshots_inbox / "s1", tables)
    write_request(home, "r1", requested_by="10234567", subjects=[{"contact_id": "c-2"}], regulation="internal")

    run = run_deletion(con, home)

    assert run.action("request r1.json").status == "completed"
    assert con.execute("SELECT requested_by, status FROM requests").fetchone() == ("10234567", "applied")
    entries = AuditLog(home.audit_file).entries()
    requesters = {entry["fields"].get("requested_by") for entry in entries}
    assert "user_id:10234567" in requesters
    assert con.execute("SELECT count(*) FROM bulk_actions WHERE NOT audited").fetchone()[0] == 0


def test_a_record_stored_raw_before_the_fix_is_audited_redacted_and_redacted_in_the_store(home, con):
    write_snapshot(home.snapshots_inbox / "s1")
    write_request(home, "r1", confirm="nope", subjects=[{"contact_id": "c-2"}])
    run_deletion(con, home)
    con.execute("INSERT INTO requests (file, file_hash, status, reason, seen_at) VALUES "
                "('old.json', 'x', 'quarantined', 'old.json: kind: ''ann.lee@example.com'' is not allowed', now())")

    run_deletion(con, home, as_of="2026-01-02T12:00:00Z")

    assert "ann.lee@example.com" not in audit_text(home)
    assert con.execute("SELECT reason FROM requests WHERE file = 'old.json'").fetchone() == (
        "old.json: kind: [redacted email] is not allowed",)


@pytest.mark.parametrize("text, expected", [
    ("kind: 'ann@example.com' is not allowed", "kind: [redacted email] is not allowed"),
    ("got '+1 555 010 9999'", "got [redacted phone]"),
    ("call +1 (555) 010-9999 today", "call [redacted phone] today"),
    ("write to ann@example.com please", "write to [redacted email] please"),
    ("due 2026-01-20 for 12345678 rows", "due 2026-01-20 for 12345678 rows"),
    ("got 'DELET'", "got 'DELET'"),
    ("5550109999", WITHHELD_TEXT),
])
def test_redaction_replaces_only_what_looks_like_an_email_or_phone(text, expected):
    assert redact_text(text) == expected
    assert personal_data_kind(redact_text(text)) is None


def test_a_request_file_in_csv_with_an_email_as_its_kind_is_quarantined_redacted(home, con):
    write_snapshot(home.snapshots_inbox / "s1")
    (home.requests_inbox / "batch.csv").write_text(
        "request_id,kind,regulation,requested_by,received_at,confirm,contact_id,email,phone\n"
        "r9,ann.lee@example.com,gdpr,u-admin-1,2025-12-20T09:00:00Z,DELETE,c-1,,\n")

    run_deletion(con, home)

    [(status, reason)] = con.execute("SELECT status, reason FROM requests").fetchall()
    assert status == "quarantined" and "ann.lee" not in reason
    assert json.dumps(AuditLog(home.audit_file).entries()).count("ann.lee") == 0
