"""Backups written before a delete (R5): CSV and Parquet per table, a checksummed manifest, owner-only, verified."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from compliance.clock import utc_iso
from compliance.errors import first_line
from compliance.store.files import fsync_path
from compliance.store.sql import scalar

MANIFEST = "manifest.json"
FORMATS = ("csv", "parquet")
PARTIAL_SUFFIX = ".partial"

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CHUNK = 1 << 20
# OWASP CSV injection: a spreadsheet runs a cell starting with one of these as a formula.
_FORMULA_STARTS = "('=', '+', '-', '@', chr(9), chr(13))"
_CSV_READ = "header = true, all_varchar = true, delim = ',', quote = '\"', escape = '\"'"


class BackupError(Exception):
    """A backup could not be written, or does not match its manifest: a one-line message naming the file."""


@dataclass(frozen=True)
class BackupFile:
    """One table in one format inside a backup folder."""

    table: str
    format: str
    file: str
    rows: int
    sha256: str


@dataclass(frozen=True)
class BackupManifest:
    """What a backup folder holds, as its manifest.json records it."""

    bulk_action_id: str
    folder: Path
    written_at: datetime
    contacts: int
    files: tuple[BackupFile, ...]
    manifest_sha256: str

    @property
    def total_rows(self) -> int:
        """Rows over all tables, counted in one format (every format holds the same rows)."""
        if not self.files:
            return 0
        first = self.files[0].format
        return sum(item.rows for item in self.files if item.format == first)


def write_backup(con: duckdb.DuckDBPyConnection, *, folder: Path, bulk_action_id: str, contact_ids_sql: str,
                 tables: Sequence[str], formats: Sequence[str], written_at: datetime,
                 staged: Mapping[str, tuple[str, Sequence[Any]]] | None = None) -> BackupManifest:
    """Export the given contacts and their rows in the given tables, verify the files, then publish the folder.

    The files are written into `<folder>.partial` (owner-only from its creation), checked against the manifest,
    and only then renamed to `folder`, so a backup folder that exists is always complete and verified.

    Args:
        con: a store connection.
        folder: the backup folder to create; it must not exist.
        bulk_action_id: the bulk action the backup is for (recorded in the manifest).
        contact_ids_sql: a query returning one column, contact_id: the contacts to back up.
        tables: tables with a contact_id column to back up besides contacts (e.g. notes, list_memberships).
        formats: one or both of csv, parquet.
        written_at: the run's clock.
        staged: per table, a SELECT of exactly the rows to back up (the table's columns, in its order) and its
            parameters, when the caller staged them already (deletion.back_up stages the whole run's rows once);
            a table not in it is read for the contacts of contact_ids_sql.

    Returns:
        The verified manifest of the published folder.

    Raises:
        BackupError: the folder exists already, an argument is invalid, or writing or verifying failed;
            nothing is left behind in that case.
    """
    folder = Path(folder)
    formats = _check_formats(formats)
    names = ["contacts", *dict.fromkeys(t for t in tables if t != "contacts")]
    for name in names:
        if not _IDENTIFIER.match(name):
            raise BackupError(f"backup {bulk_action_id}: {name!r} is not a table name")
    if folder.exists():
        raise BackupError(f"backup {folder}: already exists; a backup is never overwritten")
    partial = _partial(folder)
    if partial.exists():
        shutil.rmtree(partial)
    folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial.mkdir(mode=0o700)
    partial.chmod(0o700)
    ids = f"_backup_ids_{secrets.token_hex(6)}"
    current = "contact_ids_sql"
    try:
        staged = staged or {}
        if any(table not in staged for table in names):
            con.execute(f"CREATE TEMP TABLE {ids} AS SELECT DISTINCT CAST(contact_id AS VARCHAR) AS contact_id "
                        f"FROM ({contact_ids_sql}) WHERE contact_id IS NOT NULL")
        files: list[BackupFile] = []
        for table in names:
            selected, params = staged.get(table) or (
                f"SELECT * FROM {table} WHERE contact_id IN (SELECT contact_id FROM {ids})", ())
            counts = {}
            for fmt in formats:
                current = f"{table}.{fmt}"
                counts[fmt] = _copy(con, table, selected, fmt, partial / current, params)
                files.append(BackupFile(table, fmt, current, counts[fmt], _sha256(partial / current, sync=True)))
            if len(set(counts.values())) > 1:
                raise BackupError(f"backup {partial}: {table}: the formats hold different row counts {counts}")
        current = MANIFEST
        contacts = next(item.rows for item in files if item.table == "contacts")
        manifest_sha256 = _write_manifest(partial, bulk_action_id, written_at, contacts, files)
        fsync_path(partial)
        manifest = verify_backup(partial, manifest_sha256)
        if folder.exists():
            raise BackupError(f"backup {folder}: already exists; a backup is never overwritten")
        os.rename(partial, folder)
        fsync_path(folder.parent)
    except BaseException as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(exc, BackupError):
            raise
        if isinstance(exc, (duckdb.Error, OSError)):
            raise BackupError(f"backup {partial}: {current}: {first_line(exc)}") from exc
        raise
    finally:
        with contextlib.suppress(duckdb.Error):
            con.execute(f"DROP TABLE IF EXISTS {ids}")
    return replace(manifest, folder=folder)


def verify_backup(folder: Path, manifest_sha256: str | None = None) -> BackupManifest:
    """Check a backup folder against its manifest: every file present, same bytes, same row count.

    Args:
        folder: the backup folder.
        manifest_sha256: when given, manifest.json itself must have this sha256 (as recorded in the store).

    Returns:
        The manifest read from the folder.

    Raises:
        BackupError: naming the first file that is missing, changed or holds a different number of rows.
    """
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise BackupError(f"backup {folder}: {MANIFEST} is missing")
    actual_sha = _sha256(manifest_path)
    if manifest_sha256 is not None and actual_sha != manifest_sha256:
        raise BackupError(f"backup {folder}: {MANIFEST} has changed (sha256 {actual_sha[:12]}…, "
                          f"expected {manifest_sha256[:12]}…)")
    manifest = _read_manifest(folder, actual_sha)
    with duckdb.connect() as con:
        for item in manifest.files:
            path = folder / item.file
            if not path.is_file():
                raise BackupError(f"backup {folder}: {item.file} is missing")
            sha = _sha256(path)
            if sha != item.sha256:
                raise BackupError(f"backup {folder}: {item.file} has changed (sha256 {sha[:12]}…, "
                                  f"manifest {item.sha256[:12]}…)")
            try:
                rows = _count_rows(con, path, item.format)
            except duckdb.Error as exc:
                raise BackupError(f"backup {folder}: {item.file} cannot be read: {first_line(exc)}") from None
            if rows != item.rows:
                raise BackupError(f"backup {folder}: {item.file} holds {rows} rows, manifest says {item.rows}")
    return manifest


def remove_backup(folder: Path) -> None:
    """Remove a backup folder and everything in it (and any unfinished `.partial` of it); gone already is fine.

    Args:
        folder: the backup folder.
    """
    folder = Path(folder)
    for path in (folder, _partial(folder)):
        _remove(path)


def remove_orphans(backups_dir: Path, keep: Iterable[str], *, committed: Iterable[str] = (),
                   audit_file: Path | None = None) -> list[str]:
    """Remove backup folders the store does not know, and leftovers of backups that never finished.

    A folder is never removed when its manifest names a committed bulk action, or when the audit log records a
    bulk action of its name: the store may have lost its record of it (a store restored from an older copy), and
    the backup may be the only copy left of what that bulk action deleted.

    Args:
        backups_dir: the folder holding one sub-folder per backup.
        keep: names of the backup folders to keep (the store's live backups).
        committed: ids of the bulk actions the store holds.
        audit_file: the home's audit log, read only when a folder would otherwise be removed.

    Returns:
        The names removed, sorted.
    """
    backups_dir = Path(backups_dir)
    if not backups_dir.is_dir():
        return []
    keep, committed = set(keep), set(committed)
    audited: set[str] | None = None
    removed = []
    for path in sorted(backups_dir.iterdir()):
        leftover = path.name.endswith(PARTIAL_SUFFIX)
        if path.name in keep and not leftover:
            continue
        if not leftover and path.is_dir() and not path.is_symlink():
            if _manifest_action(path) in committed:
                continue
            if audited is None:
                audited = _audited_actions(audit_file)
            if path.name in audited or _manifest_action(path) in audited:
                continue
        if leftover or path.is_dir() or path.is_symlink():
            _remove(path)
            removed.append(path.name)
    return removed


def _manifest_action(folder: Path) -> str | None:
    """The bulk action a backup folder's manifest names, if it has a readable one."""
    try:
        return str(json.loads((folder / MANIFEST).read_text())["bulk_action_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _audited_actions(audit_file: Path | None) -> set[str]:
    """The bulk action ids the audit log records (bulk_action.* entries); empty without a readable log."""
    if audit_file is None:
        return set()
    ids = set()
    try:
        with Path(audit_file).open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and str(entry.get("event", "")).startswith("bulk_action."):
                    ids.add(str((entry.get("fields") or {}).get("bulk_action_id")))
    except OSError:
        return set()
    return ids


def _check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(formats))
    unknown = [fmt for fmt in chosen if fmt not in FORMATS]
    if unknown or not chosen:
        raise BackupError(f"backup formats {list(formats)!r}: choose one or both of {', '.join(FORMATS)}")
    return chosen


def _partial(folder: Path) -> Path:
    return folder.with_name(folder.name + PARTIAL_SUFFIX)


def _quote_path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _neutralised(expression: str) -> str:
    return f"CASE WHEN left({expression}, 1) IN {_FORMULA_STARTS} THEN '''' || {expression} ELSE {expression} END"


def _csv_columns(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """The table's columns as CSV cells: text neutralised against formula injection, lists joined with commas."""
    selected = []
    for name, sql_type, *_ in con.execute(f"DESCRIBE SELECT * FROM {table}").fetchall():
        column = '"' + name.replace('"', '""') + '"'
        if sql_type.endswith("]"):
            text = f"array_to_string(CAST({column} AS VARCHAR[]), ',')"
        elif sql_type == "VARCHAR":
            text = column
        elif sql_type == "JSON" or sql_type.startswith(("STRUCT", "MAP", "UNION")):
            text = f"CAST({column} AS VARCHAR)"
        else:
            selected.append(column)
            continue
        selected.append(f"{_neutralised(text)} AS {column}")
    return ", ".join(selected)


def _copy(con: duckdb.DuckDBPyConnection, table: str, selected: str, fmt: str, path: Path,
          params: Sequence[Any] = ()) -> int:
    if fmt == "csv":
        query = f"SELECT {_csv_columns(con, table)} FROM ({selected})"
        options = "FORMAT csv, HEADER true"
    else:
        query, options = selected, "FORMAT parquet"
    written = con.execute(f"COPY ({query}) TO {_quote_path(path)} ({options})", list(params)).fetchone()
    path.chmod(0o600)
    return int(written[0]) if written else _count_rows(con, path, fmt)


def _count_rows(con: duckdb.DuckDBPyConnection, path: Path, fmt: str) -> int:
    if fmt == "csv":
        relation = f"read_csv({_quote_path(path)}, {_CSV_READ})"
    elif fmt == "parquet":
        relation = f"read_parquet({_quote_path(path)})"
    else:
        raise BackupError(f"backup {path.parent}: {path.name}: unknown format {fmt!r}")
    return int(scalar(con, f"SELECT count(*) FROM {relation}"))


def _sha256(path: Path, sync: bool = False) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
        if sync:
            os.fsync(handle.fileno())
    return digest.hexdigest()


def _write_manifest(folder: Path, bulk_action_id: str, written_at: datetime, contacts: int,
                    files: list[BackupFile]) -> str:
    document = {
        "bulk_action_id": bulk_action_id,
        "written_at": utc_iso(written_at, zulu=False),
        "contacts": contacts,
        "files": [{"table": f.table, "format": f.format, "file": f.file, "rows": f.rows, "sha256": f.sha256}
                  for f in files],
    }
    data = (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
    fd = os.open(folder / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return hashlib.sha256(data).hexdigest()


def _read_manifest(folder: Path, manifest_sha256: str) -> BackupManifest:
    try:
        document = json.loads((folder / MANIFEST).read_text())
        files = tuple(BackupFile(str(f["table"]), str(f["format"]), str(f["file"]), int(f["rows"]), str(f["sha256"]))
                      for f in document["files"])
        manifest = BackupManifest(str(document["bulk_action_id"]), folder,
                                  datetime.fromisoformat(document["written_at"]), int(document["contacts"]),
                                  files, manifest_sha256)
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"backup {folder}: {MANIFEST} is malformed: {first_line(exc)}") from None
    for item in files:
        # The manifest names files inside the folder only; anything else is a tampered manifest.
        if Path(item.file).name != item.file or item.file in (".", "..", MANIFEST):
            raise BackupError(f"backup {folder}: {MANIFEST} names {item.file!r}, not a file of this folder")
    return manifest


def _remove(path: Path) -> None:
    try:
        if path.is_symlink() or path.is_file():
            path.unlink()
        else:
            shutil.rmtree(path)
    except FileNotFoundError:
        pass
