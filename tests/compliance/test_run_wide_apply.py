"""A run with a request and a rule, backed up and applied together: the outcomes, tombstones, metrics and backups."""

from __future__ import annotations

import csv

import duckdb
import pytest

from compliance.settings import Rule, Rules, Settings
from support.crm import run_deletion, write_request

# The request (GDPR, c-1 by email) claims c-1 first; the rule (VIP or Customer) selects c-1 and c-2, and may
# remove them from active campaigns (so c-1 is claimed, not blocked, for the rule).
RULE = Rule(name="remove-vip-and-customers", status="published", owner="u-admin-1",
            trigger={"tags_any": ["VIP", "Customer"]})
REQUEST, RULE_SOURCE = "request r1.json", "rule remove-vip-and-customers"
# The rows of support.crm's snapshot each bulk action removes, by table and key, read off the snapshot by hand.
REMOVED = {
    REQUEST: {"contacts": {"c-1"}, "conversations": {"conv-1", "conv-2"}, "notes": {"n-1"}, "tasks": {"t-1"},
              "activities": {"a-1", "a-2"}, "campaign_enrollments": {"camp-1:c-1"}, "workflow_enrollments": set(),
              "list_memberships": {"l-1:c-1", "l-2:c-1"}},
    RULE_SOURCE: {"contacts": {"c-2"}, "conversations": {"conv-3"}, "notes": {"n-2"}, "tasks": set(),
                  "activities": {"a-3"}, "campaign_enrollments": {"camp-2:c-2"},
                  "workflow_enrollments": {"wf-1:c-2"}, "list_memberships": set()},
}
KEYS = {"contacts": "contact_id", "conversations": "conversation_id", "notes": "note_id", "tasks": "task_id",
        "activities": "activity_id", "campaign_enrollments": "campaign_id || ':' || contact_id",
        "workflow_enrollments": "workflow_id || ':' || contact_id", "list_memberships": "list_id || ':' || contact_id"}


@pytest.fixture
def ran(crm, con):
    write_request(crm, "r1", subjects=[{"email": "ann.lee@example.com"}])
    run = run_deletion(con, crm, rules=Rules(rules=(RULE,)), settings=Settings(active_enrollment="remove"))
    return run, {action.source: action.bulk_action_id for action in run.applied}


def test_each_contact_gets_the_outcome_of_the_first_source_that_claims_it(ran, con):
    run, ids = ran

    assert [(a.source, a.status, a.counts["deleted"], a.counts["already_done"]) for a in run.applied] == [
        (REQUEST, "completed", 1, 0), (RULE_SOURCE, "completed", 1, 1)]
    assert con.execute("SELECT bulk_action_id, contact_id, outcome, reason FROM bulk_action_items ORDER BY 1, 2"
                       ).fetchall() == sorted([
        (ids[REQUEST], "c-1", "deleted",
         "legal erasure (gdpr): removed from active campaign camp-1 (Winter sale), then deleted"),
        (ids[RULE_SOURCE], "c-1", "already_done", f"deleted in this run by {REQUEST}"),
        (ids[RULE_SOURCE], "c-2", "deleted", None)])
    assert con.execute("SELECT contact_id, state, deleted_by FROM contact_lifecycle ORDER BY 1").fetchall() == [
        ("c-1", "deleted", ids[REQUEST]), ("c-2", "deleted", ids[RULE_SOURCE])]
    assert con.execute("SELECT request_id, status, bulk_action_id FROM requests").fetchall() == [
        ("r1", "applied", ids[REQUEST])]


def test_every_removed_row_is_tombstoned_once_under_the_bulk_action_that_removed_it(ran, con):
    _, ids = ran
    expected = sorted((table, key, ids[source]) for source, tables in REMOVED.items()
                      for table, keys in tables.items() if table != "contacts" for key in keys)

    assert con.execute("SELECT table_name, row_key, bulk_action_id FROM tombstones ORDER BY ALL").fetchall() == expected
    for table in KEYS:
        if table != "contacts":
            assert con.execute(f"SELECT count(*) FROM {table} WHERE contact_id IN ('c-1', 'c-2')").fetchone()[0] == 0


def test_enrollment_metrics_count_each_removed_enrollment_once_and_the_active_campaign_as_active(ran, con):
    assert con.execute("SELECT object_kind, object_id, removed_by_deletion, removed_active FROM enrollment_metrics "
                       "ORDER BY 1, 2").fetchall() == [
        ("campaign", "camp-1", 1, 1), ("campaign", "camp-2", 1, 0), ("list", "l-1", 1, 0), ("list", "l-2", 1, 0),
        ("workflow", "wf-1", 1, 0)]


def test_only_the_legal_erasure_suppresses_and_only_its_own_contact(ran, con):
    _, ids = ran

    assert con.execute("SELECT bulk_action_id, key_kind FROM suppression ORDER BY 2").fetchall() == [
        (ids[REQUEST], "contact_id"), (ids[REQUEST], "email"), (ids[REQUEST], "phone")]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_each_bulk_action_backs_up_its_own_rows_with_the_tables_own_columns(ran, crm, con, fmt):
    _, ids = ran
    reader = duckdb.connect()
    for source, tables in REMOVED.items():
        folder = crm.root / con.execute("SELECT path FROM backups WHERE bulk_action_id = ?",
                                        [ids[source]]).fetchone()[0]
        for table, keys in tables.items():
            path = folder / f"{table}.{fmt}"
            columns = [row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()]
            relation = (f"read_csv('{path}', header = true, all_varchar = true)" if fmt == "csv"
                        else f"read_parquet('{path}')")
            if fmt == "csv":
                with path.open(newline="") as handle:
                    assert next(csv.reader(handle)) == columns
            assert [row[0] for row in reader.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()] == columns
            assert {row[0] for row in reader.execute(f"SELECT {KEYS[table]} FROM {relation}").fetchall()} == keys


def test_an_email_shared_with_a_contact_a_later_bulk_action_deletes_is_not_suppressed_by_the_erasure(crm, con):
    # c-2 and c-3 share bob@example.com; the erasure of c-2 comes first, the rule deleting c-3 (loc-b, out of its
    # active workflow) after it. As when each bulk action committed alone, c-3 still counts as active when c-2's
    # identifiers are suppressed.
    write_request(crm, "r1", subjects=[{"contact_id": "c-2"}])
    rule = Rule(name="remove-loc-b", status="published", owner="u-admin-1", trigger={"location": "loc-b"})
    run = run_deletion(con, crm, rules=Rules(rules=(rule,)), settings=Settings(active_enrollment="remove"))

    erasure = run.action(REQUEST).bulk_action_id
    assert run.action("rule remove-loc-b").counts["deleted"] == 2
    assert con.execute("SELECT contact_id, deleted_by FROM contact_lifecycle ORDER BY 1").fetchall() == [
        ("c-2", erasure), ("c-3", run.action("rule remove-loc-b").bulk_action_id),
        ("c-4", run.action("rule remove-loc-b").bulk_action_id)]
    assert con.execute("SELECT bulk_action_id, key_kind FROM suppression ORDER BY 2").fetchall() == [
        (erasure, "contact_id"), (erasure, "phone")]
