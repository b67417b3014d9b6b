"""The HighLevel snapshot format: API response pages (API version 2021-07-28) mapped to our tables in DuckDB SQL.

A snapshot folder holding `highlevel/` is an export of HighLevel's API: `highlevel/<collection>/*.json` (each the
JSON body of one response page, whose top-level key is the collection) or `highlevel/<collection>/*.jsonl` (one
object a line). Native CSV/Parquet tables may sit beside `highlevel/` for what the API does not export; a table
given neither way is empty ("not provided"). Every record is read and mapped set-based: read_json_objects, the
collection's list cut out by a JSON path, one unnest, JSON path extraction; unknown keys are kept in `extra`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from compliance.errors import InputError
from compliance.snapshots.formats import SnapshotFormat, Source, empty_source, native_file, native_source, register
from compliance.store.schema import BY_NAME, TABLES
from compliance.store.sql import sql_string

FOLDER = "highlevel"
SUFFIXES = (".json", ".jsonl")


@dataclass(frozen=True)
class Field:
    """One of our columns taken from a HighLevel field: `sql` is built from `s(path)` (text), `t(path)` (timestamp
    as text, epoch milliseconds or ISO 8601) and `j(path)` (JSON); `source` is the field named in messages."""

    source: str
    sql: str


def _s(path: str) -> str:
    return f"json_extract_string(j, '$.{path}')"


def _t(path: str) -> str:
    # Epoch milliseconds (a number, or digits as text) or ISO 8601 text; anything else fails validation by name.
    text = _s(path)
    return (f"CASE WHEN regexp_full_match({text}, '-?[0-9]{{1,15}}') "
            f"THEN CAST(epoch_ms(CAST({text} AS BIGINT)) AS VARCHAR) ELSE {text} END")


def _strings(path: str) -> str:
    return f"TRY_CAST(json_extract(j, '$.{path}') AS VARCHAR[])"


def _identifiers(path: str, key: str) -> str:
    # HighLevel gives additional identifiers as plain strings or as {"<key>": ...} objects, sometimes mixed.
    items = f"TRY_CAST(json_extract(j, '$.{path}') AS JSON[])"
    return (f"list_filter(list_transform({items}, lambda e: CASE WHEN json_type(e) = 'OBJECT' "
            f"THEN json_extract_string(e, '$.{key}') ELSE json_extract_string(e, '$') END), lambda v: v IS NOT NULL)")


# collection -> (our table, our column -> Field); the top-level keys the fields read are not repeated in `extra`.
COLLECTIONS: dict[str, tuple[str, dict[str, Field]]] = {
    "contacts": ("contacts", {
        "contact_id": Field("id", _s("id")),
        "location_id": Field("locationId", _s("locationId")),
        "first_name": Field("firstName", _s("firstName")),
        "last_name": Field("lastName", _s("lastName")),
        "email": Field("email", _s("email")),
        "phone": Field("phone", _s("phone")),
        "tags": Field("tags", _strings("tags")),
        "dnd": Field("dnd", f"coalesce({_s('dnd')}, 'false')"),
        "created_at": Field("dateAdded", _t("dateAdded")),
        "updated_at": Field("dateUpdated", f"coalesce({_t('dateUpdated')}, {_t('dateAdded')})"),
        "last_activity_at": Field("lastActivity", _t("lastActivity")),
        "additional_emails": Field("additionalEmails", _identifiers("additionalEmails", "email")),
        "additional_phones": Field("additionalPhones", _identifiers("additionalPhones", "phone")),
    }),
    "users": ("staff", {
        "user_id": Field("id", _s("id")),
        "email": Field("email", _s("email")),
        "name": Field("name", f"coalesce({_s('name')}, nullif(trim(concat_ws(' ', {_s('firstName')}, "
                              f"{_s('lastName')})), ''))"),
        "role": Field("roles.role", _s("roles.role")),
        "active": Field("deleted", f"CASE WHEN {_s('deleted')} IS NULL THEN 'true' "
                                   f"WHEN lower({_s('deleted')}) = 'true' THEN 'false' "
                                   f"WHEN lower({_s('deleted')}) = 'false' THEN 'true' ELSE {_s('deleted')} END"),
        # An agency user (or one without a type) may act on every location: the empty list.
        "location_ids": Field("roles.locationIds", f"CASE WHEN lower({_s('roles.type')}) = 'account' "
                                                   f"THEN {_strings('roles.locationIds')} ELSE [] END"),
    }),
    "notes": ("notes", {
        "note_id": Field("id", _s("id")), "contact_id": Field("contactId", _s("contactId")),
        "body": Field("body", _s("body")), "created_at": Field("dateAdded", _t("dateAdded")),
    }),
    "tasks": ("tasks", {
        "task_id": Field("id", _s("id")), "contact_id": Field("contactId", _s("contactId")),
        "title": Field("title", _s("title")),
        "status": Field("completed", f"CASE WHEN lower({_s('completed')}) = 'true' THEN 'completed' ELSE 'open' END"),
        "due_at": Field("dueDate", _t("dueDate")),
    }),
    "conversations": ("conversations", {
        "conversation_id": Field("id", _s("id")), "contact_id": Field("contactId", _s("contactId")),
        "channel": Field("type", _s("type")), "last_message_at": Field("lastMessageDate", _t("lastMessageDate")),
        "last_message_body": Field("lastMessageBody", _s("lastMessageBody")),
    }),
    "workflows": ("workflows", {
        "workflow_id": Field("id", _s("id")), "name": Field("name", _s("name")),
        "status": Field("status", _s("status")),
    }),
    "campaigns": ("campaigns", {
        "campaign_id": Field("id", _s("id")), "name": Field("name", _s("name")),
        "status": Field("status", _s("status")),
    }),
}
# Top-level keys a field reads besides the one it is named after.
ALSO_READ = {"users": {"firstName", "lastName"}}
TABLE_COLLECTION = {table: collection for collection, (table, _) in COLLECTIONS.items()}


@register("highlevel")
class HighLevel(SnapshotFormat):
    """A HighLevel API export under highlevel/, with optional native tables beside it."""

    def recognises(self, folder: Path) -> bool:
        return (folder / FOLDER).is_dir()

    def sources(self, con: duckdb.DuckDBPyConnection, folder: Path, tag: str) -> list[Source]:
        root = folder / FOLDER
        known = sorted(COLLECTIONS)
        for child in sorted(root.iterdir()):
            if not child.name.startswith(".") and child.name not in COLLECTIONS:
                raise InputError(f"snapshot {folder.name}: {FOLDER}/{child.name}: not a collection this product "
                                 f"reads (known: {', '.join(known)})")
        sources = []
        for spec in TABLES:
            collection = TABLE_COLLECTION.get(spec.name)
            files = _collection_files(folder, collection) if collection else []
            native = native_file(folder, spec)
            if files and native:
                raise InputError(f"snapshot {folder.name}: table {spec.name}: given both as {FOLDER}/{collection} and "
                                 f"as {native.name}; keep one")
            if collection and files:
                sources.append(_load(con, folder, collection, files, tag))
            elif native:
                sources.append(native_source(con, folder, spec, native))
            else:
                sources.append(empty_source(spec))
        return sources


def _collection_files(folder: Path, collection: str) -> list[Path]:
    directory = folder / FOLDER / collection
    if not directory.is_dir():
        return []
    files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
    for path in files:
        if path.suffix not in SUFFIXES:
            raise InputError(f"snapshot {folder.name}: {_relative(folder, path)}: not a .json page or .jsonl file")
    return files


def _relative(folder: Path, path: Path) -> str:
    return str(path.relative_to(folder))


def _load(con: duckdb.DuckDBPyConnection, folder: Path, collection: str, files: list[Path], tag: str) -> Source:
    """Read a collection's files into a temporary table with our columns, `_at` (the record's place) and `_extra`.

    Args:
        con: the ingest connection.
        folder: the snapshot folder.
        collection: the HighLevel collection (contacts, users, ...).
        files: its .json pages and .jsonl files.
        tag: makes the temporary table names unique per pending snapshot.

    Returns:
        The source over the temporary table.

    Raises:
        InputError: naming the snapshot and file of a page that is not JSON or lacks the collection's key.
    """
    table, fields = COLLECTIONS[collection]
    spec = BY_NAME[table]
    raw, mapped = f"hl_raw_{tag}_{collection}", f"hl_{tag}_{collection}"
    prefix = sql_string(str(folder) + "/")
    pages = [p for p in files if p.suffix == ".json"]
    lines = [p for p in files if p.suffix == ".jsonl"]
    parts = []
    if pages:
        listed = "[" + ", ".join(sql_string(str(p)) for p in pages) + "]"
        # Read as raw JSON objects and cut the collection's list out with a path: about 15x less CPU than having
        # read_json parse every page against a schema (measured on 200 pages of 500 contacts).
        _run(con, folder, pages, f"CREATE OR REPLACE TEMP TABLE {raw} AS SELECT filename AS _file, "
                                 f"CASE WHEN json_type(json, '$.{collection}') = 'ARRAY' "
                                 f"THEN CAST(json_extract(json, '$.{collection}') AS JSON[]) END AS records "
                                 f"FROM read_json_objects({listed}, filename = true, maximum_object_size = 67108864)")
        missing = con.execute(f"SELECT _file FROM {raw} WHERE records IS NULL ORDER BY _file LIMIT 1").fetchone()
        if missing:
            con.execute(f"DROP TABLE {raw}")
            raise InputError(f"snapshot {folder.name}: {_relative(folder, Path(missing[0]))}: no top-level key "
                             f"'{collection}' holding a list of records (one API response page)")
        parts.append(f"SELECT _file, unnest(records) AS j, unnest(range(len(records))) AS _idx, "
                     f"'{collection}[' AS _open, ']' AS _close FROM {raw}")
    if lines:
        listed = "[" + ", ".join(sql_string(str(p)) for p in lines) + "]"
        parts.append(f"SELECT filename AS _file, json AS j, row_number() OVER (PARTITION BY filename) AS _idx, "
                     f"'line ' AS _open, '' AS _close FROM read_ndjson_objects({listed}, filename = true)")
    known = sorted({f.source.split(".")[0] for f in fields.values()} | ALSO_READ.get(collection, set()))
    extra = (f"CASE WHEN json_type(j) = 'OBJECT' THEN nullif(CAST(to_json(map_from_entries(list_filter("
             f"map_entries(CAST(j AS MAP(VARCHAR, JSON))), lambda e: NOT list_contains("
             f"[{', '.join(sql_string(k) for k in known)}], e.key)))) AS VARCHAR), '{{}}') END")
    columns = ", ".join(f"{field.sql} AS {column}" for column, field in fields.items())
    _run(con, folder, files, f"""
        CREATE OR REPLACE TEMP TABLE {mapped} AS
        SELECT {columns}, CAST({extra} AS JSON) AS _extra,
               replace(_file, {prefix}, '') || ': ' || _open || _idx || _close AS _at,
               row_number() OVER (ORDER BY _file, _idx) AS _ord
        FROM ({' UNION ALL '.join(parts)})""")
    con.execute(f"DROP TABLE IF EXISTS {raw}")
    return Source(spec, mapped, f"{FOLDER}/{collection}", row_sql="_at", row_word="", extra_sql="_extra",
                  order_column="_ord", field_names={column: f.source for column, f in fields.items()},
                  temp_tables=(mapped,))


def _run(con: duckdb.DuckDBPyConnection, folder: Path, files: list[Path], sql: str) -> None:
    try:
        con.execute(sql)
    except duckdb.OutOfMemoryException:
        # Not the file's fault: saying "not well-formed" would send the user hunting for a bad page.
        raise InputError(f"snapshot {folder.name}: {FOLDER}: ran out of memory reading the pages; raise "
                         f"memory_budget (or memory_limit) in settings.yaml") from None
    except duckdb.Error as exc:
        # DuckDB's message quotes the JSON it stopped at, personal data and all: only its kind is shown.
        raise InputError(f"snapshot {folder.name}: {_culprit(con, folder, files)}: cannot read: not well-formed "
                         f"JSON of this collection (DuckDB {type(exc).__name__})") from None


def _culprit(con: duckdb.DuckDBPyConnection, folder: Path, files: list[Path]) -> str:
    """The first file DuckDB cannot read as JSON on its own (only on the error path: a file at a time)."""
    for path in files:
        reader = "read_ndjson_objects" if path.suffix == ".jsonl" else "read_json_objects"
        try:
            con.execute(f"SELECT count(*) FROM {reader}({sql_string(str(path))})").fetchone()
        except duckdb.Error:
            return _relative(folder, path)
    return f"{FOLDER}/{files[0].parent.name}"
