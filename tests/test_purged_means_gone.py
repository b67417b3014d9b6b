"""Purged means gone (PRODUCT.md section 2): after the purge no file under the home but the inbox holds the person."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from support.cli import run_retention_process
from support.crm import base_tables, write_snapshot

T, T_30, T_61 = "2026-01-01T12:00:00Z", "2026-01-31T12:00:00Z", "2026-03-03T12:00:00Z"
EMAIL, PHONE_DIGITS, PHONE_AS_WRITTEN = "cy@example.org", "442079460004", "+44 20 7946 0004"
# Dee (c-5) is erased by a request naming only her additional email; her additional phone must go too.
DEE_EMAIL, DEE_ALT_EMAIL, DEE_ALT_DIGITS, DEE_ALT_AS_WRITTEN = (
    "dee@example.net", "dee.alt@example.com", "442079460077", "+44 20 7946 0077")
CY = (EMAIL, PHONE_DIGITS, PHONE_AS_WRITTEN)
DEE = (DEE_EMAIL, DEE_ALT_EMAIL, DEE_ALT_DIGITS, DEE_ALT_AS_WRITTEN)
NEEDLES = tuple(value.encode() for value in CY + DEE)
# As a process: the files a real `retention` process leaves under the home (Dagster's compute logs among them).
pytestmark = pytest.mark.e2e


def retention(*args: str, home: Path) -> subprocess.CompletedProcess:
    result = run_retention_process(*args, home=home, timeout=300)
    assert result.returncode == 0, f"retention {' '.join(args)}: {result.stdout}{result.stderr}"
    return result


def files_outside_inbox(root: Path) -> list[Path]:
    """Every file under the home, hidden ones included, except under inbox/ (the user's own input files)."""
    found = []
    for folder, subfolders, files in os.walk(root):
        if Path(folder) == root:
            subfolders[:] = [name for name in subfolders if name != "inbox"]
        found += [Path(folder) / name for name in files]
    return sorted(found)


def holding_the_person(root: Path) -> dict[str, list[str]]:
    """file (relative to the home) -> which of the email (any case) and phone spellings its bytes hold."""
    hits = {}
    for path in files_outside_inbox(root):
        data = path.read_bytes().lower()
        found = [needle.decode() for needle in NEEDLES if needle in data]
        if found:
            hits[str(path.relative_to(root))] = found
    return hits


@pytest.fixture(scope="module")
def lifetime(tmp_path_factory):
    """init, a CSV snapshot, GDPR erasures of Cy (c-4) by email and phone and of Dee (c-5) by her additional email
    only, then runs at T, T+30 and T+61 days."""
    root = tmp_path_factory.mktemp("gone") / "home"
    retention("init", home=root)
    tables = base_tables()
    tables["contacts"].append({**tables["contacts"][3], "contact_id": "c-5", "first_name": "Dee",
                               "email": DEE_EMAIL, "phone": "", "tags": ""})
    for row in tables["contacts"]:
        is_dee = row["contact_id"] == "c-5"
        row["additional_emails"] = "Dee.Alt@Example.com" if is_dee else ""
        row["additional_phones"] = DEE_ALT_AS_WRITTEN if is_dee else ""
    write_snapshot(root / "inbox" / "snapshots" / "s1", tables)
    (root / "inbox" / "requests" / "gdpr-0001.json").write_text(json.dumps({
        "request_id": "GDPR-0001", "kind": "erasure", "regulation": "gdpr", "requested_by": "u-admin-1",
        "received_at": "2026-01-01T09:00:00Z", "confirm": "DELETE",
        "subjects": [{"email": "Cy@Example.org"}, {"phone": PHONE_AS_WRITTEN}]}))
    (root / "inbox" / "requests" / "gdpr-0002.json").write_text(json.dumps({
        "request_id": "GDPR-0002", "kind": "erasure", "regulation": "gdpr", "requested_by": "u-admin-1",
        "received_at": "2026-01-01T09:30:00Z", "confirm": "DELETE", "subjects": [{"email": "DEE.ALT@example.COM"}]}))
    first = json.loads(retention("run", "--as-of", T, "--json", home=root).stdout)
    retention("run", "--as-of", T_30, home=root)
    still_there = holding_the_person(root)
    files_at_30 = [str(path.relative_to(root)) for path in files_outside_inbox(root)]
    last = retention("run", "--as-of", T_61, "--json", home=root)
    return root, first, still_there, files_at_30, json.loads(last.stdout)


def test_before_the_purge_the_person_is_in_a_csv_backup(lifetime):
    _, first, still_there, files_at_30, _ = lifetime

    erasures = [action for action in first["bulk_actions"] if action["kind"] == "delete"]
    assert [(action["counts"]["deleted"], action["regulation"]) for action in erasures] == [(1, "gdpr"), (1, "gdpr")]
    csv_backups = [name for name in still_there if name.startswith("backups/") and name.endswith("contacts.csv")]
    assert len(csv_backups) == 2, f"the erased people should still be in backups at T+30, found in: {still_there}"
    # One backup per erasure: Cy's holds her email and phone, Dee's her additional email and phone too.
    assert sorted(tuple(sorted(still_there[name])) for name in csv_backups) == sorted(
        [tuple(sorted(CY)), tuple(sorted(DEE))])
    # The person's erasure left records where the test then searches: the audit trail and Dagster's run storage
    # (and the reports, whichever files the report step writes under reports/).
    assert "audit/audit.jsonl" in files_at_30
    assert sum(name.startswith("dagster/") and name.endswith(".db") for name in files_at_30) >= 3


def test_after_the_purge_no_file_under_the_home_but_the_inbox_holds_the_person(lifetime):
    root, _, _, _, last = lifetime

    [purge] = [action for action in last["bulk_actions"] if action["kind"] == "purge"]
    assert purge["counts"]["purged"] == 2 and purge["status"] == "completed"
    assert not any((root / "backups").iterdir())
    assert holding_the_person(root) == {}
    # The inbox keeps the user's own files: the check above would have found the person there.
    inbox_contacts = (root / "inbox" / "snapshots" / "s1" / "contacts.csv").read_bytes().lower()
    assert EMAIL.encode() in inbox_contacts and DEE_ALT_EMAIL.encode() in inbox_contacts


def test_after_the_purge_show_says_purged_and_the_audit_chain_holds(lifetime):
    root = lifetime[0]

    shown = json.loads(retention("show", "c-4", "--json", home=root).stdout)
    never = json.loads(retention("show", "c-404", "--json", home=root).stdout)
    audit = json.loads(retention("audit", "verify", "--json", home=root).stdout)

    assert (shown["state"], shown["deleted_at"], shown["purged_at"]) == ("purged", T, T_61)
    assert never["state"] == "unknown"
    assert audit["ok"] is True and audit["entries"] >= 3
