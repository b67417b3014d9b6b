"""HighLevel API exports as snapshots, additional identifiers, staff locations and the one identifier normaliser."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compliance import identifiers
from compliance.clock import parse_as_of
from compliance.errors import InputError
from compliance.snapshots.ingest import ingest_snapshots
from compliance.store.schema import TABLES
from support.crm import AS_OF, base_tables, write_snapshot

CLOCK = parse_as_of(AS_OF)
UTC = UTC
NATIVE_ONLY = ("activities", "campaign_enrollments", "workflow_enrollments", "lists", "list_memberships")


def page(folder: Path, collection: str, name: str, records: list[dict], **rest) -> None:
    """One API response page, as GET /contacts/ ({"contacts": [...], "meta": ...}) or /users/ ({..., "count"})."""
    path = folder / "highlevel" / collection / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({collection: records, **rest}))


def documented_contact(**fields) -> dict:
    """A contact shaped as the API reference's GetContectByIdSchema example, with our test values over it."""
    return {"id": "seD4PfOuKoVMLkEZqohJ", "name": "rubika deo", "locationId": "ve9EPM428h8vShlRW1KT",
            "firstName": "rubika", "lastName": "Deo", "email": "rubika@deos.com", "emailLowerCase": "rubika@deos.com",
            "timezone": "", "companyName": "DGS VolMAX", "phone": "+18832327657", "dnd": True, "type": "read",
            "source": "public api", "tags": ["nisi sint commodo amet", "consequat"],
            "dateAdded": "2021-07-02T05:18:26.704Z", "dateUpdated": "2021-07-02T05:18:26.704Z",
            "lastActivity": "2021-07-16T11:39:30.564Z",
            "customFields": [{"id": "6dvNaf7VhkQ9snc5vnjJ", "value": "test"}], **fields}


def highlevel_crm(folder: Path) -> Path:
    """The conftest CRM as a HighLevel export: API pages for what the API has, native CSV for the rest."""
    tables = base_tables()
    contacts = []
    for row in tables["contacts"]:
        record = {"id": row["contact_id"], "locationId": row["location_id"], "firstName": row["first_name"],
                  "lastName": row["last_name"], "email": row["email"], "phone": row["phone"] or None,
                  "tags": [t.strip() for t in row["tags"].split(",") if t.strip()],
                  "dnd": row["dnd"] == "true", "dateAdded": row["created_at"], "dateUpdated": row["updated_at"],
                  "source": row["source"]}
        if row["last_activity_at"]:
            record["lastActivity"] = row["last_activity_at"]
        contacts.append(record)
    page(folder, "contacts", "page-1.json", contacts[:2], meta={"total": 4, "nextPage": 2})
    page(folder, "contacts", "page-2.json", contacts[2:], meta={"total": 4, "nextPage": None})
    page(folder, "users", "page-1.json", [
        {"id": r["user_id"], "email": r["email"], "name": r["name"], "deleted": r["active"] != "true",
         "roles": {"type": "agency", "role": r["role"], "locationIds": []}} for r in tables["staff"]], count=3)
    page(folder, "notes", "page-1.json", [
        {"id": r["note_id"], "contactId": r["contact_id"], "body": r["body"], "dateAdded": r["created_at"]}
        for r in tables["notes"]])
    page(folder, "tasks", "page-1.json", [
        {"id": r["task_id"], "contactId": r["contact_id"], "title": r["title"], "completed": r["status"] == "completed",
         "dueDate": r["due_at"]} for r in tables["tasks"]])
    page(folder, "conversations", "page-1.json", [
        {"id": r["conversation_id"], "contactId": r["contact_id"], "type": r["channel"],
         "lastMessageDate": int(datetime.fromisoformat(r["last_message_at"]).timestamp() * 1000),
         "lastMessageBody": r["last_message_body"]} for r in tables["conversations"]])
    page(folder, "workflows", "page-1.json", [{"id": r["workflow_id"], "name": r["name"], "status": r["status"]}
                                              for r in tables["workflows"]])
    page(folder, "campaigns", "page-1.json", [{"id": r["campaign_id"], "name": r["name"], "status": r["status"]}
                                              for r in tables["campaigns"]])
    write_snapshot(folder / ".native", {name: rows for name, rows in tables.items() if name in NATIVE_ONLY} |
                   {name: [] for name in tables if name not in NATIVE_ONLY})
    for name in NATIVE_ONLY:
        (folder / ".native" / f"{name}.csv").rename(folder / f"{name}.csv")
    for leftover in (folder / ".native").iterdir():
        leftover.unlink()
    (folder / ".native").rmdir()
    return folder


def table_rows(con, name: str) -> list[tuple]:
    columns = [c[0] for c in con.execute(f"DESCRIBE {name}").fetchall() if c[0] not in ("extra", "snapshot_id")]
    return con.execute(f"SELECT {', '.join(columns)} FROM {name} ORDER BY ALL").fetchall()


def test_a_highlevel_export_of_documented_shapes_ingests_with_the_right_rows(home, con):
    folder = home.snapshots_inbox / "s1"
    page(folder, "contacts", "page-1.json", [
        documented_contact(additionalEmails=["Second@Deos.com", {"email": "third@deos.com"}],
                           additionalPhones=[{"phone": "+1 883 232 7658"}]),
        documented_contact(id="aB3dE5gH7jK9mN1pQ3sT", email=None, phone="020 7946 0018", dnd=None, tags=[],
                           lastActivity=1626435570564, dateUpdated=None, additionalEmails=[{"email": "x@y.org"}]),
    ], meta={"total": 3, "nextPageUrl": "https://services.leadconnectorhq.com/contacts/?page=2"})
    page(folder, "contacts", "page-2.json", [documented_contact(id="zZ9yY8xX7wW6vV5uU4tT", lastActivity=None)],
         total=3)
    page(folder, "users", "page-1.json", [
        {"id": "0IHuJvc2ofPAAA8GzTRi", "name": "Agency Admin", "email": "agency@crm.example", "deleted": False,
         "roles": {"type": "agency", "role": "admin", "locationIds": [], "restrictSubAccount": False}},
        {"id": "1JIvKwd3pgQBBB9HaUSj", "firstName": "Account", "lastName": "Admin", "email": "acct@crm.example",
         "roles": {"type": "account", "role": "admin", "locationIds": ["ve9EPM428h8vShlRW1KT"]}},
        {"id": "2KJwLxe4qhRCCC0IbVTk", "name": "Gone", "email": "gone@crm.example", "deleted": True,
         "roles": {"type": "account", "role": "user", "locationIds": ["ve9EPM428h8vShlRW1KT"]}},
    ], count=3)

    result = ingest_snapshots(con, home, as_of=CLOCK, default_region="GB")

    ingested = result.ingested[0]
    assert ingested.row_counts["contacts"] == 3 and ingested.row_counts["staff"] == 3
    assert set(ingested.not_provided) == {spec.name for spec in TABLES} - {"contacts", "staff"}
    rows = {r[0]: r[1:] for r in con.execute(
        "SELECT contact_id, last_activity_at, updated_at, dnd, tags, email_key, phone_key, additional_email_keys, "
        "additional_phone_keys FROM contacts").fetchall()}
    assert rows["seD4PfOuKoVMLkEZqohJ"] == (
        datetime(2021, 7, 16, 11, 39, 30, 564000, tzinfo=UTC), datetime(2021, 7, 2, 5, 18, 26, 704000, tzinfo=UTC),
        True, ["nisi sint commodo amet", "consequat"], "rubika@deos.com", "18832327657",
        ["second@deos.com", "third@deos.com"], ["18832327658"])
    assert rows["aB3dE5gH7jK9mN1pQ3sT"] == (
        datetime(2021, 7, 16, 11, 39, 30, 564000, tzinfo=UTC), datetime(2021, 7, 2, 5, 18, 26, 704000, tzinfo=UTC),
        False, [], None, "442079460018", ["x@y.org"], [])
    assert rows["zZ9yY8xX7wW6vV5uU4tT"][0] is None
    extra = json.loads(con.execute("SELECT extra FROM contacts WHERE contact_id = 'seD4PfOuKoVMLkEZqohJ'"
                                   ).fetchone()[0])
    assert extra["customFields"] == [{"id": "6dvNaf7VhkQ9snc5vnjJ", "value": "test"}]
    assert extra["companyName"] == "DGS VolMAX" and "email" not in extra and "additionalEmails" not in extra
    assert con.execute("SELECT user_id, name, role, active, location_ids FROM staff ORDER BY user_id").fetchall() == [
        ("0IHuJvc2ofPAAA8GzTRi", "Agency Admin", "admin", True, []),
        ("1JIvKwd3pgQBBB9HaUSj", "Account Admin", "admin", True, ["ve9EPM428h8vShlRW1KT"]),
        ("2KJwLxe4qhRCCC0IbVTk", "Gone", "user", False, ["ve9EPM428h8vShlRW1KT"])]
    assert con.execute("SELECT kind, key, is_primary FROM contact_identifiers "
                       "WHERE contact_id = 'seD4PfOuKoVMLkEZqohJ' ORDER BY ALL").fetchall() == [
        ("email", "rubika@deos.com", True), ("email", "second@deos.com", False), ("email", "third@deos.com", False),
        ("phone", "18832327657", True), ("phone", "18832327658", False)]


def test_the_same_crm_as_native_tables_and_as_a_highlevel_export_gives_the_same_store(tmp_path):
    from compliance.home import Home
    from compliance.store.connection import Store

    contents = []
    for name, build in (("native", lambda f: write_snapshot(f)), ("highlevel", highlevel_crm)):
        home = Home(tmp_path / name)
        home.init()
        build(home.snapshots_inbox / "s1")
        with Store(home).connect() as con:
            result = ingest_snapshots(con, home, as_of=CLOCK)
            assert result.ingested[0].not_provided == ()
            contents.append({spec.name: table_rows(con, spec.name) for spec in TABLES})

    assert contents[0] == contents[1]
    assert len(contents[0]["contacts"]) == 4 and len(contents[0]["conversations"]) == 3


@pytest.mark.parametrize(("written", "region", "normalised", "key"), [
    ("(555) 010-9999", "US", "+15550109999", "15550109999"),
    ("+1 555 010 9999", "US", "+15550109999", "15550109999"),
    ("+15550109999", "GB", "+15550109999", "15550109999"),
    ("020 7946 0018", "GB", "+442079460018", "442079460018"),
    ("+44 20 7946 0018", "US", "+442079460018", "442079460018"),
    ("12-34", "US", "1234", "1234"),
    ("call me", "US", None, None),
])
def test_phones_normalise_to_e164_with_the_region_and_fall_back_to_their_digits(written, region, normalised, key):
    with identifiers.register(duckdb.connect(), region) as con:
        in_sql = con.execute(f"SELECT {identifiers.phone_sql('$1')}, {identifiers.phone_key_sql('$1')}",
                             [written]).fetchone()

    assert identifiers.normalize_phone(written, region) == normalised
    assert identifiers.phone_key(written, region) == key
    assert in_sql == (normalised, key)


def test_unparseable_phones_are_counted_and_matched_on_their_digits(home, con):
    tables = base_tables()
    tables["contacts"][0]["phone"] = "12-34"
    tables["contacts"][1]["phone"] = "(555) 123-0002"
    write_snapshot(home.snapshots_inbox / "s1", tables)
    lines = []

    result = ingest_snapshots(con, home, as_of=CLOCK, progress=lines.append)

    assert result.ingested[0].unparsed_phones == 1
    assert con.execute("SELECT unparsed_phones FROM snapshots").fetchone()[0] == 1
    assert dict(con.execute("SELECT contact_id, phone_key FROM contacts").fetchall()) == {
        "c-1": "1234", "c-2": "15551230002", "c-3": None, "c-4": "442079460004"}
    assert any("1 phone(s) not readable" in line for line in lines)


def test_native_additional_identifiers_are_comma_separated_in_csv_and_lists_in_parquet(tmp_path):
    from compliance.home import Home
    from compliance.store.connection import Store

    keys = []
    for fmt in ("csv", "parquet"):
        home = Home(tmp_path / fmt)
        home.init()
        tables = base_tables()
        for row in tables["contacts"]:
            row["additional_emails"] = " Ann2@Example.com ,ann3@example.com" if row["contact_id"] == "c-1" else ""
            row["additional_phones"] = "020 7946 0018" if row["contact_id"] == "c-1" else ""
        for row in tables["staff"]:
            row["location_ids"] = "loc-a,loc-b" if row["user_id"] == "u-admin-1" else ""
        write_snapshot(home.snapshots_inbox / "s1", tables, fmt=fmt)
        if fmt == "parquet":
            folder = home.snapshots_inbox / "s1"
            with duckdb.connect() as tmp:
                for name, column in (("contacts", "additional_emails"), ("contacts", "additional_phones"),
                                     ("staff", "location_ids")):
                    path = str(folder / f"{name}.parquet")
                    tmp.execute(f"COPY (SELECT * REPLACE (list_filter(string_split({column}, ','), lambda x: x <> '')"
                                f" AS {column}) FROM read_parquet('{path}')) TO '{path}.new' (FORMAT parquet)")
                    Path(path + ".new").rename(path)
        with Store(home).connect() as con:
            ingest_snapshots(con, home, as_of=CLOCK, default_region="GB")
            keys.append((con.execute("SELECT additional_email_keys, additional_phone_keys FROM contacts "
                                     "WHERE contact_id = 'c-1'").fetchone(),
                         dict(con.execute("SELECT user_id, location_ids FROM staff").fetchall())))

    assert keys[0] == keys[1]
    assert keys[0][0] == (["ann2@example.com", "ann3@example.com"], ["442079460018"])
    assert keys[0][1] == {"u-admin-1": ["loc-a", "loc-b"], "u-admin-2": [], "u-user-1": []}


BAD_FILES = [
    pytest.param({"contacts": [{"id": "a", "dateAdded": "2021-07-02T05:18:26Z"},
                               {"id": "b", "dateAdded": "next tuesday"}]},
                 "snapshot s1: table contacts: highlevel/contacts/page-1.json: contacts[1]: field dateAdded: "
                 "'next tuesday' is not a timestamp (ISO 8601)", id="bad-timestamp"),
    pytest.param({"contacts": [{"id": "a", "dateAdded": "2021-07-02T05:18:26Z"},
                               {"locationId": "x", "dateAdded": "2021-07-02T05:18:26Z"}]},
                 "snapshot s1: table contacts: highlevel/contacts/page-1.json: contacts[1]: field id: empty",
                 id="no-id"),
    pytest.param({"contacts": [{"id": "a", "dnd": "maybe", "dateAdded": "2021-07-02T05:18:26Z"}]},
                 "snapshot s1: table contacts: highlevel/contacts/page-1.json: contacts[0]: field dnd: 'maybe' is not "
                 "a boolean", id="bad-boolean"),
    pytest.param({"meta": {"total": 0}},
                 "snapshot s1: highlevel/contacts/page-1.json: no top-level key 'contacts'", id="not-a-page"),
    pytest.param("{not json", "snapshot s1: highlevel/contacts/page-1.json: cannot read", id="not-json"),
]


@pytest.mark.parametrize(("document", "message"), BAD_FILES)
def test_a_bad_highlevel_file_names_snapshot_file_record_and_field_and_changes_nothing(home, con, document, message):
    path = home.snapshots_inbox / "s1" / "highlevel" / "contacts" / "page-1.json"
    path.parent.mkdir(parents=True)
    path.write_text(document if isinstance(document, str) else json.dumps(document))

    with pytest.raises(InputError) as raised:
        ingest_snapshots(con, home, as_of=CLOCK)

    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)
    assert con.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM contacts").fetchone()[0] == 0


WHITESPACE = st.sampled_from([" ", "\t", "\n", "\r", "\u00a0", "\u2003", "\u3000", "\u200b", "\ufeff", "\x0b"])
CASE_STABLE = st.characters(categories=("Ll", "Lu", "Nd"), max_codepoint=0x24F).filter(
    lambda c: c.upper().casefold() == c.lower().casefold() == c.casefold())


@settings(max_examples=200, deadline=None)
@given(local=st.text(CASE_STABLE, min_size=1, max_size=12), domain=st.text(CASE_STABLE, min_size=1, max_size=8),
       before=st.lists(WHITESPACE, max_size=3), after=st.lists(WHITESPACE, max_size=3),
       flips=st.lists(st.booleans(), min_size=21, max_size=21))
def test_any_whitespace_and_case_variant_of_an_email_has_the_same_key(local, domain, before, after, flips):
    email = f"{local}@{domain}.example"
    variant = "".join(c.upper() if flip else c.lower() for c, flip in zip(email, flips * 2, strict=False)) + email[42:]
    written = "".join(before) + variant + "".join(after)

    with identifiers.register(duckdb.connect()) as con:
        in_sql = con.execute(f"SELECT {identifiers.email_key_sql('$1')}", [written]).fetchone()[0]

    assert identifiers.email_key(written) == identifiers.email_key(email) == in_sql
    assert identifiers.email_key(written) == identifiers.email_key(email).strip()


def test_pages_that_do_not_fit_duckdbs_memory_are_named_as_memory_not_as_bad_json(home):
    from compliance.store.connection import Store
    from demo_crm.generator import generate_snapshot

    generate_snapshot(home.snapshots_inbox / "s1", contacts=200, as_of=parse_as_of(AS_OF), fmt="highlevel")

    with Store(home, memory_limit="8MB", threads=2).connect() as con:
        with pytest.raises(InputError, match="^snapshot s1: highlevel: ran out of memory reading the pages; raise "
                                             "memory_budget") as refused:
            ingest_snapshots(con, home, as_of=parse_as_of(AS_OF))
        assert "well-formed" not in str(refused.value)
        assert con.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 0
