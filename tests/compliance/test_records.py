"""The Bulk Actions page and the requests view (PRODUCT.md section 3 shapes), deadlines, and their audit entries."""

from __future__ import annotations

import json

import pytest

import compliance.deletion.backups
from compliance.clock import parse_as_of
from compliance.evidence.audit import AuditLog
from compliance.requests.intake import take_requests
from compliance.requests.records import audit_new_records, bulk_actions, request_records
from compliance.settings import Settings
from compliance.store.backup import BackupError
from support.crm import AS_OF, run_deletion, write_request

CLOCK = parse_as_of(AS_OF)
ACTION_FIELDS = {"bulk_action_id", "kind", "source", "requested_by", "created_at", "status", "counts"}
COUNT_FIELDS = {"total", "deleted", "blocked", "rejected", "not_found", "already_done", "failed"}
REQUEST_FIELDS = {"file", "request_id", "kind", "regulation", "status", "reason", "received_at", "due_at",
                  "bulk_action_id"}


@pytest.fixture
def ran(crm, con):
    """One run: a GDPR erasure of Bob (two contacts), an internal one refused (R1), and a file quarantined."""
    write_request(crm, "r1", subjects=[{"email": "bob@example.com"}, {"contact_id": "c-404"}])
    write_request(crm, "r2", requested_by="u-user-1", regulation="internal", received_at="2025-12-21T09:00:00Z")
    (crm.requests_inbox / "r3.json").write_text("not json")
    return run_deletion(con, crm)


def test_bulk_actions_have_the_status_json_shape(ran, con):
    actions = bulk_actions(con)

    assert len(actions) == 2
    for action in actions:
        assert set(action) >= ACTION_FIELDS
        assert set(action["counts"]) == COUNT_FIELDS
        assert action["kind"] == "delete" and action["created_at"] == "2026-01-01T12:00:00Z"
    json.dumps({"bulk_actions": actions})
    by_source = {action["source"]: action for action in actions}
    assert by_source["request r1.json"]["status"] == "completed"
    assert by_source["request r1.json"]["counts"] == {"total": 3, "deleted": 2, "blocked": 0, "rejected": 0,
                                                      "not_found": 1, "already_done": 0, "failed": 0}
    assert by_source["request r2.json"]["status"] == "rejected"
    assert by_source["request r2.json"]["requested_by"] == "u-user-1"
    assert "items" not in by_source["request r1.json"]


def test_one_bulk_action_comes_with_its_items(ran, con):
    bulk_action_id = ran.action("request r1.json").bulk_action_id

    [action] = bulk_actions(con, bulk_action_id)

    assert action["bulk_action_id"] == bulk_action_id
    assert action["items"] == [
        {"contact_id": "c-2", "outcome": "deleted", "reason": None},
        {"contact_id": "c-3", "outcome": "deleted",
         "reason": "legal erasure (gdpr): removed from active workflow wf-1 (Onboarding), then deleted"},
        {"contact_id": None, "outcome": "not_found", "reason": "subject 2 (contact_id) matches no contact"}]
    assert action["counts"]["total"] == len(action["items"])
    assert bulk_actions(con, "ba-none") == []


def test_request_records_have_the_requests_json_shape(ran, con):
    records = request_records(con, as_of=CLOCK)

    assert all(set(record) >= REQUEST_FIELDS for record in records)
    json.dumps({"requests": records})
    by_file = {record["file"]: record for record in records}
    assert set(by_file) == {"r1.json", "r2.json", "r3.json"}
    assert {k: by_file["r1.json"][k] for k in ("request_id", "kind", "regulation", "status", "reason", "received_at",
                                               "due_at", "bulk_action_id")} == {
        "request_id": "r1", "kind": "erasure", "regulation": "gdpr", "status": "applied", "reason": None,
        "received_at": "2025-12-20T09:00:00Z", "due_at": "2026-01-20T09:00:00Z",
        "bulk_action_id": ran.action("request r1.json").bulk_action_id}
    assert by_file["r2.json"]["status"] == "rejected" and "u-user-1 is not an admin" in by_file["r2.json"]["reason"]
    assert by_file["r2.json"]["due_at"] is None
    assert by_file["r3.json"]["status"] == "quarantined" and "not valid JSON" in by_file["r3.json"]["reason"]


@pytest.mark.parametrize("as_of, deadline", [
    ("2026-01-01T12:00:00Z", "open"), ("2026-01-13T09:00:00Z", "due_soon"), ("2026-01-20T09:00:00Z", "due_soon"),
    ("2026-01-20T09:00:01Z", "overdue")])
def test_an_open_request_is_flagged_due_soon_then_overdue(crm, con, as_of, deadline):
    write_request(crm, "r1")
    take_requests(con, crm, as_of=CLOCK, settings=Settings(), move_files=False)

    [record] = request_records(con, as_of=parse_as_of(as_of))

    assert (record["status"], record["due_at"], record["deadline"]) == ("pending", "2026-01-20T09:00:00Z", deadline)


def test_a_request_held_back_by_a_failed_backup_shows_pending_with_the_reason(crm, con, monkeypatch):
    def broken(*args, **kwargs):
        raise BackupError("backup: disk full")

    monkeypatch.setattr(compliance.deletion.backups, "write_backup", broken)
    write_request(crm, "r1")
    run = run_deletion(con, crm)

    [record] = request_records(con, as_of=CLOCK)
    [action] = bulk_actions(con)
    assert record["status"] == "pending" and record["bulk_action_id"] is None
    assert "disk full" in record["reason"] and run.action("request r1.json").bulk_action_id in record["reason"]
    assert action["status"] == "failed" and action["counts"]["failed"] == 1 and action["counts"]["total"] == 1
    assert "disk full" in action["reason"]


def test_each_record_is_audited_once(ran, crm, con):
    log = AuditLog(crm.audit_file)
    entries = log.entries()

    assert ran.audited == len(entries) == 2 + 3
    assert sorted(e["event"] for e in entries) == ["bulk_action.delete", "bulk_action.delete", "request.applied",
                                                   "request.quarantined", "request.rejected"]
    [applied] = [e for e in entries
                 if e["event"] == "bulk_action.delete" and e["fields"]["source"] == "request r1.json"]
    assert applied["fields"]["counts"]["deleted"] == 2 and applied["fields"]["status"] == "completed"
    assert audit_new_records(con, log, at=CLOCK) == 0
    assert len(log.entries()) == 5 and log.verify().ok
