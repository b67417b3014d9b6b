"""The nine retention invariants: a healthy store passes all; each fault fails its own invariant and no other."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import compliance.store.backup
from compliance import invariants as inv
from compliance.invariants import INVARIANTS, check_invariants
from compliance.settings import Settings
from compliance.store.backup import write_backup
from compliance.store.keys import KeyedHasher
from compliance.store.schema import CONTACT_LINKED
from support.crm import base_tables

UTC = UTC
C4_DELETED_AT = datetime(2025, 12, 20, 12, tzinfo=UTC)
C4_RESTORED_AT = datetime(2025, 12, 25, 12, tzinfo=UTC)
DELETED_AT = datetime(2026, 1, 1, 12, tzinfo=UTC)
CHECK_AT = DELETED_AT + timedelta(days=1)
DEFAULTS = Settings()


def delete(con, home, bulk_action_id: str, contact_ids: list[str], at: datetime) -> None:
    """A correct deletion, as the deletion step leaves it: backup first, then cascade with tombstones."""
    ids = ", ".join(f"('{contact_id}')" for contact_id in contact_ids)
    folder = home.backups_dir / bulk_action_id
    manifest = write_backup(con, folder=folder, bulk_action_id=bulk_action_id,
                            contact_ids_sql=f"SELECT contact_id FROM (VALUES {ids}) AS t(contact_id)",
                            tables=[spec.name for spec in CONTACT_LINKED], formats=("csv", "parquet"),
                            written_at=at - timedelta(minutes=2))
    doomed = f"SELECT contact_id FROM (VALUES {ids}) AS t(contact_id)"
    for spec in CONTACT_LINKED:
        con.execute(f"INSERT INTO tombstones SELECT '{spec.name}', {spec.row_key_sql('t')}, ? FROM {spec.name} t "
                    f"WHERE t.contact_id IN ({doomed})", [bulk_action_id])
        con.execute(f"DELETE FROM {spec.name} WHERE contact_id IN ({doomed})")
    con.execute(f"INSERT INTO contact_lifecycle (contact_id, state, deleted_at, deleted_by) "
                f"SELECT contact_id, 'deleted', ?, ? FROM ({doomed})", [at, bulk_action_id])
    con.execute("INSERT INTO bulk_actions (bulk_action_id, kind, source, requested_by, regulation, "
                "requester_authorized, created_at, applied_at, status, total, done) "
                "VALUES (?, 'delete', 'manual', 'u-admin-1', 'internal', true, ?, ?, 'completed', ?, ?)",
                [bulk_action_id, at, at, len(contact_ids), len(contact_ids)])
    con.execute(f"INSERT INTO bulk_action_items SELECT ?, contact_id, 'deleted', NULL FROM ({doomed})",
                [bulk_action_id])
    con.execute("INSERT INTO backups (bulk_action_id, path, written_at, verified_at, created_as_of, manifest_sha256,"
                " contacts, total_rows) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [bulk_action_id, str(folder), at - timedelta(minutes=2), at - timedelta(minutes=1), at,
                 manifest.manifest_sha256, manifest.contacts, manifest.total_rows])


def restore(con, bulk_action_id: str, contact_id: str, at: datetime) -> None:
    con.execute("UPDATE contact_lifecycle SET state = 'active', restored_at = ?, restored_by = ? "
                "WHERE contact_id = ?", [at, bulk_action_id, contact_id])
    con.execute("INSERT INTO bulk_actions (bulk_action_id, kind, source, requested_by, requester_authorized, "
                "created_at, applied_at, status, total, done) "
                "VALUES (?, 'restore', 'manual', 'u-admin-1', true, ?, ?, 'completed', 1, 1)",
                [bulk_action_id, at, at])
    con.execute("INSERT INTO bulk_action_items VALUES (?, ?, 'restored', NULL)", [bulk_action_id, contact_id])


@pytest.fixture
def store(crm, con):
    """The snapshot s1 ingested; c-2 deleted by ba-1 (inside the window); c-4 deleted by ba-2 and restored by ba-3."""
    home = crm
    delete(con, home, "ba-2", ["c-4"], C4_DELETED_AT)
    restore(con, "ba-3", "c-4", C4_RESTORED_AT)
    delete(con, home, "ba-1", ["c-2"], DELETED_AT)
    return con


def check(con, home, settings: Settings = DEFAULTS, as_of: datetime = CHECK_AT, **kwargs):
    return check_invariants(con, secret=home.secret(), settings=settings, as_of=as_of, **kwargs)


def purge_hash(home, contact_id: str) -> str:
    return KeyedHasher(home.secret()).hash("contact_id", contact_id)


def test_a_healthy_store_passes_all_nine(store, home):
    summary = check(store, home)
    assert [result.name for result in summary.results] == list(INVARIANTS) and len(INVARIANTS) == 9
    assert summary.passed and summary.failed == ()
    for result in summary.results:
        assert result.violations == 0 and result.sample_ids == () and result.description, result
    assert summary.by_name("purge_ran").message == "no deleted contact is past the 60-day restore window"
    assert summary.data_docs_index is None


def corrupt_backup_file(con, home):
    with (home.backups_dir / "ba-1" / "notes.csv").open("a") as handle:
        handle.write("n-99,c-2,tampered,2025-01-01T00:00:00Z\n")


def remove_backup_file(con, home):
    (home.backups_dir / "ba-1" / "contacts.parquet").unlink()


def backup_verified_after_the_delete(con, home):
    con.execute("UPDATE backups SET verified_at = ? WHERE bulk_action_id = 'ba-1'", [DELETED_AT + timedelta(hours=1)])


def note_of_deleted_contact(con, home):
    con.execute("INSERT INTO notes (note_id, contact_id, body, created_at) VALUES ('n-9', 'c-2', 'left', ?)",
                [DELETED_AT])


def note_of_purged_contact(con, home):
    con.execute("INSERT INTO purged_contacts VALUES (?, ?, ?, 'ba-0') ON CONFLICT DO NOTHING",
                [purge_hash(home, "c-9"), DELETED_AT - timedelta(days=90), DELETED_AT])
    con.execute("INSERT INTO notes (note_id, contact_id, body, created_at) VALUES ('n-9', 'c-9', 'left', ?)",
                [DELETED_AT])


def membership_of_deleted_contact(con, home):
    con.execute("INSERT INTO list_memberships (list_id, contact_id) VALUES ('l-2', 'c-2')")


def enrollment_of_purged_contact(con, home):
    con.execute("INSERT INTO purged_contacts VALUES (?, ?, ?, 'ba-0') ON CONFLICT DO NOTHING",
                [purge_hash(home, "c-9"), DELETED_AT - timedelta(days=90), DELETED_AT])
    con.execute("INSERT INTO campaign_enrollments (campaign_id, contact_id, enrolled_at) VALUES ('camp-1', 'c-9', ?)",
                [DELETED_AT])


def restored_contact_got_its_old_note_back(con, home):
    con.execute("INSERT INTO notes (note_id, contact_id, body, created_at) VALUES ('n-3', 'c-4', 'old', ?)",
                [DELETED_AT])


def restored_contact_got_its_old_list_back(con, home):
    con.execute("INSERT INTO list_memberships (list_id, contact_id) VALUES ('l-1', 'c-4')")


def unauthorized_deletion(con, home):
    con.execute("UPDATE bulk_actions SET requester_authorized = false WHERE bulk_action_id = 'ba-1'")


def deletion_outside_the_admins_locations(con, home):
    # c-2 is of loc-a; its deleter is now an admin of loc-b only.
    con.execute("UPDATE staff SET location_ids = ['loc-b'] WHERE user_id = 'u-admin-1'")


def deletion_by_a_non_delete_action(con, home):
    con.execute("UPDATE bulk_actions SET kind = 'purge' WHERE bulk_action_id = 'ba-1'")


def suppressed_person_active_again(con, home):
    con.execute("INSERT INTO suppression VALUES ('email', ?, 'ba-1', ?)",
                [KeyedHasher(home.secret()).hash("email", "bob@example.com"), DELETED_AT])
    con.execute("UPDATE contact_lifecycle SET state = 'active' WHERE contact_id = 'c-2'")


def total_does_not_match_outcomes(con, home):
    con.execute("UPDATE bulk_actions SET total = 2 WHERE bulk_action_id = 'ba-1'")


def items_missing(con, home):
    con.execute("DELETE FROM bulk_action_items WHERE bulk_action_id = 'ba-3'")


FAULTS = [
    (corrupt_backup_file, "deleted_contacts_backed_up", 1, ("c-2",), "ba-1: notes.csv has changed"),
    (remove_backup_file, "deleted_contacts_backed_up", 1, ("c-2",), "ba-1: contacts.parquet is missing"),
    (backup_verified_after_the_delete, "deleted_contacts_backed_up", 1, ("c-2",), "after the deletion"),
    (note_of_deleted_contact, "no_orphaned_associated_data", 1, ("notes:n-9",), "1 in notes"),
    (note_of_purged_contact, "no_orphaned_associated_data", 1, ("notes:n-9",), "1 in notes"),
    (membership_of_deleted_contact, "no_memberships_of_deleted", 1, ("list_memberships:l-2:c-2",),
     "1 in list_memberships"),
    (enrollment_of_purged_contact, "no_memberships_of_deleted", 1, ("campaign_enrollments:camp-1:purged:",),
     "1 in campaign_enrollments"),
    (restored_contact_got_its_old_note_back, "restores_inside_window_without_old_data", 1, ("notes:n-3",),
     "1 notes row removed by a delete came back"),
    (restored_contact_got_its_old_list_back, "restores_inside_window_without_old_data", 1,
     ("list_memberships:l-1:c-4",), "1 list_memberships row removed by a delete came back"),
    (unauthorized_deletion, "deletions_trace_to_admin", 1, ("c-2",), "ba-1: its requester is not an authorized"),
    (deletion_by_a_non_delete_action, "deletions_trace_to_admin", 1, ("c-2",), "ba-1: a purge bulk action"),
    (deletion_outside_the_admins_locations, "deletions_trace_to_admin", 1, ("c-2",),
     "ba-1: its requester u-admin-1 is not an admin of location loc-a (1 contact there)"),
    (suppressed_person_active_again, "suppressed_stay_erased", 2, ("c-2", "c-3"), "keyed hash"),
    (total_does_not_match_outcomes, "bulk_action_counts_add_up", 1, ("ba-1",),
     "ba-1: total 2, outcomes 1, items 1"),
    (items_missing, "bulk_action_counts_add_up", 1, ("ba-3",), "ba-3: total 1, outcomes 1, items 0"),
]


@pytest.mark.parametrize("fault, name, violations, samples, says", FAULTS, ids=[f[0].__name__ for f in FAULTS])
def test_each_fault_fails_its_own_invariant_and_no_other(store, home, fault, name, violations, samples, says):
    fault(store, home)
    summary = check(store, home)
    assert summary.failed == (name,)
    result = summary.by_name(name)
    assert (result.passed, result.violations) == (False, violations)
    assert len(result.sample_ids) == len(samples)
    assert all(got.startswith(want) for got, want in zip(result.sample_ids, samples, strict=True)), result.sample_ids
    assert says in result.message and "\n" not in result.message


@pytest.mark.parametrize("location_ids", [None, [], ["loc-a"], ["loc-b", "loc-a"]])
def test_a_deletion_by_an_admin_of_every_location_or_of_the_contacts_holds(store, home, location_ids):
    store.execute("UPDATE staff SET location_ids = ? WHERE user_id = 'u-admin-1'", [location_ids])
    assert check(store, home).passed


def test_a_purged_contact_is_not_named_in_samples_or_messages(store, home):
    note_of_purged_contact(store, home)
    enrollment_of_purged_contact(store, home)
    for result in check(store, home).results:
        assert "c-9" not in result.message and not any("c-9" in sample for sample in result.sample_ids)


@pytest.mark.parametrize("after, fails", [
    (timedelta(days=59), False),
    (timedelta(days=60), False),
    (timedelta(days=60, seconds=1), True),
    (timedelta(days=61), True),
])
def test_purge_ran_boundary_is_inclusive(store, home, after, fails):
    summary = check(store, home, settings=Settings(backup_retention_days=90), as_of=DELETED_AT + after)
    assert summary.failed == (("purge_ran",) if fails else ())
    if fails:
        result = summary.by_name("purge_ran")
        assert result.sample_ids == ("c-2",)
        assert result.message == ("1 deleted contact past the 60-day restore window is still in the store (c-2)")


@pytest.mark.parametrize("after, fails", [(timedelta(days=60), False), (timedelta(days=61), True)])
def test_a_restore_after_the_window_fails(store, home, after, fails):
    store.execute("UPDATE contact_lifecycle SET restored_at = ? WHERE contact_id = 'c-4'", [C4_DELETED_AT + after])
    summary = check(store, home)
    assert summary.failed == (("restores_inside_window_without_old_data",) if fails else ())
    if fails:
        result = summary.by_name("restores_inside_window_without_old_data")
        assert result.sample_ids == ("c-4",) and "1 restored after the 60-day window" in result.message


@pytest.mark.parametrize("retention, after, samples", [
    (30, timedelta(days=31), ("ba-1", "ba-2")),
    (42, timedelta(days=30), ()),
    (42, timedelta(days=30, seconds=1), ("ba-2",)),
])
def test_backups_past_their_retention(store, home, retention, after, samples):
    summary = check(store, home, settings=Settings(backup_retention_days=retention), as_of=DELETED_AT + after)
    assert summary.failed == (("backups_within_retention",) if samples else ())
    result = summary.by_name("backups_within_retention")
    assert result.sample_ids == samples and result.violations == len(samples)
    if samples:
        assert f"older than the {retention}-day retention" in result.message


def test_an_expired_backup_is_not_judged_by_age(store, home):
    store.execute("UPDATE backups SET expired_at = ? WHERE bulk_action_id = 'ba-2'", [DELETED_AT])
    summary = check(store, home, settings=Settings(backup_retention_days=40), as_of=DELETED_AT + timedelta(days=35))
    assert summary.passed


def test_retained_associated_data_of_a_deleted_contact_is_allowed(store, home):
    note_of_deleted_contact(store, home)
    retain_notes = Settings(cascade={"notes": "retain"})
    assert check(store, home, settings=retain_notes).passed
    assert check(store, home).failed == ("no_orphaned_associated_data",)


def all_faults(con, home):
    corrupt_backup_file(con, home)
    note_of_deleted_contact(con, home)
    membership_of_deleted_contact(con, home)
    restored_contact_got_its_old_note_back(con, home)
    unauthorized_deletion(con, home)
    con.execute("INSERT INTO suppression VALUES ('email', ?, 'ba-1', ?), ('phone', ?, 'ba-1', ?)",
                [KeyedHasher(home.secret()).hash("email", "bob@example.com"), DELETED_AT,
                 KeyedHasher(home.secret()).hash("phone", "15551230001"), DELETED_AT])
    items_missing(con, home)


def personal_values(con) -> set[str]:
    values = set()
    for row in base_tables()["contacts"]:
        values |= {row["email"].strip().lower(), row["phone"]}
    for row in con.execute("SELECT email, phone, email_key, phone_key FROM contacts").fetchall():
        values |= {str(value).strip().lower() for value in row if value}
    return {value for value in values if value}


def test_every_invariant_can_fail_at_once_and_names_no_email_or_phone(store, home, tmp_path):
    all_faults(store, home)
    summary = check(store, home, as_of=DELETED_AT + timedelta(days=61), docs_dir=tmp_path / "docs")
    assert summary.failed == INVARIANTS and not summary.passed
    personal = personal_values(store)
    assert "bob@example.com" in personal and "15551230001" in personal
    for result in summary.results:
        text = (result.message + " " + " ".join(result.sample_ids)).lower()
        assert not [value for value in personal if value in text], result
        assert len(result.sample_ids) <= inv.MAX_SAMPLES
    assert summary.by_name("suppressed_stay_erased").sample_ids == ("c-1", "c-3")
    for path in (tmp_path / "docs").rglob("*.html"):
        html = path.read_text().lower()
        assert not [value for value in personal if value in html], path


def test_data_docs_index_is_written_when_asked(store, home, tmp_path):
    docs = tmp_path / "docs"
    summary = check(store, home, docs_dir=docs)
    assert summary.passed
    assert summary.data_docs_index == docs / "index.html" and summary.data_docs_index.is_file()
    assert "retention_invariants" in summary.data_docs_index.read_text()
    assert list((docs / "validations").rglob("*.html"))


def test_gx_writes_nothing_to_stderr_and_calls_no_network(store, home, tmp_path, capfd, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network call attempted: {args!r}")

    check(store, home)
    capfd.readouterr()
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    total_does_not_match_outcomes(store, home)
    summary = check(store, home, docs_dir=tmp_path / "docs")
    assert summary.failed == ("bulk_action_counts_add_up",)
    assert capfd.readouterr().err == ""


def test_only_checks_the_named_invariants(store, home):
    total_does_not_match_outcomes(store, home)
    summary = check(store, home, only=["purge_ran", "bulk_action_counts_add_up"])
    assert [r.name for r in summary.results] == ["purge_ran", "bulk_action_counts_add_up"]
    assert summary.failed == ("bulk_action_counts_add_up",)
    with pytest.raises(KeyError, match="purge_ran"):
        summary.by_name("suppressed_stay_erased")
    with pytest.raises(ValueError, match="unknown invariant 'purged'.*purge_ran"):
        check(store, home, only=["purged"])


def test_each_backup_is_verified_once_however_many_contacts_it_holds(store, home, monkeypatch):
    calls: list[Path] = []
    real = compliance.store.backup.verify_backup

    def counting(folder, manifest_sha256=None):
        calls.append(Path(folder))
        return real(folder, manifest_sha256)

    monkeypatch.setattr(compliance.store.backup, "verify_backup", counting)
    store.execute("INSERT INTO contact_lifecycle (contact_id, state, deleted_at, deleted_by) "
                  "SELECT 'c-' || i, 'deleted', ?, 'ba-1' FROM range(10, 30) AS r(i)", [DELETED_AT])
    result = check(store, home, only=["deleted_contacts_backed_up"]).by_name("deleted_contacts_backed_up")
    assert result.passed and calls == [home.backups_dir / "ba-1"]
    corrupt_backup_file(store, home)
    result = check(store, home, only=["deleted_contacts_backed_up"]).by_name("deleted_contacts_backed_up")
    assert result.violations == 21 and len(result.sample_ids) == 10 and result.message.endswith(", …)")


def test_the_real_purge_leaves_every_invariant_holding(store, home):
    from compliance.purge import purge

    as_of = DELETED_AT + timedelta(days=61)
    assert check(store, home, as_of=as_of).failed == ("purge_ran", "backups_within_retention")
    purge(store, home, hasher=KeyedHasher(home.secret()), settings=DEFAULTS, as_of=as_of)
    summary = check(store, home, as_of=as_of)
    assert summary.passed, [result.message for result in summary.results if not result.passed]
