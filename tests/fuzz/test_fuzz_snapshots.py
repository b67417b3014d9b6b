"""Fuzzing snapshot tables (CSV and Parquet, hostile column names and values): loaded or refused in one line (exit 2),
the store unchanged when refused, no planted email or phone in the message, nothing written outside the home."""

from __future__ import annotations

import csv
import json
import shutil

import duckdb
import pytest
from fuzzing import EMAILS, HOSTILE, PHONES, TEXT, planted, profile
from hypothesis import given
from hypothesis import strategies as st

from compliance.clock import parse_as_of
from compliance.errors import InputError
from compliance.home import Home
from compliance.snapshots.ingest import ingest_snapshots
from compliance.store.connection import Store
from compliance.store.schema import CONTACTS
from support.crm import AS_OF, base_tables, store_contents, write_snapshot

CLOCK = parse_as_of("2026-01-02T12:00:00Z")
COLUMNS = list(CONTACTS.columns)
CELL = st.one_of(TEXT, EMAILS, PHONES, st.just(""), st.sampled_from(["2025-01-01T00:00:00Z", "true", "false",
                                                                       "a,b", "x" * 5000]))
ROW = st.fixed_dictionaries({column: CELL for column in COLUMNS})
EXTRA_NAMES = st.lists(st.one_of(HOSTILE, st.text(min_size=1, max_size=20), st.sampled_from(COLUMNS)), max_size=3)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A home with s1 ingested (copied afresh for each example), and a sentinel folder outside it that an injected
    COPY would write into."""
    root = tmp_path_factory.mktemp("fuzz-snapshots")
    home = Home(root / "template")
    home.init()
    write_snapshot(home.snapshots_inbox / "s1")
    with Store(home).connect() as con:
        ingest_snapshots(con, home, as_of=parse_as_of(AS_OF))
    sentinel = root / "sentinel"
    sentinel.mkdir()
    return home, sentinel


def write_contacts(folder, rows, extras, fmt, bad_byte) -> None:
    header = COLUMNS + extras
    path = folder / "contacts.csv"
    with path.open("w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for number, row in enumerate(rows):
            writer.writerow([row[c] for c in COLUMNS] + [f"v{number}"] * len(extras))
    if bad_byte:
        data = path.read_bytes()
        path.write_bytes(data[:-2] + b"\xff" + data[-2:])
    if fmt == "parquet":
        with duckdb.connect() as con:
            try:
                con.execute(f"COPY (SELECT * FROM read_csv('{path}', header = true, all_varchar = true)) "
                            f"TO '{folder / 'contacts.parquet'}' (FORMAT parquet)")
            except duckdb.Error:
                return
        path.unlink()


def assert_loaded_or_refused_cleanly(home: Home, planted_values) -> None:
    """Ingest the home's pending snapshot: it loads, or it is refused in one line that quotes no planted value and
    leaves the store as it was."""
    with Store(home).connect() as con:
        before = store_contents(con)
        try:
            ingest_snapshots(con, home, as_of=CLOCK, accept_shrink=True)
        except InputError as exc:
            message = str(exc)
            assert "\n" not in message and "\r" not in message, message
            for value in planted_values:
                assert value not in message, (value, message)
            assert store_contents(con) == before


@profile(25)
@given(rows=st.lists(ROW, min_size=1, max_size=4, unique_by=lambda row: row["contact_id"]), extras=EXTRA_NAMES,
       fmt=st.sampled_from(["csv", "parquet"]), bad_byte=st.booleans())
def test_any_snapshot_is_loaded_or_refused_in_one_line_and_the_refusal_changes_nothing(template, rows, extras, fmt,
                                                                                       bad_byte):
    source, sentinel = template
    home = Home(source.root.with_name("example"))
    shutil.rmtree(home.root, ignore_errors=True)
    shutil.copytree(source.root, home.root)
    extras = [name.replace("{sentinel}", str(sentinel)) for name in extras]
    tables = base_tables()
    tables["contacts"] = []
    folder = write_snapshot(home.snapshots_inbox / "s2", tables)
    write_contacts(folder, rows, extras, fmt, bad_byte)
    outside_before = sorted(p.name for p in home.root.parent.iterdir())

    assert_loaded_or_refused_cleanly(home, planted(rows))

    assert list(sentinel.iterdir()) == []
    assert sorted(p.name for p in home.root.parent.iterdir()) == outside_before


HIGHLEVEL_KEYS = st.one_of(st.sampled_from(["id", "email", "phone", "tags", "dnd", "dateAdded", "additionalEmails",
                                            "locationId"]), HOSTILE, st.text(max_size=12))
HIGHLEVEL_VALUES = st.recursive(st.one_of(TEXT, st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False)),
                                lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(HIGHLEVEL_KEYS, inner, max_size=3)),
                                max_leaves=6)
RECORD = st.dictionaries(HIGHLEVEL_KEYS, HIGHLEVEL_VALUES, max_size=6).map(
    lambda record: {"dateAdded": "2021-07-02T05:18:26Z", **record})


@profile(12)
@given(records=st.lists(RECORD, min_size=1, max_size=4), truncate=st.booleans())
def test_any_highlevel_page_is_loaded_or_refused_in_one_line_and_the_refusal_changes_nothing(template, records,
                                                                                             truncate):
    source, sentinel = template
    home = Home(source.root.with_name("example"))
    shutil.rmtree(home.root, ignore_errors=True)
    shutil.copytree(source.root, home.root)
    records = json.loads(json.dumps(records).replace("{sentinel}", str(sentinel)))
    page = home.snapshots_inbox / "s2" / "highlevel" / "contacts" / "page-1.json"
    page.parent.mkdir(parents=True)
    data = json.dumps({"contacts": records}).encode()
    page.write_bytes(data[: len(data) // 2] if truncate else data)

    assert_loaded_or_refused_cleanly(home, planted(records))

    assert list(sentinel.iterdir()) == []
