"""Hostile snapshots: injection through column names, raw engine errors, odd files and symlinks, shrinking exports."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import duckdb
import pytest

from compliance.clock import parse_as_of
from compliance.errors import InputError
from compliance.snapshots.ingest import FIELD_LIMIT_BYTES, ingest_snapshots
from compliance.store.connection import Store
from support.crm import AS_OF, base_tables, store_contents, write_snapshot

CLOCK = parse_as_of(AS_OF)
LATER = parse_as_of("2026-01-02T12:00:00Z")
EMAIL = "Ann.Lee@Example.com"


def ingest(con, home, **kwargs):
    return ingest_snapshots(con, home, as_of=CLOCK, **kwargs)


def refused(con, home, **kwargs) -> str:
    """The one-line message of an ingest that must be refused; it must never quote a contact's email or phone."""
    with pytest.raises(InputError) as raised:
        ingest(con, home, **kwargs)
    message = str(raised.value)
    assert "\n" not in message, message
    for value in (EMAIL, "bob@example.com", "5551230001", "+15551230002", "Ann", "Lee"):
        assert value not in message, message
    return message


def rewrite_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def contacts_with_extra(folder: Path, name: str, value: str = "x") -> None:
    """Add a column `name` to contacts.csv, as a CRM export's custom field would come."""
    path = folder / "contacts.csv"
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    rewrite_csv(path, rows[0] + [name], [row + [value] for row in rows[1:]])


def parquet_copy(con_sql: str, target: Path) -> None:
    with duckdb.connect() as con:
        con.execute(f"COPY ({con_sql}) TO '{target}' (FORMAT parquet)")


INJECTIONS = [
    'x" := 1)), (SELECT 1 AS "y',
    "a\"; COPY (SELECT 42) TO '{pwned}'; --",
    "it's \"quoted\"",
    "back\\slash",
]


@pytest.mark.parametrize("template", INJECTIONS)
def test_a_csv_header_cell_cannot_inject_sql_and_is_kept_as_an_extra_under_its_own_name(home, con, tmp_path,
                                                                                      template):
    pwned = tmp_path / "pwned.csv"
    name = template.format(pwned=pwned)
    folder = write_snapshot(home.snapshots_inbox / "s1")
    contacts_with_extra(folder, name, "custom")

    ingest(con, home)

    assert not pwned.exists()
    extras = [json.loads(row[0]) for row in con.execute("SELECT extra FROM contacts ORDER BY contact_id").fetchall()]
    assert all(extra[name] == "custom" for extra in extras), extras


def test_a_parquet_field_name_cannot_inject_sql(home, con, tmp_path):
    pwned = tmp_path / "pwned.csv"
    name = f"a\"; COPY (SELECT 42) TO '{pwned}'; --"
    folder = write_snapshot(home.snapshots_inbox / "s1", fmt="parquet")
    quoted = name.replace('"', '""')
    parquet_copy(f"SELECT *, 'custom' AS \"{quoted}\" FROM read_parquet('{folder / 'contacts.parquet'}')",
                 folder / "typed.parquet")
    (folder / "typed.parquet").replace(folder / "contacts.parquet")

    ingest(con, home)

    assert not pwned.exists()
    extras = [json.loads(row[0]) for row in con.execute("SELECT extra FROM contacts").fetchall()]
    assert len(extras) == 4 and all(extra[name] == "custom" for extra in extras), extras


@pytest.mark.parametrize("name", ["bad\nname", "nul\x00name", "tab\tname", ""])
def test_a_column_name_with_a_control_character_or_none_is_refused_naming_file_and_column(home, con, name):
    folder = write_snapshot(home.snapshots_inbox / "s1")
    contacts_with_extra(folder, name)
    before = store_contents(con)

    message = refused(con, home)

    assert "snapshot s1" in message and "contacts.csv" in message and "column 13" in message, message
    assert store_contents(con) == before


def test_a_highlevel_key_cannot_inject_sql(home, con, tmp_path):
    pwned = tmp_path / "pwned.csv"
    key = f"x'); COPY (SELECT 42) TO '{pwned}'; --\""
    page = home.snapshots_inbox / "s1" / "highlevel" / "contacts" / "page-1.json"
    page.parent.mkdir(parents=True)
    page.write_text(json.dumps({"contacts": [{"id": "c-1", "dateAdded": "2021-07-02T05:18:26Z", key: "v"}]}))

    ingest(con, home)

    assert not pwned.exists()
    assert json.loads(con.execute("SELECT extra FROM contacts").fetchone()[0]) == {key: "v"}


def test_a_non_utf8_byte_deep_in_a_csv_names_row_and_column_without_quoting_the_line(home, con):
    tables = base_tables()
    tables["contacts"] = [dict(tables["contacts"][0], contact_id=f"c-{n}", email=f"p{n}@example.com")
                          for n in range(1, 30_001)]
    folder = write_snapshot(home.snapshots_inbox / "s1", tables)
    path = folder / "contacts.csv"
    data = path.read_bytes()
    at = data.index(b"Lee,p29000@example.com")
    path.write_bytes(data[:at] + b"L\xffe" + data[at + 3:])

    message = refused(con, home)

    assert "snapshot s1: table contacts: contacts.csv: row 29000: column last_name: not UTF-8" in message, message
    assert "p29000" not in message and "example.com" not in message


def test_a_10_mb_field_is_too_long_at_its_real_row_with_the_limit(home, con):
    tables = base_tables()
    # A quoted line break before it: the row is not the line.
    tables["notes"][0]["body"] = "two\nlines"
    tables["notes"][2]["body"] = "x" * 10_000_000
    write_snapshot(home.snapshots_inbox / "s1", tables)

    message = refused(con, home)

    assert "snapshot s1: table notes: notes.csv: row 3: column body: too long" in message, message
    assert f"{FIELD_LIMIT_BYTES:,}" in message
    assert "xxxx" not in message


def test_a_2_mb_field_in_parquet_is_too_long_too(home, con):
    folder = write_snapshot(home.snapshots_inbox / "s1", fmt="parquet")
    path = folder / "notes.parquet"
    parquet_copy(f"SELECT * REPLACE (CASE WHEN note_id = 'n-2' THEN repeat('y', 2000000) ELSE body END AS body) "
                 f"FROM read_parquet('{path}')", folder / "n.parquet")
    (folder / "n.parquet").replace(path)

    message = refused(con, home)

    assert "snapshot s1: table notes: notes.parquet: row 2: column body: too long" in message, message


@pytest.mark.parametrize(("column", "sql", "kind"), [
    ("tags", "{'a': tags} AS tags", "STRUCT"),
    ("email", "CAST(email AS BLOB) AS email", "BLOB"),
    ("dnd", "[dnd] AS dnd", "[]"),
])
def test_a_parquet_column_of_an_unusable_type_is_refused_naming_it(home, con, column, sql, kind):
    folder = write_snapshot(home.snapshots_inbox / "s1", fmt="parquet")
    path = folder / "contacts.parquet"
    parquet_copy(f"SELECT * REPLACE ({sql}) FROM read_parquet('{path}')", folder / "t.parquet")
    (folder / "t.parquet").replace(path)
    before = store_contents(con)

    message = refused(con, home)

    assert f"snapshot s1: table contacts: contacts.parquet: column {column}: " in message, message
    assert kind in message
    assert store_contents(con) == before


def test_a_value_that_is_not_a_timestamp_is_not_quoted_when_it_could_be_personal(home, con):
    tables = base_tables()
    tables["contacts"][1]["created_at"] = "bob@example.com"
    write_snapshot(home.snapshots_inbox / "s1", tables)

    message = refused(con, home)

    assert "snapshot s1: table contacts: row 2: column created_at:" in message
    assert "not a timestamp" in message


def test_a_symlinked_snapshot_folder_is_refused(home, con, tmp_path):
    outside = write_snapshot(tmp_path / "elsewhere")
    (home.snapshots_inbox / "s1").symlink_to(outside, target_is_directory=True)

    message = refused(con, home)

    assert "s1" in message and "symbolic link" in message
    assert con.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 0


def test_a_symlinked_table_file_is_refused(home, con, tmp_path):
    folder = write_snapshot(home.snapshots_inbox / "s1")
    target = tmp_path / "notes.csv"
    (folder / "notes.csv").rename(target)
    (folder / "notes.csv").symlink_to(target)

    message = refused(con, home)

    assert "snapshot s1" in message and "notes.csv" in message and "symbolic link" in message


def test_a_fifo_in_a_snapshot_folder_is_refused_without_reading_it(home, con):
    folder = write_snapshot(home.snapshots_inbox / "s1")
    (folder / "notes.csv").unlink()
    os.mkfifo(folder / "notes.csv")

    message = refused(con, home)

    assert "snapshot s1" in message and "notes.csv" in message and "not a regular file" in message


def _empty_contacts(folder: Path) -> None:
    rewrite_csv(folder / "contacts.csv", list(base_tables()["contacts"][0]), [])


def test_a_snapshot_that_drops_more_than_half_the_contacts_is_refused(home, con):
    write_snapshot(home.snapshots_inbox / "s1")
    ingest(con, home)
    before = store_contents(con)
    _empty_contacts(write_snapshot(home.snapshots_inbox / "s2"))

    with pytest.raises(InputError) as raised:
        ingest_snapshots(con, home, as_of=LATER)

    message = str(raised.value)
    assert "snapshot s2" in message and "4 to 0" in message and "--accept-shrink" in message, message
    assert store_contents(con) == before


@pytest.mark.parametrize(("kept", "allowed"), [(2, True), (1, False)])
def test_the_shrink_limit_is_a_fraction_of_the_last_snapshot(home, con, kept, allowed):
    write_snapshot(home.snapshots_inbox / "s1")
    ingest(con, home)
    tables = base_tables()
    tables["contacts"] = tables["contacts"][:kept]
    write_snapshot(home.snapshots_inbox / "s2", tables)

    if allowed:
        result = ingest_snapshots(con, home, as_of=LATER)
        assert result.ingested[0].removed_contacts == 4 - kept
    else:
        with pytest.raises(InputError, match="more than 50%"):
            ingest_snapshots(con, home, as_of=LATER)


def test_an_accepted_shrink_is_loaded_and_its_removals_recorded(home, con):
    write_snapshot(home.snapshots_inbox / "s1")
    ingest(con, home)
    _empty_contacts(write_snapshot(home.snapshots_inbox / "s2"))

    result = ingest_snapshots(con, home, as_of=LATER, accept_shrink=True)

    assert result.ingested[0].removed_contacts == 4
    assert con.execute("SELECT removed_contacts FROM snapshots WHERE snapshot_id = 's2'").fetchone() == (4,)
    assert con.execute("SELECT count(*) FROM contacts").fetchone()[0] == 0


def test_the_shrink_limit_comes_from_settings(home, con):
    home.settings_file.write_text("max_contact_drop: 1.0\n")
    write_snapshot(home.snapshots_inbox / "s1")
    ingest(con, home)
    _empty_contacts(write_snapshot(home.snapshots_inbox / "s2"))

    result = ingest_snapshots(con, home, as_of=LATER)

    assert result.ingested[0].removed_contacts == 4


def test_a_first_snapshot_is_never_a_shrink(home, con):
    _empty_contacts(write_snapshot(home.snapshots_inbox / "s1"))

    result = ingest(con, home)

    assert result.ingested[0].removed_contacts == 0


def test_a_home_path_with_a_quote_opens_its_store(tmp_path):
    from compliance.home import Home

    home = Home(tmp_path / "bob's 'home")
    home.init()

    with Store(home).connect() as con:
        assert con.execute("SELECT current_setting('temp_directory')").fetchone()[0].endswith("tmp")
