"""Hostile input at the command line: a crafted memory_limit, a shrinking snapshot, control characters in a listing."""

from __future__ import annotations

import json

import pytest
from test_cli_foundation import one_error_line, retention

from compliance.clock import parse_as_of
from compliance.home import Home
from compliance.requests.intake import take_requests
from compliance.settings import load_settings
from compliance.snapshots.ingest import ingest_snapshots
from compliance.store.connection import Store
from support.crm import AS_OF, base_tables, store_contents, write_request, write_snapshot


def without_anchor(contents: dict) -> dict:
    # A run anchors the audit log before its first step, whatever the input; that is not the input's doing.
    return {table: rows for table, rows in contents.items() if table != "audit_anchor"}


@pytest.fixture
def ingested(tmp_path) -> Home:
    home = Home(tmp_path / "home")
    home.init()
    write_snapshot(home.snapshots_inbox / "s1")
    with Store(home).connect() as con:
        ingest_snapshots(con, home, as_of=parse_as_of(AS_OF))
    return home


def test_a_crafted_memory_limit_is_refused_before_any_sql_runs(ingested, tmp_path):
    pwned = tmp_path / "pwned.csv"
    ingested.settings_file.write_text(f"memory_limit: \"2GB'; COPY (SELECT 42) TO '{pwned}'; SET threads='1\"\n")

    result = retention("show", "c-1", home=ingested.root, cwd=tmp_path)

    assert result.returncode == 2, result.stdout + result.stderr
    message = one_error_line(result)
    assert "memory_limit" in message and str(ingested.settings_file) in message
    assert not pwned.exists()


def test_a_snapshot_emptying_the_contacts_is_refused_then_loaded_with_accept_shrink(ingested, tmp_path):
    with Store(ingested).connect(read_only=True) as con:
        before = store_contents(con)
    tables = base_tables()
    tables["contacts"] = []
    write_snapshot(ingested.snapshots_inbox / "s2", tables)

    refused = retention("run", "--as-of", "2026-01-02T12:00:00Z", "--json", home=ingested.root, cwd=tmp_path)

    assert refused.returncode == 2, refused.stdout + refused.stderr
    message = one_error_line(refused)
    assert "snapshot s2" in message and "--accept-shrink" in message
    with Store(ingested).connect(read_only=True) as con:
        assert without_anchor(store_contents(con)) == without_anchor(before)

    accepted = retention("run", "--as-of", "2026-01-02T12:00:00Z", "--accept-shrink", "--json",
                         home=ingested.root, cwd=tmp_path)

    assert accepted.returncode in (0, 1), accepted.stderr
    summary = json.loads(accepted.stdout)
    assert summary["ingest"]["snapshots_ingested"] == ["s2"]
    assert summary["ingest"]["removed_contacts"] == 4


def test_request_ids_with_control_characters_are_listed_escaped(ingested, tmp_path):
    hostile = "R-1\x1b[2J\rOK\u2028x"
    write_request(ingested, "hostile", request_id=hostile)
    with Store(ingested).connect() as con:
        take_requests(con, ingested, as_of=parse_as_of(AS_OF), settings=load_settings(ingested.settings_file))

    result = retention("requests", home=ingested.root, cwd=tmp_path)
    as_json = retention("requests", "--json", home=ingested.root, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\r" not in result.stdout and "\u2028" not in result.stdout
    assert "R-1\\x1b[2J\\rOK\\u2028x" in result.stdout
    assert [record["request_id"] for record in json.loads(as_json.stdout)["requests"]] == [hostile]


def test_a_bad_highlevel_export_exits_2_through_the_cli(tmp_path):
    home = tmp_path / "home"
    assert retention("init", home=home).returncode == 0
    pages = home / "inbox" / "snapshots" / "s1" / "highlevel" / "contacts"
    pages.mkdir(parents=True)
    (pages / "p.jsonl").write_text('{"id": "a", "dateAdded": "2021-07-02T05:18:26Z"}\n'
                                   '{"id": "b", "dateAdded": "soon"}\n')

    result = retention("run", home=home)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "highlevel/contacts/p.jsonl: line 2: field dateAdded: 'soon'" in result.stdout + result.stderr
