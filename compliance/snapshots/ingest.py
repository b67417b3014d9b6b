"""Snapshot ingest: every new folder under inbox/snapshots, in name order, once, set-based in DuckDB."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from compliance import identifiers
from compliance.errors import InputError
from compliance.home import Home
from compliance.progress import Progress, count
from compliance.settings import Settings, load_settings
from compliance.shards.placement import shard_count, shard_of_sql
from compliance.snapshots import highlevel  # noqa: F401  (registers the HighLevel snapshot format)
from compliance.snapshots.formats import FIELD_LIMIT_BYTES, Source, format_of, refuse_odd_file, unreadable
from compliance.store.connection import transaction
from compliance.store.keys import KeyedHasher
from compliance.store.schema import ALLOWED_VALUES, CONTACT_LINKED, CONTACTS
from compliance.store.sql import one_row, quote_identifier, scalar


@dataclass(frozen=True)
class SnapshotIngest:
    """What one snapshot put into the store."""

    snapshot_id: str
    content_hash: str
    row_counts: dict[str, int]
    skipped_deleted: int
    skipped_suppressed: int
    unparsed_phones: int = 0
    not_provided: tuple[str, ...] = ()
    removed_contacts: int = 0


@dataclass
class IngestResult:
    """What an ingest pass did: snapshots loaded, and folders passed over."""

    ingested: list[SnapshotIngest] = field(default_factory=list)
    already_ingested: list[str] = field(default_factory=list)
    changed_after_ingest: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)


def snapshot_hash(folder: Path) -> str:
    """sha256 over the paths (relative to the folder) and bytes of a snapshot's files, sub-folders included."""
    digest = hashlib.sha256()
    for path in sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.relative_to(folder).parts):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def ingest_snapshots(con: duckdb.DuckDBPyConnection, home: Home, *, as_of: datetime,
                     progress: Progress = lambda message: None, default_region: str | None = None,
                     accept_shrink: bool = False, settings: Settings | None = None) -> IngestResult:
    """Load every snapshot folder not yet ingested, in name order, each in its own transaction.

    All pending snapshots are validated before the first is applied, so bad input changes nothing. A snapshot whose
    contacts fall by more than settings' max_contact_drop from the snapshot before it is bad input too (an empty
    export would otherwise drop every contact), unless `accept_shrink`.

    Args:
        con: a writable store connection.
        home: the home whose inbox/snapshots is read.
        as_of: the run's clock.
        progress: called with a line per long step, and with what a snapshot did not provide.
        default_region: the region of phones written without a country code (default: settings.yaml's).
        accept_shrink: load a snapshot however many contacts it drops (`retention run --accept-shrink`).
        settings: the run's settings (default: read settings.yaml).

    Returns:
        The snapshots ingested and those passed over.

    Raises:
        InputError: naming the snapshot, table, column and row of the first problem.
    """
    result = IngestResult()
    settings = settings or load_settings(home.settings_file)
    region = default_region or settings.default_region
    identifiers.register(con, region)
    seen = dict(con.execute("SELECT snapshot_id, content_hash FROM snapshots").fetchall())
    pending: list[tuple[str, str, list[Source]]] = []
    latest = max(seen, default=None)
    for folder in _snapshot_folders(home):
        _refuse_odd_entries(folder)
        content_hash = snapshot_hash(folder)
        if folder.name in seen:
            bucket = result.already_ingested if seen[folder.name] == content_hash else result.changed_after_ingest
            bucket.append(folder.name)
            continue
        if latest is not None and folder.name < latest:
            # A full export older than one already loaded would roll the store back.
            result.out_of_order.append(folder.name)
            continue
        pending.append((folder.name, content_hash, format_of(folder).sources(con, folder, str(len(pending)))))
    contacts = _last_contact_count(con)
    for snapshot_id, _, sources in pending:
        progress(f"validating snapshot {snapshot_id}")
        for source in sources:
            try:
                _validate(con, snapshot_id, source)
            except duckdb.Error as exc:
                raise InputError(unreadable(source.where(snapshot_id), source.path, exc)) from None
        contacts = _check_shrink(con, snapshot_id, sources, contacts, settings.max_contact_drop, accept_shrink,
                                 home)
    hasher = KeyedHasher(home.secret()).register(con) if home.secret_file.exists() else None
    for snapshot_id, content_hash, sources in pending:
        progress(f"loading snapshot {snapshot_id}")
        ingested = _apply(con, snapshot_id, content_hash, sources, as_of, hasher, home)
        if ingested.not_provided:
            progress(f"snapshot {snapshot_id}: not provided (empty): {', '.join(ingested.not_provided)}")
        if ingested.unparsed_phones:
            progress(f"snapshot {snapshot_id}: {ingested.unparsed_phones:,} phone(s) not readable as phone numbers "
                     f"(region {region}): matched on their digits")
        result.ingested.append(ingested)
        count(progress, "ingest", sum(ingested.row_counts.values()))
    return result


def _snapshot_folders(home: Home) -> list[Path]:
    """The snapshot folders in inbox/snapshots, by name; a symbolic link or an odd file there is refused.

    A folder starting with '.' is an upload still in progress; a regular file beside the folders is not a snapshot.
    """
    if not home.snapshots_inbox.exists():
        return []
    folders = []
    for path in sorted(home.snapshots_inbox.iterdir()):
        if path.name.startswith("."):
            continue
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            raise InputError(f"snapshot {path.name}: inbox/snapshots/{path.name} is a symbolic link; a snapshot must "
                             f"be a folder inside the home (copy it in instead)")
        if stat.S_ISDIR(mode):
            folders.append(path)
        elif not stat.S_ISREG(mode):
            raise InputError(f"inbox/snapshots/{path.name}: not a folder nor a regular file (a device, FIFO or "
                             f"socket); refused")
    return folders


def _refuse_odd_entries(folder: Path) -> None:
    """Refuse a symbolic link or a non-regular file anywhere in a snapshot folder, before anything reads it."""
    for root, directories, files in os.walk(folder):
        for name in sorted(directories + files):
            path = Path(root) / name
            where = f"snapshot {folder.name}: {path.relative_to(folder)}"
            if stat.S_ISDIR(os.lstat(path).st_mode):
                continue
            refuse_odd_file(path, where)


def _last_contact_count(con: duckdb.DuckDBPyConnection) -> int | None:
    row = con.execute("SELECT CAST(json_extract(row_counts, '$.contacts') AS BIGINT) FROM snapshots "
                      "ORDER BY snapshot_id DESC LIMIT 1").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def _check_shrink(con: duckdb.DuckDBPyConnection, snapshot_id: str, sources: list[Source], previous: int | None,
                  max_drop: float, accept_shrink: bool, home: Home) -> int:
    """Refuse a snapshot with many fewer contacts than the one before it (unless accepted); return its count.

    A shard compares the contacts of its own locations, which is what it loaded last time.
    """
    [source] = [source for source in sources if source.spec.name == "contacts"]
    mine = "" if home.shard is None else (
        f" WHERE {shard_of_sql(_cast(con, source, 'location_id'), shard_count(home))} = {int(home.shard)}")
    contacts = scalar(con, f"SELECT count(*) FROM {source.relation}{mine}")
    if previous and not accept_shrink and (previous - contacts) / previous > max_drop:
        raise InputError(
            f"snapshot {snapshot_id}: contacts fall from {previous:,} to {contacts:,}, a drop of "
            f"{(previous - contacts) / previous:.0%}, more than {max_drop:.0%} (max_contact_drop in settings.yaml); "
            f"nothing was loaded. If the export is complete, run `retention run --accept-shrink`")
    return contacts


def _shown(value: object) -> str:
    """A bad value as a message may show it: quoted when it cannot be an email or a phone, else only its length."""
    text = str(value)
    if identifiers.could_identify(text) or len(text) > 60:
        return f"a value of {len(text)} characters (not shown)"
    return repr(text)


def _cast(con: duckdb.DuckDBPyConnection, source: Source, column: str) -> str:
    sql_type = source.spec.all_columns[column]
    column = quote_identifier(column)
    if sql_type == "VARCHAR[]":
        source_type = con.execute(
            f"SELECT typeof({column}) FROM {source.relation} LIMIT 1").fetchone()
        items = f"CAST({column} AS VARCHAR[])" if source_type and source_type[0].endswith("[]") \
            else f"string_split({column}, ',')"
        # An empty CSV cell is NULL: no tags is the empty list, as an empty Parquet list gives.
        return f"coalesce(list_filter(list_transform({items}, lambda t: trim(t)), lambda t: t <> ''), [])"
    if sql_type == "VARCHAR":
        return f"CAST({column} AS VARCHAR)"
    return f"TRY_CAST({column} AS {sql_type})"


def _validate(con: duckdb.DuckDBPyConnection, snapshot_id: str, source: Source) -> None:
    spec, where = source.spec, f"snapshot {snapshot_id}: table {source.spec.name}"
    numbered = f"(SELECT {source.row_sql} AS _row, * FROM {source.relation})"
    order = source.order_column
    _check_lengths(con, source, numbered, source.where(snapshot_id))
    for column, sql_type in spec.columns.items():
        if sql_type in ("VARCHAR", "VARCHAR[]"):
            continue
        bad = con.execute(
            f"SELECT _row, CAST({column} AS VARCHAR) FROM {numbered} "
            f"WHERE {column} IS NOT NULL AND TRY_CAST({column} AS {sql_type}) IS NULL ORDER BY {order} LIMIT 1"
        ).fetchone()
        if bad:
            kind = {"BOOLEAN": "a boolean (true/false)"}.get(sql_type, "a timestamp (ISO 8601)")
            raise InputError(f"{where}: {source.locate(bad[0])}: {source.field(column)}: {_shown(bad[1])} is not "
                             f"{kind}")
    for column in spec.key:
        bad = con.execute(f"SELECT _row FROM {numbered} WHERE {column} IS NULL OR trim(CAST({column} AS VARCHAR)) = ''"
                          f" ORDER BY {order} LIMIT 1").fetchone()
        if bad:
            raise InputError(f"{where}: {source.locate(bad[0])}: {source.field(column)}: empty, but it identifies "
                             f"the {source.row_word.strip() or 'record'}")
    key = ", ".join(spec.key)
    duplicate = con.execute(f"SELECT {key}, count(*) FROM {source.relation} GROUP BY ALL HAVING count(*) > 1 LIMIT 1"
                            ).fetchone()
    if duplicate:
        raise InputError(f"{where}: {key} {', '.join(map(_shown, duplicate[:-1]))} appears {duplicate[-1]} times")
    for (table, column), allowed in ALLOWED_VALUES.items():
        if table != spec.name:
            continue
        values = ", ".join(f"'{value}'" for value in allowed)
        bad = con.execute(f"SELECT _row, {column} FROM {numbered} WHERE {column} IS NULL OR lower(trim({column})) "
                          f"NOT IN ({values}) ORDER BY {order} LIMIT 1").fetchone()
        if bad:
            raise InputError(f"{where}: {source.locate(bad[0])}: {source.field(column)}: {_shown(bad[1])} is not "
                             f"allowed (allowed: {', '.join(allowed)})")


def _check_lengths(con: duckdb.DuckDBPyConnection, source: Source, numbered: str, where: str) -> None:
    """Refuse a value longer than FIELD_LIMIT_BYTES, at its row. One pass over every value of every column, which
    also makes DuckDB read the whole file now, before anything is loaded, so that a bad byte deep in it fails here."""
    columns = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source.relation}").fetchall()]
    if not columns:
        return
    lengths = one_row(con, "SELECT " + ", ".join(
        f"max(strlen(CAST({quote_identifier(column)} AS VARCHAR)))" for column in columns)
        + f" FROM {source.relation}")
    for column, length in zip(columns, lengths, strict=True):
        if length is not None and length > FIELD_LIMIT_BYTES:
            quoted = quote_identifier(column)
            row, size = one_row(con, f"SELECT _row, strlen(CAST({quoted} AS VARCHAR)) FROM {numbered} "
                                    f"WHERE strlen(CAST({quoted} AS VARCHAR)) > ? ORDER BY {source.order_column} "
                                    f"LIMIT 1", [FIELD_LIMIT_BYTES])
            name = source.field(column) if column in source.spec.all_columns else f"column {column}"
            raise InputError(f"{where}: {source.locate(row)}: {name}: too long ({size:,} bytes; the limit is "
                             f"{FIELD_LIMIT_BYTES:,})")


def _staged_select(con: duckdb.DuckDBPyConnection, source: Source, snapshot_id: str) -> str:
    spec = source.spec
    all_columns = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source.relation}").fetchall()]
    selected = []
    for column, sql_type in spec.all_columns.items():
        if column not in all_columns:
            # An optional column the snapshot leaves out: no additional identifiers, every location.
            selected.append(f"CAST([] AS {sql_type}) AS {column}")
            continue
        expression = _cast(con, source, column)
        if (spec.name, column) in ALLOWED_VALUES:
            expression = f"lower(trim({expression}))"
        selected.append(f"{expression} AS {column}")
    if source.extra_sql is not None:
        extra = source.extra_sql
    else:
        extras = [column for column in all_columns if column not in spec.all_columns]
        extra = ("to_json(struct_pack(" + ", ".join(f"{quote_identifier(c)} := {quote_identifier(c)}" for c in extras)
                 + "))") if extras else "NULL"
    # The snapshot id is a parameter ($snapshot_id) of the statement that stages it.
    selected += [f"CAST({extra} AS JSON) AS extra", "CAST($snapshot_id AS VARCHAR) AS snapshot_id"]
    staged = f"SELECT {', '.join(selected)} FROM {source.relation}"
    if spec is not CONTACTS:
        return staged
    # Phones stay in their normalised form ('+' for parsed) until _finish_contact_keys has counted the unparsed.
    return f"""
        SELECT *, {identifiers.email_key_sql('email')} AS email_key, {identifiers.phone_sql('phone')} AS phone_key,
               list_transform(additional_emails, lambda x: {identifiers.email_key_sql('x')}) AS additional_email_keys,
               list_transform(additional_phones, lambda x: {identifiers.phone_sql('x')}) AS additional_phone_keys
        FROM ({staged})"""


def _finish_contact_keys(con: duckdb.DuckDBPyConnection) -> int:
    """Turn stg_contacts' normalised phones into match keys, drop repeated additional keys; count unparsed phones.

    Returns:
        How many phones (primary and additional) fell back to their digits.
    """
    unparsed = scalar(con, """
        SELECT coalesce(sum(CASE WHEN phone_key NOT LIKE '+%' THEN 1 ELSE 0 END
                            + len(list_filter(additional_phone_keys, lambda k: k NOT LIKE '+%'))), 0)
        FROM stg_contacts""")
    # Sorted so that the same identifiers give the same list whatever order the CRM listed them in.
    con.execute("""
        UPDATE stg_contacts SET
            phone_key = ltrim(phone_key, '+'),
            additional_phone_keys = list_sort(list_distinct(list_filter(
                list_transform(additional_phone_keys, lambda k: ltrim(k, '+')),
                lambda k: k IS NOT NULL AND k IS DISTINCT FROM ltrim(phone_key, '+')))),
            additional_email_keys = list_sort(list_distinct(list_filter(
                additional_email_keys, lambda k: k IS NOT NULL AND k IS DISTINCT FROM email_key)))""")
    return int(unparsed)


_DELETED = "SELECT contact_id FROM contact_lifecycle WHERE state = 'deleted'"


def _own_rows(con: duckdb.DuckDBPyConnection, sources: list[Source], home: Home) -> dict[str, str]:
    """For a shard: the condition, per staged table, that keeps what belongs to it (none for a home of one shard).

    A shard stages only the contacts of its locations and their rows, so that N shards do not each stage the whole
    snapshot. Reference tables (staff, campaigns, workflows, lists) stay whole in every shard, so each shard judges a
    request's requester against the same staff. Rows naming a contact the snapshot does not list go to shard 0.
    """
    if home.shard is None:
        return {}
    shard, shards = int(home.shard), shard_count(home)
    [contacts] = [source for source in sources if source.spec is CONTACTS]
    con.execute(f"CREATE OR REPLACE TEMP TABLE stg_shard_of AS SELECT {_cast(con, contacts, 'contact_id')} AS "
                f"contact_id, {shard_of_sql(_cast(con, contacts, 'location_id'), shards)} AS shard "
                f"FROM {contacts.relation}")
    linked = (f"contact_id NOT IN (SELECT contact_id FROM stg_shard_of WHERE shard <> {shard})" if shard == 0 else
              f"contact_id IN (SELECT contact_id FROM stg_shard_of WHERE shard = {shard})")
    return {CONTACTS.name: f"{shard_of_sql('location_id', shards)} = {shard}",
            **{spec.name: linked for spec in CONTACT_LINKED}}


def _apply(con: duckdb.DuckDBPyConnection, snapshot_id: str, content_hash: str, sources: list[Source],
           as_of: datetime, hasher: KeyedHasher | None, home: Home) -> SnapshotIngest:
    own_rows = _own_rows(con, sources, home)
    for source in sources:
        staged = _staged_select(con, source, snapshot_id)
        if source.spec.name in own_rows:
            staged = f"SELECT * FROM ({staged}) WHERE {own_rows[source.spec.name]}"
        con.execute(f"CREATE OR REPLACE TEMP TABLE stg_{source.spec.name} AS {staged}", {"snapshot_id": snapshot_id})
    con.execute("DROP TABLE IF EXISTS stg_shard_of")
    unparsed_phones = _finish_contact_keys(con)
    not_provided = tuple(source.spec.name for source in sources if not source.provided)
    _mark_kept_out(con, hasher)
    skipped_deleted, skipped_suppressed = one_row(
        con, "SELECT count(*) FILTER (WHERE why <> 'suppressed'), count(*) FILTER (WHERE why = 'suppressed') "
        "FROM stg_kept_out")
    # Contacts the store holds that this full export no longer lists: the ingest removes them, so it says how many.
    removed_contacts = scalar(con, f"SELECT count(*) FROM contacts WHERE contact_id NOT IN ({_DELETED}) "
                                   f"AND contact_id NOT IN (SELECT contact_id FROM stg_contacts)")
    row_counts = {}
    with transaction(con):
        for source in sources:
            spec = source.spec
            if spec.role == "reference":
                con.execute(f"DELETE FROM {spec.name}")
                con.execute(f"INSERT INTO {spec.name} BY NAME SELECT * FROM stg_{spec.name}")
            else:
                # Deleted contacts keep their record (for restore) and whatever the cascade retained. Rows go in
                # ordered by contact_id, whatever order the CRM exported them in: DuckDB keeps each column's min and
                # max per row group, so a statement about a few contacts (a one-person erasure's backup and
                # cascade) then reads only the row groups holding them (benchmarks/RESULTS.md, "Clustering").
                con.execute(f"DELETE FROM {spec.name} WHERE contact_id IS NULL OR contact_id NOT IN ({_DELETED})")
                con.execute(
                    f"INSERT INTO {spec.name} BY NAME SELECT * FROM stg_{spec.name} s "
                    f"WHERE s.contact_id NOT IN ({_DELETED}) "
                    f"AND s.contact_id NOT IN (SELECT contact_id FROM stg_kept_out) "
                    f"AND NOT EXISTS (SELECT 1 FROM tombstones t WHERE t.table_name = '{spec.name}' "
                    f"AND t.row_key = {spec.row_key_sql('s')}) "
                    f"ORDER BY s.contact_id")
            row_counts[spec.name] = scalar(
                con, f"SELECT count(*) FROM {spec.name} WHERE snapshot_id = ?", [snapshot_id])
        identifiers.rebuild_contact_keys(con)
        con.execute("INSERT INTO snapshots (snapshot_id, content_hash, ingested_at, row_counts, skipped_deleted, "
                    "skipped_suppressed, unparsed_phones, not_provided, removed_contacts) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [snapshot_id, content_hash, as_of, json.dumps(row_counts), skipped_deleted, skipped_suppressed,
                     unparsed_phones, list(not_provided), removed_contacts])
    for source in sources:
        con.execute(f"DROP TABLE IF EXISTS stg_{source.spec.name}")
        for table in source.temp_tables:
            con.execute(f"DROP TABLE IF EXISTS {table}")
    return SnapshotIngest(snapshot_id, content_hash, row_counts, skipped_deleted, skipped_suppressed,
                          unparsed_phones, not_provided, removed_contacts)


def _mark_kept_out(con: duckdb.DuckDBPyConnection, hasher: KeyedHasher | None) -> None:
    """stg_kept_out: the snapshot's contacts that must not (re)enter as active, and why.

    Deleted ones keep their record until the purge; suppressed ones match an erased person by contact_id, or by
    any email or phone, primary or additional; purged ones (deleted by a rule or an internal request, past the
    window) stay gone.
    """
    con.execute(f"CREATE OR REPLACE TEMP TABLE stg_kept_out AS SELECT contact_id, 'deleted' AS why "
                f"FROM stg_contacts WHERE contact_id IN ({_DELETED})")
    if hasher is None:
        return
    if scalar(con, "SELECT count(*) FROM suppression"):
        con.execute(f"""
            INSERT INTO stg_kept_out
            SELECT DISTINCT c.contact_id, 'suppressed' FROM (
                SELECT contact_id, {hasher.sql('contact_id', 'contact_id')} AS h, 'contact_id' AS k FROM stg_contacts
                UNION ALL SELECT contact_id, {hasher.sql('email', 'email_key')}, 'email' FROM stg_contacts
                UNION ALL SELECT contact_id, {hasher.sql('phone', 'phone_key')}, 'phone' FROM stg_contacts
                UNION ALL SELECT contact_id, {hasher.sql('email', 'k')}, 'email' FROM (
                    SELECT contact_id, unnest(additional_email_keys) AS k FROM stg_contacts)
                UNION ALL SELECT contact_id, {hasher.sql('phone', 'k')}, 'phone' FROM (
                    SELECT contact_id, unnest(additional_phone_keys) AS k FROM stg_contacts)
            ) c JOIN suppression s ON s.key_kind = c.k AND s.key_hash = c.h
            WHERE c.contact_id NOT IN (SELECT contact_id FROM stg_kept_out)""")
    if scalar(con, "SELECT count(*) FROM purged_contacts"):
        con.execute(f"""
            INSERT INTO stg_kept_out
            SELECT contact_id, 'purged' FROM stg_contacts
            WHERE {hasher.sql('contact_id', 'contact_id')} IN (SELECT contact_hash FROM purged_contacts)
              AND contact_id NOT IN (SELECT contact_id FROM stg_kept_out)""")
