"""Snapshot formats: one small class per way a CRM export can be laid out, found by name in a registry.

Each format turns a snapshot folder into one source per store table: a SQL relation with the table's columns under
our names, which the ingest validates and loads the same way whatever the format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar

import duckdb

from compliance.errors import InputError, first_line
from compliance.schema import TABLES, TableSpec

FILE_SUFFIXES = ("csv", "parquet")
SNAPSHOT_FORMATS: dict[str, type["SnapshotFormat"]] = {}


def register(name: str) -> Callable[[type["SnapshotFormat"]], type["SnapshotFormat"]]:
    """Class decorator adding a snapshot format to the registry under `name`."""
    def add(cls: type[SnapshotFormat]) -> type[SnapshotFormat]:
        cls.name = name
        SNAPSHOT_FORMATS[name] = cls
        return cls
    return add


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

    def locate(self, row: object) -> str:
        """How a message names the record that `row_sql` gave."""
        return f"{self.row_word}{row}"

    def field(self, column: str) -> str:
        """How a message names one of our columns in this source."""
        if column in self.field_names:
            return f"field {self.field_names[column]}"
        return f"column {column}"


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
    columns = ", ".join(f"CAST(NULL AS {sql_type}) AS {name}" for name, sql_type in spec.columns.items())
    return Source(spec, f"(SELECT {columns} WHERE false)", "not provided", provided=False)


def native_file(folder: Path, spec: TableSpec) -> Path | None:
    """The <table>.csv or <table>.parquet file of a table in a folder, None when neither exists."""
    found = [folder / f"{spec.name}.{suffix}" for suffix in FILE_SUFFIXES
             if (folder / f"{spec.name}.{suffix}").exists()]
    if len(found) > 1:
        raise InputError(f"snapshot {folder.name}: table {spec.name}: both .csv and .parquet given; keep one")
    return found[0] if found else None


def native_source(con: duckdb.DuckDBPyConnection, folder: Path, spec: TableSpec, path: Path,
                  snapshot_id: str | None = None) -> Source:
    """A native CSV or Parquet table file, checked for its required columns.

    Args:
        con: a connection to read with.
        folder: the snapshot folder (for messages).
        spec: the table.
        path: its file.
        snapshot_id: the snapshot's name in messages (default: the folder's).

    Returns:
        The source.

    Raises:
        InputError: when the file cannot be read or lacks a required column.
    """
    snapshot_id = snapshot_id or folder.name
    quoted = str(path).replace("'", "''")
    relation = (f"read_csv('{quoted}', header = true, all_varchar = true)" if path.suffix == ".csv"
                else f"read_parquet('{quoted}')")
    try:
        columns = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]
    except duckdb.Error as exc:
        raise InputError(f"snapshot {snapshot_id}: table {spec.name}: cannot read {path.name}: "
                         f"{first_line(exc)}") from None
    missing = [column for column in spec.columns if column not in columns]
    if missing:
        raise InputError(f"snapshot {snapshot_id}: table {spec.name}: missing required column {missing[0]}")
    return Source(spec, relation, path.name)


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
