"""Backups before delete (R5): contents per table and format, CSV injection, permissions, verification, cleanup."""

from __future__ import annotations

import csv
import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from compliance.snapshots.ingest import ingest_snapshots
from compliance.store.backup import BackupError, remove_backup, remove_orphans, verify_backup, write_backup
from support.crm import write_snapshot

AS_OF = datetime(2026, 1, 1, 12, tzinfo=UTC)
LINKED = ["conversations", "notes", "tasks", "activities", "campaign_enrollments", "workflow_enrollments",
          "list_memberships"]
IDS_SQL = "SELECT contact_id FROM (VALUES ('c-1'), ('c-2'), ('c-missing')) AS t(contact_id)"


@pytest.fixture
def store(home, con):
    write_snapshot(home.snapshots_inbox / "s1")
    ingest_snapshots(con, home, as_of=AS_OF)
    return con


def backup(con, folder: Path, tables=LINKED, formats=("csv", "parquet"), ids_sql=IDS_SQL):
    return write_backup(con, folder=folder, bulk_action_id="ba-1", contact_ids_sql=ids_sql, tables=tables,
                        formats=formats, written_at=AS_OF)


@pytest.fixture
def made(store, home):
    return backup(store, home.backups_dir / "ba-1")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def csv_rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_manifest_counts_match_the_store(store, made):
    by_file = {f.file: f.rows for f in made.files}
    assert made.contacts == 2 and made.bulk_action_id == "ba-1" and made.written_at == AS_OF
    for table in ["contacts", *LINKED]:
        expected = store.execute(f"SELECT count(*) FROM {table} WHERE contact_id IN ('c-1', 'c-2')").fetchone()[0]
        assert by_file[f"{table}.csv"] == by_file[f"{table}.parquet"] == expected, table
    assert by_file["tasks.parquet"] == 1 and by_file["workflow_enrollments.parquet"] == 1
    assert made.total_rows == sum(rows for name, rows in by_file.items() if name.endswith(".csv"))
    manifest = json.loads((made.folder / "manifest.json").read_text())
    assert manifest["contacts"] == 2 and len(manifest["files"]) == 16


def test_parquet_is_faithful_to_the_store(store, made):
    for table in ["contacts", *LINKED]:
        expected = store.execute(
            f"SELECT * FROM {table} WHERE contact_id IN ('c-1', 'c-2') ORDER BY ALL").to_arrow_table()
        actual = store.execute(
            f"SELECT * FROM read_parquet('{made.folder / f'{table}.parquet'}') ORDER BY ALL").to_arrow_table()
        assert actual.schema.names == expected.schema.names, table
        assert (store.execute(f"DESCRIBE SELECT * FROM read_parquet('{made.folder / f'{table}.parquet'}')").fetchall()
                == store.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()), table
        assert actual.to_pylist() == expected.to_pylist(), table
    schema = pq.read_schema(made.folder / "contacts.parquet")
    assert str(schema.field("tags").type) == "list<element: string>"


def test_csv_neutralises_formulas_but_parquet_keeps_the_text(made):
    rows = {row["conversation_id"]: row for row in csv_rows(made.folder / "conversations.csv")}
    assert rows["conv-2"]["last_message_body"] == "'=HYPERLINK(\"http://x\")"
    assert rows["conv-1"]["last_message_body"] == "Hi Ann"
    parquet = {r["conversation_id"]: r for r in pq.read_table(made.folder / "conversations.parquet").to_pylist()}
    assert parquet["conv-2"]["last_message_body"] == "=HYPERLINK(\"http://x\")"
    contacts = {row["contact_id"]: row for row in csv_rows(made.folder / "contacts.csv")}
    assert contacts["c-1"]["tags"] == "Lead,VIP"
    assert contacts["c-1"]["phone"] == "'+15551230001"
    assert json.loads(contacts["c-1"]["extra"]) == {"source": "web"}


def test_csv_neutralises_lists_and_json_too(home, store):
    store.execute("UPDATE contacts SET tags = ['@admin', 'ok'], extra = '\"=cmd\"' WHERE contact_id = 'c-1'")
    made = backup(store, home.backups_dir / "ba-1", tables=[])
    c1 = next(row for row in csv_rows(made.folder / "contacts.csv") if row["contact_id"] == "c-1")
    assert c1["tags"] == "'@admin,ok"
    assert c1["extra"] == '"=cmd"'
    store.execute("UPDATE contacts SET extra = '-1' WHERE contact_id = 'c-1'")
    again = backup(store, home.backups_dir / "ba-2", tables=[])
    c1 = next(row for row in csv_rows(again.folder / "contacts.csv") if row["contact_id"] == "c-1")
    assert c1["extra"] == "'-1"


def test_files_are_owner_only(home, made):
    assert made.folder == home.backups_dir / "ba-1"
    assert mode(made.folder) == 0o700
    files = list(made.folder.iterdir())
    assert len(files) == 17
    assert all(mode(path) == 0o600 for path in files)


def test_verify_passes_and_returns_the_manifest(made):
    verified = verify_backup(made.folder, made.manifest_sha256)
    assert verified == made


def test_tables_without_rows_still_get_files(home, store):
    made = backup(store, home.backups_dir / "ba-1", ids_sql="SELECT 'c-3' AS contact_id")
    by_file = {f.file: f.rows for f in made.files}
    assert by_file["tasks.csv"] == by_file["tasks.parquet"] == 0
    assert (made.folder / "tasks.csv").read_text().strip() == "task_id,contact_id,title,status,due_at,extra,snapshot_id"
    assert pq.read_table(made.folder / "tasks.parquet").num_rows == 0
    assert by_file["activities.parquet"] == 1


def test_appended_byte_is_detected(made):
    with (made.folder / "notes.csv").open("ab") as handle:
        handle.write(b"x")
    with pytest.raises(BackupError, match=r"notes\.csv has changed"):
        verify_backup(made.folder)


def test_deleted_file_is_detected(made):
    (made.folder / "activities.parquet").unlink()
    with pytest.raises(BackupError, match=r"activities\.parquet is missing"):
        verify_backup(made.folder, made.manifest_sha256)


def test_manifest_row_count_edit_is_detected(made):
    path = made.folder / "manifest.json"
    document = json.loads(path.read_text())
    entry = next(f for f in document["files"] if f["file"] == "contacts.csv")
    entry["rows"] = 1
    path.write_text(json.dumps(document))
    with pytest.raises(BackupError, match=r"contacts\.csv holds 2 rows, manifest says 1"):
        verify_backup(made.folder)


def test_manifest_edit_is_detected_with_the_recorded_sha(made):
    path = made.folder / "manifest.json"
    document = json.loads(path.read_text())
    document["contacts"] = 3
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    verify_backup(made.folder)
    with pytest.raises(BackupError, match=r"manifest\.json has changed"):
        verify_backup(made.folder, made.manifest_sha256)


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(BackupError, match=r"manifest\.json is missing"):
        verify_backup(tmp_path / "nope")


def test_an_existing_backup_is_never_overwritten(home, store, made):
    before = {path.name: path.read_bytes() for path in made.folder.iterdir()}
    with pytest.raises(BackupError, match="already exists"):
        backup(store, made.folder, ids_sql="SELECT 'c-4' AS contact_id")
    assert {path.name: path.read_bytes() for path in made.folder.iterdir()} == before
    verify_backup(made.folder, made.manifest_sha256)


def test_a_failure_midway_leaves_nothing(home, store):
    folder = home.backups_dir / "ba-1"
    with pytest.raises(BackupError, match="no_such_table"):
        backup(store, folder, tables=["notes", "no_such_table"])
    assert not folder.exists()
    assert list(home.backups_dir.iterdir()) == []
    assert not [name for (name,) in store.execute("SHOW TABLES").fetchall() if name.startswith("_backup_ids")]
    made = backup(store, folder)
    verify_backup(made.folder, made.manifest_sha256)


def test_a_bad_ids_query_leaves_nothing(home, store):
    with pytest.raises(BackupError, match="contact_ids_sql"):
        backup(store, home.backups_dir / "ba-1", ids_sql="SELECT nope FROM contacts")
    assert list(home.backups_dir.iterdir()) == []


def test_a_stale_partial_folder_is_replaced(home, store):
    stale = home.backups_dir / "ba-1.partial"
    stale.mkdir()
    (stale / "junk.csv").write_text("old")
    made = backup(store, home.backups_dir / "ba-1")
    assert not stale.exists() and not (made.folder / "junk.csv").exists()


def test_parquet_only(home, store):
    made = backup(store, home.backups_dir / "ba-1", formats=["parquet"])
    assert {f.format for f in made.files} == {"parquet"}
    assert sorted(path.name for path in made.folder.iterdir()) == sorted(
        ["manifest.json"] + [f"{table}.parquet" for table in ["contacts", *LINKED]])
    assert made.total_rows == 2 + 3 + 2 + 1 + 3 + 2 + 1 + 2


@pytest.mark.parametrize("formats", [[], ["xlsx"]])
def test_unknown_formats_are_refused(home, store, formats):
    with pytest.raises(BackupError, match="formats"):
        backup(store, home.backups_dir / "ba-1", formats=formats)
    assert list(home.backups_dir.iterdir()) == []


def test_remove_backup_is_tolerant(made):
    remove_backup(made.folder)
    assert not made.folder.exists()
    remove_backup(made.folder)


def test_remove_orphans_keeps_known_backups(home, store, made):
    other = backup(store, home.backups_dir / "ba-2")
    orphan = backup(store, home.backups_dir / "ba-old")
    (home.backups_dir / "ba-3.partial").mkdir()
    (home.backups_dir / "ba-1.partial").mkdir()
    removed = remove_orphans(home.backups_dir, keep=["ba-1", "ba-2"])
    assert removed == ["ba-1.partial", "ba-3.partial", "ba-old"]
    assert sorted(path.name for path in home.backups_dir.iterdir()) == ["ba-1", "ba-2"]
    assert not orphan.folder.exists()
    verify_backup(made.folder, made.manifest_sha256)
    verify_backup(other.folder, other.manifest_sha256)
    assert remove_orphans(home.backups_dir / "missing", keep=[]) == []


def test_backup_reads_are_independent_of_the_store(made):
    with duckdb.connect() as other:
        assert other.execute(
            f"SELECT count(*) FROM read_parquet('{made.folder / 'contacts.parquet'}')").fetchone()[0] == 2
