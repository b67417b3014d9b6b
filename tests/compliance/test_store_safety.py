"""The store's safety: no silent start-over, backups recorded relative to their home, a copied or moved home apart."""

from __future__ import annotations

import json
import shutil

import pytest

from compliance.clock import parse_as_of
from compliance.evidence.audit import AuditLog
from compliance.home import Home, OutsideHome
from compliance.purge import purge
from compliance.settings import Settings
from compliance.store.backup import MANIFEST, remove_orphans
from compliance.store.connection import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Store,
    StoreMissing,
    migrate,
    refuse_missing_store,
)
from compliance.store.keys import KeyedHasher
from support.crm import run_deletion, write_request, write_snapshot

AS_OF = "2026-01-01T12:00:00Z"


def deleted_home(home: Home, con) -> str:
    """The home after one erasure of c-2: returns its backup's bulk action id."""
    write_snapshot(home.snapshots_inbox / "s1")
    write_request(home, "r1", regulation="internal", subjects=[{"contact_id": "c-2"}])
    run = run_deletion(con, home)
    return run.action("request r1.json").bulk_action_id


def drop_store(home: Home) -> None:
    for path in home.store_dir.glob("retention.duckdb*"):
        path.unlink()


@pytest.mark.parametrize("history", ["audit", "backups", "processed request", "quarantined request", "report"])
def test_a_home_with_history_but_no_store_refuses_to_start_a_new_one(home, history):
    assert not home.store_file.exists()
    if history == "audit":
        AuditLog(home.audit_file).append("test", parse_as_of(AS_OF), n=1)
    elif history == "backups":
        (home.backups_dir / "ba-1").mkdir()
    elif history == "report":
        (home.reports_dir / "2026-01-01-run").mkdir()
    else:
        folder = home.requests_inbox / ("processed" if history.startswith("processed") else "quarantine")
        folder.mkdir()
        (folder / "r1.json").write_text("{}")

    with pytest.raises(StoreMissing, match="is missing but this home has history") as refused:
        Store(home).connect()

    assert "Recover" in str(refused.value) and str(home.store_file) in str(refused.value)
    assert not home.store_file.exists()


def test_a_new_home_and_a_dagster_history_inside_a_run_still_open_a_store(home):
    assert not home.store_file.exists()
    (home.dagster_home / "history").mkdir()
    (home.dagster_home / "history" / "runs.db").write_text("")

    Store(home).connect().close()

    assert home.store_file.exists()


def test_the_command_line_counts_a_dagster_run_history_as_history(home):
    assert not home.store_file.exists()
    (home.dagster_home / "history").mkdir()
    (home.dagster_home / "history" / "runs.db").write_text("")

    with pytest.raises(StoreMissing, match="Dagster run history"):
        refuse_missing_store(home, with_dagster_runs=True)


def test_retention_run_on_a_home_that_lost_its_store_exits_2_and_ingests_nothing(home, con, capsys):
    from pipelines.cli import main

    deleted_home(home, con)
    con.close()
    drop_store(home)

    code = main(["run", "--home", str(home.root), "--as-of", "2026-01-02T12:00:00Z"])

    assert code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "retention.duckdb is missing" in error
    assert not home.store_file.exists()
    assert len(list(home.backups_dir.iterdir())) == 1


def test_orphan_clean_up_keeps_a_backup_its_manifest_or_the_audit_log_says_was_committed(tmp_path):
    backups = tmp_path / "backups"
    for name in ("by-manifest", "by-audit", "orphan", "planned.partial"):
        (backups / name).mkdir(parents=True)
    (backups / "by-manifest" / MANIFEST).write_text(json.dumps({"bulk_action_id": "ba-committed"}))
    (backups / "orphan" / MANIFEST).write_text(json.dumps({"bulk_action_id": "ba-never-applied"}))
    audit = AuditLog(tmp_path / "audit.jsonl")
    audit.append("bulk_action.delete", parse_as_of(AS_OF), bulk_action_id="by-audit")

    removed = remove_orphans(backups, keep=[], committed={"ba-committed"}, audit_file=audit.path)

    assert removed == ["orphan", "planned.partial"]
    assert sorted(path.name for path in backups.iterdir()) == ["by-audit", "by-manifest"]


def test_a_store_restored_from_an_older_copy_never_loses_a_committed_backup(home, con):
    bulk_action_id = deleted_home(home, con)
    con.execute("DELETE FROM backups")
    con.execute("DELETE FROM bulk_actions")
    write_request(home, "r2", regulation="internal", subjects=[{"contact_id": "c-4"}])

    run_deletion(con, home, as_of="2026-01-02T12:00:00Z")

    assert (home.backups_dir / bulk_action_id / MANIFEST).is_file()


def test_backups_are_recorded_relative_to_the_home(home, con):
    bulk_action_id = deleted_home(home, con)

    assert con.execute("SELECT path FROM backups").fetchone() == (f"backups/{bulk_action_id}",)


def test_a_purge_in_a_copied_home_never_touches_the_original_homes_backups(home, con, tmp_path):
    bulk_action_id = deleted_home(home, con)
    con.close()
    copy = Home(tmp_path / "copy")
    shutil.copytree(home.root, copy.root, symlinks=True)

    with Store(copy).connect() as copied:
        purge(copied, copy, hasher=KeyedHasher(copy.secret()), settings=Settings(backup_retention_days=0),
              as_of=parse_as_of("2026-01-03T12:00:00Z"))

    assert not (copy.backups_dir / bulk_action_id).exists()
    assert (home.backups_dir / bulk_action_id / MANIFEST).is_file()


def test_the_migration_makes_absolute_backup_paths_relative(home, con):
    bulk_action_id = deleted_home(home, con)
    con.execute("UPDATE backups SET path = ?", [str(home.backups_dir / bulk_action_id)])
    con.execute("ALTER TABLE bulk_actions DROP COLUMN os_user")
    con.execute("ALTER TABLE bulk_actions DROP COLUMN host")
    # Back to the schema version before the step, undoing the steps after it too (they run again).
    before = [migration.name for migration in MIGRATIONS].index("relative_home_paths_operators")
    con.execute("ALTER TABLE backups DROP COLUMN bytes")
    con.execute("DROP TABLE contact_keys")
    con.execute("UPDATE schema_meta SET value = ? WHERE key = 'schema_version'", [str(before)])

    assert migrate(con) == SCHEMA_VERSION

    assert con.execute("SELECT path FROM backups").fetchone() == (f"backups/{bulk_action_id}",)


@pytest.mark.parametrize("recorded", ["../elsewhere", "/etc", "backups/../../elsewhere", "."])
def test_a_recorded_path_leading_outside_the_home_is_refused(home, recorded):
    with pytest.raises(OutsideHome):
        home.inside(recorded)


def test_a_recorded_path_inside_the_home_resolves_there_absolute_or_relative(home):
    assert home.inside("backups/ba-1") == home.backups_dir / "ba-1"
    assert home.inside(str(home.backups_dir / "ba-1")) == home.backups_dir / "ba-1"


def test_a_negative_store_wait_is_a_settings_error(home):
    from compliance.errors import InputError
    from compliance.settings import load_settings

    home.settings_file.write_text("store_wait_seconds: -1\n")
    with pytest.raises(InputError, match="store_wait_seconds"):
        load_settings(home.settings_file)


def test_a_moved_home_finds_its_backups_where_it_now_is(home, con, tmp_path):
    bulk_action_id = deleted_home(home, con)
    con.close()
    moved = Home(tmp_path / "moved")
    shutil.move(str(home.root), str(moved.root))

    with Store(moved).connect() as relocated:
        from compliance.deletion.backups import backup_folder
        [(path,)] = relocated.execute("SELECT path FROM backups").fetchall()
        assert backup_folder(relocated, path) == moved.backups_dir / bulk_action_id
        assert (backup_folder(relocated, path) / MANIFEST).is_file()
