"""Restore in compliance/ (R2, R4): the inclusive window, record only, suppression lifted, who may, idempotence."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from compliance.clock import parse_as_of
from compliance.contacts import show_contact
from compliance.evidence.audit import AuditLog
from compliance.home import Home
from compliance.purge import purge
from compliance.requests.intake import settle_request_files, take_requests
from compliance.requests.records import audit_new_records
from compliance.restore import RESTORE_OUTCOMES, ManualRestore, apply_restores, plan_restores
from compliance.settings import Settings
from compliance.snapshots.ingest import ingest_snapshots
from compliance.store.connection import Store
from compliance.store.keys import KeyedHasher
from support.crm import AS_OF, base_tables, copy_home, run_deletion, store_contents, write_request, write_snapshot

CLOCK = parse_as_of(AS_OF)
DAY, SECOND = timedelta(days=1), timedelta(seconds=1)
LINKED = ("conversations", "notes", "tasks", "activities", "campaign_enrollments", "workflow_enrollments",
          "list_memberships")
# Tables that record a refused or repeated restore (and the run's working tables); everything else must not change.
RECORD_TABLES = ("bulk_actions", "bulk_action_items", "requests", "pending_subjects")


def run_restore(con, home, as_of: datetime, *, manual: ManualRestore | None = None,
                settings: Settings | None = None, include_requests: bool = True):
    """Take request files, plan and apply the restores, settle the files and audit: the asset's steps in order."""
    settings = settings or Settings()
    hasher = KeyedHasher(home.secret())
    take_requests(con, home, as_of=as_of, settings=settings)
    plan_restores(con, hasher=hasher, settings=settings, as_of=as_of, include_requests=include_requests,
                  manual=manual)
    actions = apply_restores(con, hasher=hasher, as_of=as_of)
    settle_request_files(con, home)
    audit_new_records(con, AuditLog(home.audit_file), at=as_of)
    return actions


def items(con, bulk_action_id: str) -> list[tuple]:
    return con.execute("SELECT contact_id, outcome, reason FROM bulk_action_items WHERE bulk_action_id = ? "
                       "ORDER BY contact_id NULLS LAST, reason", [bulk_action_id]).fetchall()


def lifecycle(con, contact_id: str) -> tuple | None:
    return con.execute("SELECT state, deleted_at, restored_at, restored_by FROM contact_lifecycle "
                       "WHERE contact_id = ?", [contact_id]).fetchone()


def linked_counts(con, contact_id: str) -> dict[str, int]:
    return {table: con.execute(f"SELECT count(*) FROM {table} WHERE contact_id = ?", [contact_id]).fetchone()[0]
            for table in LINKED}


def unchanged_part(con) -> dict[str, list[tuple]]:
    return {table: rows for table, rows in store_contents(con).items()
            if table not in RECORD_TABLES and not table.startswith(("restore_", "plan_"))}


def suppressed_hashes(con, home, contact_id: str, email: str, phone: str) -> list[str]:
    hasher = KeyedHasher(home.secret())
    wanted = [hasher.hash("contact_id", contact_id), hasher.hash("email", email), hasher.hash("phone", phone)]
    return [row[0] for row in con.execute("SELECT key_kind FROM suppression WHERE key_hash IN (?, ?, ?) "
                                          "ORDER BY key_kind", wanted).fetchall()]


@pytest.fixture(scope="module")
def deleted_template(tmp_path_factory) -> Home:
    """A home where c-2 was erased under GDPR at CLOCK (so it is on the suppression list), made once per module."""
    home = Home(tmp_path_factory.mktemp("restore") / "home")
    home.init()
    write_snapshot(home.snapshots_inbox / "s1")
    write_request(home, "erase-c2", subjects=[{"contact_id": "c-2"}])
    with Store(home).connect() as connection:
        run = run_deletion(connection, home)
    assert run.action("request erase-c2.json").counts["deleted"] == 1
    return home


@pytest.fixture
def home(tmp_path, deleted_template) -> Home:
    """A copy of the template home (its backups re-pointed at the copy, so a purge never touches the template)."""
    return copy_home(deleted_template, tmp_path / "home")


@pytest.fixture
def deleted(home, con) -> Home:
    return home


@pytest.mark.parametrize("window, after, restorable", [
    (60, 59 * DAY, True),
    (60, 60 * DAY, True),
    (60, 60 * DAY + SECOND, False),
    (60, 61 * DAY, False),
    (7, 7 * DAY, True),
    (7, 7 * DAY + SECOND, False),
    (7, 8 * DAY, False),
], ids=["day-59", "day-60-to-the-second", "day-60-plus-1s", "day-61", "window-7-day-7", "window-7-plus-1s",
        "window-7-day-8"])
def test_a_deleted_contact_is_restorable_until_the_window_ends_inclusive(deleted, con, window, after, restorable):
    settings = Settings(restore_window_days=window)
    as_of = CLOCK + after

    [action] = run_restore(con, deleted, as_of, settings=settings, manual=ManualRestore("u-admin-1", ("c-2",)))

    [(contact_id, outcome, reason)] = items(con, action.bulk_action_id)
    assert contact_id == "c-2"
    shown = show_contact(con, "c-2", restore_window_days=window, hasher=KeyedHasher(deleted.secret()))
    if restorable:
        assert (outcome, reason) == ("restored", None)
        assert lifecycle(con, "c-2") == ("active", CLOCK, as_of, action.bulk_action_id)
        assert shown["state"] == "active" and shown["restored_at"] == as_of.isoformat().replace("+00:00", "Z")
    else:
        until = CLOCK + timedelta(days=window)
        assert outcome == "rejected"
        assert reason == (f"outside the {window}-day restore window: deleted {CLOCK:%Y-%m-%d}, "
                          f"restorable until {until:%Y-%m-%d %H:%M}")
        assert lifecycle(con, "c-2") == ("deleted", CLOCK, None, None)
        assert shown["state"] == "deleted" and shown["restorable_until"] == until.isoformat().replace("+00:00", "Z")
    assert action.counts == {**dict.fromkeys(RESTORE_OUTCOMES, 0), outcome: 1}
    assert con.execute("SELECT kind, status, total, done, rejected FROM bulk_actions WHERE bulk_action_id = ?",
                       [action.bulk_action_id]).fetchone() == (
        "restore", "completed", 1, int(restorable), int(not restorable))


def test_a_restored_contact_gets_its_record_only_and_later_snapshots_keep_its_old_data_out(deleted, con):
    before = linked_counts(con, "c-2")
    assert before == dict.fromkeys(LINKED, 0)
    # bob@example.com is also c-3's, still active: it is not suppressed, or c-3 would vanish from later exports.
    assert suppressed_hashes(con, deleted, "c-2", "bob@example.com", "15551230002") == ["contact_id", "phone"]

    run_restore(con, deleted, CLOCK + 10 * DAY, manual=ManualRestore("u-admin-1", ("c-2",)))

    assert con.execute("SELECT first_name, email FROM contacts WHERE contact_id = 'c-2'").fetchone() == (
        "Bob", "bob@example.com")
    assert linked_counts(con, "c-2") == dict.fromkeys(LINKED, 0)
    # The person leaves the suppression list, so a later snapshot does not skip them.
    assert suppressed_hashes(con, deleted, "c-2", "bob@example.com", "15551230002") == []

    # A later export still carries c-2's old notes, conversations, activities and enrollments, plus new rows.
    later = base_tables()
    later["contacts"][1]["first_name"] = "Robert"
    later["notes"].append(dict(note_id="n-9", contact_id="c-2", body="Came back", created_at="2026-01-20T00:00:00Z"))
    later["list_memberships"].append(dict(list_id="l-2", contact_id="c-2"))
    write_snapshot(deleted.snapshots_inbox / "s2", later)
    [ingested] = ingest_snapshots(con, deleted, as_of=CLOCK + 20 * DAY).ingested

    assert (ingested.skipped_deleted, ingested.skipped_suppressed) == (0, 0)
    assert con.execute("SELECT first_name, snapshot_id FROM contacts WHERE contact_id = 'c-2'").fetchone() == (
        "Robert", "s2")
    assert linked_counts(con, "c-2") == {**dict.fromkeys(LINKED, 0), "notes": 1, "list_memberships": 1}
    assert con.execute("SELECT note_id FROM notes WHERE contact_id = 'c-2'").fetchall() == [("n-9",)]
    assert con.execute("SELECT list_id FROM list_memberships WHERE contact_id = 'c-2'").fetchall() == [("l-2",)]
    # Other contacts' rows are untouched by the tombstones of c-2.
    assert linked_counts(con, "c-1") == {"conversations": 2, "notes": 1, "tasks": 1, "activities": 2,
                                         "campaign_enrollments": 1, "workflow_enrollments": 0, "list_memberships": 2}

    hasher = KeyedHasher(deleted.secret())
    for days in (61, 120):
        result = purge(con, deleted, hasher=hasher, settings=Settings(), as_of=CLOCK + days * DAY)
        assert result.contacts_purged == 0
        assert lifecycle(con, "c-2")[0] == "active"
        assert con.execute("SELECT count(*) FROM contacts WHERE contact_id = 'c-2'").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM purged_contacts").fetchone()[0] == 0
    assert show_contact(con, "c-2", restore_window_days=60, hasher=hasher)["state"] == "active"


@pytest.mark.parametrize("subject", [{"contact_id": "c-2"}, {"phone": "+1 (555) 123-0002"}], ids=["by-id", "by-phone"])
def test_a_restore_request_file_by_an_active_admin_restores_and_is_filed_away(deleted, con, subject):
    write_request(deleted, "restore-c2", kind="restore", regulation="internal", confirm=None, subjects=[subject],
                  received_at="2026-01-05T09:00:00Z")
    as_of = CLOCK + 5 * DAY

    [action] = run_restore(con, deleted, as_of)

    assert action.source == "request restore-c2.json" and action.requested_by == "u-admin-1"
    assert items(con, action.bulk_action_id) == [("c-2", "restored", None)]
    assert lifecycle(con, "c-2") == ("active", CLOCK, as_of, action.bulk_action_id)
    assert con.execute("SELECT status, reason, bulk_action_id FROM requests WHERE request_id = 'restore-c2'"
                       ).fetchone() == ("applied", None, action.bulk_action_id)
    assert con.execute("SELECT count(*) FROM pending_subjects").fetchone()[0] == 0
    assert (deleted.requests_inbox / "processed" / "restore-c2.json").is_file()
    assert [entry["event"] for entry in AuditLog(deleted.audit_file).entries()][-2:] == [
        "bulk_action.restore", "request.applied"]


@pytest.mark.parametrize("requester, refusal", [
    ("u-user-1", "u-user-1 is not an admin (role user)"),
    ("u-admin-2", "u-admin-2 is an inactive admin"),
])
@pytest.mark.parametrize("via", ["request", "manual"])
def test_a_restore_by_anyone_but_an_active_admin_is_refused_and_changes_nothing(deleted, con, requester, refusal,
                                                                                via):
    if via == "request":
        write_request(deleted, "restore-c2", kind="restore", requested_by=requester, confirm=None,
                      subjects=[{"contact_id": "c-2"}])
    manual = ManualRestore(requester, ("c-2",)) if via == "manual" else None
    before = unchanged_part(con)

    [action] = run_restore(con, deleted, CLOCK + 5 * DAY, manual=manual)

    assert unchanged_part(con) == before
    assert lifecycle(con, "c-2") == ("deleted", CLOCK, None, None)
    assert action.rejection.startswith(refusal)
    [(contact_id, outcome, reason)] = items(con, action.bulk_action_id)
    assert (contact_id, outcome) == ("c-2", "rejected") and reason.startswith(refusal)
    assert con.execute("SELECT status, requested_by, requester_authorized, total, rejected FROM bulk_actions "
                       "WHERE bulk_action_id = ?", [action.bulk_action_id]).fetchone() == (
        "rejected", requester, False, 1, 1)
    if via == "request":
        assert con.execute("SELECT status, bulk_action_id FROM requests WHERE request_id = 'restore-c2'"
                           ).fetchone() == ("rejected", action.bulk_action_id)
        assert (deleted.requests_inbox / "processed" / "restore-c2.json").is_file()


def test_running_the_same_restore_again_is_already_done_and_changes_nothing(deleted, con):
    manual = ManualRestore("u-admin-1", ("c-2",))
    run_restore(con, deleted, CLOCK + 5 * DAY, manual=manual)
    before = unchanged_part(con)

    [again] = run_restore(con, deleted, CLOCK + 6 * DAY, manual=manual)

    assert items(con, again.bulk_action_id) == [("c-2", "already_done", "already restored on 2026-01-06")]
    assert unchanged_part(con) == before
    assert lifecycle(con, "c-2")[2] == CLOCK + 5 * DAY


def test_restoring_a_never_deleted_an_unknown_and_a_purged_contact_is_refused_by_name(deleted, con):
    write_request(deleted, "erase-c4", subjects=[{"contact_id": "c-4"}])
    run_deletion(con, deleted, as_of=CLOCK + DAY)
    hasher = KeyedHasher(deleted.secret())
    purged_at = CLOCK + 62 * DAY
    assert purge(con, deleted, hasher=hasher, settings=Settings(), as_of=purged_at).contacts_purged == 2
    before = unchanged_part(con)

    [action] = run_restore(con, deleted, purged_at + DAY,
                           manual=ManualRestore("u-admin-1", ("c-1", "c-404", "c-4", "c-1")))

    assert unchanged_part(con) == before
    assert sorted(items(con, action.bulk_action_id), key=repr) == sorted([
        ("c-1", "rejected", "not deleted: nothing to restore"),
        (None, "not_found", "contact c-404 matches no contact"),
        # A purged contact is not named by its id any more.
        (None, "rejected", "purged on 2026-03-04, past the 60-day window: it cannot be restored"),
    ], key=repr)
    assert action.counts == {"restored": 0, "rejected": 2, "not_found": 1, "already_done": 0, "failed": 0}
    assert con.execute("SELECT total, done, rejected, not_found FROM bulk_actions WHERE bulk_action_id = ?",
                       [action.bulk_action_id]).fetchone() == (3, 0, 2, 1)


def test_a_refused_request_does_not_claim_the_contact_from_a_later_valid_one(deleted, con):
    write_request(deleted, "a-by-user", kind="restore", requested_by="u-user-1", confirm=None,
                  received_at="2026-01-02T09:00:00Z", subjects=[{"contact_id": "c-2"}])
    write_request(deleted, "b-by-admin", kind="restore", confirm=None, received_at="2026-01-03T09:00:00Z",
                  subjects=[{"contact_id": "c-2"}])
    write_request(deleted, "c-by-admin-again", kind="restore", confirm=None, received_at="2026-01-04T09:00:00Z",
                  subjects=[{"contact_id": "c-2"}])

    actions = {action.source: action for action in run_restore(con, deleted, CLOCK + 5 * DAY)}

    assert [outcome for _, outcome, _ in items(con, actions["request a-by-user.json"].bulk_action_id)] == ["rejected"]
    assert items(con, actions["request b-by-admin.json"].bulk_action_id) == [("c-2", "restored", None)]
    assert items(con, actions["request c-by-admin-again.json"].bulk_action_id) == [
        ("c-2", "already_done", "restored in this run by an earlier request")]
    assert lifecycle(con, "c-2")[:3] == ("active", CLOCK, CLOCK + 5 * DAY)
    assert lifecycle(con, "c-2")[3] == actions["request b-by-admin.json"].bulk_action_id


def test_each_restore_bulk_action_counts_add_up(deleted, con):
    write_request(deleted, "erase-c4", regulation="internal", subjects=[{"contact_id": "c-4"}])
    run_deletion(con, deleted, as_of=CLOCK + DAY)
    write_request(deleted, "restore-many", kind="restore", confirm=None, subjects=[
        {"contact_id": "c-2"}, {"contact_id": "c-4"}, {"contact_id": "c-1"}, {"email": "nobody@example.net"}])

    [action] = run_restore(con, deleted, CLOCK + 3 * DAY)

    total, *by_outcome = con.execute(
        "SELECT total, done, rejected, not_found, already_done, failed FROM bulk_actions WHERE bulk_action_id = ?",
        [action.bulk_action_id]).fetchone()
    assert by_outcome == [2, 1, 1, 0, 0]
    assert total == sum(by_outcome) == len(items(con, action.bulk_action_id)) == 4
    assert [row[0] for row in con.execute("SELECT contact_id FROM contact_lifecycle WHERE state = 'active' "
                                          "ORDER BY 1").fetchall()] == ["c-2", "c-4"]
