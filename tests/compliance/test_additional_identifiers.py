"""Additional emails and phones: requests match them, suppression, restore, backups and the invariant cover them."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from test_highlevel import highlevel_crm

from compliance.clock import parse_as_of
from compliance.deletion import ManualSelection
from compliance.home import Home
from compliance.invariants import check_invariants
from compliance.purge import purge
from compliance.requests.intake import take_requests
from compliance.restore import ManualRestore, apply_restores, plan_restores
from compliance.settings import Rule, Rules, Settings
from compliance.snapshots.ingest import ingest_snapshots
from compliance.store.connection import SCHEMA_VERSION, Store, migrate
from compliance.store.keys import KeyedHasher
from support.crm import AS_OF, base_tables, run_deletion, write_request, write_snapshot

CLOCK = parse_as_of(AS_OF)
LATER = CLOCK + timedelta(days=2)
# c-4 (Cy) has a work email and a second phone; c-2 (Bob) shares a family address with Cy.
CY_WORK, CY_MOBILE, SHARED = "Cy.Work@Example.net", "+44 20 7946 0099", "family@example.com"


def with_additional(tables: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The conftest CRM with additional identifiers: c-4's work email, mobile and the shared family address."""
    extra = {"c-2": (SHARED, ""), "c-4": (f"{CY_WORK}, {SHARED}", CY_MOBILE)}
    for row in tables["contacts"]:
        row["additional_emails"], row["additional_phones"] = extra.get(row["contact_id"], ("", ""))
    return tables


@pytest.fixture
def crm(home: Home) -> Home:
    write_snapshot(home.snapshots_inbox / "s1", with_additional(base_tables()))
    return home


@pytest.fixture
def con(crm: Home):
    with Store(crm).connect() as connection:
        ingest_snapshots(connection, crm, as_of=CLOCK)
        yield connection


def deleted_ids(con) -> list[str]:
    return [row[0] for row in con.execute(
        "SELECT contact_id FROM contact_lifecycle WHERE state = 'deleted' ORDER BY 1").fetchall()]


def suppressed(con, hasher: KeyedHasher) -> set[tuple[str, str]]:
    """The suppression list, its hashes turned back into the identifiers of the test CRM that give them."""
    known = {hasher.hash(kind, value): (kind, value) for kind, values in (
        ("contact_id", ("c-1", "c-2", "c-3", "c-4")),
        ("email", ("cy@example.org", "cy.work@example.net", SHARED, "bob@example.com")),
        ("phone", ("442079460004", "442079460099", "15551230002"))) for value in values}
    return {known.get(h, (kind, "?")) for kind, h in con.execute("SELECT key_kind, key_hash FROM suppression")
            .fetchall()}


@pytest.mark.parametrize("subject", [
    {"email": "  CY.WORK@example.NET "},
    {"phone": "+44 (20) 7946-0099"},
    {"email": "cy@example.org"},
], ids=["additional-email-other-case", "additional-phone-other-format", "primary-email"])
def test_an_erasure_subject_matches_the_contact_by_a_primary_or_additional_identifier(crm, con, subject):
    write_request(crm, "r1", subjects=[subject])

    run = run_deletion(con, crm)

    action = run.action("request r1.json")
    assert con.execute("SELECT contact_id, outcome FROM bulk_action_items WHERE bulk_action_id = ?",
                       [action.bulk_action_id]).fetchall() == [("c-4", "deleted")]
    assert deleted_ids(con) == ["c-4"]


def test_an_address_two_contacts_carry_as_additional_email_matches_both(crm, con):
    write_request(crm, "r1", regulation="internal", subjects=[{"email": "Family@Example.com"}])

    run_deletion(con, crm)

    assert deleted_ids(con) == ["c-2", "c-4"]


def test_the_backup_of_an_erased_contact_holds_its_additional_identifiers(crm, con):
    write_request(crm, "r1", subjects=[{"email": "CY.WORK@EXAMPLE.NET"}])
    run_deletion(con, crm)

    [path] = [row[0] for row in con.execute("SELECT path FROM backups").fetchall()]
    text = (crm.inside(path) / "contacts.csv").read_text().lower()

    for written in (CY_WORK.lower(), CY_MOBILE.lower(), "442079460099", SHARED):
        assert written in text


def test_suppression_covers_every_identifier_of_the_erased_contact_but_those_an_active_contact_carries(crm, con):
    write_request(crm, "r1", subjects=[{"contact_id": "c-4"}])
    run_deletion(con, crm)

    assert suppressed(con, KeyedHasher(crm.secret())) == {
        ("contact_id", "c-4"), ("email", "cy@example.org"), ("email", "cy.work@example.net"),
        ("phone", "442079460004"), ("phone", "442079460099")}


def test_a_later_snapshot_skips_a_contact_carrying_a_suppressed_identifier_primary_or_additional(crm, con):
    write_request(crm, "r1", subjects=[{"contact_id": "c-4"}])
    run_deletion(con, crm)
    tables = with_additional(base_tables())
    ann = tables["contacts"][0]
    tables["contacts"] += [
        {**ann, "contact_id": "c-30", "email": "cy.work@EXAMPLE.net", "phone": "", "additional_emails": ""},
        {**ann, "contact_id": "c-31", "email": "new@example.net", "phone": "", "additional_emails": " CY@example.org"},
        {**ann, "contact_id": "c-32", "email": "new2@example.net", "phone": "", "additional_phones": "+442079460099"},
        {**ann, "contact_id": "c-33", "email": SHARED, "phone": "", "additional_emails": ""},
    ]
    write_snapshot(crm.snapshots_inbox / "s2", tables)

    [ingested] = ingest_snapshots(con, crm, as_of=LATER).ingested

    assert ingested.skipped_suppressed == 3
    ids = {row[0] for row in con.execute("SELECT contact_id FROM contacts").fetchall()}
    assert {"c-30", "c-31", "c-32"}.isdisjoint(ids) and "c-33" in ids


def test_a_restore_request_naming_an_additional_phone_restores_and_lifts_every_suppression(crm, con):
    write_request(crm, "r1", subjects=[{"contact_id": "c-4"}])
    run_deletion(con, crm)
    write_request(crm, "back", kind="restore", regulation="internal", confirm=None,
                  subjects=[{"phone": "+44 20 7946 0099"}], received_at="2026-01-02T09:00:00Z")
    hasher = KeyedHasher(crm.secret())

    take_requests(con, crm, as_of=LATER, settings=Settings())
    plan_restores(con, hasher=hasher, settings=Settings(), as_of=LATER)
    [action] = apply_restores(con, hasher=hasher, as_of=LATER)

    assert action.counts["restored"] == 1 and deleted_ids(con) == []
    assert con.execute("SELECT count(*) FROM suppression").fetchone()[0] == 0
    tables = with_additional(base_tables())
    tables["contacts"].append({**tables["contacts"][0], "contact_id": "c-40", "email": "cy.work@example.net",
                               "phone": "", "additional_emails": "", "additional_phones": ""})
    write_snapshot(crm.snapshots_inbox / "s2", tables)
    [ingested] = ingest_snapshots(con, crm, as_of=LATER + timedelta(days=1)).ingested
    assert ingested.skipped_suppressed == 0
    assert con.execute("SELECT count(*) FROM contacts WHERE contact_id = 'c-40'").fetchone()[0] == 1


def test_a_manual_restore_lifts_the_suppression_of_the_additional_identifiers_too(crm, con):
    write_request(crm, "r1", subjects=[{"email": "cy.work@example.net"}])
    run_deletion(con, crm)
    hasher = KeyedHasher(crm.secret())

    plan_restores(con, hasher=hasher, settings=Settings(), as_of=LATER, include_requests=False,
                  manual=ManualRestore("u-admin-1", ("c-4",)))
    apply_restores(con, hasher=hasher, as_of=LATER)

    assert suppressed(con, hasher) == set()


@pytest.mark.parametrize("carrier", ["c-1", "c-2"], ids=["additional-email-of-c1", "additional-email-of-c2"])
def test_the_invariant_catches_an_active_contact_carrying_a_suppressed_additional_identifier(crm, con, carrier):
    con.execute("UPDATE contacts SET additional_email_keys = ['hidden@example.org'] WHERE contact_id = ?", [carrier])
    summary = check_invariants(con, secret=crm.secret(), settings=Settings(), as_of=CLOCK,
                               only=["suppressed_stay_erased"])
    assert summary.passed
    con.execute("INSERT INTO suppression VALUES ('email', ?, 'ba-1', ?)",
                [KeyedHasher(crm.secret()).hash("email", "hidden@example.org"), CLOCK])

    summary = check_invariants(con, secret=crm.secret(), settings=Settings(), as_of=CLOCK,
                               only=["suppressed_stay_erased"])

    result = summary.by_name("suppressed_stay_erased")
    assert summary.failed == ("suppressed_stay_erased",)
    assert result.violations == 1 and result.sample_ids == (carrier,)


@pytest.mark.parametrize(("region", "stored", "additional", "requested"), [
    ("US", "+15550109999", "", "(555) 010-9999"),
    ("GB", "020 7946 0018", "", "+44 20 7946 0018"),
    ("GB", "+44 20 7946 0018", "", "020 7946 0018"),
    ("GB", "", "020 7946 0018", "+44 20 7946 0018"),
    ("US", "ext 12-34", "", "12 34"),
], ids=["us-national-request", "gb-national-stored", "gb-national-request", "gb-national-additional",
        "unparseable-on-digits"])
def test_phones_match_across_national_and_international_forms_with_the_settings_region(
        home, region, stored, additional, requested):
    with home.settings_file.open("a") as handle:
        handle.write(f"\ndefault_region: {region}\n")
    tables = base_tables()
    tables["contacts"].append({**tables["contacts"][3], "contact_id": "c-5", "email": "dee@example.net",
                               "phone": stored, "tags": ""})
    for row in tables["contacts"]:
        row["additional_phones"] = additional if row["contact_id"] == "c-5" else ""
    write_snapshot(home.snapshots_inbox / "s1", tables)
    write_request(home, "r1", subjects=[{"phone": requested}])

    with Store(home).connect() as con:
        run = run_deletion(con, home)

        assert con.execute("SELECT contact_id, outcome FROM bulk_action_items WHERE bulk_action_id = ?",
                           [run.action("request r1.json").bulk_action_id]).fetchall() == [("c-5", "deleted")]


def _outcomes_of_a_run(home: Home) -> list[tuple]:
    """Two requests, a rule and a manual delete over the home's CRM: every bulk action's items, by source."""
    write_request(home, "gdpr-1", subjects=[{"email": "BOB@example.com"}, {"phone": "+44 20 7946 0004"}])
    write_request(home, "internal-1", regulation="internal", received_at="2025-12-21T09:00:00Z",
                  subjects=[{"contact_id": "c-1"}, {"email": "nobody@example.com"}])
    rules = Rules(rules=[Rule(name="remove-vip", status="published", owner="u-admin-1", trigger={"tags_any": ["vip"]})])
    with Store(home).connect() as con:
        run_deletion(con, home, rules=rules)
        run_deletion(con, home, as_of=LATER, include_requests=False,
                     manual=ManualSelection(requested_by="u-admin-2", contact_ids=("c-3",)))
        return con.execute("""
            SELECT b.kind, b.source, b.status, b.regulation, b.total, b.done, b.blocked, b.rejected, b.not_found,
                   b.already_done, list((i.contact_id, i.outcome, i.reason) ORDER BY i.contact_id, i.outcome, i.reason)
            FROM bulk_actions b JOIN bulk_action_items i USING (bulk_action_id)
            GROUP BY b.bulk_action_id, b.kind, b.source, b.status, b.regulation, b.total, b.done, b.blocked, b.rejected,
                     b.not_found, b.already_done
            ORDER BY b.source, b.kind, b.status""").fetchall()


def test_the_same_crm_as_native_tables_and_as_a_highlevel_export_gives_the_same_run_outcomes(tmp_path):
    outcomes = []
    for name, build in (("native", write_snapshot), ("highlevel", highlevel_crm)):
        home = Home(tmp_path / name)
        home.init()
        build(home.snapshots_inbox / "s1")
        outcomes.append(_outcomes_of_a_run(home))

    assert outcomes[0] == outcomes[1]
    assert {row[1] for row in outcomes[0]} == {"request gdpr-1.json", "request internal-1.json", "rule remove-vip",
                                               "manual"}
    assert any(outcome == "deleted" for row in outcomes[0] for _, outcome, _ in row[-1])


def test_a_highlevel_export_erasure_by_an_additional_email_erases_and_backs_up_the_identifiers(tmp_path):
    home = Home(tmp_path / "home")
    home.init()
    folder = highlevel_crm(home.snapshots_inbox / "s1")
    second = folder / "highlevel" / "contacts" / "page-2.json"
    document = json.loads(second.read_text())
    for record in document["contacts"]:
        if record["id"] == "c-4":
            record["additionalEmails"] = [{"email": CY_WORK}, "cy.old@example.net"]
            record["additionalPhones"] = [CY_MOBILE]
    second.write_text(json.dumps(document))
    write_request(home, "r1", subjects=[{"email": "cy.WORK@example.NET"}])

    with Store(home).connect() as con:
        run_deletion(con, home)

        assert deleted_ids(con) == ["c-4"]
        [path] = [row[0] for row in con.execute("SELECT path FROM backups").fetchall()]
        assert con.execute("SELECT count(*) FROM suppression WHERE key_kind = 'email'").fetchone()[0] == 3
    text = (home.inside(path) / "contacts.csv").read_text().lower()
    assert all(written in text for written in ("cy.work@example.net", "cy.old@example.net", "442079460099"))


def keys_table(con) -> list[tuple]:
    return con.execute("SELECT kind, key, contact_id, is_primary FROM contact_keys ORDER BY ALL").fetchall()


def keys_view(con) -> list[tuple]:
    return con.execute("SELECT kind, key, contact_id, is_primary FROM contact_identifiers ORDER BY ALL").fetchall()


def test_the_contact_keys_table_follows_the_contacts_through_ingest_erasure_restore_and_purge(crm, con):
    assert ("email", "cy.work@example.net", "c-4", False) in keys_table(con)
    assert keys_table(con) == keys_view(con)
    write_request(crm, "r1", subjects=[{"email": "cy.work@example.net"}])
    run_deletion(con, crm)
    assert deleted_ids(con) == ["c-4"] and keys_table(con) == keys_view(con)
    tables = with_additional(base_tables())
    tables["contacts"] = [row for row in tables["contacts"] if row["contact_id"] != "c-1"]
    write_snapshot(crm.snapshots_inbox / "s2", tables)
    ingest_snapshots(con, crm, as_of=LATER)
    assert not [row for row in keys_table(con) if row[2] == "c-1"] and keys_table(con) == keys_view(con)

    purge(con, crm, hasher=KeyedHasher(crm.secret()), settings=Settings(), as_of=CLOCK + timedelta(days=61))

    assert not [row for row in keys_table(con) if row[2] == "c-4"]
    assert keys_table(con) == keys_view(con) != []


def test_a_store_from_before_contact_keys_gets_them_from_its_contacts_on_migration(crm, con):
    expected = keys_view(con)
    con.execute("DROP TABLE contact_keys")
    con.execute("UPDATE schema_meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION - 1)])

    assert migrate(con) == SCHEMA_VERSION

    assert keys_table(con) == expected and ("phone", "442079460099", "c-4", False) in expected

