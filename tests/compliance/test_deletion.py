"""Deletion end to end in compliance/: outcomes, subject matching, cascades, memberships, backups, suppression."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

import compliance.deletion.backups
from compliance.clock import parse_as_of
from compliance.deletion import ManualSelection
from compliance.evidence.audit import AuditLog
from compliance.preview import preview_run
from compliance.settings import Cascade, Rule, Rules, Settings
from compliance.snapshots.ingest import ingest_snapshots
from compliance.store.backup import BackupError, verify_backup
from compliance.store.keys import KeyedHasher
from support.crm import AS_OF, base_tables, run_deletion, store_contents, write_request, write_snapshot

CLOCK = parse_as_of(AS_OF)
LINKED = ("conversations", "notes", "tasks", "activities", "campaign_enrollments", "workflow_enrollments",
          "list_memberships")
C1_ROWS = {"contacts": 1, "conversations": 2, "notes": 1, "tasks": 1, "activities": 2, "campaign_enrollments": 1,
           "workflow_enrollments": 0, "list_memberships": 2}
UNSUBSCRIBED_RULE = Rule(name="remove-unsubscribed", status="published", owner="u-admin-1",
                         trigger={"tags_any": ["Unsubscribed"]})


def items(con, bulk_action_id: str) -> list[tuple]:
    return con.execute("SELECT contact_id, outcome, reason FROM bulk_action_items WHERE bulk_action_id = ? "
                       "ORDER BY contact_id NULLS LAST", [bulk_action_id]).fetchall()


def outcomes(con, bulk_action_id: str) -> dict[str | None, str]:
    return {contact_id: outcome for contact_id, outcome, _ in items(con, bulk_action_id)}


def deleted_ids(con) -> list[str]:
    return [row[0] for row in con.execute(
        "SELECT contact_id FROM contact_lifecycle WHERE state = 'deleted' ORDER BY 1").fetchall()]


def linked_counts(con, contact_id: str) -> dict[str, int]:
    return {table: con.execute(f"SELECT count(*) FROM {table} WHERE contact_id = ?", [contact_id]).fetchone()[0]
            for table in LINKED}


def request_row(con, request_id: str) -> tuple:
    return con.execute("SELECT status, reason, bulk_action_id FROM requests WHERE request_id = ? "
                       "AND status <> 'duplicate'", [request_id]).fetchone()


def test_an_erasure_deletes_the_contact_with_its_associated_data_and_memberships(crm, con):
    write_request(crm, "r1", regulation="internal", subjects=[{"contact_id": "c-2"}])

    run = run_deletion(con, crm)

    action = run.action("request r1.json")
    assert action.status == "completed"
    assert items(con, action.bulk_action_id) == [("c-2", "deleted", None)]
    assert con.execute("SELECT state, deleted_at, deleted_by FROM contact_lifecycle WHERE contact_id = 'c-2'"
                       ).fetchone() == ("deleted", CLOCK, action.bulk_action_id)
    assert linked_counts(con, "c-2") == dict.fromkeys(LINKED, 0)
    # The record itself stays until the purge, so that it can be restored (R2).
    assert con.execute("SELECT count(*) FROM contacts WHERE contact_id = 'c-2'").fetchone()[0] == 1
    assert linked_counts(con, "c-1") == {"conversations": 2, "notes": 1, "tasks": 1, "activities": 2,
                                         "campaign_enrollments": 1, "workflow_enrollments": 0, "list_memberships": 2}
    assert request_row(con, "r1") == ("applied", None, action.bulk_action_id)
    assert (crm.requests_inbox / "processed" / "r1.json").is_file()
    assert not (crm.requests_inbox / "r1.json").exists()


def test_a_contact_in_an_active_campaign_is_blocked_and_one_in_a_paused_campaign_is_deleted(crm, con):
    write_request(crm, "r1", regulation="internal", subjects=[{"contact_id": "c-1"}, {"contact_id": "c-2"}])

    run = run_deletion(con, crm)

    action = run.action("request r1.json")
    [(c1, blocked, reason), (c2, deleted, _)] = items(con, action.bulk_action_id)
    assert (c1, blocked, c2, deleted) == ("c-1", "blocked", "c-2", "deleted")
    assert "active campaign camp-1 (Winter sale)" in reason and "remove the contact from it first" in reason
    assert action.counts["blocked"] == 1 and action.counts["deleted"] == 1
    assert deleted_ids(con) == ["c-2"]
    assert linked_counts(con, "c-1")["campaign_enrollments"] == 1
    assert linked_counts(con, "c-1")["notes"] == 1


@pytest.mark.parametrize("regulation", ["gdpr", "ccpa"])
def test_a_legal_erasure_removes_the_active_enrollment_deletes_and_says_so(crm, con, regulation):
    write_request(crm, "r1", regulation=regulation, subjects=[{"contact_id": "c-3"}])

    run = run_deletion(con, crm)

    [(contact_id, outcome, reason)] = items(con, run.action("request r1.json").bulk_action_id)
    assert (contact_id, outcome) == ("c-3", "deleted")
    assert reason == f"legal erasure ({regulation}): removed from active workflow wf-1 (Onboarding), then deleted"
    assert linked_counts(con, "c-3")["workflow_enrollments"] == 0
    assert con.execute("SELECT * FROM enrollment_metrics").fetchall() == [("workflow", "wf-1", 1, 1)]


def test_an_internal_erasure_of_a_contact_in_an_active_workflow_is_blocked(crm, con):
    write_request(crm, "r1", regulation="internal", subjects=[{"contact_id": "c-3"}])

    run = run_deletion(con, crm)

    [(contact_id, outcome, reason)] = items(con, run.action("request r1.json").bulk_action_id)
    assert (contact_id, outcome) == ("c-3", "blocked")
    assert "active workflow wf-1 (Onboarding)" in reason
    assert deleted_ids(con) == []
    assert linked_counts(con, "c-3")["workflow_enrollments"] == 1
    assert run.backups == {} and not any(crm.backups_dir.iterdir())


def test_active_enrollment_remove_turns_blocked_into_deleted(crm, con):
    write_request(crm, "r1", regulation="internal", subjects=[{"contact_id": "c-1"}])

    run = run_deletion(con, crm, settings=Settings(active_enrollment="remove"))

    [(contact_id, outcome, reason)] = items(con, run.action("request r1.json").bulk_action_id)
    assert (contact_id, outcome) == ("c-1", "deleted")
    assert reason == "removed from active campaign camp-1 (Winter sale), then deleted"
    assert linked_counts(con, "c-1")["campaign_enrollments"] == 0


def test_a_subject_matching_nothing_is_not_found_and_the_request_succeeds(crm, con):
    write_request(crm, "r1", subjects=[{"email": "nobody@example.net"}, {"contact_id": "c-404"}])

    run = run_deletion(con, crm)

    action = run.action("request r1.json")
    assert action.status == "completed"
    assert sorted(items(con, action.bulk_action_id), key=repr) == [
        (None, "not_found", "subject 1 (email) matches no contact"),
        (None, "not_found", "subject 2 (contact_id) matches no contact")]
    assert request_row(con, "r1")[0] == "applied"
    assert deleted_ids(con) == []


def test_erasing_an_already_deleted_contact_again_is_already_done(crm, con):
    content = write_request(crm, "r1", subjects=[{"contact_id": "c-1"}, {"email": "ann.lee@example.com"}]).read_text()
    run_deletion(con, crm)
    (crm.requests_inbox / "r1-again.json").write_text(content.replace('"r1"', '"r1-again"'))
    (crm.requests_inbox / "r1.json").write_text(content)

    second = run_deletion(con, crm, as_of="2026-01-05T12:00:00Z")

    again = second.action("request r1-again.json")
    assert again.status == "completed"
    assert items(con, again.bulk_action_id) == [("c-1", "already_done", "already deleted on 2026-01-01")]
    # The very same file dropped again is recognised and filed away; it makes no second bulk action.
    assert [a.source for a in second.applied] == ["request r1-again.json"]
    assert sorted(p.name for p in (crm.requests_inbox / "processed").iterdir()) == [
        "r1-1.json", "r1-again.json", "r1.json"]
    assert con.execute("SELECT count(*) FROM bulk_action_items WHERE contact_id = 'c-1' AND outcome = 'deleted'"
                       ).fetchone()[0] == 1
    assert con.execute("SELECT deleted_at FROM contact_lifecycle WHERE contact_id = 'c-1'").fetchone()[0] == CLOCK


def test_the_same_request_id_twice_is_applied_once_and_recorded_as_duplicate(crm, con):
    write_request(crm, "a-first", request_id="GDPR-7")
    write_request(crm, "b-second", request_id="GDPR-7", received_at="2025-12-21T09:00:00Z",
                  subjects=[{"contact_id": "c-2"}])

    run = run_deletion(con, crm)

    rows = con.execute("SELECT file, status, reason FROM requests WHERE request_id = 'GDPR-7' ORDER BY file"
                       ).fetchall()
    assert rows[0][:2] == ("a-first.json", "applied")
    assert rows[1][:2] == ("b-second.json", "duplicate")
    assert "GDPR-7 was already received in a-first.json" in rows[1][2]
    assert [a.source for a in run.applied] == ["request a-first.json"]
    assert deleted_ids(con) == ["c-1"]
    assert run.intake.by_status == {"pending": 1, "duplicate": 1}


@pytest.mark.parametrize("subject, expected", [
    ({"phone": "+1 (555) 123-0001"}, ["c-1"]),
    ({"phone": "1.555.123.0001"}, ["c-1"]),
    ({"email": "  ANN.LEE@example.COM "}, ["c-1"]),
    ({"email": "bob@example.com"}, ["c-2", "c-3"]),
    ({"email": " BOB@Example.com "}, ["c-2", "c-3"]),
    ({"contact_id": "c-2", "phone": "+15551230002"}, ["c-2"]),
], ids=["phone-formatted", "phone-dots", "email-case-spaces", "one-person-two-contacts", "both-spelled-otherwise",
        "id-and-phone-same-contact"])
def test_a_subject_matches_every_contact_with_its_id_email_or_phone(crm, con, subject, expected):
    write_request(crm, "r1", subjects=[subject])

    run = run_deletion(con, crm)

    assert outcomes(con, run.action("request r1.json").bulk_action_id) == dict.fromkeys(expected, "deleted")
    assert deleted_ids(con) == expected


def test_a_retained_cascade_keeps_the_notes_and_leaves_them_out_of_the_backup(crm, con):
    write_request(crm, "r1")
    settings = Settings(cascade=Cascade(notes="retain"))

    run = run_deletion(con, crm, settings=settings)

    action = run.action("request r1.json")
    assert deleted_ids(con) == ["c-1"]
    assert con.execute("SELECT note_id FROM notes WHERE contact_id = 'c-1'").fetchall() == [("n-1",)]
    assert linked_counts(con, "c-1")["conversations"] == 0 and linked_counts(con, "c-1")["activities"] == 0
    manifest = verify_backup(Path(action.backup))
    assert "notes" not in {item.table for item in manifest.files}
    assert not list(Path(action.backup).glob("notes.*"))
    assert con.execute("SELECT count(*) FROM tombstones WHERE table_name = 'notes'").fetchone()[0] == 0


def test_memberships_are_all_removed_with_tombstones_and_metrics_keep_the_counts(crm, con):
    write_request(crm, "r1")

    run = run_deletion(con, crm)

    action = run.action("request r1.json")
    assert linked_counts(con, "c-1") == dict.fromkeys(LINKED, 0)
    assert con.execute("SELECT table_name, row_key FROM tombstones WHERE table_name IN ('campaign_enrollments', "
                       "'list_memberships') ORDER BY ALL").fetchall() == [
        ("campaign_enrollments", "camp-1:c-1"), ("list_memberships", "l-1:c-1"), ("list_memberships", "l-2:c-1")]
    assert {row[0] for row in con.execute("SELECT bulk_action_id FROM tombstones").fetchall()} == {
        action.bulk_action_id}
    assert con.execute("SELECT count(*) FROM tombstones").fetchone()[0] == sum(C1_ROWS.values()) - 1
    assert con.execute("SELECT * FROM enrollment_metrics ORDER BY ALL").fetchall() == [
        ("campaign", "camp-1", 1, 1), ("list", "l-1", 1, 0), ("list", "l-2", 1, 0)]
    # Other contacts' memberships are untouched.
    assert con.execute("SELECT list_id FROM list_memberships WHERE contact_id = 'c-4'").fetchall() == [("l-1",)]

    write_snapshot(crm.snapshots_inbox / "s2")
    ingest_snapshots(con, crm, as_of=CLOCK)

    assert linked_counts(con, "c-1") == dict.fromkeys(LINKED, 0)
    assert deleted_ids(con) == ["c-1"]


def test_the_backup_holds_exactly_the_removed_rows_owner_only_written_before_the_delete(crm, con):
    write_request(crm, "r1")

    run = run_deletion(con, crm)

    action = run.action("request r1.json")
    folder = Path(action.backup)
    assert folder.parent == crm.backups_dir and folder.name == action.bulk_action_id
    manifest = verify_backup(folder)
    for fmt in ("csv", "parquet"):
        assert {item.table: item.rows for item in manifest.files if item.format == fmt} == C1_ROWS
    assert manifest.total_rows == sum(C1_ROWS.values())
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = list(folder.iterdir())
    assert len(files) == 2 * len(C1_ROWS) + 1
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in files)
    assert "Ann.Lee@Example.com" in (folder / "contacts.csv").read_text()
    written_at, applied_at, contacts, rows = con.execute(
        "SELECT b.written_at, a.applied_at, b.contacts, b.total_rows FROM backups b JOIN bulk_actions a "
        "USING (bulk_action_id) WHERE bulk_action_id = ?", [action.bulk_action_id]).fetchone()
    assert written_at <= applied_at
    assert (contacts, rows) == (1, sum(C1_ROWS.values()))


def test_a_failed_backup_deletes_nothing_and_the_request_is_applied_on_the_next_run(crm, con, monkeypatch):
    write_request(crm, "r1", subjects=[{"contact_id": "c-1"}, {"contact_id": "c-2"}, {"contact_id": "c-404"}])
    before = store_contents(con)

    def no_space(*args, **kwargs):
        raise BackupError("backup: disk full")

    monkeypatch.setattr(compliance.deletion.backups, "write_backup", no_space)
    failed_run = run_deletion(con, crm)

    failed = failed_run.action("request r1.json")
    assert failed.status == "failed"
    assert failed.counts == {"deleted": 0, "blocked": 0, "rejected": 0, "not_found": 1, "already_done": 0,
                             "failed": 2}
    failed_items = items(con, failed.bulk_action_id)
    assert [(c, o) for c, o, _ in failed_items] == [("c-1", "failed"), ("c-2", "failed"), (None, "not_found")]
    assert all("disk full" in reason and "nothing deleted" in reason for _, _, reason in failed_items[:2])
    assert deleted_ids(con) == []
    after = store_contents(con)
    for table in ("contacts", *LINKED, "tombstones", "suppression", "enrollment_metrics", "backups"):
        assert after[table] == before[table], table
    status, reason, bulk_action_id = request_row(con, "r1")
    assert (status, bulk_action_id) == ("pending", None) and "will retry on the next run" in reason
    assert (crm.requests_inbox / "r1.json").is_file()
    assert not any(crm.backups_dir.iterdir())

    monkeypatch.undo()
    retry = run_deletion(con, crm, as_of="2026-01-02T12:00:00Z")

    done = retry.action("request r1.json")
    assert done.status == "completed" and done.counts["deleted"] == 2
    assert deleted_ids(con) == ["c-1", "c-2"]
    assert request_row(con, "r1")[0::2] == ("applied", done.bulk_action_id)
    assert con.execute("SELECT status FROM bulk_actions WHERE source_ref = 'r1' ORDER BY applied_at").fetchall() == [
        ("failed",), ("completed",)]
    assert con.execute("SELECT count(*) FROM bulk_action_items WHERE outcome = 'deleted'").fetchone()[0] == 2
    verify_backup(Path(done.backup))
    assert (crm.requests_inbox / "processed" / "r1.json").is_file()


def test_a_gdpr_erasure_keeps_only_keyed_hashes_and_later_snapshots_skip_the_person(crm, con):
    write_request(crm, "r1", subjects=[{"email": "ann.lee@example.com"}])
    run_deletion(con, crm)
    hasher = KeyedHasher(crm.secret())

    suppressed = con.execute("SELECT key_kind, key_hash FROM suppression ORDER BY 1").fetchall()

    assert suppressed == [("contact_id", hasher.hash("contact_id", "c-1")),
                          ("email", hasher.hash("email", "ann.lee@example.com")),
                          ("phone", hasher.hash("phone", "15551230001"))]
    assert "ann.lee" not in repr(store_contents(con)["suppression"]).lower()
    assert "5551230001" not in repr(store_contents(con)["suppression"])
    assert con.execute("SELECT count(*) FROM pending_subjects").fetchone()[0] == 0

    tables = base_tables()
    ann = tables["contacts"][0]
    tables["contacts"] += [
        {**ann, "contact_id": "c-9", "email": " ANN.LEE@EXAMPLE.COM", "phone": ""},
        {**ann, "contact_id": "c-10", "email": "someone@else.example", "phone": "+1 555 123 0001"},
        {**ann, "contact_id": "c-11", "email": "new@person.example", "phone": "+15559990011"},
    ]
    tables["notes"].append(dict(note_id="n-9", contact_id="c-9", body="Ann again", created_at="2026-01-02T00:00:00Z"))
    write_snapshot(crm.snapshots_inbox / "s2", tables)
    [ingested] = ingest_snapshots(con, crm, as_of=parse_as_of("2026-01-03T00:00:00Z")).ingested

    assert ingested.skipped_suppressed == 2 and ingested.skipped_deleted == 1
    ids = {row[0] for row in con.execute("SELECT contact_id FROM contacts").fetchall()}
    assert {"c-9", "c-10"}.isdisjoint(ids) and "c-11" in ids
    assert con.execute("SELECT count(*) FROM notes WHERE contact_id = 'c-9'").fetchone()[0] == 0
    assert deleted_ids(con) == ["c-1"]


def test_an_internal_erasure_does_not_suppress(crm, con):
    write_request(crm, "r1", regulation="internal", subjects=[{"contact_id": "c-2"}])
    run_deletion(con, crm)

    assert con.execute("SELECT count(*) FROM suppression").fetchone()[0] == 0
    tables = base_tables()
    tables["contacts"].append({**tables["contacts"][1], "contact_id": "c-12"})
    write_snapshot(crm.snapshots_inbox / "s2", tables)
    [ingested] = ingest_snapshots(con, crm, as_of=CLOCK).ingested

    assert ingested.skipped_suppressed == 0
    assert con.execute("SELECT count(*) FROM contacts WHERE contact_id = 'c-12'").fetchone()[0] == 1


@pytest.mark.parametrize("same_run", [False, True], ids=["deleted-on-an-earlier-day", "deleted-earlier-this-run"])
def test_a_legal_erasure_of_a_person_already_deleted_internally_still_suppresses_them(crm, con, same_run):
    write_request(crm, "r1", regulation="internal", subjects=[{"contact_id": "c-4"}])
    if not same_run:
        run_deletion(con, crm)
    write_request(crm, "r2", regulation="gdpr", received_at="2025-12-22T09:00:00Z",
                  subjects=[{"email": "CY@example.org"}])

    run = run_deletion(con, crm, as_of="2026-01-02T12:00:00Z")

    erasure = run.action("request r2.json")
    assert [(c, o) for c, o, _ in items(con, erasure.bulk_action_id)] == [("c-4", "already_done")]
    assert con.execute("SELECT key_kind, bulk_action_id FROM suppression ORDER BY 1").fetchall() == [
        ("contact_id", erasure.bulk_action_id), ("email", erasure.bulk_action_id), ("phone", erasure.bulk_action_id)]
    tables = base_tables()
    tables["contacts"].append({**tables["contacts"][3], "contact_id": "c-20"})
    write_snapshot(crm.snapshots_inbox / "s2", tables)
    [ingested] = ingest_snapshots(con, crm, as_of=parse_as_of("2026-01-03T00:00:00Z")).ingested

    assert ingested.skipped_suppressed == 1
    assert con.execute("SELECT count(*) FROM contacts WHERE contact_id = 'c-20'").fetchone()[0] == 0


@pytest.mark.parametrize("selection, expected", [
    (dict(contact_ids=("c-2", "c-404", "c-2")), {"c-2": "deleted", "c-404": "not_found"}),
    (dict(tags=("UNSUBSCRIBED",)), {"c-4": "deleted"}),
    (dict(location="loc-b"), {"c-3": "blocked", "c-4": "deleted"}),
    (dict(tags=("customer", "newsletter"), location="loc-b"), {"c-4": "deleted"}),
    (dict(select_all=True), {"c-1": "blocked", "c-2": "deleted", "c-3": "blocked", "c-4": "deleted"}),
], ids=["contact-ids", "tag", "location", "tag-and-location", "all"])
def test_a_manual_bulk_delete_selects_listed_contacts_or_a_smart_list(crm, con, selection, expected):
    run = run_deletion(con, crm, include_requests=False,
                       manual=ManualSelection(requested_by="dana.admin@crm.example", **selection))

    [action] = run.applied
    assert action.source == "manual"
    assert outcomes(con, action.bulk_action_id) == expected
    assert deleted_ids(con) == sorted(c for c, outcome in expected.items() if outcome == "deleted")
    assert con.execute("SELECT requested_by FROM bulk_actions").fetchone()[0] == "u-admin-1"
    if "c-404" in expected:
        assert ("c-404", "not_found", "no contact c-404 in the store") in items(con, action.bulk_action_id)


def test_a_contact_claimed_by_two_sources_is_deleted_by_the_first_and_already_done_for_the_second(crm, con):
    write_request(crm, "r1", regulation="internal", subjects=[{"contact_id": "c-4"}])

    run = run_deletion(con, crm, rules=Rules(rules=(UNSUBSCRIBED_RULE,)),
                       manual=ManualSelection(requested_by="u-admin-1", contact_ids=("c-4",)))

    assert [a.source for a in run.applied] == ["request r1.json", "rule remove-unsubscribed", "manual"]
    assert items(con, run.action("request r1.json").bulk_action_id) == [("c-4", "deleted", None)]
    assert items(con, run.action("rule remove-unsubscribed").bulk_action_id) == [
        ("c-4", "already_done", "deleted in this run by request r1.json")]
    assert items(con, run.action("manual").bulk_action_id) == [
        ("c-4", "already_done", "deleted in this run by request r1.json")]
    assert run.action("rule remove-unsubscribed").backup is None
    assert [p.name for p in crm.backups_dir.iterdir()] == [run.action("request r1.json").bulk_action_id]


def _mixed_inbox(home) -> Rules:
    """Requests of every kind of outcome, a bad file, a published and a draft rule."""
    write_request(home, "r1", subjects=[{"phone": "+1 (555) 123-0001"}])
    write_request(home, "r2", regulation="internal", received_at="2025-12-21T09:00:00Z",
                  subjects=[{"email": " BOB@example.com "}, {"email": "nobody@example.net"}])
    write_request(home, "r3", requested_by="u-user-1", subjects=[{"contact_id": "c-4"}])
    write_request(home, "r4", received_at="2025-12-22T09:00:00Z", subjects=[{"contact_id": "c-1"}])
    (home.requests_inbox / "broken.json").write_text('{"request_id": "x",')
    return Rules(rules=(UNSUBSCRIBED_RULE, Rule(name="dnd-draft", status="draft", owner="u-admin-1",
                                                trigger={"dnd": True})))


def inbox_files(home) -> dict[str, bytes]:
    return {str(p.relative_to(home.inbox)): p.read_bytes() for p in sorted(home.inbox.rglob("*")) if p.is_file()}


def test_plan_gives_the_outcomes_of_the_following_run_and_changes_nothing(crm, con):
    rules = _mixed_inbox(crm)
    settings = Settings()
    before_store, before_inbox = store_contents(con), inbox_files(crm)

    preview = preview_run(con, crm, as_of=CLOCK, settings=settings, rules=rules)

    assert store_contents(con) == before_store
    assert inbox_files(crm) == before_inbox
    assert not any(crm.backups_dir.iterdir()) and not crm.audit_file.exists()
    planned = {action["source"]: sorted(((i["contact_id"], i["outcome"], i["reason"]) for i in action["items"]),
                                        key=repr)
               for action in preview if action["kind"] == "delete" and not action["preview_only"]}
    drafts = [action for action in preview if action["kind"] == "delete" and action["preview_only"]]
    assert [d["source"] for d in drafts] == ["rule dnd-draft"]
    assert [(i["contact_id"], i["outcome"]) for i in drafts[0]["items"]] == [("c-3", "blocked")]

    run = run_deletion(con, crm, settings=settings, rules=rules)

    applied = {a.source: sorted(items(con, a.bulk_action_id), key=repr) for a in run.applied}
    assert planned == applied
    assert set(applied) == {"request r1.json", "request r2.json", "request r3.json", "request r4.json",
                            "rule remove-unsubscribed"}
    assert planned["request r1.json"] == [
        ("c-1", "deleted", "legal erasure (gdpr): removed from active campaign camp-1 (Winter sale), then deleted")]
    assert "rule dnd-draft" not in {a.source for a in run.applied}


def test_bulk_action_counts_add_up_and_the_audit_log_holds_no_raw_personal_data(crm, con):
    rules = _mixed_inbox(crm)

    run = run_deletion(con, crm, rules=rules)

    assert deleted_ids(con) == ["c-1", "c-2", "c-4"]
    for row in con.execute("SELECT bulk_action_id, total, done + blocked + rejected + not_found + already_done "
                           "+ failed FROM bulk_actions").fetchall():
        assert row[1] == row[2] == len(items(con, row[0])), row
    assert sum(a.counts["deleted"] for a in run.applied) == 3
    assert run.action("request r2.json").counts == {"deleted": 1, "blocked": 1, "rejected": 0, "not_found": 1,
                                                    "already_done": 0, "failed": 0}
    assert run.action("request r3.json").status == "rejected"

    log = AuditLog(crm.audit_file)
    verification = log.verify()
    # r2 has a blocked contact: it stays pending (not audited as answered) until nothing blocks it.
    assert verification.ok and verification.entries == run.audited == 5 + 4
    events = [(e["event"], e["fields"].get("bulk_action_id"), e["fields"].get("file")) for e in log.entries()]
    for action in run.applied:
        assert ("bulk_action.delete", action.bulk_action_id, None) in events
    assert {(event, file) for event, _, file in events if event.startswith("request.")} == {
        ("request.applied", "r1.json"), ("request.rejected", "r3.json"),
        ("request.applied", "r4.json"), ("request.quarantined", "broken.json")}
    assert request_row(con, "r2")[0] == "pending"
    raw = crm.audit_file.read_bytes().lower()
    for personal in (b"ann.lee@example.com", b"bob@example.com", b"cy@example.org", b"nobody@example.net",
                     b"5551230001", b"555) 123-0001", b"5551230002", b"7946 0004", b"79460004"):
        assert personal not in raw, personal

    again = run_deletion(con, crm, rules=rules)
    # Only r2's blocked subject is tried again; everything else changes nothing the second time.
    assert again.audited == 1
    assert [(a.source, a.counts["blocked"], a.counts["deleted"]) for a in again.applied] == [
        ("request r2.json", 1, 0)]
    assert deleted_ids(con) == ["c-1", "c-2", "c-4"]
