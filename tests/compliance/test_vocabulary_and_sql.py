"""The vocabulary's public values, the packaged SQL files and their parameters, and the blocking backup verification."""

from __future__ import annotations

import json

import pytest

from compliance.clock import parse_as_of
from compliance.deletion import back_up, build_plan, verify_planned_backups
from compliance.requests.intake import take_requests
from compliance.requests.records import bulk_actions
from compliance.settings import Rules, load_settings
from compliance.store.keys import KeyedHasher
from compliance.store.sql import load_sql, parameters, table_exists
from compliance.vocabulary import (
    DELETE_OUTCOMES,
    RESTORE_OUTCOMES,
    SQL_VOCABULARY,
    BulkActionKind,
    BulkActionStatus,
    ContactState,
    Outcome,
    RequestStatus,
)
from support.crm import AS_OF, run_deletion, write_request

SQL_FILES = (("compliance.deletion", "decide.sql"), ("compliance.restore", "restore_decide.sql"),
             ("compliance", "purge_scan.sql"))


def test_the_vocabulary_keeps_the_values_of_the_public_json():
    assert [status.value for status in RequestStatus] == ["pending", "applied", "rejected", "quarantined", "duplicate"]
    assert [kind.value for kind in BulkActionKind] == ["delete", "restore", "purge"]
    assert [status.value for status in BulkActionStatus] == ["completed", "rejected", "failed"]
    assert [state.value for state in ContactState] == ["active", "deleted", "purged", "unknown"]
    assert DELETE_OUTCOMES == ("deleted", "blocked", "rejected", "not_found", "already_done", "failed")
    assert RESTORE_OUTCOMES == ("restored", "rejected", "not_found", "already_done", "failed")


def test_a_vocabulary_member_serialises_and_formats_as_its_bare_value():
    assert json.dumps({Outcome.NOT_FOUND: RequestStatus.APPLIED}) == '{"not_found": "applied"}'
    assert f"{Outcome.ALREADY_DONE}" == "already_done" and str(ContactState.DELETED) == "deleted"


@pytest.mark.parametrize("package, name", SQL_FILES)
def test_every_sql_file_ships_in_its_package_and_carries_no_timestamp_literal(package, name):
    sql = load_sql(package, name)

    assert "TIMESTAMPTZ '" not in sql and "{" not in sql
    assert "$as_of" in sql or name == "decide.sql"


def test_parameters_binds_only_the_names_a_statement_uses_with_the_vocabulary_as_default():
    sql = "SELECT $as_of, $outcome_deleted, $state_deleted"

    bound = parameters(sql, {"as_of": 1, "window": 60})

    assert bound == {"as_of": 1, "outcome_deleted": "deleted", "state_deleted": "deleted"}
    assert bound["outcome_deleted"] is Outcome.DELETED and "state_deleted" in SQL_VOCABULARY


def test_parameters_names_a_parameter_without_a_value():
    with pytest.raises(KeyError, match=r"\$window"):
        parameters("SELECT $as_of + $window", {"as_of": 1})


def test_without_a_plan_there_is_no_planned_backup_to_verify(crm, con):
    assert not table_exists(con, "plan_sources")
    assert verify_planned_backups(con) == {}


def planned_with_backups(crm, con) -> dict:
    settings, clock = load_settings(crm.settings_file), parse_as_of(AS_OF)
    write_request(crm, "r1", subjects=[{"contact_id": "c-1"}])
    take_requests(con, crm, as_of=clock, settings=settings)
    build_plan(con, hasher=KeyedHasher(crm.secret()), settings=settings, rules=Rules(), as_of=clock)
    return back_up(con, crm, settings)


def test_every_planned_backup_verifies_right_after_it_is_written(crm, con):
    backups = planned_with_backups(crm, con)

    assert len(backups) == 1 and verify_planned_backups(con) == {}


def test_a_planned_backup_with_a_file_changed_on_disk_is_named_with_its_problem(crm, con):
    [bulk_action_id] = planned_with_backups(crm, con)
    contacts_file = next((crm.backups_dir / bulk_action_id).glob("contacts.*"))
    contacts_file.write_bytes(contacts_file.read_bytes() + b"tampered")

    problems = verify_planned_backups(con)

    assert list(problems) == [bulk_action_id] and problems[bulk_action_id]


def test_a_backup_that_could_not_be_written_is_left_to_apply_not_reported(crm, con):
    [bulk_action_id] = planned_with_backups(crm, con)
    con.execute("UPDATE plan_sources SET backup_path = NULL, backup_error = 'backup failed: disk full'")

    assert verify_planned_backups(con) == {}


def test_what_leaves_the_domain_carries_plain_strings_not_enum_members(crm, con):
    write_request(crm, "r1", subjects=[{"contact_id": "c-1"}, {"contact_id": "c-404"}])

    run = run_deletion(con, crm)

    [action] = run.applied
    assert type(action.status) is str and all(type(key) is str for key in action.counts)
    assert all(type(key) is str for key in run.plan.counts()) and all(type(k) is str for k in run.intake.by_status)
    [document] = bulk_actions(con)
    assert all(type(key) is str for key in document["counts"])
