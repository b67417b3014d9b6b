"""A GDPR erasure across two shards: it erases both contacts; a shard killed mid-delete leaves it pending, the next
run applies it once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from compliance.home import Home
from compliance.shards.placement import shard_of
from compliance.store.connection import Store
from support.cli import run_retention as retention
from support.crm import AS_OF, write_request, write_snapshot
from support.processes import sigkill_once_marked

NEXT_RUN = "2026-01-01T13:00:00Z"
# bob@example.com is the email of c-2 (loc-a) and, padded and upper-cased, of c-3 (loc-b) in support.crm.
SUBJECT_EMAIL = "bob@example.com"
LINKED = ("conversations", "notes", "tasks", "activities", "campaign_enrollments", "workflow_enrollments",
          "list_memberships")
# c-3's rows in support.crm, counted by hand: one call, and an active enrollment in the published workflow wf-1.
C3_LINKED = {"conversations": 0, "notes": 0, "tasks": 0, "activities": 1, "campaign_enrollments": 0,
             "workflow_enrollments": 1, "list_memberships": 0}

# `retention run --shard 1` in a child process that stops inside the apply's cascade (the delete's transaction is
# open and c-3's rows are already deleted in it), says so through a marker file, and waits to be killed.
CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path

    import compliance.deletion.apply as applying
    from pipelines.cli import main

    marker, home, as_of = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    real = applying._keep_enrollment_metrics

    def keep_then_hang(*args, **kwargs):
        result = real(*args, **kwargs)
        marker.write_text("inside the delete")
        time.sleep(600)
        return result

    applying._keep_enrollment_metrics = keep_then_hang
    code = main(["run", "--shard", "1", "--home", home, "--as-of", as_of, "--json"])
    print(f"the run ended without being killed (exit {code})", file=sys.stderr)
""")


def two_shard_home(root: Path) -> Home:
    """A home of two shards with the hand-made CRM and a GDPR erasure of the email c-2 and c-3 both carry."""
    home = Home(root)
    init = retention("init", "--shards", "2", "--json", home=root)
    assert init.returncode == 0, init.stderr
    write_snapshot(home.snapshots_inbox / "s1")
    write_request(home, "g1", subjects=[{"email": SUBJECT_EMAIL}])
    return home


def json_of(*args: str, home: Home) -> dict:
    done = retention(*args, "--json", home=home)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def linked(con, contact_id: str) -> dict[str, int]:
    return {table: con.execute(f"SELECT count(*) FROM {table} WHERE contact_id = ?", [contact_id]).fetchone()[0]
            for table in LINKED}


def deleted_outcomes(home: Home) -> list[tuple[int, str]]:
    """Every `deleted` item of every bulk action of either shard: (shard, contact id), sorted."""
    found = []
    for shard in (0, 1):
        with Store(home.for_shard(shard)).connect(read_only=True) as con:
            found += [(shard, contact_id) for (contact_id,) in con.execute(
                "SELECT contact_id FROM bulk_action_items WHERE outcome = 'deleted'").fetchall()]
    return sorted(found)


def kill_inside_shard_1_delete(home: Home, tmp_path: Path) -> None:
    """Run `retention run --shard 1` in a child and SIGKILL it once it is inside its delete's transaction."""
    marker, script = tmp_path / "inside-delete", tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(script), str(marker), str(home.root), AS_OF],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={key: value for key, value in os.environ.items()
                                  if key not in ("RETENTION_HOME", "DAGSTER_HOME")})
    sigkill_once_marked(child, marker, timeout=300, moment="its delete")


def test_the_subjects_contacts_lie_in_two_different_shards_of_the_two():
    assert (shard_of("loc-a", 2), shard_of("loc-b", 2)) == (0, 1)


def test_a_gdpr_erasure_of_an_email_carried_in_two_shards_erases_both_contacts_and_settles_the_file(tmp_path):
    home = two_shard_home(tmp_path / "home")

    run = retention("run", "--as-of", AS_OF, "--json", home=home)

    assert run.returncode == 0, run.stderr
    assert {action["shard"] for action in json.loads(run.stdout)["bulk_actions"]} == {"shard-0", "shard-1"}
    assert deleted_outcomes(home) == [(0, "c-2"), (1, "c-3")]
    assert {contact: json_of("show", contact, home=home)["state"] for contact in ("c-1", "c-2", "c-3", "c-4")} == {
        "c-1": "active", "c-2": "deleted", "c-3": "deleted", "c-4": "active"}
    [record] = json_of("requests", "--as-of", AS_OF, home=home)["requests"]
    assert (record["request_id"], record["status"]) == ("g1", "applied")
    assert (home.requests_inbox / "processed" / "g1.json").is_file()
    assert not (home.requests_inbox / "g1.json").exists()
    assert json_of("audit", "verify", home=home)["ok"] is True


def test_a_shard_killed_mid_delete_leaves_the_request_pending_and_the_next_run_applies_it_exactly_once(tmp_path):
    home = two_shard_home(tmp_path / "home")
    first = retention("run", "--shard", "0", "--as-of", AS_OF, "--json", home=home)
    assert first.returncode == 0, first.stderr

    kill_inside_shard_1_delete(home, tmp_path)

    [record] = json_of("requests", "--as-of", AS_OF, home=home)["requests"]
    assert (record["request_id"], record["status"]) == ("g1", "pending")
    assert json_of("show", "c-2", home=home)["state"] == "deleted"
    assert json_of("show", "c-3", home=home)["state"] == "active"
    assert (home.requests_inbox / "g1.json").is_file()
    with Store(home.for_shard(1)).connect(read_only=True) as con:
        assert linked(con, "c-3") == C3_LINKED
        assert con.execute("SELECT count(*) FROM contact_lifecycle").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM tombstones").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM bulk_actions").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM suppression").fetchone()[0] == 0
        assert con.execute("SELECT status, bulk_action_id FROM requests WHERE request_id = 'g1'").fetchall() == [
            ("pending", None)]

    again = retention("run", "--as-of", NEXT_RUN, "--json", home=home)

    assert again.returncode == 0, again.stderr
    assert deleted_outcomes(home) == [(0, "c-2"), (1, "c-3")]
    with Store(home.for_shard(1)).connect(read_only=True) as con:
        assert linked(con, "c-3") == dict.fromkeys(LINKED, 0)
    [record] = json_of("requests", "--as-of", NEXT_RUN, home=home)["requests"]
    assert (record["request_id"], record["status"]) == ("g1", "applied")
    assert json_of("show", "c-3", home=home)["state"] == "deleted"
    assert (home.requests_inbox / "processed" / "g1.json").is_file()
    assert not (home.requests_inbox / "g1.json").exists()
    assert json_of("audit", "verify", home=home)["ok"] is True
