"""Purge in compliance/ (R2, section 2): the window boundary, what goes and what stays, backup expiry, compaction."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from compliance.clock import parse_as_of
from compliance.contacts import show_contact
from compliance.home import Home
from compliance.purge import PURGED_LABEL_PREFIX, compact_store, forget_plans, purge
from compliance.settings import Cascade, Settings
from compliance.snapshots.ingest import ingest_snapshots
from compliance.store.connection import Store, schema_version
from compliance.store.keys import KeyedHasher
from support.crm import AS_OF, copy_home, run_deletion, store_contents, write_request, write_snapshot

CLOCK = parse_as_of(AS_OF)
DAY, SECOND = timedelta(days=1), timedelta(seconds=1)
RETAIN_ALL = Cascade(conversations="retain", notes="retain", tasks="retain", activities="retain")


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Home:
    """A home where c-4 (cy@example.org) was erased under GDPR at CLOCK with every cascade `retain`."""
    home = Home(tmp_path_factory.mktemp("purge") / "home")
    home.init()
    write_snapshot(home.snapshots_inbox / "s1")
    write_request(home, "erase-c4", subjects=[{"contact_id": "c-4"}])
    with Store(home).connect() as connection:
        run = run_deletion(connection, home, settings=Settings(cascade=RETAIN_ALL))
    assert run.action("request erase-c4.json").counts["deleted"] == 1
    return home


@pytest.fixture
def home(tmp_path, template) -> Home:
    """A copy of the template home (a purge in it never touches the template's backups)."""
    return copy_home(template, tmp_path / "home")


def hasher_of(home: Home) -> KeyedHasher:
    return KeyedHasher(home.secret())


def run_purge(con, home: Home, as_of: datetime, settings: Settings | None = None):
    return purge(con, home, hasher=hasher_of(home), settings=settings or Settings(cascade=RETAIN_ALL), as_of=as_of)


def label(home: Home, contact_id: str) -> str:
    return PURGED_LABEL_PREFIX + hasher_of(home).hash("contact_id", contact_id)[:16]


def state(con, contact_id: str) -> str | None:
    row = con.execute("SELECT state FROM contact_lifecycle WHERE contact_id = ?", [contact_id]).fetchone()
    return row[0] if row else None


def tables_naming(con, text: str) -> dict[str, int]:
    """Per store table, the rows where some text column holds the text (exactly, or inside a longer value)."""
    found = {}
    for (table,) in con.execute("SELECT DISTINCT table_name FROM information_schema.columns WHERE table_schema = "
                                "'main' AND table_catalog = current_database()").fetchall():
        columns = [name for name, kind in con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? AND table_schema = "
            "'main' AND table_catalog = current_database()", [table]).fetchall() if kind in ("VARCHAR", "JSON")]
        if not columns:
            continue
        where = " OR ".join(f"CAST({column} AS VARCHAR) SIMILAR TO ?" for column in columns)
        pattern = f"(.*[^A-Za-z0-9-])?{text}([^A-Za-z0-9-].*)?"
        count = con.execute(f"SELECT count(*) FROM {table} WHERE {where}", [pattern] * len(columns)).fetchone()[0]
        if count:
            found[table] = count
    return found


@pytest.mark.parametrize("window, after, purged", [
    (60, 59 * DAY, False),
    (60, 60 * DAY, False),
    (60, 60 * DAY + SECOND, True),
    (60, 61 * DAY, True),
    (7, 7 * DAY, False),
    (7, 7 * DAY + SECOND, True),
], ids=["day-59", "day-60-to-the-second", "day-60-plus-1s", "day-61", "window-7-day-7", "window-7-plus-1s"])
def test_the_purge_takes_a_contact_only_once_its_window_has_passed(home, con, window, after, purged):
    result = run_purge(con, home, CLOCK + after, Settings(restore_window_days=window, cascade=RETAIN_ALL))

    assert result.contacts_purged == int(purged)
    assert (result.bulk_action_id is not None) == purged
    assert state(con, "c-4") == (None if purged else "deleted")
    assert con.execute("SELECT count(*) FROM contacts WHERE contact_id = 'c-4'").fetchone()[0] == int(not purged)
    shown = show_contact(con, "c-4", restore_window_days=window, hasher=hasher_of(home))
    assert shown["state"] == ("purged" if purged else "deleted")


def test_the_purge_removes_record_lifecycle_and_retained_data_and_keeps_only_a_keyed_hash(home, con):
    hasher = hasher_of(home)
    [delete_action] = [row[0] for row in con.execute("SELECT bulk_action_id FROM bulk_actions").fetchall()]
    # cascade: retain kept c-4's note; the delete removed its list membership.
    assert con.execute("SELECT note_id FROM notes WHERE contact_id = 'c-4'").fetchall() == [("n-3",)]
    others = {table: rows for table, rows in store_contents(con).items()
              if table in ("conversations", "notes", "tasks", "activities", "list_memberships")}
    as_of = CLOCK + 61 * DAY

    result = run_purge(con, home, as_of)

    assert (result.contacts_purged, result.rows_purged) == (1, 1)
    assert con.execute("SELECT count(*) FROM contacts WHERE contact_id = 'c-4'").fetchone()[0] == 0
    assert state(con, "c-4") is None
    assert con.execute("SELECT count(*) FROM notes WHERE contact_id = 'c-4'").fetchone()[0] == 0
    assert {table: [row for row in rows if "c-4" not in row] for table, rows in others.items()} == {
        table: rows for table, rows in store_contents(con).items() if table in others}
    assert con.execute("SELECT * FROM purged_contacts").fetchall() == [
        (hasher.hash("contact_id", "c-4"), CLOCK, as_of, result.bulk_action_id)]
    # Earlier bulk actions name the contact by its hash only.
    assert con.execute("SELECT contact_id, outcome FROM bulk_action_items WHERE bulk_action_id = ?",
                       [delete_action]).fetchall() == [(label(home, "c-4"), "deleted")]
    assert con.execute("SELECT kind, source, requested_by, status, total, done, blocked, rejected, not_found, "
                       "already_done, failed FROM bulk_actions WHERE bulk_action_id = ?",
                       [result.bulk_action_id]).fetchone() == (
        "purge", "restore window", "system", "completed", 1, 1, 0, 0, 0, 0, 0)
    assert con.execute("SELECT contact_id, outcome, reason FROM bulk_action_items WHERE bulk_action_id = ?",
                       [result.bulk_action_id]).fetchall() == [
        (label(home, "c-4"), "purged", "past the 60-day restore window (deleted 2026-01-01)")]
    # The membership's tombstone stays, naming the contact by its hash; no table keeps the raw id.
    assert con.execute("SELECT row_key FROM tombstones WHERE table_name = 'list_memberships'").fetchall() == [
        ("l-1:" + label(home, "c-4"),)]
    forget_plans(con)
    assert tables_naming(con, "c-4") == {}


def test_membership_tombstones_are_relabelled_exactly_when_contact_ids_hold_colons(home, con):
    # Ids that share a last ':'-part with the purged one, or end like it without the ':', are another contact's.
    con.execute("INSERT INTO contact_lifecycle (contact_id, state, deleted_at) VALUES ('team:7', 'deleted', ?)",
                [CLOCK])
    con.execute("INSERT INTO tombstones VALUES ('list_memberships', 'l-1:team:7', 'b'), "
                "('list_memberships', 'l-1:7', 'b'), ('campaign_enrollments', 'k-1:x-team:7', 'b'), "
                "('list_memberships', 'l-2:other:7', 'b'), ('notes', 'team:7', 'b')")

    run_purge(con, home, CLOCK + 61 * DAY)

    assert sorted(con.execute("SELECT table_name, row_key FROM tombstones WHERE bulk_action_id = 'b'").fetchall()) == [
        ("campaign_enrollments", "k-1:x-team:7"), ("list_memberships", "l-1:7"),
        ("list_memberships", "l-1:" + label(home, "team:7")), ("list_memberships", "l-2:other:7"),
        ("notes", "team:7")]


def test_one_purge_bulk_action_takes_every_contact_due_and_a_second_purge_changes_nothing(home, con):
    write_request(home, "erase-c2", regulation="internal", subjects=[{"contact_id": "c-2"}])
    run_deletion(con, home, as_of=CLOCK + 2 * DAY, settings=Settings(cascade=RETAIN_ALL))
    assert run_purge(con, home, CLOCK + 61 * DAY).contacts_purged == 1

    result = run_purge(con, home, CLOCK + 63 * DAY)

    assert result.contacts_purged == 1
    assert con.execute("SELECT total, done FROM bulk_actions WHERE kind = 'purge' ORDER BY created_at"
                       ).fetchall() == [(1, 1), (1, 1)]
    both = run_purge(con, home, CLOCK + 200 * DAY)
    assert both.bulk_action_id is None and both.contacts_purged == 0
    before = store_contents(con)

    again = run_purge(con, home, CLOCK + 300 * DAY)

    assert (again.bulk_action_id, again.contacts_purged, again.rows_purged, again.backups_expired) == (None, 0, 0, [])
    assert store_contents(con) == before


def test_several_contacts_due_at_once_make_one_purge_bulk_action_whose_counts_add_up(home, con):
    write_request(home, "erase-more", regulation="internal", subjects=[{"contact_id": "c-2"}, {"contact_id": "c-3"}])
    run_deletion(con, home, as_of=CLOCK + DAY, settings=Settings(cascade=RETAIN_ALL, active_enrollment="remove"))

    result = run_purge(con, home, CLOCK + 70 * DAY)

    assert result.contacts_purged == 3
    total, done, *others = con.execute("SELECT total, done, blocked, rejected, not_found, already_done, failed "
                                       "FROM bulk_actions WHERE kind = 'purge'").fetchone()
    assert total == done + sum(others) == 3
    assert sorted(row[0] for row in con.execute("SELECT contact_id FROM bulk_action_items WHERE bulk_action_id = ?",
                                                [result.bulk_action_id]).fetchall()) == sorted(
        label(home, contact_id) for contact_id in ("c-2", "c-3", "c-4"))
    assert con.execute("SELECT contact_id FROM contacts ORDER BY 1").fetchall() == [("c-1",)]


@pytest.mark.parametrize("retention_days", [30, 90])
def test_backups_older_than_the_retention_are_removed_and_marked_expired_younger_ones_stay(home, con,
                                                                                          retention_days):
    write_request(home, "erase-c2", regulation="internal", subjects=[{"contact_id": "c-2"}])
    run_deletion(con, home, as_of=CLOCK + 20 * DAY, settings=Settings(cascade=RETAIN_ALL))
    settings = Settings(backup_retention_days=retention_days, cascade=RETAIN_ALL)
    (old_id, old_path), (young_id, young_path) = con.execute(
        "SELECT bulk_action_id, path FROM backups ORDER BY created_as_of").fetchall()
    assert (old_path, young_path) == (f"backups/{old_id}", f"backups/{young_id}")

    on_the_day = run_purge(con, home, CLOCK + retention_days * DAY, settings)
    assert on_the_day.backups_expired == []

    expiry = CLOCK + retention_days * DAY + SECOND
    result = run_purge(con, home, expiry, settings)

    assert result.backups_expired == [old_id]
    assert not (home.backups_dir / old_id).exists()
    assert (home.backups_dir / young_id / "contacts.csv").is_file()
    assert con.execute("SELECT bulk_action_id, expired_at FROM backups ORDER BY created_as_of").fetchall() == [
        (old_id, expiry), (young_id, None)]
    # The backup's life and the contact's are set apart: c-4 is purged after 60 days whatever the retention.
    assert state(con, "c-4") == ("deleted" if retention_days < 60 else None)

    later = run_purge(con, home, CLOCK + (20 + retention_days) * DAY + SECOND, settings)

    assert later.backups_expired == [young_id]
    assert not any(home.backups_dir.iterdir())


def test_a_backup_removed_by_a_run_that_crashed_is_finished_by_the_next_purge(home, con):
    [(backup_id, path)] = con.execute("SELECT bulk_action_id, path FROM backups").fetchall()
    con.execute("UPDATE backups SET expired_at = ?", [CLOCK + 61 * DAY])

    run_purge(con, home, CLOCK + 2 * DAY)

    assert not (home.backups_dir / backup_id).exists()


def test_the_suppression_of_a_legal_erasure_outlives_the_purge(home, con):
    hasher = hasher_of(home)
    suppressed = sorted(con.execute("SELECT key_kind, key_hash FROM suppression").fetchall())
    assert suppressed == sorted([("contact_id", hasher.hash("contact_id", "c-4")),
                                 ("email", hasher.hash("email", "cy@example.org")),
                                 ("phone", hasher.hash("phone", "442079460004"))])

    run_purge(con, home, CLOCK + 61 * DAY)

    assert sorted(con.execute("SELECT key_kind, key_hash FROM suppression").fetchall()) == suppressed
    write_snapshot(home.snapshots_inbox / "s2")
    [ingested] = ingest_snapshots(con, home, as_of=CLOCK + 62 * DAY).ingested
    assert ingested.skipped_suppressed == 1
    assert con.execute("SELECT count(*) FROM contacts WHERE contact_id = 'c-4'").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM notes WHERE contact_id = 'c-4'").fetchone()[0] == 0


def test_show_says_purged_with_both_dates_and_unknown_for_an_id_never_seen(home, con):
    as_of = CLOCK + 61 * DAY
    run_purge(con, home, as_of)
    hasher = hasher_of(home)

    shown = show_contact(con, "c-4", restore_window_days=60, hasher=hasher)
    never = show_contact(con, "c-404", restore_window_days=60, hasher=hasher)

    assert (shown["state"], shown["deleted_at"], shown["purged_at"]) == (
        "purged", "2026-01-01T12:00:00Z", "2026-03-03T12:00:00Z")
    assert shown["associated"] == {"conversations": 0, "notes": 0, "tasks": 0, "activities": 0}
    assert (never["state"], never["deleted_at"], never["purged_at"], never["restored_at"]) == (
        "unknown", None, None, None)


def test_compaction_rewrites_the_store_so_the_purged_rows_leave_the_file(home, con):
    run_purge(con, home, CLOCK + 61 * DAY)
    forget_plans(con)
    tables = {table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
              for (table,) in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                                          "'main' AND table_catalog = current_database()").fetchall()}
    keys = con.execute("SELECT table_name, constraint_type, constraint_column_names FROM duckdb_constraints() "
                       "WHERE constraint_type IN ('PRIMARY KEY', 'UNIQUE') ORDER BY ALL").fetchall()
    version = schema_version(con)
    contents = store_contents(con)
    con.close()
    needle = b"cy@example.org"
    leaked_before = needle in home.store_file.read_bytes()

    size = compact_store(Store(home))

    data = home.store_file.read_bytes()
    assert size == len(data)
    assert needle not in data and b"442079460004" not in data
    assert not home.store_file.with_name(home.store_file.name + ".wal").exists()
    assert not home.store_file.with_name(home.store_file.name + ".compact").exists()
    assert home.store_file.stat().st_mode & 0o777 == 0o600
    with Store(home).connect() as reopened:
        assert schema_version(reopened) == version
        assert {table: reopened.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables} == tables
        assert reopened.execute("SELECT table_name, constraint_type, constraint_column_names FROM "
                                "duckdb_constraints() WHERE constraint_type IN ('PRIMARY KEY', 'UNIQUE') "
                                "ORDER BY ALL").fetchall() == keys
        assert store_contents(reopened) == contents
    if not leaked_before:
        pytest.skip("DuckDB left no copy of the purged email in the uncompacted file this time, so this run cannot "
                    "show that compaction is what removes it (everything else above was checked)")


def test_a_purged_contact_in_a_later_snapshot_stays_gone(home, con):
    write_request(home, "erase-c2", regulation="internal", subjects=[{"contact_id": "c-2"}])
    run_deletion(con, home, settings=Settings(cascade=RETAIN_ALL))
    run_purge(con, home, CLOCK + 61 * DAY)
    write_snapshot(home.snapshots_inbox / "s2")

    ingest_snapshots(con, home, as_of=CLOCK + 62 * DAY)

    assert con.execute("SELECT count(*) FROM contacts WHERE contact_id = 'c-2'").fetchone()[0] == 0


def test_by_default_a_backup_is_kept_while_its_contact_can_still_be_restored(home, con):
    settings = Settings(restore_window_days=90, cascade=RETAIN_ALL)

    result = run_purge(con, home, CLOCK + 61 * DAY, settings)

    assert state(con, "c-4") == "deleted"
    assert result.backups_expired == []
