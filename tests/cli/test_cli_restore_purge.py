"""`retention restore` and `retention show` as a user runs them: a refused restore, a restore, a purged contact."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from compliance.clock import parse_as_of
from compliance.home import Home
from compliance.purge import purge
from compliance.settings import Settings
from compliance.store.connection import Store
from compliance.store.keys import KeyedHasher
from support.cli import run_retention as retention
from support.crm import AS_OF, run_deletion, store_contents, write_request, write_snapshot

CLOCK = parse_as_of(AS_OF)
RESTORE_AT = "2026-01-06T12:00:00Z"
RECORD_TABLES = ("bulk_actions", "bulk_action_items", "requests", "pending_subjects", "audit_anchor")


def unchanged_part(home: Home) -> dict[str, list[tuple]]:
    with Store(home).connect(read_only=True) as con:
        return {table: rows for table, rows in store_contents(con).items()
                if table not in RECORD_TABLES and not table.startswith(("restore_", "plan_"))}


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """c-2 and c-4 erased at AS_OF (in process), then the user's commands in order; every result kept."""
    home = Home(tmp_path_factory.mktemp("cli-restore") / "home")
    home.init()
    write_snapshot(home.snapshots_inbox / "s1")
    write_request(home, "erase", regulation="internal", subjects=[{"contact_id": "c-2"}, {"contact_id": "c-4"}])
    with Store(home).connect() as con:
        run_deletion(con, home)
    results = {"before_refused": unchanged_part(home)}
    results["refused"] = retention("restore", "--contact", "c-2", "--as-user", "u-user-1", "--as-of", RESTORE_AT,
                                   "--json", home=home.root)
    results["after_refused"] = unchanged_part(home)
    results["restored"] = retention("restore", "--contact", "c-2", "--as-user", "u-admin-1", "--as-of", RESTORE_AT,
                                    home=home.root)
    results["show_restored"] = retention("show", "c-2", "--json", home=home.root)
    with Store(home).connect() as con:
        purge(con, home, hasher=KeyedHasher(home.secret()), settings=Settings(), as_of=CLOCK + timedelta(days=61))
    results["show_purged"] = retention("show", "c-4", "--json", home=home.root)
    results["show_purged_text"] = retention("show", "c-4", home=home.root)
    return home, results


def test_a_restore_by_a_non_admin_exits_1_says_why_and_changes_nothing(session):
    _, results = session
    refused = results["refused"]

    assert refused.returncode == 1, refused.stderr
    document = json.loads(refused.stdout)
    [action] = document["bulk_actions"]
    assert (action["kind"], action["status"], action["requested_by"]) == ("restore", "rejected", "u-user-1")
    assert action["counts"]["rejected"] == 1 and action["counts"]["restored"] == 0
    assert "u-user-1 is not an admin" in document["refused_or_failed"][0]
    assert results["after_refused"] == results["before_refused"]


def test_a_restore_by_an_admin_exits_0_and_show_gives_the_contact_active_with_restored_at(session):
    _, results = session

    assert results["restored"].returncode == 0, results["restored"].stdout + results["restored"].stderr
    assert "1 restored" in results["restored"].stdout
    shown = json.loads(results["show_restored"].stdout)
    assert results["show_restored"].returncode == 0
    assert (shown["state"], shown["restored_at"], shown["deleted_at"]) == ("active", RESTORE_AT, None)
    # No snapshot has changed it since its restore: rules pass it over.
    assert shown["rule_exempt"] is True
    assert shown["associated"] == {"conversations": 0, "notes": 0, "tasks": 0, "activities": 0}
    assert shown["enrollments"] == {"campaigns": 0, "workflows": 0, "lists": 0}


def test_show_gives_a_purged_contact_as_purged_with_its_dates(session):
    _, results = session

    assert results["show_purged"].returncode == 0, results["show_purged"].stderr
    shown = json.loads(results["show_purged"].stdout)
    assert (shown["contact_id"], shown["state"], shown["deleted_at"], shown["purged_at"]) == (
        "c-4", "purged", AS_OF, "2026-03-03T12:00:00Z")
    assert shown["rule_exempt"] is False
    text = results["show_purged_text"].stdout
    assert "c-4: purged" in text and "purged at 2026-03-03T12:00:00Z" in text
