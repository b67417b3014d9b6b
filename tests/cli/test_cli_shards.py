"""The command line on a home of location shards: init and demo with shards, one run per shard, the whole home read
back combined, and a shard count or shard that does not fit refused as bad input."""

from __future__ import annotations

import json

import duckdb
import pytest

from compliance.home import Home
from compliance.shards.placement import shard_of
from support.cli import run_retention

AS_OF = "2026-06-01T00:00:00Z"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    home = Home(tmp_path_factory.mktemp("shards") / "home")
    done = run_retention("demo", "--shards", "2", "--locations", "12", "--contacts", "2000", "--as-of", AS_OF,
                         "--json", home=home, timeout=600)
    assert done.returncode == 0, done.stderr
    return home, json.loads(done.stdout)


def _contacts(home: Home, shard: int) -> list[tuple[str, str]]:
    with duckdb.connect(str(home.for_shard(shard).store_file), read_only=True) as con:
        return con.execute("SELECT contact_id, location_id FROM contacts").fetchall()


def test_the_demo_of_two_shards_runs_each_shard_and_puts_every_contact_in_its_locations_shard(demo):
    home, summary = demo
    assert [shard["shard"] for shard in summary["shards"]] == ["shard-0", "shard-1"]
    assert all(shard["success"] for shard in summary["shards"]) and summary["success"]
    held = {k: _contacts(home, k) for k in (0, 1)}
    assert held[0] and held[1], "both shards hold contacts"
    assert all(shard_of(location, 2) == k for k, rows in held.items() for _, location in rows)
    assert not {c for c, _ in held[0]} & {c for c, _ in held[1]}
    assert summary["checks"] and all(check["passed"] for check in summary["checks"].values())
    overall = {name for name in summary["checks"] if name.startswith("overall_")}
    assert overall == {"overall_contacts_in_their_shard", "overall_contacts_in_one_shard",
                       "overall_request_files_in_every_shard", "overall_shards_proven"}
    assert {action["shard"] for action in summary["bulk_actions"]} == {"shard-0", "shard-1"}


def test_requests_show_one_status_per_request_and_the_files_moved_once_both_shards_settled_them(demo):
    home, _ = demo
    done = run_retention("requests", "--json", "--as-of", AS_OF, home=home)
    records = json.loads(done.stdout)["requests"]
    assert len(records) == len({(r["file"], r["request_id"]) for r in records}) == 4
    statuses = {record["request_id"]: record["status"] for record in records}
    assert statuses["INT-2026-0050"] == "rejected" and list(statuses.values()).count("applied") == 3
    assert not list(home.requests_inbox.glob("*.json")) and not list(home.requests_inbox.glob("*.csv"))
    assert len(list((home.requests_inbox / "processed").iterdir())) == 4


def test_status_lists_every_shards_bulk_actions_and_show_finds_a_contact_in_either_shard(demo):
    home, summary = demo
    listed = json.loads(run_retention("status", "--json", home=home).stdout)["bulk_actions"]
    assert {action["bulk_action_id"] for action in listed} >= {a["bulk_action_id"] for a in summary["bulk_actions"]}
    for shard in (0, 1):
        contact_id, _ = _contacts(home, shard)[0]
        shown = json.loads(run_retention("show", contact_id, "--json", home=home).stdout)
        assert shown["contact_id"] == contact_id and shown["state"] in ("active", "deleted")


def test_audit_verify_checks_every_shards_chain(demo):
    home, _ = demo
    done = run_retention("audit", "verify", "--json", home=home)
    document = json.loads(done.stdout)
    assert done.returncode == 0 and document["ok"]
    assert [chain["path"].rsplit("/", 1)[1] for chain in document["chains"]] == ["shard-0.jsonl", "shard-1.jsonl"]
    assert document["entries"] == sum(chain["entries"] for chain in document["chains"]) > 0


def test_a_second_run_of_one_shard_changes_only_that_shard(demo):
    home, _ = demo
    before = home.for_shard(0).store_file.stat().st_mtime_ns
    done = run_retention("run", "--shard", "1", "--json", "--as-of", "2026-06-02T00:00:00Z", home=home)
    assert done.returncode in (0, 1), done.stderr
    summary = json.loads(done.stdout)
    assert [shard["shard"] for shard in summary["shards"]] == ["shard-1"]
    assert not [name for name in summary["checks"] if name.startswith("overall_")], "no whole-home proof of one shard"
    assert home.for_shard(0).store_file.stat().st_mtime_ns == before


@pytest.mark.parametrize("args, message", [
    (("run", "--shard", "2"), "--shard 2: this home has 2 shard(s), 0 to 1"),
    (("init", "--shards", "3"), "--shards 3: "),
])
def test_a_shard_that_does_not_exist_or_a_new_count_on_a_home_with_data_is_refused(demo, args, message):
    home, _ = demo
    done = run_retention(*args, home=home)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_run_on_stores_made_for_another_shard_count_is_refused_and_changes_nothing(tmp_path):
    home = Home(tmp_path / "home")
    assert run_retention("init", "--shards", "2", home=home).returncode == 0
    assert home.for_shard(1).store_file.exists()
    done = run_retention("demo", "--contacts", "50", "--as-of", AS_OF, home=home)
    assert done.returncode == 0, done.stderr
    home.settings_file.write_text(home.settings_file.read_text().replace("shards: 2", "shards: 1"))
    done = run_retention("run", "--as-of", AS_OF, home=home)
    assert done.returncode == 2 and "made for another shard count" in done.stderr
    assert not home.store_file.exists(), "no single store was started beside the shard stores"


def test_run_shard_on_a_home_of_one_shard_is_refused(tmp_path):
    home = Home(tmp_path / "home")
    run_retention("init", home=home)
    done = run_retention("run", "--shard", "0", home=home)
    assert done.returncode == 2 and "this home has 1 shard(s)" in done.stderr
