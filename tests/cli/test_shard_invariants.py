"""The overall invariants of a home of shards, each failing alone on a doctored copy of a home run shard by shard."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest

from compliance.home import Home
from compliance.shards.invariants import (
    CONTACTS_IN_ONE_SHARD,
    CONTACTS_IN_THEIR_SHARD,
    DESCRIPTIONS,
    REQUEST_FILES_IN_EVERY_SHARD,
    SHARDS_PROVEN,
    check_shard_invariants,
)
from compliance.shards.placement import shard_of
from compliance.store.connection import Store
from support.cli import run_retention

AS_OF = "2026-01-01T12:00:00Z"


@pytest.fixture(scope="module")
def sharded_template(tmp_path_factory) -> Home:
    """A demo home of two shards (four locations, sample requests) after one `retention run` of every shard."""
    root = tmp_path_factory.mktemp("sharded") / "home"
    done = run_retention("demo", "--contacts", "1000", "--locations", "4", "--shards", "2", "--as-of", AS_OF, "--json",
                         home=root)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert [name for name in summary["checks"] if name.startswith("overall_")] == [
        f"overall_{name}" for name in DESCRIPTIONS]
    return Home.resolve(root)


@pytest.fixture
def sharded(sharded_template: Home, tmp_path: Path) -> Home:
    """A copy of the template home to doctor."""
    shutil.copytree(sharded_template.root, tmp_path / "home", symlinks=True)
    return Home.resolve(tmp_path / "home")


def failing(home: Home) -> dict[str, tuple[int, tuple[str, ...]]]:
    """The overall invariants that fail: name -> (violations, sample ids)."""
    return {result.name: (result.violations, result.sample_ids)
            for result in check_shard_invariants(home) if not result.passed}


def store(home: Home, shard: int) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(home.for_shard(shard).store_file))


def a_contact(home: Home, shard: int) -> tuple[str, str]:
    """A contact of the shard and its location."""
    with store(home, shard) as con:
        return con.execute("SELECT contact_id, location_id FROM contacts ORDER BY contact_id LIMIT 1").fetchone()


def test_a_home_run_shard_by_shard_passes_every_overall_invariant(sharded_template):
    results = check_shard_invariants(sharded_template)

    assert [result.name for result in results] == list(DESCRIPTIONS)
    assert all(result.passed and result.violations == 0 for result in results), [r.message for r in results]
    assert (sharded_template.requests_inbox / "processed").is_dir()
    assert list(sharded_template.requests_inbox.glob("*.csv")), "a blocked request stays waiting in the inbox"


def test_a_contact_moved_to_another_shards_location_fails_only_contacts_in_their_shard(sharded):
    contact_id, _ = a_contact(sharded, 0)
    _, elsewhere = a_contact(sharded, 1)
    with store(sharded, 0) as con:
        con.execute("UPDATE contacts SET location_id = ? WHERE contact_id = ?", [elsewhere, contact_id])

    assert shard_of(elsewhere, 2) == 1
    assert failing(sharded) == {CONTACTS_IN_THEIR_SHARD: (1, (contact_id,))}


def test_a_contact_copied_into_another_shards_store_is_in_the_wrong_shard_and_in_two(sharded):
    contact_id, _ = a_contact(sharded, 0)
    with store(sharded, 1) as con:
        con.execute(f"ATTACH '{sharded.for_shard(0).store_file}' AS shard_0 (READ_ONLY)")
        con.execute("INSERT INTO contacts SELECT * FROM shard_0.contacts WHERE contact_id = ?", [contact_id])

    assert failing(sharded) == {CONTACTS_IN_THEIR_SHARD: (1, (contact_id,)), CONTACTS_IN_ONE_SHARD: (1, (contact_id,))}


def test_a_contact_recorded_as_deleted_by_another_shard_is_held_by_two(sharded):
    contact_id, _ = a_contact(sharded, 0)
    with store(sharded, 1) as con:
        con.execute("INSERT INTO contact_lifecycle (contact_id, state) VALUES (?, 'deleted')", [contact_id])

    assert failing(sharded) == {CONTACTS_IN_ONE_SHARD: (1, (contact_id,))}


def test_a_settled_request_file_one_shard_never_recorded_fails_until_it_is_back_in_the_inbox(sharded):
    processed = sorted((sharded.requests_inbox / "processed").iterdir())[0]
    with store(sharded, 1) as con:
        assert con.execute("DELETE FROM requests WHERE file = ?", [processed.name]).fetchall()[0][0] >= 1

    assert failing(sharded) == {REQUEST_FILES_IN_EVERY_SHARD: (1, (processed.name,))}

    shutil.copy2(processed, sharded.requests_inbox / processed.name)
    assert failing(sharded) == {}


def _last_results(home: Home, shard: int) -> Path:
    [path] = home.for_shard(shard).reports_dir.glob("*/invariants.json")
    return path


def test_a_shard_whose_last_invariants_failed_fails_shards_proven(sharded):
    path = _last_results(sharded, 1)
    saved = json.loads(path.read_text())
    saved["results"][0]["passed"] = False
    path.write_text(json.dumps(saved))

    assert failing(sharded) == {SHARDS_PROVEN: (1, ("shard-1",))}
    message = {r.name: r.message for r in check_shard_invariants(sharded)}[SHARDS_PROVEN]
    assert saved["results"][0]["name"] in message and path.parent.name in message


def test_a_shard_never_proven_fails_shards_proven(sharded):
    _last_results(sharded, 0).unlink()

    assert failing(sharded) == {SHARDS_PROVEN: (1, ("shard-0",))}


def test_only_a_shards_last_result_counts(sharded):
    path = _last_results(sharded, 1)
    older = path.parent.with_name("20251231T120000Z-older000")
    shutil.copytree(path.parent, older)
    saved = json.loads(path.read_text())
    saved["results"][0]["passed"] = False
    (older / "invariants.json").write_text(json.dumps(saved))
    os.utime(older / "invariants.json", ns=(path.stat().st_mtime_ns - 10**9,) * 2)

    assert failing(sharded) == {}

    os.utime(older / "invariants.json", ns=(path.stat().st_mtime_ns + 10**9,) * 2)
    assert failing(sharded) == {SHARDS_PROVEN: (1, ("shard-1",))}


def test_a_home_of_one_shard_never_run_is_only_unproven(home):
    Store(home).connect().close()

    assert failing(home) == {SHARDS_PROVEN: (1, ("store",))}
