"""Tests for the synthetic CRM snapshot (native and HighLevel), the sample request files and rules of the demo."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
import yaml

from compliance.home import Home
from compliance.snapshots.ingest import ingest_snapshots
from compliance.store.connection import Store
from compliance.store.schema import BY_NAME, CONTACT_LINKED, MEMBERSHIPS
from demo_crm import generator as demo_data
from demo_crm.generator import SAMPLE_RULES_YAML, TABLES, generate_snapshot, write_sample_requests

AS_OF = datetime(2026, 11, 10, 8, 0, tzinfo=UTC)
N = 2_000


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory) -> dict[str, tuple[Path, dict[str, int]]]:
    root = tmp_path_factory.mktemp("demo")
    return {fmt: (root / fmt, generate_snapshot(root / fmt, contacts=N, as_of=AS_OF, fmt=fmt))
            for fmt in ("parquet", "csv")}


@pytest.fixture
def db():
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    yield con
    con.close()


def read(folder: Path, table: str) -> str:
    if (folder / f"{table}.csv").exists():
        return f"read_csv('{folder / f'{table}.csv'}', header = true, all_varchar = true)"
    return f"read_parquet('{folder / f'{table}.parquet'}')"


def rows(con: duckdb.DuckDBPyConnection, folder: Path, table: str) -> list[tuple]:
    return con.execute(f"SELECT * FROM {read(folder, table)} ORDER BY ALL").fetchall()


def test_every_table_is_written_with_its_required_columns(snapshots, db):
    assert tuple(BY_NAME) == TABLES
    for fmt, (folder, counts) in snapshots.items():
        assert sorted(p.name for p in folder.iterdir()) == sorted(f"{t}.{fmt}" for t in TABLES)
        assert list(counts) == list(TABLES)
        for table in TABLES:
            columns = [row[0] for row in db.execute(f"DESCRIBE SELECT * FROM {read(folder, table)}").fetchall()]
            assert set(BY_NAME[table].columns) <= set(columns), (fmt, table)
            assert db.execute(f"SELECT count(*) FROM {read(folder, table)}").fetchone()[0] == counts[table]
    counts = snapshots["parquet"][1]
    assert counts["contacts"] == N
    assert 6 * N < sum(counts[t] for t in TABLES if t != "contacts") < 14 * N


def test_parquet_types_and_contact_fields(snapshots, db):
    folder = snapshots["parquet"][0]
    types = dict(db.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "
                            f"{read(folder, 'contacts')})").fetchall())
    assert types["tags"] == "VARCHAR[]" and types["dnd"] == "BOOLEAN"
    assert types["created_at"] == "TIMESTAMP WITH TIME ZONE"
    stats = db.execute(f"""
        SELECT count(DISTINCT contact_id), bool_and(regexp_full_match(contact_id, 'c-[0-9]{{7}}')),
               count(DISTINCT lower(email)), bool_and(regexp_full_match(phone, '\\+[0-9]{{11,12}}')),
               count(*) FILTER (phone IS NULL), bool_and(len(tags) <= 3), count(*) FILTER (email <> lower(email)),
               bool_and(created_at <= updated_at AND updated_at < ? AND created_at <= last_activity_at
                        AND last_activity_at < ?),
               count(*) FILTER (last_activity_at IS NULL), count(DISTINCT location_id)
        FROM {read(folder, 'contacts')}""", [AS_OF, AS_OF]).fetchone()
    ids, ids_ok, emails, phones_ok, no_phone, tags_ok, mixed_case, times_ok, never_active, locations = stats
    assert ids == N and ids_ok and phones_ok and tags_ok and times_ok and locations == 5
    assert N * 0.98 < emails < N
    assert 0 < no_phone < N * 0.1 and never_active > 0 and mixed_case > 0


def test_same_seed_gives_the_same_data_and_another_seed_differs(snapshots, tmp_path, db):
    again = tmp_path / "again"
    generate_snapshot(again, contacts=N, as_of=AS_OF)
    for table in TABLES:
        assert rows(db, again, table) == rows(db, snapshots["parquet"][0], table), table
    other = tmp_path / "other"
    generate_snapshot(other, contacts=N, as_of=AS_OF, seed=8)
    assert rows(db, other, "contacts") != rows(db, again, "contacts")
    assert rows(db, other, "activities") != rows(db, again, "activities")


def test_csv_and_parquet_hold_the_same_rows(snapshots, db):
    parquet, csv_folder = snapshots["parquet"][0], snapshots["csv"][0]
    for table in TABLES:
        # As text, with tags comma-joined: what the CSV form writes for each parquet value.
        as_text = f"SELECT COLUMNS(*)::VARCHAR FROM {read(parquet, table)}"
        if table == "contacts":
            as_text = (f"SELECT * REPLACE (nullif(array_to_string(tags, ','), '') AS tags) "
                       f"FROM {read(parquet, table)}")
            as_text = f"SELECT COLUMNS(*)::VARCHAR FROM ({as_text})"
        differ = db.execute(f"SELECT count(*) FROM (({as_text} EXCEPT ALL SELECT * FROM {read(csv_folder, table)}) "
                            f"UNION ALL (SELECT * FROM {read(csv_folder, table)} EXCEPT ALL {as_text}))").fetchone()
        assert differ == (0,), table
    first = db.execute(f"SELECT created_at, dnd FROM {read(csv_folder, 'contacts')} LIMIT 1").fetchone()
    assert first[0].endswith("+00") and first[1] in ("true", "false")


def test_referential_integrity_and_unique_enrollments(snapshots, db):
    folder = snapshots["parquet"][0]
    contacts = read(folder, "contacts")
    for spec in CONTACT_LINKED:
        orphans = db.execute(f"SELECT count(*) FROM {read(folder, spec.name)} "
                             f"WHERE contact_id NOT IN (SELECT contact_id FROM {contacts})").fetchone()[0]
        assert orphans == 0, spec.name
    for spec in MEMBERSHIPS:
        key = ", ".join(spec.key)
        duplicates = db.execute(f"SELECT count(*) FROM (SELECT {key} FROM {read(folder, spec.name)} "
                                f"GROUP BY ALL HAVING count(*) > 1)").fetchone()[0]
        assert duplicates == 0, spec.name
    for table, column, parent in (("campaign_enrollments", "campaign_id", "campaigns"),
                                  ("workflow_enrollments", "workflow_id", "workflows"),
                                  ("list_memberships", "list_id", "lists")):
        dangling = db.execute(f"SELECT count(*) FROM {read(folder, table)} "
                              f"WHERE {column} NOT IN (SELECT {column} FROM {read(folder, parent)})").fetchone()[0]
        assert dangling == 0, table


def test_the_snapshot_exercises_rules_blocks_and_staff_checks(snapshots, db):
    folder = snapshots["parquet"][0]
    unsubscribed, dnd = db.execute(f"SELECT count(*) FILTER (list_contains(tags, 'Unsubscribed')), "
                                   f"count(*) FILTER (dnd) FROM {read(folder, 'contacts')}").fetchone()
    assert N * 0.01 < unsubscribed < N * 0.06 and N * 0.02 < dnd < N * 0.07
    campaigns = dict(db.execute(f"SELECT status, count(*) FROM {read(folder, 'campaigns')} GROUP BY ALL").fetchall())
    assert set(campaigns) == {"active", "paused", "completed"}
    workflows = dict(db.execute(f"SELECT status, count(*) FROM {read(folder, 'workflows')} GROUP BY ALL").fetchall())
    assert set(workflows) == {"published", "draft"}
    staff = {row[0]: row[1:] for row in db.execute(
        f"SELECT user_id, email, role, active FROM {read(folder, 'staff')}").fetchall()}
    assert staff["u-admin-1"] == ("dana.admin@demo-crm.example", "admin", True)
    assert staff["u-admin-2"][1:] == ("admin", False) and staff["u-user-1"][1:] == ("user", True)
    shared = db.execute(f"SELECT count(*) FROM (SELECT lower(email) FROM {read(folder, 'contacts')} "
                        f"GROUP BY ALL HAVING count(*) > 1)").fetchone()[0]
    assert shared > 0


def load_requests(paths: list[Path]) -> list[dict]:
    requests = []
    for path in paths:
        if path.suffix == ".json":
            requests.append(json.loads(path.read_text()))
            continue
        with path.open(newline="") as handle:
            lines = list(csv.DictReader(handle))
        assert len(lines) == 2 and len({line["request_id"] for line in lines}) == 1
        head = {k: lines[0][k] for k in ("request_id", "kind", "regulation", "requested_by", "received_at", "confirm")}
        subjects = [{k: line[k] for k in ("contact_id", "email", "phone") if line[k]} for line in lines]
        requests.append(head | {"subjects": subjects})
    return requests


def test_sample_requests_name_distinct_existing_contacts(snapshots, tmp_path, db):
    folder = snapshots["csv"][0]
    paths = write_sample_requests(tmp_path / "requests", folder, as_of=AS_OF)
    assert [p.suffix for p in paths] == [".json", ".json", ".csv", ".json"] and all(p.exists() for p in paths)
    gdpr, ccpa, internal, by_user = requests = load_requests(paths)
    assert [r["regulation"] for r in requests] == ["gdpr", "ccpa", "internal", "internal"]
    assert [r["requested_by"] for r in requests] == ["u-admin-1", "dana.admin@demo-crm.example", "u-admin-1",
                                                     "u-user-1"]
    assert len({r["request_id"] for r in requests}) == 4
    for request in requests:
        assert request["kind"] == "erasure" and request["confirm"] == "DELETE"
        assert datetime.fromisoformat(request["received_at"].replace("Z", "+00:00")) < AS_OF
    email, phone = gdpr["subjects"][1]["email"], gdpr["subjects"][2]["phone"]
    assert email != email.strip() and email == email.upper() and not phone.lstrip("+").isdigit()

    db.execute(f"CREATE TABLE c AS SELECT contact_id, lower(trim(email)) AS email, "
               f"regexp_replace(phone, '[^0-9]', '', 'g') AS phone, string_split(coalesce(tags, ''), ',') AS tags "
               f"FROM {read(folder, 'contacts')}")

    def matches(subject: dict) -> set[str]:
        key, value = next(iter(subject.items()))
        value = {"email": value.strip().lower(), "phone": "".join(ch for ch in value if ch.isdigit())}.get(key, value)
        return {row[0] for row in db.execute(f"SELECT contact_id FROM c WHERE {key} = ?", [value]).fetchall()}

    assert matches(gdpr["subjects"][3]) == set()
    matched = [matches(s) for r in requests for s in r["subjects"] if s != gdpr["subjects"][3]]
    assert all(matched)
    chosen = set().union(*matched)
    assert len(chosen) == sum(map(len, matched))
    unsubscribed = db.execute("SELECT count(*) FROM c WHERE list_contains(tags, 'Unsubscribed') "
                              "AND contact_id IN (SELECT unnest(?))", [sorted(chosen)]).fetchone()[0]
    assert unsubscribed == 0
    (ccpa_contact,) = matches(ccpa["subjects"][0])
    active = db.execute(f"SELECT count(*) FROM {read(folder, 'campaign_enrollments')} JOIN "
                        f"{read(folder, 'campaigns')} USING (campaign_id) WHERE status = 'active' AND contact_id = ?",
                        [ccpa_contact]).fetchone()[0]
    assert active > 0
    assert load_requests(write_sample_requests(tmp_path / "again", snapshots["parquet"][0], as_of=AS_OF)) == requests


def test_sample_rules_have_one_published_and_one_draft_rule():
    rules = yaml.safe_load(SAMPLE_RULES_YAML)["rules"]
    assert [(r["name"], r["status"]) for r in rules] == [("remove-unsubscribed", "published"),
                                                          ("stale-leads-preview", "draft")]
    assert SAMPLE_RULES_YAML.startswith("#")
    assert all(r["owner"] == "u-admin-1" and r["action"] == "delete_contact" for r in rules)


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError):
        generate_snapshot(tmp_path / "x", contacts=0, as_of=AS_OF)
    with pytest.raises(ValueError):
        generate_snapshot(tmp_path / "x", contacts=10, as_of=AS_OF, fmt="xlsx")
    assert demo_data.generate_snapshot(tmp_path / "tiny", contacts=1, as_of=AS_OF)["contacts"] == 1


@pytest.fixture(scope="module")
def highlevel(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    folder = tmp_path_factory.mktemp("demo-highlevel") / "s1"
    return folder, generate_snapshot(folder, contacts=N, as_of=AS_OF, fmt="highlevel")


def test_the_highlevel_demo_is_the_same_crm_as_api_pages_with_api_ids(highlevel, snapshots, tmp_path):
    folder, counts = highlevel
    home = Home(tmp_path / "home")
    home.init()
    shutil.copytree(folder, home.snapshots_inbox / "s1")

    with Store(home).connect() as con:
        [ingested] = ingest_snapshots(con, home, as_of=AS_OF).ingested
        ids = [row[0] for row in con.execute("SELECT contact_id FROM contacts").fetchall()]
        additional = con.execute("SELECT count(*) FILTER (WHERE len(additional_email_keys) > 0), "
                                 "count(*) FILTER (WHERE len(additional_phone_keys) > 0) FROM contacts").fetchone()
        orphans = con.execute("SELECT count(*) FROM notes WHERE contact_id NOT IN (SELECT contact_id FROM contacts)"
                              ).fetchone()[0]
        scoped = con.execute("SELECT user_id, location_ids FROM staff WHERE len(location_ids) > 0").fetchall()
        locations = {row[0] for row in con.execute("SELECT DISTINCT location_id FROM contacts").fetchall()}
        unparsed = con.execute("SELECT unparsed_phones FROM snapshots").fetchone()[0]

    assert ingested.not_provided == () and ingested.row_counts == counts
    assert counts == snapshots["parquet"][1]
    assert len(set(ids)) == N and all(len(i) == 20 and i.isalnum() for i in ids)
    assert not any(i.startswith("c-") for i in ids)
    assert 0.07 * N < additional[0] < 0.13 * N and 0.03 * N < additional[1] < 0.07 * N
    assert orphans == 0 and unparsed == 0
    assert len(scoped) == 2 and all(len(locs) == 1 and locs[0] in locations for _, locs in scoped)
    page = json.loads((folder / "highlevel" / "contacts" / "page-00001.json").read_text())
    assert len(page["contacts"]) == demo_data.HIGHLEVEL_PAGE and page["meta"]["nextPage"] == 2
    shapes = {type(e).__name__ for p in sorted((folder / "highlevel" / "contacts").glob("*.json"))[:5]
              for c in json.loads(p.read_text())["contacts"] for e in c["additionalEmails"]}
    assert shapes == {"str", "dict"}


def test_the_highlevel_demo_is_deterministic_and_its_requests_and_rules_name_its_own_ids(highlevel, snapshots,
                                                                                       tmp_path):
    folder, _ = highlevel
    again = tmp_path / "again"
    generate_snapshot(again, contacts=N, as_of=AS_OF, fmt="highlevel")
    staff = demo_data.staff_ids(folder)

    paths = write_sample_requests(tmp_path / "requests", folder, as_of=AS_OF)

    for relative in ("highlevel/contacts/page-00007.json", "highlevel/users/page-00001.json",
                     "highlevel/notes/page-00003.json"):
        assert (folder / relative).read_bytes() == (again / relative).read_bytes()
    assert all(len(user_id) == 20 for user_id in staff.values()) and len(set(staff.values())) == 6
    documents = [json.loads(p.read_text()) for p in paths if p.suffix == ".json"]
    assert [d["requested_by"] for d in documents] == [staff["u-admin-1"], "dana.admin@demo-crm.example",
                                                      staff["u-user-1"]]
    contact_ids = {c["id"] for p in (folder / "highlevel" / "contacts").glob("*.json")
                   for c in json.loads(p.read_text())["contacts"]}
    assert documents[0]["subjects"][0]["contact_id"] in contact_ids
    rules = yaml.safe_load(demo_data.sample_rules_yaml(folder))["rules"]
    assert {r["owner"] for r in rules} == {staff["u-admin-1"]}
    assert demo_data.sample_rules_yaml(snapshots["parquet"][0]) == SAMPLE_RULES_YAML
    assert demo_data.staff_ids(snapshots["csv"][0])["u-admin-1"] == "u-admin-1"
