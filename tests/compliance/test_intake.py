"""Request intake: who may ask (R1), the exact confirmation (R7), quarantine, duplicates, files moved once handled."""

from __future__ import annotations

import pytest

from compliance.clock import parse_as_of
from compliance.evidence.audit import AuditLog
from compliance.requests.intake import take_requests
from compliance.settings import Settings
from support.crm import AS_OF, run_deletion, store_contents, write_request

CLOCK = parse_as_of(AS_OF)
C1_LINKED = "SELECT count(*) FROM conversations WHERE contact_id = 'c-1'"


def requests_table(con) -> list[tuple]:
    return con.execute("SELECT file, request_id, status, reason, requested_by FROM requests ORDER BY file"
                       ).fetchall()


@pytest.mark.parametrize("requested_by, confirm, reason", [
    ("u-user-1", "DELETE", "u-user-1 is not an admin (role user): only admins can delete or restore"),
    ("u-admin-2", "DELETE", "u-admin-2 is an inactive admin: only active admins can delete or restore"),
    ("old.admin@crm.example", "DELETE", "u-admin-2 is an inactive admin: only active admins can delete or restore"),
    ("u-nobody", "DELETE", "u-nobody is not a staff member: only an active admin can delete or restore"),
    ("u-admin-1", None, "confirm must be exactly DELETE (it is missing)"),
    ("u-admin-1", "delete", "confirm must be exactly DELETE (got 'delete')"),
    ("u-admin-1", "DELETE ", "confirm must be exactly DELETE (got 'DELETE ')"),
], ids=["user", "inactive-admin", "inactive-admin-by-email", "unknown", "no-confirm", "lower-case", "trailing-space"])
def test_a_refused_request_is_rejected_with_its_reason_and_deletes_nothing(crm, con, requested_by, confirm, reason):
    write_request(crm, "r1", requested_by=requested_by, confirm=confirm)
    before = store_contents(con)

    run = run_deletion(con, crm)

    assert run.intake.by_status == {"rejected": 1}
    [(file, request_id, status, recorded_reason, _)] = requests_table(con)
    assert (file, request_id, status, recorded_reason) == ("r1.json", "r1", "rejected", reason)
    action = run.action("request r1.json")
    assert action.status == "rejected" and action.reason == reason
    assert con.execute("SELECT contact_id, outcome, reason FROM bulk_action_items").fetchall() == [
        ("c-1", "rejected", reason)]
    after = store_contents(con)
    for table in ("contacts", "conversations", "notes", "campaign_enrollments", "list_memberships",
                  "contact_lifecycle", "suppression", "tombstones", "backups"):
        assert after[table] == before[table], table
    assert not any(crm.backups_dir.iterdir())
    assert (crm.requests_inbox / "processed" / "r1.json").is_file()


def test_an_admin_may_be_named_by_email_in_any_case(crm, con):
    write_request(crm, "r1", requested_by="  DANA.admin@CRM.example ")

    run = run_deletion(con, crm)

    assert run.action("request r1.json").status == "completed"
    assert requests_table(con)[0][2:] == ("applied", None, "u-admin-1")
    assert con.execute("SELECT requested_by FROM bulk_actions").fetchone()[0] == "u-admin-1"


@pytest.mark.parametrize("requested_by, kind", [("stranger@evil.example", "email"), ("+1 (555) 999-0000", "phone")])
def test_an_unknown_requester_written_as_email_or_phone_is_never_kept_raw(crm, con, requested_by, kind):
    write_request(crm, "r1", requested_by=requested_by)

    run = run_deletion(con, crm)

    reason = f"the requester's {kind} matches no staff member: only an active admin can delete or restore"
    assert requests_table(con)[0][2:] == ("rejected", reason, "unknown staff member")
    assert run.action("request r1.json").reason == reason
    assert AuditLog(crm.audit_file).verify().ok and run.audited == 2
    raw = requested_by.encode()
    for path in (crm.audit_file, crm.store_file):
        assert raw not in path.read_bytes()
    assert b"999-0000" not in crm.audit_file.read_bytes() and b"evil.example" not in crm.audit_file.read_bytes()


def test_bad_files_are_quarantined_with_their_reason_while_the_others_go_on(crm, con):
    (crm.requests_inbox / "a-broken.json").write_text('{"request_id": "x", "kind": ')
    write_request(crm, "b-no-subjects", subjects=None)
    write_request(crm, "c-good")

    run = run_deletion(con, crm)

    quarantine = crm.requests_inbox / "quarantine"
    assert sorted(p.name for p in quarantine.iterdir()) == [
        "a-broken.json", "a-broken.json.reason.txt", "b-no-subjects.json", "b-no-subjects.json.reason.txt"]
    assert "a-broken.json: not valid JSON" in (quarantine / "a-broken.json.reason.txt").read_text()
    assert (quarantine / "b-no-subjects.json.reason.txt").read_text() == (
        "b-no-subjects.json: subjects: required key is missing\n")
    assert run.intake.quarantined == ["a-broken.json", "b-no-subjects.json"]
    assert run.intake.by_status == {"quarantined": 2, "pending": 1}
    assert [row[:3] for row in requests_table(con)] == [
        ("a-broken.json", None, "quarantined"), ("b-no-subjects.json", None, "quarantined"),
        ("c-good.json", "c-good", "applied")]
    assert requests_table(con)[1][3] == "b-no-subjects.json: subjects: required key is missing"
    assert run.action("request c-good.json").counts["deleted"] == 1
    assert [a.source for a in run.applied] == ["request c-good.json"]
    assert sorted(p.name for p in crm.requests_inbox.iterdir() if p.is_file()) == []


def test_a_csv_request_with_several_rows_is_one_request(crm, con):
    (crm.requests_inbox / "batch.csv").write_text(
        "request_id,kind,regulation,requested_by,received_at,confirm,contact_id,email,phone\n"
        "CCPA-1,erasure,ccpa,u-admin-1,2025-12-20T09:00:00Z,DELETE,c-4,,\n"
        "CCPA-1,erasure,ccpa,u-admin-1,2025-12-20T09:00:00Z,DELETE,,BOB@example.com,\n")

    run = run_deletion(con, crm)

    action = run.action("request batch.csv")
    assert action.counts["deleted"] == 3
    assert con.execute("SELECT request_id, regulation, status, subjects, due_at FROM requests").fetchall() == [
        ("CCPA-1", "ccpa", "applied", 2, parse_as_of("2026-02-03T09:00:00Z"))]


def test_a_dry_intake_records_but_moves_no_file(crm, con):
    write_request(crm, "r1")
    (crm.requests_inbox / "broken.json").write_text("[")

    result = take_requests(con, crm, as_of=CLOCK, settings=Settings(), move_files=False)

    assert result.by_status == {"pending": 1, "quarantined": 1}
    assert sorted(p.name for p in crm.requests_inbox.iterdir()) == ["broken.json", "r1.json"]


def test_a_file_already_taken_is_not_taken_twice(crm, con):
    write_request(crm, "r1")
    first = take_requests(con, crm, as_of=CLOCK, settings=Settings(), move_files=False)

    second = take_requests(con, crm, as_of=CLOCK, settings=Settings())

    assert first.by_status == {"pending": 1} and second.by_status == {}
    assert second.files_seen == 1
    assert con.execute("SELECT count(*), count(*) FILTER (WHERE status = 'pending') FROM requests").fetchone() == (1, 1)
    # A pending request's file stays in the inbox until the request is final.
    assert (crm.requests_inbox / "r1.json").is_file()


def test_a_file_named_after_the_person_is_recorded_under_a_name_without_personal_data(crm, con):
    write_request(crm, "r1").rename(crm.requests_inbox / "erase Ann.Lee@example.com.json")
    (crm.requests_inbox / "+1 555 123 0002.json").write_text("{broken")

    run = run_deletion(con, crm)

    records = con.execute("SELECT file, status, reason FROM requests ORDER BY status").fetchall()
    assert [(status, file.startswith("request-")) for file, status, _ in records] == [
        ("applied", True), ("quarantined", True)]
    assert records[1][2].startswith(f"{records[1][0]}: not valid JSON")
    assert run.intake.quarantined == [records[1][0]]
    assert [a.source for a in run.applied] == [f"request {records[0][0]}"]
    assert run.audited == 3 and AuditLog(crm.audit_file).verify().ok
    audit = crm.audit_file.read_bytes().lower()
    assert b"ann.lee@" not in audit and b"555 123 0002" not in audit
    # The user's own files keep their names inside the inbox.
    assert (crm.requests_inbox / "processed" / "erase Ann.Lee@example.com.json").is_file()
    assert (crm.requests_inbox / "quarantine" / "+1 555 123 0002.json").is_file()


def test_a_request_id_that_looks_like_an_email_quarantines_the_file(crm, con):
    write_request(crm, "r1", request_id="ann.lee@example.com")

    run = run_deletion(con, crm)

    assert con.execute("SELECT file, request_id, status, reason FROM requests").fetchall() == [
        ("r1.json", None, "quarantined", "r1.json: request_id looks like an email address or phone number; "
                                         "use a reference that names no person")]
    assert run.applied == [] and con.execute("SELECT count(*) FROM contact_lifecycle").fetchone()[0] == 0
    assert AuditLog(crm.audit_file).verify().ok and b"ann.lee@" not in crm.audit_file.read_bytes().lower()
