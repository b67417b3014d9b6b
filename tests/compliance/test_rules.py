"""Rule triggers (tags_any, inactive_days, dnd, location), the registry's errors, and rules in the plan (R9, R1)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from compliance.clock import parse_as_of
from compliance.deletion import apply_deletions, build_plan, plan_items
from compliance.errors import InputError
from compliance.evidence.audit import AuditLog
from compliance.rules import TRIGGERS, bind_clock, build_triggers, predicate
from compliance.settings import Rule, Rules, Settings, load_rules
from compliance.store.keys import KeyedHasher
from support.crm import AS_OF, run_deletion

CLOCK = parse_as_of(AS_OF)
C1_LAST_ACTIVE = parse_as_of("2025-12-01T00:00:00Z")
C3_CREATED = parse_as_of("2024-03-01T00:00:00Z")


def matching(con, spec: dict, as_of=CLOCK) -> list[str]:
    bind_clock(con, as_of)
    condition = predicate(spec)
    sql = f"SELECT contact_id FROM contacts c WHERE {condition.sql} ORDER BY contact_id"
    return [row[0] for row in con.execute(sql, condition.parameters).fetchall()]


def rule(name: str = "r", status: str = "published", owner: str = "u-admin-1", **trigger) -> Rule:
    return Rule(name=name, status=status, owner=owner, trigger=trigger)


@pytest.mark.parametrize("tags, expected", [
    (["Unsubscribed"], ["c-4"]),
    (["UNSUBSCRIBED"], ["c-4"]),
    (["lead"], ["c-1"]),
    (["vip", "customer"], ["c-1", "c-2"]),
    (" newsletter ", ["c-4"]),
    (["unsub"], []),
])
def test_tags_any_matches_any_tag_case_insensitively(crm, con, tags, expected):
    assert matching(con, {"tags_any": tags}) == expected


@pytest.mark.parametrize("days_inactive, matches", [(29, False), (30, True), (31, True)])
def test_inactive_days_matches_from_exactly_n_days_without_activity(crm, con, days_inactive, matches):
    as_of = C1_LAST_ACTIVE + timedelta(days=days_inactive)

    assert ("c-1" in matching(con, {"inactive_days": 30}, as_of)) is matches


@pytest.mark.parametrize("offset, matches", [(timedelta(seconds=-1), False), (timedelta(0), True)])
def test_inactive_days_boundary_is_to_the_second(crm, con, offset, matches):
    as_of = C1_LAST_ACTIVE + timedelta(days=30) + offset

    assert ("c-1" in matching(con, {"inactive_days": 30}, as_of)) is matches


def test_a_contact_never_active_counts_from_its_creation(crm, con):
    assert "c-3" in matching(con, {"inactive_days": 100}, C3_CREATED + timedelta(days=100))
    assert "c-3" not in matching(con, {"inactive_days": 100}, C3_CREATED + timedelta(days=99))


@pytest.mark.parametrize("dnd, expected", [(True, ["c-3"]), (False, ["c-1", "c-2", "c-4"])])
def test_dnd_matches_the_flag(crm, con, dnd, expected):
    assert matching(con, {"dnd": dnd}) == expected


def test_all_given_triggers_must_hold(crm, con):
    assert matching(con, {"tags_any": ["customer", "newsletter"], "location": "loc-b"}) == ["c-4"]
    assert matching(con, {"dnd": True, "inactive_days": 30}) == ["c-3"]
    assert matching(con, {"dnd": True, "location": "loc-a"}) == []


def test_an_unknown_trigger_names_the_valid_ones():
    with pytest.raises(ValueError) as raised:
        build_triggers({"tag": ["Unsubscribed"]})

    assert str(raised.value) == f"unknown trigger 'tag' (valid: {', '.join(sorted(TRIGGERS))})"
    assert {"tags_any", "inactive_days", "dnd"} <= set(TRIGGERS)
    with pytest.raises(InputError, match="unknown trigger 'tag' .valid: dnd, inactive_days, location, tags_any"):
        predicate({"tag": "x"})


def test_rules_yaml_with_an_unknown_trigger_is_refused_naming_the_valid_ones(home):
    home.rules_file.write_text("rules:\n  - name: r\n    status: published\n    owner: u-admin-1\n"
                               "    trigger: {tagz: [Unsubscribed]}\n")

    with pytest.raises(InputError) as raised:
        load_rules(home.rules_file)

    assert str(home.rules_file) in str(raised.value)
    assert "unknown trigger 'tagz'" in str(raised.value) and "tags_any" in str(raised.value)


@pytest.mark.parametrize("spec, message", [
    ({"inactive_days": -1}, "inactive_days takes a whole number"),
    ({"inactive_days": True}, "inactive_days takes a whole number"),
    ({"dnd": "yes"}, "dnd takes true or false"),
    ({"tags_any": []}, "tags_any takes a non-empty list"),
])
def test_a_bad_trigger_value_is_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        build_triggers(spec)


def test_a_published_rule_deletes_what_it_matches_and_a_later_run_finds_nothing_new(crm, con):
    rules = Rules(rules=(rule("remove-unsubscribed", tags_any=["Unsubscribed"]),))

    first = run_deletion(con, crm, rules=rules)
    second = run_deletion(con, crm, rules=rules, as_of="2026-01-02T12:00:00Z")

    action = first.action("rule remove-unsubscribed")
    assert (action.status, action.counts["deleted"]) == ("completed", 1)
    assert con.execute("SELECT contact_id, outcome FROM bulk_action_items").fetchall() == [("c-4", "deleted")]
    assert con.execute("SELECT source, source_ref, requested_by, requester_authorized FROM bulk_actions"
                       ).fetchall() == [("rule remove-unsubscribed", "remove-unsubscribed", "u-admin-1", True)]
    assert second.applied == []


def test_a_draft_rule_shows_in_the_plan_only_and_is_never_applied(crm, con):
    rules = Rules(rules=(rule("draft-unsubscribed", status="draft", tags_any=["Unsubscribed"]),))
    hasher, settings = KeyedHasher(crm.secret()), Settings()

    previewed = build_plan(con, hasher=hasher, settings=settings, rules=rules, as_of=CLOCK, include_drafts=True)

    [action] = previewed.actions
    assert action.preview and action.source == "rule draft-unsubscribed" and action.counts["deleted"] == 1
    assert [(i["contact_id"], i["outcome"]) for i in plan_items(con)] == [("c-4", "deleted")]
    assert previewed.counts()["deleted"] == 0
    assert apply_deletions(con, hasher=hasher, settings=settings, as_of=CLOCK) == []
    assert con.execute("SELECT count(*) FROM contact_lifecycle").fetchone()[0] == 0

    run = run_deletion(con, crm, rules=rules)

    assert run.plan.actions == [] and run.applied == []
    assert con.execute("SELECT count(*) FROM bulk_actions").fetchone()[0] == 0


@pytest.mark.parametrize("owner, reason, recorded", [
    ("u-user-1", "u-user-1 is not an admin (role user): only admins can delete or restore", "u-user-1"),
    ("u-admin-2", "u-admin-2 is an inactive admin: only active admins can delete or restore", "u-admin-2"),
    ("ghost@crm.example", "the requester's email matches no staff member: only an active admin can delete or restore",
     "unknown staff member"),
])
def test_a_rule_not_owned_by_an_active_admin_is_rejected_with_the_reason(crm, con, owner, reason, recorded):
    rules = Rules(rules=(rule("remove-unsubscribed", owner=owner, tags_any=["Unsubscribed"]),))

    run = run_deletion(con, crm, rules=rules)

    action = run.action("rule remove-unsubscribed")
    assert (action.status, action.reason) == ("rejected", reason)
    assert con.execute("SELECT contact_id, outcome, reason FROM bulk_action_items").fetchall() == [
        ("c-4", "rejected", reason)]
    assert con.execute("SELECT requested_by, requester_authorized FROM bulk_actions").fetchone() == (recorded, False)
    assert con.execute("SELECT count(*) FROM contact_lifecycle").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM notes WHERE contact_id = 'c-4'").fetchone()[0] == 1
    assert AuditLog(crm.audit_file).verify().ok
    assert b"ghost@" not in crm.audit_file.read_bytes()
