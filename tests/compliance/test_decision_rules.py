"""PRODUCT.md section 5's decision rules: location-scoped admins, a restore sticks, requests that could not finish."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from test_highlevel import documented_contact, page

from compliance.clock import parse_as_of
from compliance.contacts import show_contact
from compliance.deletion import ManualSelection
from compliance.requests.intake import settle_request_files, take_requests
from compliance.restore import ManualRestore, apply_restores, plan_restores
from compliance.settings import Rule, Rules, Settings
from compliance.snapshots.ingest import ingest_snapshots
from compliance.store.keys import KeyedHasher
from support.crm import AS_OF, base_tables, run_deletion, write_request, write_snapshot

T0 = parse_as_of(AS_OF)
T1 = T0 + timedelta(days=1)
T2 = T0 + timedelta(days=2)
T3 = T0 + timedelta(days=3)
OUTSIDE_B = "u-admin-a is not an admin of location loc-b"


def scoped_tables() -> dict[str, list[dict]]:
    """The hand-made CRM with an admin of loc-a only and one of both locations; c-2 (loc-a) is unsubscribed like c-4
    (loc-b), so a tag rule matches a contact of each location."""
    tables = base_tables()
    for row in tables["staff"]:
        row["location_ids"] = ""
    tables["staff"] += [
        dict(user_id="u-admin-a", email="ada@crm.example", name="Ada", role="admin", active="true",
             location_ids="loc-a"),
        dict(user_id="u-admin-ab", email="abe@crm.example", name="Abe", role="admin", active="true",
             location_ids="loc-a,loc-b"),
    ]
    tables["contacts"][1]["tags"] = "Customer,Unsubscribed"
    return tables


def unsubscribed_rule(owner: str) -> Rules:
    return Rules(rules=(Rule(name="remove-unsubscribed", status="published", owner=owner,
                             trigger={"tags_any": ["Unsubscribed"]}),))


@pytest.fixture
def scoped(home):
    write_snapshot(home.snapshots_inbox / "s1", scoped_tables())
    return home


def items(con, bulk_action_id: str) -> list[tuple]:
    return con.execute("SELECT contact_id, outcome, reason FROM bulk_action_items WHERE bulk_action_id = ? "
                       "ORDER BY contact_id NULLS LAST", [bulk_action_id]).fetchall()


def deleted_ids(con) -> list[str]:
    return [row[0] for row in con.execute(
        "SELECT contact_id FROM contact_lifecycle WHERE state = 'deleted' ORDER BY 1").fetchall()]


def requests_by_file(con) -> dict[str, tuple]:
    return {row[0]: row[1:] for row in con.execute(
        "SELECT file, status, reason, bulk_action_id FROM requests").fetchall()}


def restore_run(con, home, as_of, manual: ManualRestore | None = None):
    """Take request files, plan and apply the restores, settle the files: the restore step in order."""
    hasher = KeyedHasher(home.secret())
    take_requests(con, home, as_of=as_of, settings=Settings())
    plan_restores(con, hasher=hasher, settings=Settings(), as_of=as_of, manual=manual)
    actions = apply_restores(con, hasher=hasher, as_of=as_of)
    settle_request_files(con, home)
    return actions


def next_snapshot(home, name: str, change) -> None:
    tables = scoped_tables()
    change(tables)
    write_snapshot(home.snapshots_inbox / name, tables)


# Location-scoped admins


def test_an_account_admins_erasure_deletes_only_their_locations_contacts_and_rejects_the_other(scoped, con):
    # bob@example.com is c-2 (loc-a) and c-3 (loc-b, in an active workflow).
    write_request(scoped, "r1", requested_by="u-admin-a", subjects=[{"email": "bob@example.com"}])

    run = run_deletion(con, scoped)

    action = run.action("request r1.json")
    assert items(con, action.bulk_action_id) == [("c-2", "deleted", None), ("c-3", "rejected", OUTSIDE_B)]
    assert deleted_ids(con) == ["c-2"]
    assert con.execute("SELECT count(*) FROM workflow_enrollments WHERE contact_id = 'c-3'").fetchone()[0] == 1
    hasher = KeyedHasher(scoped.secret())
    suppressed = {row[0] for row in con.execute("SELECT key_hash FROM suppression").fetchall()}
    assert hasher.hash("contact_id", "c-2") in suppressed
    assert not suppressed & {hasher.hash("contact_id", "c-3"), hasher.hash("email", "bob@example.com")}
    assert requests_by_file(con)["r1.json"] == ("applied", None, action.bulk_action_id)


def test_a_rule_owned_by_an_account_admin_deletes_only_in_their_locations(scoped, con):
    run = run_deletion(con, scoped, rules=unsubscribed_rule("u-admin-a"))

    action = run.action("rule remove-unsubscribed")
    assert items(con, action.bulk_action_id) == [("c-2", "deleted", None), ("c-4", "rejected", OUTSIDE_B)]
    assert deleted_ids(con) == ["c-2"]


def test_a_manual_delete_by_an_account_admin_deletes_only_in_their_locations(scoped, con):
    run = run_deletion(con, scoped, manual=ManualSelection(requested_by="u-admin-a", select_all=True),
                       include_requests=False)

    outcomes = {(c, o, r) for c, o, r in items(con, run.action("manual").bulk_action_id)}
    assert {(c, o) for c, o, _ in outcomes} == {("c-1", "blocked"), ("c-2", "deleted"), ("c-3", "rejected"),
                                              ("c-4", "rejected")}
    assert {r for c, o, r in outcomes if o == "rejected"} == {OUTSIDE_B}
    assert deleted_ids(con) == ["c-2"]


@pytest.mark.parametrize("requester", ["u-admin-1", "u-admin-ab"], ids=["no-locations", "both-locations"])
def test_an_admin_of_every_location_or_of_both_deletes_in_both(scoped, con, requester):
    write_request(scoped, "r1", requested_by=requester, regulation="internal",
                  subjects=[{"contact_id": "c-2"}, {"contact_id": "c-4"}])

    run = run_deletion(con, scoped)

    assert [o for _, o, _ in items(con, run.action("request r1.json").bulk_action_id)] == ["deleted", "deleted"]
    assert deleted_ids(con) == ["c-2", "c-4"]


def test_an_account_admin_restores_only_contacts_of_their_locations(scoped, con):
    write_request(scoped, "erase", regulation="internal", subjects=[{"contact_id": "c-2"}, {"contact_id": "c-4"}])
    run_deletion(con, scoped)
    write_request(scoped, "back", kind="restore", confirm=None, requested_by="u-admin-a",
                  received_at="2026-01-01T13:00:00Z", subjects=[{"contact_id": "c-2"}, {"contact_id": "c-4"}])

    [action] = restore_run(con, scoped, T1)

    assert items(con, action.bulk_action_id) == [("c-2", "restored", None), ("c-4", "rejected", OUTSIDE_B)]
    assert deleted_ids(con) == ["c-4"]


# A restore sticks


@pytest.fixture
def restored(scoped, con):
    """c-2 and c-4 deleted by the rule at T0; c-4 restored by an admin at T1."""
    run_deletion(con, scoped, rules=unsubscribed_rule("u-admin-1"))
    restore_run(con, scoped, T1, manual=ManualRestore(requested_by="u-admin-1", contact_ids=("c-4",)))
    assert deleted_ids(con) == ["c-2"]
    return scoped


def rule_exempt(con, home, contact_id: str) -> bool:
    return show_contact(con, contact_id, restore_window_days=60, hasher=KeyedHasher(home.secret()))["rule_exempt"]


def test_a_rule_does_not_delete_a_restored_contact_again_while_no_snapshot_changed_it(restored, con):
    assert rule_exempt(con, restored, "c-4") is True

    run = run_deletion(con, restored, as_of=T2, rules=unsubscribed_rule("u-admin-1"))

    assert run.applied == [] and deleted_ids(con) == ["c-2"]
    assert rule_exempt(con, restored, "c-4") is True
    assert rule_exempt(con, restored, "c-1") is False


@pytest.mark.parametrize("after_restore, exempt", [(timedelta(0), True), (timedelta(seconds=1), False)],
                         ids=["updated-at-the-restore", "updated-a-second-after"])
def test_a_later_snapshot_updated_after_the_restore_lifts_the_exemption(restored, con, after_restore, exempt):
    def touch_c4(tables):
        tables["contacts"][3]["updated_at"] = (T1 + after_restore).isoformat()
    next_snapshot(restored, "s2", touch_c4)
    ingest_snapshots(con, restored, as_of=T2)
    assert rule_exempt(con, restored, "c-4") is exempt

    run_deletion(con, restored, as_of=T2, rules=unsubscribed_rule("u-admin-1"))

    assert deleted_ids(con) == (["c-2"] if exempt else ["c-2", "c-4"])


@pytest.mark.parametrize("source", ["request", "manual"])
def test_an_erasure_request_or_a_manual_delete_still_deletes_a_restored_contact(restored, con, source):
    manual = None
    if source == "request":
        write_request(restored, "again", regulation="internal", received_at="2026-01-02T13:00:00Z",
                      subjects=[{"contact_id": "c-4"}])
    else:
        manual = ManualSelection(requested_by="u-admin-1", contact_ids=("c-4",))

    run_deletion(con, restored, as_of=T2, rules=unsubscribed_rule("u-admin-1"), manual=manual)

    assert deleted_ids(con) == ["c-2", "c-4"]
    assert rule_exempt(con, restored, "c-4") is False


# Requests that could not finish


def test_a_blocked_internal_erasure_stays_pending_and_is_applied_once_the_campaign_completes(scoped, con):
    # c-1 is in the active campaign camp-1; c-2 is not.
    write_request(scoped, "r1", regulation="internal", subjects=[{"contact_id": "c-1"}, {"contact_id": "c-2"}])

    first = run_deletion(con, scoped)

    assert [o for _, o, _ in items(con, first.action("request r1.json").bulk_action_id)] == ["blocked", "deleted"]
    status, reason, bulk_action_id = requests_by_file(con)["r1.json"]
    assert (status, bulk_action_id) == ("pending", None)
    assert reason.startswith("waiting: 1 contact blocked (in active campaign camp-1 (Winter sale)")
    assert con.execute("SELECT request_id, subject_no FROM pending_subjects").fetchall() == [("r1", 1)]
    assert (scoped.requests_inbox / "r1.json").is_file()

    second = run_deletion(con, scoped, as_of=T1)

    assert [(c, o) for c, o, _ in items(con, second.action("request r1.json").bulk_action_id)] == [("c-1", "blocked")]
    assert requests_by_file(con)["r1.json"][0] == "pending"

    def complete_camp1(tables):
        tables["campaigns"][0]["status"] = "completed"
    next_snapshot(scoped, "s2", complete_camp1)
    third = run_deletion(con, scoped, as_of=T2)

    done = third.action("request r1.json")
    assert [(c, o) for c, o, _ in items(con, done.bulk_action_id)] == [("c-1", "deleted")]
    assert requests_by_file(con)["r1.json"] == ("applied", None, done.bulk_action_id)
    assert deleted_ids(con) == ["c-1", "c-2"]
    assert con.execute("SELECT count(*) FROM pending_subjects").fetchone()[0] == 0
    assert (scoped.requests_inbox / "processed" / "r1.json").is_file()

    assert run_deletion(con, scoped, as_of=T3).applied == []


@pytest.mark.parametrize("same_run", [False, True], ids=["corrected-in-a-later-run", "both-in-one-run"])
def test_a_corrected_file_after_a_rejection_is_a_new_attempt_and_is_applied(scoped, con, same_run):
    # Files are taken in name order: the refused r1.json first, then the corrected r2.json.
    write_request(scoped, "r1", request_id="GDPR-1", confirm="delete")
    if not same_run:
        run_deletion(con, scoped)
        assert requests_by_file(con)["r1.json"][0] == "rejected"
    write_request(scoped, "r2", request_id="GDPR-1")

    run = run_deletion(con, scoped, as_of=T1)

    records = requests_by_file(con)
    assert records["r1.json"][:2] == ("rejected", "confirm must be exactly DELETE (got 'delete')")
    applied = run.action("request r2.json")
    assert records["r2.json"] == ("applied", None, applied.bulk_action_id)
    assert items(con, applied.bulk_action_id) == [
        ("c-1", "deleted", "legal erasure (gdpr): removed from active campaign camp-1 (Winter sale), then deleted")]
    assert deleted_ids(con) == ["c-1"]

    write_request(scoped, "r3", request_id="GDPR-1")
    run_deletion(con, scoped, as_of=T2)

    status, reason, _ = requests_by_file(con)["r3.json"]
    assert status == "duplicate" and "already received in r2.json (applied)" in reason


def test_a_corrected_file_after_a_quarantine_is_applied(scoped, con):
    bad = write_request(scoped, "r1", request_id="GDPR-2")
    bad.write_text(json.dumps({**json.loads(bad.read_text()), "subject": "typo"}))
    run_deletion(con, scoped)
    assert requests_by_file(con)["r1.json"][0] == "quarantined"
    write_request(scoped, "r1-fixed", request_id="GDPR-2")

    run_deletion(con, scoped, as_of=T1)

    assert requests_by_file(con)["r1-fixed.json"][0] == "applied"
    assert deleted_ids(con) == ["c-1"]


def test_a_highlevel_account_admins_erasure_deletes_only_in_their_location_and_an_agency_admins_in_both(home, con):
    location_a, location_b = "ve9EPM428h8vShlRW1KT", "Qw3rTy5uI7oP9aS1dF3g"
    folder = home.snapshots_inbox / "s1"
    page(folder, "contacts", "page-1.json", [
        documented_contact(id="seD4PfOuKoVMLkEZqohJ", locationId=location_a, email="ann@deos.com"),
        documented_contact(id="aB3dE5gH7jK9mN1pQ3sT", locationId=location_b, email="ann@deos.com",
                           phone="+18832320000")], meta={"total": 2})
    page(folder, "users", "page-1.json", [
        {"id": "0IHuJvc2ofPAAA8GzTRi", "name": "Agency Admin", "email": "agency@crm.example",
         "roles": {"type": "agency", "role": "admin", "locationIds": []}},
        {"id": "1JIvKwd3pgQBBB9HaUSj", "name": "Account Admin", "email": "acct@crm.example",
         "roles": {"type": "account", "role": "admin", "locationIds": [location_a]}}], count=2)
    write_request(home, "r1", requested_by="acct@crm.example", subjects=[{"email": "ANN@deos.com"}])

    run = run_deletion(con, home)

    assert items(con, run.action("request r1.json").bulk_action_id) == [
        ("aB3dE5gH7jK9mN1pQ3sT", "rejected", f"1JIvKwd3pgQBBB9HaUSj is not an admin of location {location_b}"),
        ("seD4PfOuKoVMLkEZqohJ", "deleted", None)]

    write_request(home, "r2", requested_by="0IHuJvc2ofPAAA8GzTRi", received_at="2025-12-21T09:00:00Z",
                  subjects=[{"email": "ann@deos.com"}])
    run_deletion(con, home, as_of=T1)

    assert deleted_ids(con) == ["aB3dE5gH7jK9mN1pQ3sT", "seD4PfOuKoVMLkEZqohJ"]
