"""The DuckDB store: schema versions and migrations, owner-only files, and all-or-nothing transactions."""

from __future__ import annotations

import stat

import duckdb
import pytest

from compliance.home import Home
from compliance.store import MIGRATIONS, SCHEMA_VERSION, Store, migrate, schema_version, transaction


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

    with pytest.raises(ValueError, match="boom"):
        with transaction(con):
            con.execute("INSERT INTO tombstones VALUES ('notes', 'n-2', 'ba-2')")
            con.execute("DELETE FROM tombstones WHERE row_key = 'n-1'")
            raise ValueError("boom")

    assert con.execute("SELECT row_key FROM tombstones").fetchall() == [("n-1",)]
