"""Snapshot formats: one small class per way a CRM export can be laid out, found by name in a registry.

Each format turns a snapshot folder into one source per store table: a SQL relation with the table's columns under
our names, which the ingest validates and loads the same way whatever the format.
"""

from __future__ import annotations

import csv
import os
import stat
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import duckdb

from compliance.errors import InputError
from compliance.registry import registrar
from compliance.store.schema import TABLES, TableSpec
from compliance.store.sql import quote_identifier, sql_string

FILE_SUFFIXES = ("csv", "parquet")
# The longest value a snapshot field may hold. Longer is a broken export (or an attack), not CRM data; DuckDB's CSV
# reader is given room for a few such fields on a line so that the field, not the line, is what gets reported.
FIELD_LIMIT_BYTES = 1_048_576
CSV_MAX_LINE_BYTES = 16 * FIELD_LIMIT_BYTES
COLUMN_NAME_LIMIT = 256
# Types a value of ours can be read from: scalars, not nested values or raw bytes.
_UNUSABLE_TYPES = ("STRUCT", "MAP", "UNION", "BLOB", "BIT", "[]", "VARIANT")
SNAPSHOT_FORMATS: dict[str, type[SnapshotFormat]] = {}
register = registrar(SNAPSHOT_FORMATS)


@dataclass(frozen=True)
class Source:
    """Where one store table comes from in a snapshot.

    `relation` has the table's columns under our names (and, for native files, any extra ones); `row_sql` numbers
    or locates a record for messages (`order_column` orders them); `extra_sql`, when set, is the format's own JSON
    of the keys it did not map; `temp_tables` are dropped once the snapshot is loaded.
    """

    spec: TableSpec
    relation: str
    label: str
    provided: bool = True
    row_sql: str = "row_number() OVER ()"
    row_word: str = "row "
    extra_sql: str | None = None
    order_column: str = "_row"
    field_names: dict[str, str] = field(default_factory=dict)
    temp_tables: tuple[str, ...] = ()
    path: Path | None = None

    def locate(self, row: object) -> str:
        """How a message names the record that `row_sql` gave."""
        return f"{self.row_word}{row}"

    def field(self, column: str) -> str:
        """How a message names one of our columns in this source."""
        if column in self.field_names:
            return f"field {self.field_names[column]}"
        return f"column {column}"

    def where(self, snapshot_id: str) -> str:
        """How a message names this source: its snapshot, table and (for a native file) the file."""
        in_file = f": {self.label}" if self.path is not None else ""
        return f"snapshot {snapshot_id}: table {self.spec.name}{in_file}"


class SnapshotFormat:
    """A layout of a snapshot folder; `fallback` formats are taken only when no other one recognises the folder."""

    name: ClassVar[str]
    fallback: ClassVar[bool] = False

    def recognises(self, folder: Path) -> bool:
        raise NotImplementedError

    def sources(self, con: duckdb.DuckDBPyConnection, folder: Path, tag: str) -> list[Source]:
        """One source per store table, in TABLES order; `tag` makes any temporary table name unique."""
        raise NotImplementedError


def format_of(folder: Path) -> SnapshotFormat:
    """The format of a snapshot folder: the first non-fallback format that recognises it, else the fallback.

    Args:
        folder: a snapshot folder.

    Returns:
        An instance of the registered format.
    """
    ordered = sorted(SNAPSHOT_FORMATS.values(), key=lambda cls: cls.fallback)
    for cls in ordered:
        instance = cls()
        if instance.recognises(folder):
            return instance
    raise InputError(f"snapshot {folder.name}: no snapshot format recognises it (known: "
                     f"{', '.join(sorted(SNAPSHOT_FORMATS))})")


def empty_source(spec: TableSpec) -> Source:
    """A table the snapshot does not provide: no rows."""
    columns = ", ".join(f"CAST(NULL AS {sql_type}) AS {quote_identifier(name)}"
                        for name, sql_type in spec.columns.items())
    return Source(spec, f"(SELECT {columns} WHERE false)", "not provided", provided=False)


def native_file(folder: Path, spec: TableSpec) -> Path | None:
    """The <table>.csv or <table>.parquet file of a table in a folder, None when neither exists."""
    found = [folder / f"{spec.name}.{suffix}" for suffix in FILE_SUFFIXES
             if os.path.lexists(folder / f"{spec.name}.{suffix}")]
    if len(found) > 1:
        raise InputError(f"snapshot {folder.name}: table {spec.name}: both .csv and .parquet given; keep one")
    return found[0] if found else None


def native_source(con: duckdb.DuckDBPyConnection, folder: Path, spec: TableSpec, path: Path,
                  snapshot_id: str | None = None) -> Source:
    """A native CSV or Parquet table file, checked for its column names, required columns and their types.

    Args:
        con: a connection to read with.
        folder: the snapshot folder (for messages).
        spec: the table.
        path: its file.
        snapshot_id: the snapshot's name in messages (default: the folder's).

    Returns:
        The source.

    Raises:
        InputError: when the file is not a regular file, cannot be read, has a column name that cannot be used,
            lacks a required column or gives one as a type it cannot be read from. The message never quotes a value.
    """
    snapshot_id = snapshot_id or folder.name
    where = f"snapshot {snapshot_id}: table {spec.name}: {path.name}"
    refuse_odd_file(path, where)
    relation = (f"read_csv({sql_string(str(path))}, header = true, all_varchar = true, "
                f"max_line_size = {CSV_MAX_LINE_BYTES})" if path.suffix == ".csv"
                else f"read_parquet({sql_string(str(path))})")
    if path.suffix == ".csv":
        check_column_names(csv_header(path, where), where)
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    except duckdb.Error as exc:
        raise InputError(unreadable(where, path, exc)) from None
    types = {row[0]: row[1] for row in described}
    if path.suffix != ".csv":
        check_column_names(list(types), where)
    missing = [column for column in spec.columns if column not in types]
    if missing:
        raise InputError(f"snapshot {snapshot_id}: table {spec.name}: missing required column {missing[0]}")
    for column, sql_type in spec.all_columns.items():
        given = types.get(column)
        if given is None or given == "VARCHAR":
            continue
        element = given[:-2] if sql_type == "VARCHAR[]" and given.endswith("[]") else given
        if any(marker in element for marker in _UNUSABLE_TYPES):
            expected = "text or a list of text" if sql_type == "VARCHAR[]" else "text or a scalar"
            raise InputError(f"{where}: column {column}: given as {given}, which cannot be read as {sql_type} "
                             f"(expected {expected})")
    return Source(spec, relation, path.name, path=path)


def refuse_odd_file(path: Path, where: str) -> None:
    """Refuse a symbolic link or anything but a regular file, without opening it (a FIFO would block the read).

    Raises:
        InputError: naming the file and what it is.
    """
    try:
        mode = os.lstat(path).st_mode
    except OSError as exc:
        raise InputError(f"{where}: cannot be read ({exc.strerror})") from None
    if stat.S_ISLNK(mode):
        raise InputError(f"{where}: a symbolic link; snapshot files must be regular files inside the home "
                         f"(copy the file in instead)")
    if not stat.S_ISREG(mode):
        raise InputError(f"{where}: not a regular file (a device, FIFO or socket); refused")


def csv_header(path: Path, where: str) -> list[str]:
    """The header cells of a CSV file, read by Python's csv module (DuckDB renames empty and repeated names)."""
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle, _large_fields():
        try:
            return next(csv.reader(handle), [])
        except csv.Error as exc:
            raise InputError(f"{where}: header: not valid CSV ({exc})") from None


def check_column_names(names: list[str], where: str) -> None:
    """Refuse a column name that is empty, too long, not UTF-8, holds a control character, or repeats another.

    Names are quoted by compliance.store.sql.quote_identifier wherever they reach SQL; these are refused because a
    message could not show them on one line, or because DuckDB would silently rename one of them.

    Raises:
        InputError: naming the file and the column by its position (never quoting the name).
    """
    seen: dict[str, int] = {}
    for number, name in enumerate(names, start=1):
        problem = _name_problem(name)
        if problem is None and name.casefold() in seen:
            problem = f"repeats the name of column {seen[name.casefold()]}"
        if problem:
            raise InputError(f"{where}: column {number}: its name {problem}")
        seen[name.casefold()] = number


def _name_problem(name: str) -> str | None:
    if not name.strip():
        return "is empty"
    if len(name) > COLUMN_NAME_LIMIT:
        return f"is longer than {COLUMN_NAME_LIMIT} characters"
    if any(0xDC80 <= ord(c) <= 0xDCFF for c in name):
        return "is not UTF-8 text"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        return "holds a control character"
    if name.casefold() == "_row":
        return "is reserved (the ingest numbers rows under it)"
    return None


def unreadable(where: str, path: Path | None, exc: Exception) -> str:
    """The one-line message for a file DuckDB could not read: the first problem Python finds in it, else the kind
    of engine error. DuckDB's own message is never shown: it quotes the line it stopped at, personal data and all.

    Args:
        where: the snapshot, table and file, as messages begin.
        path: the file (a CSV is searched for its first bad row), or None.
        exc: DuckDB's exception.

    Returns:
        The message.
    """
    if path is not None and path.suffix == ".csv":
        problem = csv_problem(path)
        if problem:
            return f"{where}: {problem}"
    kind = f"not a well-formed {path.suffix[1:].upper()} file" if path is not None else "not well-formed"
    return f"{where}: cannot be read ({kind}; DuckDB {type(exc).__name__})"


def csv_problem(path: Path) -> str | None:
    """The first row and column of a CSV file that is not UTF-8, too long, or the wrong number of cells.

    Only on the error path: it reads the whole file in Python, one row at a time.

    Returns:
        "row N: column C: ..." (rows counted after the header, as every message counts them), or None.
    """
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle, _large_fields():
        reader = csv.reader(handle)
        try:
            header = next(reader, [])
            for number, cells in enumerate(reader, start=1):
                if not cells:
                    continue
                for index, cell in enumerate(cells):
                    column = header[index] if index < len(header) and not _name_problem(header[index]) \
                        else f"{index + 1}"
                    if any(0xDC80 <= ord(c) <= 0xDCFF for c in cell):
                        return f"row {number}: column {column}: not UTF-8 text"
                    size = len(cell.encode("utf-8", "surrogateescape"))
                    if size > FIELD_LIMIT_BYTES:
                        return f"row {number}: column {column}: too long ({size:,} bytes; the limit is " \
                               f"{FIELD_LIMIT_BYTES:,})"
                if len(cells) != len(header):
                    return f"row {number}: has {len(cells)} cells but the header has {len(header)} columns"
        except csv.Error as exc:
            return f"line {reader.line_num}: not valid CSV ({exc})"
    return None


class _large_fields:
    """Lift the csv module's field size limit (128 KiB) for a block, so that a long field is measured, not fatal."""

    def __enter__(self) -> None:
        self.previous = csv.field_size_limit(sys.maxsize)

    def __exit__(self, *exc: object) -> None:
        csv.field_size_limit(self.previous)


@register("native")
class Native(SnapshotFormat):
    """Our own twelve tables, each as <table>.csv or <table>.parquet; every table is required."""

    fallback = True

    def recognises(self, folder: Path) -> bool:
        return True

    def sources(self, con: duckdb.DuckDBPyConnection, folder: Path, tag: str) -> list[Source]:
        sources = []
        for spec in TABLES:
            path = native_file(folder, spec)
            if path is None:
                raise InputError(f"snapshot {folder.name}: table {spec.name}: no {spec.name}.csv or "
                                 f"{spec.name}.parquet")
            sources.append(native_source(con, folder, spec, path))
        return sources
