"""Fuzzing request files (JSON and CSV): never an exception, never a planted email or phone in a reason or message."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from fuzzing import EMAILS, HOSTILE, PHONES, TEXT, planted, profile
from hypothesis import given
from hypothesis import strategies as st

from compliance.clock import parse_as_of
from compliance.home import Home
from compliance.requests.intake import take_requests
from compliance.requests.parsing import JSON_KEYS, REQUEST_CSV_COLUMNS, parse_request_file
from compliance.settings import load_settings
from compliance.store.connection import Store
from support.crm import AS_OF, write_snapshot

SUBJECT = st.dictionaries(st.sampled_from(["contact_id", "email", "phone", "name"]),
                          st.one_of(TEXT, st.integers(), st.none(), EMAILS, PHONES), max_size=4)
VALUE = st.one_of(TEXT, st.integers(), st.booleans(), st.none(), st.lists(SUBJECT, max_size=3), SUBJECT)
VALID = {"request_id": "R-1", "kind": "erasure", "regulation": "gdpr", "requested_by": "u-admin-1",
         "received_at": "2025-12-20T09:00:00Z", "confirm": "DELETE", "subjects": [{"contact_id": "c-1"}]}
DOCUMENT = st.builds(lambda changes, dropped: {k: v for k, v in {**VALID, **changes}.items() if k not in dropped},
                     st.dictionaries(st.one_of(st.sampled_from(JSON_KEYS), HOSTILE), VALUE, max_size=4),
                     st.sets(st.sampled_from(JSON_KEYS), max_size=2))
CSV_ROWS = st.lists(st.fixed_dictionaries({name: st.one_of(st.just(VALID.get(name, "")), TEXT)
                                           for name in REQUEST_CSV_COLUMNS}), min_size=1, max_size=4)


def json_bytes(document: dict, mangle: int) -> bytes:
    data = json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogateescape")
    if mangle == 1:
        return b"\xef\xbb\xbf" + data
    if mangle == 2:
        return data[: len(data) // 2]
    if mangle == 3:
        return data.replace(b"R-1", b"R-\xff")
    return data


def csv_bytes(rows: list[dict], header: list[str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(name, "") for name in header])
    return buffer.getvalue().encode("utf-8", "surrogateescape")


def assert_safe_error(error: str | None, planted_values: set[str]) -> None:
    if error is None:
        return
    assert "\n" not in error and "\r" not in error, error
    for value in planted_values:
        assert value not in error, (value, error)


@profile(150)
@given(document=DOCUMENT, mangle=st.integers(0, 3))
def test_a_json_request_file_parses_or_is_refused_in_one_line_without_personal_data(tmp_path_factory, document,
                                                                                   mangle):
    path = tmp_path_factory.mktemp("r") / "r.json"
    path.write_bytes(json_bytes(document, mangle))

    result = parse_request_file(path)

    assert (result.error is None) != (result.requests == ())
    assert_safe_error(result.error, planted(document))


@profile(150)
@given(rows=CSV_ROWS, header=st.one_of(st.just(list(REQUEST_CSV_COLUMNS)),
                                       st.lists(st.one_of(st.sampled_from(REQUEST_CSV_COLUMNS), HOSTILE),
                                                max_size=10)))
def test_a_csv_request_file_parses_or_is_refused_in_one_line_without_personal_data(tmp_path_factory, rows, header):
    path = tmp_path_factory.mktemp("r") / "r.csv"
    path.write_bytes(csv_bytes(rows, header))

    result = parse_request_file(path)

    assert (result.error is None) != (result.requests == ())
    assert_safe_error(result.error, planted(rows))


@pytest.fixture(scope="module")
def intake_home(tmp_path_factory) -> Home:
    home = Home(tmp_path_factory.mktemp("fuzz-intake") / "home")
    home.init()
    write_snapshot(home.snapshots_inbox / "s1")
    return home


@profile(10)
@given(document=DOCUMENT, as_csv=st.booleans(), rows=CSV_ROWS)
def test_intake_of_any_request_file_records_or_quarantines_it_and_writes_only_inside_the_home(intake_home, document,
                                                                                              as_csv, rows):
    home = intake_home
    outside_before = sorted(p.name for p in home.root.parent.iterdir())
    name = "fuzz.csv" if as_csv else "fuzz.json"
    (home.requests_inbox / name).write_bytes(csv_bytes(rows, list(REQUEST_CSV_COLUMNS)) if as_csv
                                             else json_bytes(document, 0))

    with Store(home).connect() as con:
        take_requests(con, home, as_of=parse_as_of(AS_OF), settings=load_settings(home.settings_file))
        reasons = [row[0] for row in con.execute("SELECT reason FROM requests WHERE reason IS NOT NULL").fetchall()]

    assert sorted(p.name for p in home.root.parent.iterdir()) == outside_before
    for text in reasons + [p.read_text() for p in (home.requests_inbox / "quarantine").glob("*.reason.txt")]:
        assert_safe_error(text.rstrip("\n"), planted(rows if as_csv else document))
    assert not (home.requests_inbox / name).exists() or not any(Path(home.requests_inbox).glob("*.reason.txt"))
