"""Request files: parsing JSON and CSV, schema errors that quarantine, due dates, and moving files out of the inbox."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from compliance import identifiers
from compliance.requests.parsing import (
    REQUEST_CSV_COLUMNS,
    Request,
    Subject,
    add_months,
    archive,
    due_at,
    parse_request_file,
    pending_request_files,
    quarantine,
)
from compliance.settings import Deadlines
from compliance.store import schema

EXAMPLE = {
    "request_id": "GDPR-2026-0042", "kind": "erasure", "regulation": "gdpr",
    "requested_by": "u-admin-1", "received_at": "2026-11-01T09:30:00Z", "confirm": "DELETE",
    "subjects": [{"contact_id": "c-1"}, {"email": "ann@example.com"}, {"phone": "+15551234567"}],
}
HEADER = ",".join(REQUEST_CSV_COLUMNS)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def write(folder: Path, name: str, content: str | bytes | dict) -> Path:
    path = folder / name
    if isinstance(content, dict):
        content = json.dumps(content)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def example(**changes) -> dict:
    document = {**EXAMPLE, **changes}
    return {key: value for key, value in document.items() if value is not ...}


def request(regulation: str, received_at: datetime, extended: bool = False) -> Request:
    return Request(request_id="R-1", kind="erasure", regulation=regulation, requested_by="u-admin-1",
                   received_at=received_at, confirm="DELETE", subjects=(Subject("c-1", None, None),),
                   extended=extended, extension_reason="complex request" if extended else None)


def test_product_example_parses_to_the_request(tmp_path):
    result = parse_request_file(write(tmp_path, "gdpr-1.json", EXAMPLE))

    assert result.error is None
    assert result.requests == (Request(
        request_id="GDPR-2026-0042", kind="erasure", regulation="gdpr", requested_by="u-admin-1",
        received_at=utc(2026, 11, 1, 9, 30), confirm="DELETE",
        subjects=(Subject("c-1", None, None), Subject(None, "ann@example.com", None),
                  Subject(None, None, "+15551234567")),
    ),)
    assert result.requests[0].received_at.tzinfo == UTC


def test_csv_rows_sharing_a_request_id_make_one_request_each(tmp_path):
    path = write(tmp_path, "bulk.csv", "\n".join([
        HEADER,
        "R-1,erasure,gdpr,u-admin-1,2026-11-01T09:30:00Z,DELETE,c-1,,",
        "R-2,restore,CCPA,dana.admin@crm.example,2026-11-02T10:00:00+01:00,,c-7,,",
        "R-1,erasure,gdpr,u-admin-1,2026-11-01T09:30:00Z,DELETE,, Ann@Example.com ,",
        "R-2,restore,ccpa,dana.admin@crm.example,2026-11-02T10:00:00+01:00,,,,+1 (555) 123-4567",
    ]) + "\n")

    result = parse_request_file(path)

    assert result.error is None
    first, second = result.requests
    assert first == Request(
        request_id="R-1", kind="erasure", regulation="gdpr", requested_by="u-admin-1",
        received_at=utc(2026, 11, 1, 9, 30), confirm="DELETE",
        subjects=(Subject("c-1", None, None), Subject(None, "Ann@Example.com", None)),
    )
    assert second == Request(
        request_id="R-2", kind="restore", regulation="ccpa", requested_by="dana.admin@crm.example",
        received_at=utc(2026, 11, 2, 9, 0), confirm=None,
        subjects=(Subject("c-7", None, None), Subject(None, None, "+1 (555) 123-4567")),
    )


def test_csv_with_a_byte_order_mark_and_crlf_line_ends_parses(tmp_path):
    content = "\ufeff" + HEADER + "\r\n" + "R-1,erasure,,u-admin-1,2026-11-01,DELETE,c-1,,\r\n"

    result = parse_request_file(write(tmp_path, "excel.csv", content))

    assert result.error is None
    assert result.requests[0].request_id == "R-1"
    assert result.requests[0].received_at == utc(2026, 11, 1)


def test_json_with_a_byte_order_mark_parses(tmp_path):
    result = parse_request_file(write(tmp_path, "bom.json", "\ufeff" + json.dumps(EXAMPLE)))

    assert result.error is None
    assert result.requests[0].request_id == "GDPR-2026-0042"


def test_regulation_defaults_to_internal_in_json_and_csv(tmp_path):
    from_json = parse_request_file(write(tmp_path, "a.json", example(regulation=...)))
    from_csv = parse_request_file(write(tmp_path, "b.csv",
                                        f"{HEADER}\nR-1,erasure,,u-admin-1,2026-11-01,DELETE,c-1,,\n"))

    assert from_json.requests[0].regulation == "internal"
    assert from_csv.requests[0].regulation == "internal"


def test_regulation_and_kind_are_case_insensitive(tmp_path):
    result = parse_request_file(write(tmp_path, "a.json", example(regulation="GDPR", kind="Erasure")))

    assert (result.requests[0].regulation, result.requests[0].kind) == ("gdpr", "erasure")


@pytest.mark.parametrize(("confirm", "expected"), [
    ("delete", "delete"), (" DELETE ", " DELETE "), ("DELETE", "DELETE"), (..., None), (None, None),
])
def test_json_confirm_is_kept_exactly_as_written(tmp_path, confirm, expected):
    result = parse_request_file(write(tmp_path, "a.json", example(confirm=confirm)))

    assert result.error is None
    assert result.requests[0].confirm == expected


@pytest.mark.parametrize(("cell", "expected"), [("delete", "delete"), (" DELETE", " DELETE"), ("", None)])
def test_csv_confirm_is_kept_exactly_as_written(tmp_path, cell, expected):
    path = write(tmp_path, "a.csv", f'{HEADER}\nR-1,erasure,gdpr,u-admin-1,2026-11-01,"{cell}",c-1,,\n')

    assert parse_request_file(path).requests[0].confirm == expected


def test_naive_received_at_is_utc_and_offsets_are_converted(tmp_path):
    naive = parse_request_file(write(tmp_path, "a.json", example(received_at="2026-11-01T09:30:00")))
    offset = parse_request_file(write(tmp_path, "b.json", example(received_at="2026-11-01T09:30:00-05:00")))

    assert naive.requests[0].received_at == utc(2026, 11, 1, 9, 30)
    assert offset.requests[0].received_at == utc(2026, 11, 1, 14, 30)
    assert offset.requests[0].received_at.utcoffset().total_seconds() == 0


def test_extension_is_read_from_json_and_csv(tmp_path):
    from_json = parse_request_file(write(tmp_path, "a.json", example(extension={"reason": " many systems "})))
    from_csv = parse_request_file(write(tmp_path, "b.csv", "\n".join([
        HEADER + ",extension_reason",
        "R-1,erasure,ccpa,u-admin-1,2026-11-01,DELETE,c-1,,,notice sent 2026-11-20",
        "R-2,erasure,ccpa,u-admin-1,2026-11-01,DELETE,c-2,,,",
    ])))

    assert (from_json.requests[0].extended, from_json.requests[0].extension_reason) == (True, "many systems")
    assert [(r.extended, r.extension_reason) for r in from_csv.requests] == [
        (True, "notice sent 2026-11-20"), (False, None)]


def test_subject_identifiers_are_kept_as_written_and_keyed_for_matching(tmp_path):
    document = example(subjects=[{"email": "  Ann.Lee@Example.COM ", "phone": "+44 (20) 7946-0004", "contact_id": ""}])

    subject = parse_request_file(write(tmp_path, "a.json", document)).requests[0].subjects[0]

    assert subject == Subject(contact_id=None, email="Ann.Lee@Example.COM", phone="+44 (20) 7946-0004")
    assert subject.email_key() == "ann.lee@example.com"
    assert subject.phone_key() == "442079460004"
    assert Subject("c-1", None, None).email_key() is None
    assert Subject("c-1", None, None).phone_key() is None


@pytest.mark.parametrize(("email", "phone"), [
    (" Ann@Example.COM ", "+1 (555) 123-4567"), ("bob@example.com", "555.123.4567 ext 9"), ("", "n/a"),
])
def test_subject_keys_follow_the_store_sql(email, phone):
    subject = Subject(None, email, phone)

    with identifiers.register(duckdb.connect()) as con:
        sql = f"SELECT {schema.email_key('$1')}, {schema.phone_key('$2')}"
        assert con.execute(sql, [email, phone]).fetchone() == (subject.email_key(), subject.phone_key())


JSON_ERRORS = [
    pytest.param('{"request_id": "R-1",\n  "kind" "erasure"}',
                 "not valid JSON: Expecting ':' delimiter (line 2, column 10)", id="malformed"),
    pytest.param("[1, 2]", "expected a JSON object at the top, found array", id="not-an-object"),
    pytest.param("", "not valid JSON", id="empty"),
    pytest.param(example(subjects=...), "subjects: required key is missing", id="missing-subjects"),
    pytest.param(example(request_id=...), "request_id: required key is missing", id="missing-request-id"),
    pytest.param(example(subjects=[]), "subjects: needs at least one subject", id="empty-subjects"),
    pytest.param(example(subjects={"contact_id": "c-1"}), "subjects: expected an array of objects, got object",
                 id="subjects-not-a-list"),
    pytest.param(example(subjects=[{"contact_id": "c-1"}, {"email": "a@b.c"}, {"email": " ", "phone": None}]),
                 "subjects[2]: needs at least one of contact_id, email, phone", id="subject-without-identifier"),
    pytest.param(example(subjects=["c-1"]),
                 "subjects[0]: expected an object with contact_id, email or phone, got string",
                 id="subject-not-an-object"),
    pytest.param(example(subjects=[{"contact_id": "c-1", "name": "Ann"}]),
                 "subjects[0]: unknown key 'name' (allowed: contact_id, email, phone)", id="subject-unknown-key"),
    pytest.param(example(subjects=[{"phone": 15551234567}]), "subjects[0].phone: expected a string, got number",
                 id="phone-as-number"),
    pytest.param(example(subjects=[{"phone": "unknown"}]), "subjects[0]: phone has no digits",
                 id="phone-without-digits"),
    pytest.param(example(kind="delete"), "kind: 'delete' is not allowed (allowed: erasure, restore)", id="bad-kind"),
    pytest.param(example(kind=None), "kind: required (allowed: erasure, restore)", id="null-kind"),
    pytest.param(example(regulation="hipaa"), "regulation: 'hipaa' is not allowed (allowed: gdpr, ccpa, internal)",
                 id="bad-regulation"),
    pytest.param(example(received_at="yesterday"), "received_at: 'yesterday' is not an ISO 8601 timestamp",
                 id="bad-received-at"),
    pytest.param(example(received_at=1730453400), "received_at: expected a string, got number", id="epoch-received-at"),
    pytest.param(example(priority="high"), "unknown key 'priority' (allowed: request_id, kind, regulation, "
                 "requested_by, received_at, confirm, subjects, extension)", id="unknown-top-level-key"),
    pytest.param(example(request_id=42), "request_id: expected a string, got number", id="request-id-number"),
    pytest.param(example(requested_by="  "), "requested_by: required, must be a non-empty string", id="blank-author"),
    pytest.param(example(confirm=True), "confirm: expected a string, got boolean", id="confirm-boolean"),
    pytest.param(example(extension=True), 'extension: expected an object {"reason": ...}, got boolean',
                 id="extension-not-object"),
    pytest.param(example(extension={}), "extension.reason: required, must be a non-empty string",
                 id="extension-without-reason"),
    pytest.param(example(extension={"reason": "x", "days": 30}), "extension: unknown key 'days' (allowed: reason)",
                 id="extension-unknown-key"),
    pytest.param('{"kind": "erasure", "kind": "restore"}', "key 'kind' appears twice", id="duplicate-key"),
    pytest.param("[" * 100_000, "not valid JSON", id="nested-too-deep"),
]


@pytest.mark.parametrize(("content", "message"), JSON_ERRORS)
def test_bad_json_is_an_error_naming_the_file_and_field(tmp_path, content, message):
    result = parse_request_file(write(tmp_path, "gdpr-1.json", content))

    assert result.requests == ()
    assert result.error.startswith("gdpr-1.json: ")
    assert message in result.error
    assert "\n" not in result.error


def row(request_id="R-1", kind="erasure", regulation="gdpr", requested_by="u-admin-1",
        received_at="2026-11-01T09:30:00Z", confirm="DELETE", contact_id="c-1", email="", phone="") -> str:
    return ",".join([request_id, kind, regulation, requested_by, received_at, confirm, contact_id, email, phone])


CSV_ERRORS = [
    pytest.param("", "empty file (expected a header row: request_id,kind,", id="empty"),
    pytest.param(" \n\n", "empty file", id="blank"),
    pytest.param(HEADER + "\n", "no requests (only a header row)", id="header-only"),
    pytest.param(HEADER.replace(",phone", "") + "\nR-1,erasure,gdpr,u-admin-1,2026-11-01,DELETE,c-1,\n",
                 "header: missing column 'phone' (needed: request_id,kind,", id="missing-column"),
    pytest.param(HEADER + ",notes\n" + row() + ",x\n", "header: unknown column 'notes' (allowed: ",
                 id="unknown-column"),
    pytest.param(HEADER + ",kind\n" + row() + ",erasure\n", "header: column 'kind' appears more than once",
                 id="repeated-column"),
    pytest.param("\n".join([HEADER, row(), row(kind="restore", contact_id="c-2")]),
                 "row 3: kind 'restore' disagrees with row 2 of request 'R-1' ('erasure')", id="disagreeing-kind"),
    pytest.param("\n".join([HEADER, row(), row(request_id="R-2"), row(received_at="2026-11-02", contact_id="c-2")]),
                 "row 4: received_at '2026-11-02' disagrees with row 2 of request 'R-1'", id="disagreeing-received-at"),
    pytest.param("\n".join([HEADER, row(), row(confirm="delete", contact_id="c-2")]),
                 "row 3: confirm 'delete' disagrees with row 2", id="disagreeing-confirm"),
    pytest.param("\n".join([HEADER, row(), row(confirm="", contact_id="c-2")]),
                 "row 3: confirm (empty) disagrees with row 2 of request 'R-1' ('DELETE')", id="confirm-left-empty"),
    pytest.param("\n".join([HEADER, row(), row(received_at="yesterday")]),
                 "row 3: received_at: 'yesterday' is not an ISO 8601 timestamp", id="bad-received-at"),
    pytest.param("\n".join([HEADER, row(kind="purge")]), "row 2: kind: 'purge' is not allowed", id="bad-kind"),
    pytest.param("\n".join([HEADER, row(regulation="lgpd")]), "row 2: regulation: 'lgpd' is not allowed",
                 id="bad-regulation"),
    pytest.param("\n".join([HEADER, row(request_id=" ")]), "row 2: request_id: required", id="blank-request-id"),
    pytest.param("\n".join([HEADER, row(), row(contact_id="")]),
                 "row 3: needs at least one of contact_id, email, phone", id="row-without-identifier"),
    pytest.param("\n".join([HEADER, row(), "", row(contact_id="", phone="none")]), "row 4: phone has no digits",
                 id="blank-lines-keep-spreadsheet-row-numbers"),
    pytest.param("\n".join([HEADER, row() + ",extra"]), "row 2: has 10 cells but the header has 9 columns",
                 id="too-many-cells"),
    pytest.param("\n".join([HEADER, "R-1,erasure,gdpr"]), "row 2: has 3 cells but the header has 9 columns",
                 id="too-few-cells"),
]


@pytest.mark.parametrize(("content", "message"), CSV_ERRORS)
def test_bad_csv_is_an_error_naming_the_file_and_row(tmp_path, content, message):
    result = parse_request_file(write(tmp_path, "bulk.csv", content))

    assert result.requests == ()
    assert result.error.startswith("bulk.csv: ")
    assert message in result.error


@pytest.mark.parametrize(("name", "text"), [
    ("latin1.json", json.dumps(example(requested_by="Zoë"), ensure_ascii=False)),
    ("latin1.csv", f"{HEADER}\n{row(requested_by='Zoë')}\n"),
])
def test_bytes_that_are_not_utf8_are_an_error_not_an_exception(tmp_path, name, text):
    content = text.encode("latin-1")

    result = parse_request_file(write(tmp_path, name, content))

    assert result.requests == ()
    assert result.error.startswith(f"{name}: not UTF-8 text (byte 0xeb at offset ")


def test_errors_do_not_repeat_a_subjects_email_or_phone(tmp_path):
    document = example(subjects=[{"email": "ann@example.com", "phone": 15551234567}])

    error = parse_request_file(write(tmp_path, "a.json", document)).error

    assert "subjects[0].phone" in error
    assert "ann@example.com" not in error and "15551234567" not in error


def test_file_hash_is_the_sha256_of_the_bytes_and_follows_the_content(tmp_path):
    path = write(tmp_path, "a.json", EXAMPLE)
    before = parse_request_file(path)
    path.write_text(json.dumps(example(request_id="GDPR-2026-0043")))
    after = parse_request_file(path)

    assert before.file_hash == hashlib.sha256(json.dumps(EXAMPLE).encode()).hexdigest()
    assert after.file_hash != before.file_hash
    assert parse_request_file(write(tmp_path, "bad.json", "{")).file_hash == hashlib.sha256(b"{").hexdigest()


def test_pending_request_files_lists_only_request_files_directly_in_the_folder(tmp_path):
    for name in ["b.json", "a.csv", "C.JSON", "notes.txt", ".hidden.json", "a.json.reason.txt", "draft.json.tmp"]:
        write(tmp_path, name, "{}")
    for folder in ["processed", "quarantine"]:
        (tmp_path / folder).mkdir()
        write(tmp_path / folder, "old.json", "{}")
    (tmp_path / "folder.json").mkdir()

    assert [path.name for path in pending_request_files(tmp_path)] == ["C.JSON", "a.csv", "b.json"]
    assert pending_request_files(tmp_path / "missing") == []


def test_quarantine_moves_the_file_and_writes_the_reason_beside_it(tmp_path):
    path = write(tmp_path, "gdpr-1.json", "{")
    reason = parse_request_file(path).error

    moved = quarantine(path, reason)

    assert moved == tmp_path / "quarantine" / "gdpr-1.json"
    assert not path.exists() and moved.read_text() == "{"
    assert (tmp_path / "quarantine" / "gdpr-1.json.reason.txt").read_text() == reason + "\n"
    assert pending_request_files(tmp_path) == []


def test_quarantine_gives_a_clashing_name_a_numeric_suffix(tmp_path):
    first = quarantine(write(tmp_path, "gdpr-1.json", "first"), "first reason")
    second = quarantine(write(tmp_path, "gdpr-1.json", "second"), "second reason")
    (tmp_path / "quarantine" / "gdpr-1-2.json.reason.txt").write_text("stale")
    third = quarantine(write(tmp_path, "gdpr-1.json", "third"), "third reason")

    assert [first.name, second.name, third.name] == ["gdpr-1.json", "gdpr-1-1.json", "gdpr-1-3.json"]
    assert [p.read_text() for p in (first, second, third)] == ["first", "second", "third"]
    assert (tmp_path / "quarantine" / "gdpr-1.json.reason.txt").read_text() == "first reason\n"
    assert (tmp_path / "quarantine" / "gdpr-1-1.json.reason.txt").read_text() == "second reason\n"
    assert (tmp_path / "quarantine" / "gdpr-1-3.json.reason.txt").read_text() == "third reason\n"


def test_archive_moves_into_processed_and_handles_clashes(tmp_path):
    first = archive(write(tmp_path, "bulk.csv", "one"))
    second = archive(write(tmp_path, "bulk.csv", "two"))

    assert first == tmp_path / "processed" / "bulk.csv"
    assert second == tmp_path / "processed" / "bulk-1.csv"
    assert (first.read_text(), second.read_text()) == ("one", "two")
    assert not (tmp_path / "bulk.csv").exists()
    assert not list((tmp_path / "processed").glob("*.reason.txt"))


@pytest.mark.parametrize(("start", "months", "expected"), [
    (datetime(2026, 1, 31), 1, datetime(2026, 2, 28)),
    (datetime(2028, 1, 31), 1, datetime(2028, 2, 29)),
    (datetime(2100, 1, 31), 1, datetime(2100, 2, 28)),
    (datetime(2000, 1, 29), 1, datetime(2000, 2, 29)),
    (datetime(2028, 2, 29), 12, datetime(2029, 2, 28)),
    (datetime(2026, 3, 31), 1, datetime(2026, 4, 30)),
    (datetime(2026, 4, 30), 1, datetime(2026, 5, 30)),
    (datetime(2026, 12, 31), 1, datetime(2027, 1, 31)),
    (datetime(2026, 11, 30), 3, datetime(2027, 2, 28)),
    (datetime(2026, 3, 31), -1, datetime(2026, 2, 28)),
    (datetime(2026, 5, 15), 0, datetime(2026, 5, 15)),
])
def test_add_months_clamps_to_the_last_day_of_the_month(start, months, expected):
    assert add_months(start, months) == expected


@pytest.mark.parametrize(("regulation", "received", "extended", "expected"), [
    pytest.param("gdpr", utc(2026, 1, 31, 9, 30), False, utc(2026, 2, 28, 9, 30), id="gdpr-31-jan"),
    pytest.param("gdpr", utc(2028, 1, 31, 9, 30), False, utc(2028, 2, 29, 9, 30), id="gdpr-31-jan-leap-year"),
    pytest.param("gdpr", utc(2026, 3, 15, 23, 59), False, utc(2026, 4, 15, 23, 59), id="gdpr-15-mar"),
    pytest.param("gdpr", utc(2026, 3, 31), False, utc(2026, 4, 30), id="gdpr-31-mar"),
    pytest.param("gdpr", utc(2026, 4, 30), False, utc(2026, 5, 30), id="gdpr-30-apr"),
    pytest.param("gdpr", utc(2026, 12, 31, 8), False, utc(2027, 1, 31, 8), id="gdpr-31-dec"),
    pytest.param("gdpr", utc(2026, 1, 31), True, utc(2026, 4, 30), id="gdpr-extended-from-received"),
    pytest.param("gdpr", utc(2027, 11, 30), True, utc(2028, 2, 29), id="gdpr-extended-into-leap-february"),
    pytest.param("ccpa", utc(2026, 11, 1, 9, 30), False, utc(2026, 12, 16, 9, 30), id="ccpa-45-days"),
    pytest.param("ccpa", utc(2026, 11, 1, 9, 30), True, utc(2027, 1, 30, 9, 30), id="ccpa-extended-90-days"),
    pytest.param("internal", utc(2026, 11, 1), False, None, id="internal-none"),
    pytest.param("internal", utc(2026, 11, 1), True, None, id="internal-extended-none"),
])
def test_due_at_with_default_deadlines(regulation, received, extended, expected):
    assert due_at(request(regulation, received, extended), Deadlines()) == expected


@pytest.mark.parametrize("extended", [False, True])
def test_internal_deadline_when_set_ignores_extension(extended):
    due = due_at(request("internal", utc(2026, 11, 1, 9, 30), extended), Deadlines(internal_days=30))

    assert due == utc(2026, 12, 1, 9, 30)


def test_due_at_follows_the_deadline_settings():
    deadlines = Deadlines(gdpr_months=2, gdpr_extension_months=1, ccpa_days=10, ccpa_extension_days=5)

    assert due_at(request("gdpr", utc(2026, 12, 31)), deadlines) == utc(2027, 2, 28)
    assert due_at(request("gdpr", utc(2026, 12, 31), extended=True), deadlines) == utc(2027, 3, 31)
    assert due_at(request("ccpa", utc(2026, 12, 31), extended=True), deadlines) == utc(2027, 1, 15)


def test_parsed_file_gets_its_due_date(tmp_path):
    parsed = parse_request_file(write(tmp_path, "a.json", example(received_at="2026-01-31T10:00:00+02:00")))

    assert due_at(parsed.requests[0], Deadlines()) == utc(2026, 2, 28, 8)
