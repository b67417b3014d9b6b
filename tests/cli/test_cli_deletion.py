"""`retention plan / delete / run / show / status / requests / audit verify` as a user runs them, bad input included."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta

import pytest

from compliance.clock import parse_as_of
from compliance.home import Home
from compliance.store.connection import Store
from support.cli import run_retention as retention
from support.crm import AS_OF, store_contents, write_request

CLOCK = parse_as_of(AS_OF)
LATER = "2026-01-02T12:00:00Z"


def contents(home: Home) -> dict:
    with Store(home).connect(read_only=True) as con:
        return store_contents(con)


def inbox(home: Home) -> dict[str, bytes]:
    return {str(p.relative_to(home.inbox)): p.read_bytes() for p in sorted(home.inbox.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def session(tmp_path_factory, ingested_template):
    """One home, s1 ingested; then plan, delete c-2, a refused delete, a bad confirm, a run, the read commands."""
    home = Home(tmp_path_factory.mktemp("cli-deletion") / "home")
    home.init()
    shutil.copytree(ingested_template.snapshots_inbox / "s1", home.snapshots_inbox / "s1")
    shutil.copy2(ingested_template.store_file, home.store_file)
    write_request(home, "r-ok", regulation="ccpa", subjects=[{"email": " BOB@example.com "}])
    write_request(home, "r-bad", requested_by="u-user-1", subjects=[{"contact_id": "c-4"}])
    seen: dict = {}

    before = (contents(home), inbox(home))
    seen["plan"] = retention("plan", "--as-of", LATER, "--json", home=home)
    seen["plan_changed"] = (contents(home), inbox(home)) != before

    seen["delete"] = retention("delete", "--contact", "c-2", "--as-user", "u-admin-1", "--confirm", "DELETE",
                               "--as-of", AS_OF, "--json", home=home)
    seen["show"] = retention("show", "c-2", "--as-of", AS_OF, "--json", home=home)

    before = contents(home)
    seen["bad_confirm"] = retention("delete", "--contact", "c-1", "--as-user", "u-admin-1",
                                    "--confirm", "delete", "--as-of", AS_OF, home=home)
    seen["bad_confirm_changed"] = contents(home) != before
    seen["not_admin"] = retention("delete", "--contact", "c-1", "--as-user", "u-user-1", "--confirm", "DELETE",
                                  "--as-of", AS_OF, "--json", home=home)

    seen["run"] = retention("run", "--as-of", LATER, home=home)
    seen["status"] = retention("status", "--json", home=home)
    first_id = json.loads(seen["delete"].stdout)["bulk_actions"][0]["bulk_action_id"]
    seen["status_one"] = retention("status", first_id, "--json", home=home)
    seen["requests"] = retention("requests", "--as-of", LATER, "--json", home=home)
    seen["verify"] = retention("audit", "verify", "--json", home=home)

    lines = home.audit_file.read_text().splitlines(keepends=True)
    entry = json.loads(lines[1])
    entry["fields"]["requested_by"] = "u-admin-1"
    lines[1] = json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"
    home.audit_file.write_text("".join(lines))
    seen["verify_tampered"] = retention("audit", "verify", "--json", home=home)
    seen["tampered_lines"] = len(lines)
    return home, seen


def test_delete_deletes_the_contact_and_show_gives_its_restore_window(session):
    _, seen = session

    assert seen["delete"].returncode == 0, seen["delete"].stderr
    [action] = json.loads(seen["delete"].stdout)["bulk_actions"]
    assert action["source"] == "manual" and action["requested_by"] == "u-admin-1"
    assert action["status"] == "completed" and action["counts"]["deleted"] == 1 and action["counts"]["total"] == 1
    assert seen["show"].returncode == 0, seen["show"].stderr
    shown = json.loads(seen["show"].stdout)
    assert shown["contact_id"] == "c-2" and shown["state"] == "deleted"
    assert parse_as_of(shown["deleted_at"]) == CLOCK
    assert parse_as_of(shown["restorable_until"]) == CLOCK + timedelta(days=60)
    assert shown["associated"] == {"conversations": 0, "notes": 0, "tasks": 0, "activities": 0}
    assert shown["enrollments"] == {"campaigns": 0, "workflows": 0, "lists": 0}


def test_a_confirmation_other_than_DELETE_exits_2_and_changes_nothing(session):
    _, seen = session

    result = seen["bad_confirm"]
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == ("retention: error: --confirm must be exactly DELETE (got 'delete'); "
                                     "nothing was deleted")
    assert not seen["bad_confirm_changed"]


def test_a_delete_by_a_non_admin_exits_1_with_a_rejected_bulk_action(session):
    home, seen = session

    result = seen["not_admin"]
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    [action] = document["bulk_actions"]
    assert action["status"] == "rejected" and action["counts"]["rejected"] == 1
    assert "u-user-1 is not an admin" in action["reason"]
    assert any("u-user-1 is not an admin" in problem for problem in document["refused_or_failed"])
    with Store(home).connect(read_only=True) as con:
        assert con.execute("SELECT state FROM contact_lifecycle WHERE contact_id = 'c-1'").fetchone() is None


def test_run_exits_1_and_says_which_request_was_refused(session):
    _, seen = session

    result = seen["run"]
    assert result.returncode == 1, result.stderr
    [refusal] = [line for line in result.stdout.splitlines() if line.strip().startswith("!")]
    assert "request r-bad.json" in refusal and "1 rejected" in refusal
    assert "u-user-1 is not an admin (role user)" in refusal


def test_plan_prints_one_json_document_with_the_outcomes_of_the_run_and_changes_nothing(session):
    _, seen = session

    assert seen["plan"].returncode == 0, seen["plan"].stderr
    assert not seen["plan_changed"]
    planned = {action["source"]: action for action in json.loads(seen["plan"].stdout)["bulk_actions"]}
    assert {(i["contact_id"], i["outcome"]) for i in planned["request r-ok.json"]["items"]} == {
        ("c-2", "deleted"), ("c-3", "deleted")}
    assert [(i["contact_id"], i["outcome"]) for i in planned["request r-bad.json"]["items"]] == [("c-4", "rejected")]
    assert planned["request r-ok.json"]["counts"]["total"] == 2


def test_status_lists_the_bulk_actions_and_shows_one_with_its_items(session):
    _, seen = session

    assert seen["status"].returncode == 0, seen["status"].stderr
    actions = json.loads(seen["status"].stdout)["bulk_actions"]
    assert sorted((a["source"], a["status"]) for a in actions) == [
        ("manual", "completed"), ("manual", "rejected"), ("request r-bad.json", "rejected"),
        ("request r-ok.json", "completed")]
    for action in actions:
        assert {"bulk_action_id", "kind", "source", "requested_by", "created_at", "status"} <= set(action)
        counts = action["counts"]
        assert set(counts) == {"total", "deleted", "blocked", "rejected", "not_found", "already_done", "failed"}
        assert counts["total"] == sum(n for key, n in counts.items() if key != "total")
    [ok] = [a for a in actions if a["source"] == "request r-ok.json"]
    # c-2 went with the manual delete the day before: already done; c-3 (active workflow) by the legal erasure.
    assert (ok["counts"]["deleted"], ok["counts"]["already_done"]) == (1, 1)
    assert seen["status_one"].returncode == 0, seen["status_one"].stderr
    one = json.loads(seen["status_one"].stdout)
    assert one["source"] == "manual" and one["status"] == "completed"
    assert one["items"] == [{"contact_id": "c-2", "outcome": "deleted", "reason": None}]


def test_requests_lists_every_request_file_with_status_reason_and_due_date(session):
    _, seen = session

    assert seen["requests"].returncode == 0, seen["requests"].stderr
    records = {r["file"]: r for r in json.loads(seen["requests"].stdout)["requests"]}
    assert set(records) == {"r-ok.json", "r-bad.json"}
    assert {k: records["r-ok.json"][k] for k in ("request_id", "kind", "regulation", "status", "reason", "due_at")} == {
        "request_id": "r-ok", "kind": "erasure", "regulation": "ccpa", "status": "applied", "reason": None,
        "due_at": "2026-02-03T09:00:00Z"}
    assert records["r-ok.json"]["received_at"] == "2025-12-20T09:00:00Z"
    assert records["r-ok.json"]["bulk_action_id"].startswith("ba-20260102-")
    assert records["r-bad.json"]["status"] == "rejected"
    assert records["r-bad.json"]["reason"].startswith("u-user-1 is not an admin")


def test_audit_verify_passes_then_names_the_first_tampered_entry(session):
    home, seen = session

    assert seen["verify"].returncode == 0, seen["verify"].stderr
    verified = json.loads(seen["verify"].stdout)
    assert {k: verified[k] for k in ("ok", "entries", "path", "first_bad_entry")} == {
        "ok": True, "entries": seen["tampered_lines"], "path": str(home.audit_file), "first_bad_entry": None}
    assert verified["anchored_entries"] == seen["tampered_lines"] and verified["reason"] is None
    assert seen["tampered_lines"] >= 6
    assert seen["verify_tampered"].returncode == 1
    tampered = json.loads(seen["verify_tampered"].stdout)
    assert tampered["ok"] is False and tampered["first_bad_entry"] == 2
