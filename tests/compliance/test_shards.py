"""Location shards: placement (Python and DuckDB alike), the fixed shard count, what each shard ingests, and request
files that leave the inbox only once every shard has settled them."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pytest

from compliance.errors import InputError
from compliance.home import Home
from compliance.requests.intake import take_requests
from compliance.settings import load_settings
from compliance.shards.placement import (
    check_shard_layout,
    set_shard_count,
    shard_home,
    shard_homes,
    shard_of,
    shard_of_sql,
    stores_found,
)
from compliance.snapshots.ingest import ingest_snapshots
from compliance.store.connection import Store
from support.crm import base_tables, write_request, write_snapshot

AS_OF = datetime(2026, 1, 1, 12, tzinfo=UTC)
# Pinned: a location's shard may never change between releases (its contacts would be in the wrong store).
PINNED = {("loc-a", 2): 0, ("loc-b", 2): 1, ("loc-a", 4): 0, ("loc-b", 4): 1, ("loc-north", 3): 2, ("loc-north", 4): 3,
          ("", 3): 1}


def _home(tmp_path, shards: int) -> Home:
    home = Home(tmp_path / "home")
    home.init()
    set_shard_count(home, shards)
    for shard in shard_homes(home):
        shard.init()
    return home


def test_a_locations_shard_is_pinned_and_the_same_in_python_and_in_duckdb():
    with duckdb.connect() as con:
        for (location, shards), expected in PINNED.items():
            assert shard_of(location, shards) == expected
            assert con.execute(f"SELECT {shard_of_sql('?', shards)}", [location]).fetchone()[0] == expected
        locations = [f"loc-{n:04d}" for n in range(500)]
        in_sql = dict(con.execute(f"SELECT l, {shard_of_sql('l', 7)} FROM unnest(?) t(l)", [locations]).fetchall())
    assert in_sql == {location: shard_of(location, 7) for location in locations}
    assert shard_of(None, 4) == shard_of("", 4) and {shard_of(location, 1) for location in locations} == {0}


def test_a_home_of_one_shard_keeps_todays_paths(tmp_path):
    home = Home(tmp_path / "home")
    home.init()
    [only] = shard_homes(home)
    assert only == home and only.store_file == home.root / "store" / "retention.duckdb"
    assert only.audit_file == home.root / "audit" / "audit.jsonl" and only.backups_dir == home.root / "backups"


def test_each_shard_has_its_own_store_backups_reports_and_audit_chain(tmp_path):
    home = _home(tmp_path, 3)
    shards = shard_homes(home)
    assert [shard.shard_name for shard in shards] == ["shard-0", "shard-1", "shard-2"]
    assert shards[2].store_file == home.root / "store" / "shard-2" / "retention.duckdb"
    assert shards[2].audit_file == home.root / "audit" / "shard-2.jsonl"
    assert shards[1].backups_dir.stat().st_mode & 0o777 == 0o700
    assert len({shard.store_file for shard in shards} | {shard.backups_dir for shard in shards}) == 6
    assert shard_home(home, "shard-2") == shards[2] and shard_home(home, None) == home
    with pytest.raises(InputError, match="shard-0 to shard-2"):
        shard_home(home, "shard-3")


def test_the_shard_count_is_fixed_once_a_store_holds_data(tmp_path):
    home = _home(tmp_path, 2)
    assert load_settings(home.settings_file).shards == 2 and "shards: 2" in home.settings_file.read_text()
    set_shard_count(home, 4)  # nothing ingested yet: allowed, the empty stores of 2 shards go
    assert check_shard_layout(home) == 4 and stores_found(home) == {}
    for shard in shard_homes(home):
        Store(shard).connect().close()
    write_snapshot(home.snapshots_inbox / "s1")
    with Store(shard_homes(home)[0]).connect() as con:
        ingest_snapshots(con, shard_homes(home)[0], as_of=AS_OF)
    with pytest.raises(InputError, match="shards: 4 and the home holds data"):
        set_shard_count(home, 2)
    home.settings_file.write_text(home.settings_file.read_text().replace("shards: 4", "shards: 2"))
    with pytest.raises(InputError, match="made for another shard count") as refused:
        check_shard_layout(home)
    assert "shard-2" in str(refused.value) and "shard-3" in str(refused.value)


@pytest.mark.parametrize("count", [0, -1, 65, True])
def test_a_shard_count_out_of_range_is_refused(tmp_path, count):
    home = Home(tmp_path / "home")
    home.init()
    with pytest.raises(InputError, match="--shards"):
        set_shard_count(home, count)
    assert load_settings(home.settings_file).shards == 1


def test_each_shard_ingests_the_contacts_of_its_locations_with_their_rows_and_every_staff_member(tmp_path):
    home = _home(tmp_path, 2)
    tables = base_tables()
    tables["notes"].append(dict(note_id="n-orphan", contact_id="c-nobody", body="x", created_at="2025-01-01T00:00:00Z"))
    write_snapshot(home.snapshots_inbox / "s1", tables)
    held = {}
    for shard in shard_homes(home):
        with Store(shard).connect() as con:
            ingest_snapshots(con, shard, as_of=AS_OF)
            held[shard.shard] = {
                "contacts": {row[0] for row in con.execute("SELECT contact_id FROM contacts").fetchall()},
                "notes": {row[0] for row in con.execute("SELECT note_id FROM notes").fetchall()},
                "staff": con.execute("SELECT count(*) FROM staff").fetchone()[0],
                "campaigns": con.execute("SELECT count(*) FROM campaigns").fetchone()[0]}
    # loc-a is shard 0 of 2 (c-1, c-2), loc-b shard 1 (c-3, c-4); a note of no listed contact goes to shard 0.
    assert held[0]["contacts"] == {"c-1", "c-2"} and held[1]["contacts"] == {"c-3", "c-4"}
    assert held[0]["notes"] == {"n-1", "n-2", "n-orphan"} and held[1]["notes"] == {"n-3"}
    assert held[0]["staff"] == held[1]["staff"] == len(tables["staff"])
    assert held[0]["campaigns"] == held[1]["campaigns"] == len(tables["campaigns"])


def test_a_shard_refuses_a_snapshot_that_drops_most_of_its_own_locations_contacts(tmp_path):
    home = _home(tmp_path, 2)
    write_snapshot(home.snapshots_inbox / "s1")
    shard_0 = shard_homes(home)[0]
    with Store(shard_0).connect() as con:
        ingest_snapshots(con, shard_0, as_of=AS_OF)
    tables = base_tables()
    # The export still has as many contacts in all, but loc-a (shard 0) lost both of its own.
    tables["contacts"] = [c for c in tables["contacts"] if c["location_id"] != "loc-a"]
    tables["contacts"] += [dict(c, contact_id=c["contact_id"] + "-x") for c in tables["contacts"]]
    write_snapshot(home.snapshots_inbox / "s2", tables)
    with Store(shard_0).connect() as con, pytest.raises(InputError, match="contacts fall from 2 to 0"):
        ingest_snapshots(con, shard_0, as_of=AS_OF)


def test_a_request_file_leaves_the_inbox_only_when_every_shard_has_settled_it(tmp_path):
    home = _home(tmp_path, 3)
    settings = load_settings(home.settings_file)
    write_snapshot(home.snapshots_inbox / "s1")
    path = write_request(home, "R-1", regulation="internal", subjects=[{"contact_id": "c-9"}])
    malformed = home.requests_inbox / "broken.json"
    malformed.write_text("{not json")
    shards = shard_homes(home)
    for k, shard in enumerate(shards):
        with Store(shard).connect() as con:
            ingest_snapshots(con, shard, as_of=AS_OF)
            take_requests(con, shard, as_of=AS_OF, settings=settings)
            con.execute("UPDATE requests SET status = 'applied' WHERE status = 'pending'")
            take_requests(con, shard, as_of=AS_OF, settings=settings)
        last = k == len(shards) - 1
        assert path.exists() is not last and malformed.exists() is not last
    assert (home.requests_inbox / "processed" / "R-1.json").exists()
    assert (home.requests_inbox / "quarantine" / "broken.json").exists()
    assert not any(home.request_receipts_dir.iterdir())
