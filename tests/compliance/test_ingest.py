"""Snapshot ingest: types, extras, replacement, idempotence, bad input, deleted, suppressed and tombstoned rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from compliance.clock import parse_as_of
from compliance.errors import InputError
from compliance.home import Home
from compliance.snapshots.ingest import ingest_snapshots
from compliance.store.connection import Store
from compliance.store.keys import KeyedHasher
from compliance.store.schema import CONTACT_LINKED, TABLES
from support.crm import AS_OF, base_tables, store_contents, write_snapshot

CLOCK = parse_as_of(AS_OF)
UTC = UTC


def ingest(con, home):
    return ingest_snapshots(con, home, as_of=CLOCK)


def without_contact(tables: dict[str, list[dict]], contact_id: str) -> dict[str, list[dict]]:
    return {name: [row for row in rows if row.get("contact_id") != contact_id] for name, rows in tables.items()}


def linked_rows(con, contact_id: str) -> dict[str, int]:
    return {spec.name: con.execute(f"SELECT count(*) FROM {spec.name} WHERE contact_id = ?", [contact_id]).fetchone()[0]
            for spec in CONTACT_LINKED}


def contact_ids(con) -> list[str]:
    return [row[0] for row in con.execute("SELECT contact_id FROM contacts ORDER BY contact_id").fetchall()]


def test_loads_every_table_with_its_row_count(home, con):
    write_snapshot(home.snapshots_inbox / "s1")

    result = ingest(con, home)

    expected = {name: len(rows) for name, rows in base_tables().items()}
    assert [s.snapshot_id for s in result.ingested] == ["s1"]
    assert result.ingested[0].row_counts == expected
    assert {spec.name: con.execute(f"SELECT count(*) FROM {spec.name}").fetchone()[0] for spec in TABLES} == expected
    assert con.execute("SELECT snapshot_id, row_counts FROM snapshots").fetchall() == [("s1", json.dumps(expected))]


def test_coerces_types_and_derives_match_keys(home, con):
    tables = base_tables()
    tables["contacts"][0]["updated_at"] = "2025-06-01T02:00:00+02:00"
    tables["contacts"][1]["updated_at"] = "2025-06-01 00:00:00"
    tables["campaigns"][0]["status"] = " Active "
    write_snapshot(home.snapshots_inbox / "s1", tables)

    ingest(con, home)

    types = {row[0]: row[1] for row in con.execute("DESCRIBE contacts").fetchall()}
    assert types["created_at"] == types["updated_at"] == types["last_activity_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["tags"] == "VARCHAR[]" and types["dnd"] == "BOOLEAN"
    cursor = con.execute("SELECT contact_id, tags, dnd, created_at, updated_at, last_activity_at, email_key, "
                         "phone_key FROM contacts")
    names = [column[0] for column in cursor.description]
    rows = {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}
    assert rows["c-1"] == dict(
        contact_id="c-1", tags=["Lead", "VIP"], dnd=False, created_at=datetime(2024, 1, 1, tzinfo=UTC),
        updated_at=datetime(2025, 6, 1, tzinfo=UTC), last_activity_at=datetime(2025, 12, 1, tzinfo=UTC),
        email_key="ann.lee@example.com", phone_key="15551230001")
    assert rows["c-2"]["updated_at"] == datetime(2025, 6, 1, tzinfo=UTC)
    assert rows["c-3"]["tags"] == [] and rows["c-3"]["dnd"] is True and rows["c-3"]["last_activity_at"] is None
    assert rows["c-3"]["email_key"] == "bob@example.com" and rows["c-3"]["phone_key"] is None
    assert rows["c-4"]["tags"] == ["unsubscribed", "Newsletter"]
    assert rows["c-4"]["phone_key"] == "442079460004"
    assert dict(con.execute("SELECT user_id, active FROM staff").fetchall()) == {
        "u-admin-1": True, "u-admin-2": False, "u-user-1": True}
    assert con.execute("SELECT status FROM campaigns WHERE campaign_id = 'camp-1'").fetchone()[0] == "active"


def test_keeps_extra_columns_as_json(home, con):
    write_snapshot(home.snapshots_inbox / "s1")

    ingest(con, home)

    extras = {row[0]: json.loads(row[1]) for row in con.execute("SELECT contact_id, extra FROM contacts").fetchall()}
    assert extras == {"c-1": {"source": "web"}, "c-2": {"source": "import"}, "c-3": {"source": "import"},
                      "c-4": {"source": "web"}}
    assert con.execute("SELECT count(*) FROM notes WHERE extra IS NOT NULL").fetchone()[0] == 0


def test_the_same_snapshot_twice_changes_nothing(home, con):
    write_snapshot(home.snapshots_inbox / "s1")
    ingest(con, home)
    before = store_contents(con)

    again = ingest(con, home)

    assert again.ingested == [] and again.already_ingested == ["s1"] and again.changed_after_ingest == []
    assert store_contents(con) == before


def test_a_later_snapshot_replaces_the_earlier_state(home, con):
    write_snapshot(home.snapshots_inbox / "s1")
    ingest(con, home)
    tables = without_contact(base_tables(), "c-4")
    tables["contacts"][0]["first_name"] = "Anne"
    write_snapshot(home.snapshots_inbox / "s2", tables)

    result = ingest(con, home)

    assert [s.snapshot_id for s in result.ingested] == ["s2"] and result.already_ingested == ["s1"]
    assert contact_ids(con) == ["c-1", "c-2", "c-3"]
    assert con.execute("SELECT first_name FROM contacts WHERE contact_id = 'c-1'").fetchone()[0] == "Anne"
    assert sum(linked_rows(con, "c-4").values()) == 0
    for spec in TABLES:
        assert con.execute(f"SELECT DISTINCT snapshot_id FROM {spec.name}").fetchall() == [("s2",)], spec.name


def test_contacts_and_their_rows_are_stored_in_contact_id_order_whatever_the_exports_order(home, con):
    tables = base_tables()
    # An export listing the rows the other way round from contact_id, as a CRM may list them.
    for spec in (TABLES[0],) + CONTACT_LINKED:
        tables[spec.name].sort(key=lambda row: row["contact_id"], reverse=True)
    write_snapshot(home.snapshots_inbox / "s1", tables)

    ingest(con, home)

    stored = {spec.name: [row[0] for row in con.execute(f"SELECT contact_id FROM {spec.name} ORDER BY rowid")
                          .fetchall()] for spec in (TABLES[0],) + CONTACT_LINKED}
    assert {name: ids for name, ids in stored.items() if ids != sorted(ids)} == {}
    # The export's order was not already the stored one: most tables hold rows of several contacts.
    assert sum(len(set(ids)) > 1 for ids in stored.values()) >= 4


def test_snapshots_are_processed_in_name_order(home, con):
    tables = without_contact(base_tables(), "c-4")
    tables["contacts"][0]["first_name"] = "Anne"
    write_snapshot(home.snapshots_inbox / "2026-01-02", tables)
    write_snapshot(home.snapshots_inbox / "2026-01-01")

    result = ingest(con, home)

    assert [s.snapshot_id for s in result.ingested] == ["2026-01-01", "2026-01-02"]
    assert contact_ids(con) == ["c-1", "c-2", "c-3"]
    assert con.execute("SELECT first_name FROM contacts WHERE contact_id = 'c-1'").fetchone()[0] == "Anne"


def _drop_notes_file(folder: Path) -> None:
    (folder / "notes.csv").unlink()


def _add_parquet_twin(folder: Path) -> None:
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT * FROM read_csv('{folder / 'lists.csv'}', all_varchar = true)) "
                    f"TO '{folder / 'lists.parquet'}' (FORMAT parquet)")


def _set(table: str, index: int, column: str, value: str):
    def change(tables):
        tables[table][index][column] = value
    return change


def _drop_column(table: str, column: str):
    def change(tables):
        for row in tables[table]:
            del row[column]
    return change


def _duplicate(table: str, index: int):
    def change(tables):
        tables[table].append(dict(tables[table][index]))
    return change


BAD_SNAPSHOTS = {
    "missing table file": (None, _drop_notes_file, ["snapshot s2", "notes", "notes.csv"]),
    "missing required column": (_drop_column("conversations", "channel"), None,
                                ["snapshot s2", "conversations", "channel"]),
    "bad timestamp": (_set("notes", 1, "created_at", "yesterday"), None,
                      ["snapshot s2", "notes", "row 2", "created_at", "yesterday"]),
    "bad boolean": (_set("contacts", 2, "dnd", "maybe"), None, ["snapshot s2", "contacts", "row 3", "dnd", "maybe"]),
    "duplicate key": (_duplicate("tasks", 0), None, ["snapshot s2", "tasks", "task_id", "t-1"]),
    "empty key": (_set("contacts", 1, "contact_id", ""), None, ["snapshot s2", "contacts", "row 2", "contact_id"]),
    "bad status value": (_set("workflows", 1, "status", "archived"), None,
                         ["snapshot s2", "workflows", "row 2", "status", "archived", "published", "draft"]),
    "both csv and parquet": (None, _add_parquet_twin, ["snapshot s2", "lists", ".csv", ".parquet"]),
}


@pytest.mark.parametrize("case", list(BAD_SNAPSHOTS))
def test_a_bad_snapshot_changes_nothing_and_says_where(home, con, case):
    change_tables, change_folder, fragments = BAD_SNAPSHOTS[case]
    write_snapshot(home.snapshots_inbox / "s1")
    ingest(con, home)
    before = store_contents(con)
    tables = without_contact(base_tables(), "c-4")
    if change_tables:
        change_tables(tables)
    folder = write_snapshot(home.snapshots_inbox / "s2", tables)
    if change_folder:
        change_folder(folder)

    with pytest.raises(InputError) as raised:
        ingest(con, home)

    message = str(raised.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert store_contents(con) == before


def test_a_bad_second_pending_snapshot_stops_the_first_too(home, con):
    before = store_contents(con)
    write_snapshot(home.snapshots_inbox / "s1")
    tables = base_tables()
    tables["activities"][3]["occurred_at"] = "31/12/2025"
    write_snapshot(home.snapshots_inbox / "s2", tables)

    with pytest.raises(InputError, match="snapshot s2: table activities: row 4: column occurred_at"):
        ingest(con, home)

    assert store_contents(con) == before
    assert con.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 0


def _native_parquet_types(folder: Path) -> None:
    """Rewrite contacts.parquet with a real list of tags, booleans and timestamps, as a CRM's Parquet export has."""
    path, typed = folder / "contacts.parquet", folder / "typed.parquet"
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"COPY (SELECT * REPLACE (coalesce(string_split(tags, ','), []) AS tags,"
                    f" CAST(dnd AS BOOLEAN) AS dnd, CAST(created_at AS TIMESTAMPTZ) AS created_at,"
                    f" CAST(updated_at AS TIMESTAMP) AS updated_at)"
                    f" FROM read_parquet('{path}')) TO '{typed}' (FORMAT parquet)")
        assert dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '{typed}')"
                                ).fetchall())["tags"] == "VARCHAR[]"
    typed.replace(path)


def test_csv_and_parquet_snapshots_give_the_same_store(tmp_path):
    contents = {}
    for fmt in ("csv", "parquet", "typed-parquet"):
        home = Home(tmp_path / fmt)
        home.init()
        folder = write_snapshot(home.snapshots_inbox / f"s-{fmt}", fmt="csv" if fmt == "csv" else "parquet")
        if fmt == "typed-parquet":
            _native_parquet_types(folder)
        with Store(home).connect() as con:
            result = ingest(con, home)
            assert result.ingested[0].row_counts["contacts"] == 4
            contents[fmt] = store_contents(con, exclude_columns=("snapshot_id", "content_hash"))
    assert list((tmp_path / "parquet" / "inbox" / "snapshots" / "s-parquet").glob("*.csv")) == []
    assert contents["csv"]["contacts"][0][0] == "c-1"
    assert contents["csv"] == contents["parquet"] == contents["typed-parquet"]


def test_a_snapshot_folder_name_with_a_quote_is_loaded(home, con):
    write_snapshot(home.snapshots_inbox / "bob's export")

    result = ingest(con, home)

    assert [s.snapshot_id for s in result.ingested] == ["bob's export"]
    assert con.execute("SELECT DISTINCT snapshot_id FROM contacts").fetchall() == [("bob's export",)]


def test_a_snapshot_changed_after_ingest_is_reported_not_reapplied(home, con):
    folder = write_snapshot(home.snapshots_inbox / "s1")
    ingest(con, home)
    before = store_contents(con)
    contacts = folder / "contacts.csv"
    contacts.write_text(contacts.read_text().replace("Ann,Lee", "Anna,Lee"))

    result = ingest(con, home)

    assert result.changed_after_ingest == ["s1"] and result.ingested == [] and result.already_ingested == []
    assert store_contents(con) == before


def test_a_deleted_contact_is_kept_and_its_rows_not_readded(home, con):
    write_snapshot(home.snapshots_inbox / "s1")
    ingest(con, home)
    con.execute("INSERT INTO contact_lifecycle (contact_id, state, deleted_at, deleted_by) "
                "VALUES ('c-2', 'deleted', ?, 'u-admin-1')", [CLOCK])
    for spec in CONTACT_LINKED:
        con.execute(f"DELETE FROM {spec.name} WHERE contact_id = 'c-2'")
    tables = base_tables()
    tables["contacts"][1]["first_name"] = "Robert"
    tables["notes"].append(dict(note_id="n-9", contact_id="c-2", body="New note on Bob",
                                created_at="2025-12-24T00:00:00Z"))
    write_snapshot(home.snapshots_inbox / "s2", tables)

    result = ingest(con, home)

    assert result.ingested[0].skipped_deleted == 1 and result.ingested[0].skipped_suppressed == 0
    assert con.execute("SELECT first_name, snapshot_id FROM contacts WHERE contact_id = 'c-2'").fetchone() == (
        "Bob", "s1")
    assert linked_rows(con, "c-2") == {spec.name: 0 for spec in CONTACT_LINKED}
    assert con.execute("SELECT snapshot_id FROM contacts WHERE contact_id = 'c-1'").fetchone()[0] == "s2"
    assert con.execute("SELECT skipped_deleted FROM snapshots WHERE snapshot_id = 's2'").fetchone()[0] == 1


@pytest.mark.parametrize(("key_kind", "value", "skipped"), [
    ("email", "bob@example.com", {"c-2", "c-3"}),
    ("phone", "15551230002", {"c-2"}),
    ("contact_id", "c-3", {"c-3"}),
])
def test_a_suppressed_person_is_skipped_with_their_rows(home, con, key_kind, value, skipped):
    key_hash = KeyedHasher(home.secret()).hash(key_kind, value)
    con.execute("INSERT INTO suppression VALUES (?, ?, 'ba-1', ?)", [key_kind, key_hash, CLOCK])
    write_snapshot(home.snapshots_inbox / "s1")

    result = ingest(con, home)

    assert result.ingested[0].skipped_suppressed == len(skipped)
    assert set(contact_ids(con)) == {"c-1", "c-2", "c-3", "c-4"} - skipped
    for contact_id in skipped:
        assert linked_rows(con, contact_id) == {spec.name: 0 for spec in CONTACT_LINKED}
    assert linked_rows(con, "c-1")["conversations"] == 2


def test_tombstoned_rows_are_not_readded(home, con):
    write_snapshot(home.snapshots_inbox / "s1")
    ingest(con, home)
    con.execute("DELETE FROM notes WHERE note_id = 'n-1'")
    con.execute("DELETE FROM list_memberships WHERE list_id = 'l-1' AND contact_id = 'c-1'")
    con.execute("INSERT INTO tombstones VALUES ('notes', 'n-1', 'ba-1'), ('list_memberships', 'l-1:c-1', 'ba-1')")
    write_snapshot(home.snapshots_inbox / "s2")

    ingest(con, home)

    assert [row[0] for row in con.execute("SELECT note_id FROM notes ORDER BY note_id").fetchall()] == ["n-2", "n-3"]
    assert con.execute("SELECT list_id, contact_id FROM list_memberships ORDER BY ALL").fetchall() == [
        ("l-1", "c-4"), ("l-2", "c-1")]
    assert con.execute("SELECT DISTINCT snapshot_id FROM notes").fetchall() == [("s2",)]
