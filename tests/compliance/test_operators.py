"""Accountability: the OS user and host beside the staff id of each bulk action, and `operators:` bindings."""

from __future__ import annotations

import pytest

from compliance.errors import InputError
from compliance.evidence.audit import AuditLog
from compliance.operators import Operator, check_operator, current_operator
from compliance.settings import Settings, load_settings
from support.crm import run_deletion, write_request, write_snapshot


def test_without_operators_anyone_may_act_as_any_staff_member():
    check_operator(Settings(), "u-admin-1", Operator("mallory", "h"))


@pytest.mark.parametrize("as_user", ["u-admin-1", " U-ADMIN-1 ", "dana.admin@crm.example"])
def test_an_os_user_may_act_as_the_staff_ids_it_is_bound_to(as_user):
    settings = Settings(operators={"dana": ("u-admin-1", "Dana.Admin@crm.example")})

    check_operator(settings, as_user, Operator("dana", "h"))


@pytest.mark.parametrize("os_user, as_user", [("dana", "u-admin-2"), ("mallory", "u-admin-1")])
def test_an_os_user_acting_as_a_staff_id_it_is_not_bound_to_is_refused(os_user, as_user):
    settings = Settings(operators={"dana": ("u-admin-1",)})

    with pytest.raises(InputError, match=f"OS user {os_user} may not act as this staff member"):
        check_operator(settings, as_user, Operator(os_user, "h"))


def test_operators_are_read_from_settings_yaml(home):
    home.settings_file.write_text("operators:\n  dana: [u-admin-1]\n")

    assert load_settings(home.settings_file).operators == {"dana": ("u-admin-1",)}


def test_each_bulk_action_and_its_audit_entry_record_the_os_user_and_host(home, con):
    write_snapshot(home.snapshots_inbox / "s1")
    write_request(home, "r1", regulation="internal", subjects=[{"contact_id": "c-2"}])

    run = run_deletion(con, home)

    me = current_operator()
    bulk_action_id = run.action("request r1.json").bulk_action_id
    assert con.execute("SELECT os_user, host FROM bulk_actions WHERE bulk_action_id = ?",
                       [bulk_action_id]).fetchone() == (me.os_user, me.host)
    [entry] = [e for e in AuditLog(home.audit_file).entries() if e["event"] == "bulk_action.delete"]
    assert entry["fields"]["operator"] == {"os_user": me.os_user, "host": me.host}
    assert entry["fields"]["requested_by"] == "u-admin-1"


def test_a_manual_delete_by_an_unbound_os_user_exits_2_and_deletes_nothing(home, con, capsys):
    from pipelines.cli import main

    con.close()
    home.settings_file.write_text("operators:\n  someone-else: [u-admin-1]\n")

    code = main(["delete", "--home", str(home.root), "--contact", "c-1", "--as-user", "u-admin-1",
                 "--confirm", "DELETE"])

    assert code == 2
    assert f"OS user {current_operator().os_user} may not act" in capsys.readouterr().err
    assert not home.dagster_home.joinpath("history").exists()
