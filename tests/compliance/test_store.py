"""The DuckDB store: schema versions and migrations, owner-only files, all-or-nothing transactions, memory settings."""

from __future__ import annotations

import stat

import duckdb
import pytest

import compliance.store.connection as store_module
from compliance.clock import parse_as_of
from compliance.errors import InputError
from compliance.home import Home
from compliance.snapshots.ingest import ingest_snapshots
from compliance.store.connection import MIGRATIONS, SCHEMA_VERSION, Store, migrate, schema_version, transaction
from demo_crm.generator import generate_snapshot
from support.crm import AS_OF


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def tables(con) -> set[str]:
    return {row[0] for row in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}


class RecordingConnection:
    """Passes statements to a real connection and keeps them, to see what a migration ran."""

    def __init__(self, con):
        self.con, self.statements = con, []

    def execute(self, statement, *args):
        self.statements.append(statement)
        return self.con.execute(statement, *args)


def test_a_new_store_is_migrated_to_the_latest_version(home):
    assert not home.store_file.exists()

    with Store(home).connect() as con:
        assert schema_version(con) == SCHEMA_VERSION == len(MIGRATIONS)
        assert con.execute("SELECT value FROM schema_meta WHERE key = 'schema_version'").fetchall() == [
            (str(SCHEMA_VERSION),)]
        assert {"snapshots", "contacts", "contact_lifecycle", "tombstones", "suppression", "bulk_actions",
                "backups", "requests"} <= tables(con)


def test_reopening_does_not_migrate_again(home):
    with Store(home).connect() as con:
        con.execute("INSERT INTO tombstones VALUES ('notes', 'n-1', 'ba-1')")

    with Store(home).connect() as con:
        recorder = RecordingConnection(con)
        assert migrate(recorder) == SCHEMA_VERSION
        assert not [s for s in recorder.statements if "CREATE" in s.upper() or "INSERT" in s.upper()]
        assert con.execute("SELECT * FROM tombstones").fetchall() == [("notes", "n-1", "ba-1")]
        assert con.execute("SELECT count(*) FROM schema_meta").fetchone()[0] == 1


def test_a_version_1_store_migrates_to_the_latest_keeping_its_data(home):
    home.store_dir.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(home.store_file)) as con:
        con.execute("CREATE TABLE schema_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        for statement in MIGRATIONS[0].statements:
            con.execute(statement)
        con.execute("INSERT INTO schema_meta VALUES ('schema_version', '1')")
        con.execute("INSERT INTO contact_lifecycle (contact_id, state) VALUES ('c-1', 'deleted')")
        con.execute("INSERT INTO notes (note_id, contact_id, body) VALUES ('n-1', 'c-1', 'Called Ann')")
        assert schema_version(con) == 1 and "bulk_actions" not in tables(con)

    with Store(home).connect() as con:
        assert schema_version(con) == SCHEMA_VERSION
        assert {"bulk_actions", "bulk_action_items", "backups", "requests"} <= tables(con)
        assert con.execute("SELECT contact_id, state FROM contact_lifecycle").fetchall() == [("c-1", "deleted")]
        assert con.execute("SELECT note_id, body FROM notes").fetchall() == [("n-1", "Called Ann")]
        assert con.execute("SELECT count(*) FROM bulk_actions").fetchone()[0] == 0


def test_the_store_file_and_folder_are_owner_only(tmp_path):
    home = Home(tmp_path / "home")
    home.store_dir.mkdir(parents=True)
    home.store_dir.chmod(0o755)

    with Store(home).connect() as con:
        con.execute("INSERT INTO tombstones VALUES ('notes', 'n-1', 'ba-1')")

    assert mode(home.store_dir) == 0o700
    files = list(home.store_dir.glob("retention.duckdb*"))
    assert home.store_file in files
    assert {path.name: mode(path) for path in files} == {path.name: 0o600 for path in files}


def test_a_store_newer_than_the_code_is_refused(home):
    with Store(home).connect() as con:
        con.execute("UPDATE schema_meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION + 1)])

    with pytest.raises(RuntimeError, match=f"schema version {SCHEMA_VERSION + 1}"):
        Store(home).connect()


def test_a_transaction_rolls_back_on_error(con):
    with transaction(con):
        con.execute("INSERT INTO tombstones VALUES ('notes', 'n-1', 'ba-1')")

    with pytest.raises(ValueError, match="boom"), transaction(con):
        con.execute("INSERT INTO tombstones VALUES ('notes', 'n-2', 'ba-2')")
        con.execute("DELETE FROM tombstones WHERE row_key = 'n-1'")
        raise ValueError("boom")

    assert con.execute("SELECT row_key FROM tombstones").fetchall() == [("n-1",)]


MIB = 1024 ** 2


def setting(con, name: str):
    return con.execute("SELECT current_setting(?)", [name]).fetchone()[0]


def test_an_explicit_memory_limit_is_duckdbs_limit_whatever_the_budget(home):
    with Store(home, memory_limit="300MiB", memory_budget="10GB").connect() as con:
        assert setting(con, "memory_limit") == "300.0 MiB"


@pytest.mark.parametrize("budget, limit", [("2GiB", "1.6 GiB"), ("1GiB", "640.0 MiB"), ("1025MiB", "641.0 MiB"),
                                           ("1GB", "640.0 MiB"), ("300MiB", "640.0 MiB")],
                         ids=["two-gib", "exactly-the-floor", "one-above-the-floor", "default-budget-at-the-floor",
                              "budget-below-the-floor"])
def test_without_a_memory_limit_duckdb_gets_the_budget_less_the_python_side_at_least_the_floor(home, budget, limit):
    with Store(home, memory_budget=budget).connect() as con:
        assert setting(con, "memory_limit") == limit


def test_the_budget_comes_from_settings_yaml_and_the_limit_does_not_follow_the_processs_memory(home):
    home.settings_file.write_text("memory_budget: 1100MiB\n")
    with Store(home).connect() as con:
        assert setting(con, "memory_limit") == "716.0 MiB"
    ballast = bytearray(300 * MIB)  # noqa: F841  (the process now holds 300 MiB more)

    with Store(home).connect() as con:
        assert setting(con, "memory_limit") == "716.0 MiB"


def test_a_memory_budget_that_is_not_a_number_and_a_unit_is_refused_before_any_sql(home):
    with pytest.raises(InputError, match="memory_budget"):
        Store(home, memory_budget="1GB'; SET threads='1").connect().close()


def test_store_connections_let_duckdb_reorder_unordered_results(home):
    with Store(home).connect() as con:
        assert setting(con, "preserve_insertion_order") is False


def test_a_settings_file_that_does_not_load_leaves_the_store_on_the_default_budget(home):
    home.settings_file.write_text("restore_windw_days: 30\nmemory_budget: 3GiB\n")

    with Store(home).connect() as con:
        assert setting(con, "memory_limit") == "1.9 GiB"  # 2.5GB less the Python side: 2,000MiB, not 3GiB's


def test_a_highlevel_export_ingests_with_duckdb_at_the_memory_floor(home):
    generate_snapshot(home.snapshots_inbox / "s1", contacts=2000, as_of=parse_as_of(AS_OF), fmt="highlevel")
    floor = f"{store_module.MEMORY_LIMIT_FLOOR_BYTES // MIB}MiB"

    with Store(home, memory_limit=floor, threads=2).connect() as con:
        assert len(ingest_snapshots(con, home, as_of=parse_as_of(AS_OF)).ingested) == 1
        assert con.execute("SELECT count(*) FROM contacts").fetchone()[0] == 2000
