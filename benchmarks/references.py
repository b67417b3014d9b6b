"""The two references our delete run is compared with, each on its own copy of the freshly ingested store.

The floor is the least SQL that does the same backup-and-delete work set-based: select the affected contacts,
COPY them and their associated and membership rows to Parquet and CSV, then the DELETEs in one transaction.
It skips everything a compliance system adds (verification, tombstones, suppression, bulk action records,
enrollment metrics, the audit trail), so it is a lower bound, not a competitor.

The per-contact baseline does the same decision and deletion one subject at a time, the way DSR tools traverse
per subject: look the contact up by id, email or phone, check its enrollments, SELECT its rows per table,
write them out, DELETE them, one statement per subject per table, one transaction per subject.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from benchmarks.fixtures import BENCH_TAG, Source

# The tables our default settings remove rows from (cascade: delete everywhere, and every membership).
REMOVED_TABLES = ("conversations", "notes", "tasks", "activities", "campaign_enrollments", "workflow_enrollments",
                  "list_memberships")
BACKED_UP_TABLES = ("contacts",) + REMOVED_TABLES
_EMAIL_KEY = "nullif(lower(trim({0})), '')"
_PHONE_KEY = "nullif(regexp_replace({0}, '[^0-9]', '', 'g'), '')"


def _connect(store_file: Path, memory_limit: str | None, temp_dir: Path) -> duckdb.DuckDBPyConnection:
    """The reference's own connection, with the memory limit our store would get in this process (None: derived
    from the default memory budget, as Store.connect derives it)."""
    from compliance.settings import Settings
    from compliance.store.connection import derived_memory_limit

    con = duckdb.connect(str(store_file))
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    con.execute("SET memory_limit = ?", [memory_limit or derived_memory_limit(Settings().memory_budget)])
    con.execute("SET temp_directory = ?", [str(temp_dir)])
    return con


def _subjects_table(source: Source) -> pa.Table:
    rows = {"contact_id": [], "email_key": [], "phone_key": []}
    for subject in source.subject_list:
        value = subject["value"]
        rows["contact_id"].append(value if subject["kind"] == "contact_id" else None)
        rows["email_key"].append(value.strip().lower() if subject["kind"] == "email" else None)
        rows["phone_key"].append("".join(ch for ch in value if ch.isdigit()) if subject["kind"] == "phone" else None)
    return pa.table({name: pa.array(values, pa.string()) for name, values in rows.items()})


@dataclass
class FloorResult:
    contacts: int
    rows_removed: int
    rows_backed_up: int
    seconds: float


def run_floor(store_file: Path, out_dir: Path, source: Source, *, as_of: datetime,
              memory_limit: str | None) -> FloorResult:
    """Hand-written set-based backup and delete of the same cohort, on a copy of the store.

    Args:
        store_file: a copy of the store right after ingest.
        out_dir: where the backup files go.
        source: the cohort (tag and request subjects).
        as_of: the deletion time recorded.
        memory_limit: DuckDB's memory limit, as in the store's settings.

    Returns:
        What it removed and backed up, and its wall time.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    con = _connect(store_file, memory_limit, store_file.parent / "tmp")
    try:
        started = time.perf_counter()
        subjects = _subjects_table(source)
        con.register("subjects_arrow", subjects)
        con.execute("CREATE TEMP TABLE subjects AS SELECT * FROM subjects_arrow")
        con.execute(f"""
            CREATE TEMP TABLE doomed AS
            SELECT contact_id FROM contacts
            WHERE list_contains(list_transform(tags, lambda t: lower(t)), '{BENCH_TAG.lower()}')
            UNION SELECT c.contact_id FROM contacts c JOIN subjects s ON c.contact_id = s.contact_id
            UNION SELECT c.contact_id FROM contacts c JOIN subjects s ON c.email_key = s.email_key
            UNION SELECT c.contact_id FROM contacts c JOIN subjects s ON c.phone_key = s.phone_key""")
        backed_up = 0
        for table in BACKED_UP_TABLES:
            selected = f"SELECT * FROM {table} WHERE contact_id IN (SELECT contact_id FROM doomed)"
            backed_up += con.execute(f"COPY ({selected}) TO '{out_dir / table}.parquet' (FORMAT parquet)"
                                     ).fetchone()[0]
            con.execute(f"COPY ({selected}) TO '{out_dir / table}.csv' (FORMAT csv, HEADER)")
        removed = 0
        con.execute("BEGIN TRANSACTION")
        for table in REMOVED_TABLES:
            removed += con.execute(f"DELETE FROM {table} WHERE contact_id IN (SELECT contact_id FROM doomed)"
                                   ).fetchone()[0]
        # Like ours, the contact record stays (marked deleted) so it can be restored inside the window.
        contacts = con.execute("INSERT INTO contact_lifecycle (contact_id, state, deleted_at, deleted_by) "
                               "SELECT contact_id, 'deleted', ?, 'floor' FROM doomed", [as_of]).fetchone()[0]
        con.execute("COMMIT")
        seconds = time.perf_counter() - started
    finally:
        con.close()
    return FloorResult(contacts, removed, backed_up, seconds)


@dataclass
class PerContactResult:
    sample: int
    population: int
    contacts: int
    rows_removed: int
    rule_select_seconds: float
    sample_seconds: float

    @property
    def per_subject_seconds(self) -> float:
        return self.sample_seconds / self.sample if self.sample else 0.0

    @property
    def extrapolated_seconds(self) -> float:
        """Linear: the one rule SELECT, plus the sample's mean time per subject times every subject."""
        return self.rule_select_seconds + self.per_subject_seconds * self.population


def run_per_contact(store_file: Path, out_dir: Path, source: Source, *, as_of: datetime, memory_limit: str | None,
                    sample: int) -> PerContactResult:
    """One subject at a time over an evenly spaced sample of the cohort, on a copy of the store.

    Long on purpose: it is the per-contact reference, written as a DSR tool would traverse one subject, and its
    statements are kept in one place so that the baseline reads as the procedure it stands for.

    The rule's matches are found with one SELECT (a per-contact tool still finds its work list set-based);
    the tagged contacts then become subjects by contact_id, next to the request's subjects.

    Args:
        store_file: a copy of the store right after ingest.
        out_dir: where the per-table CSV exports go.
        source: the cohort.
        as_of: the deletion time recorded.
        memory_limit: DuckDB's memory limit.
        sample: subjects to process; the time is extrapolated linearly to the whole cohort.

    Returns:
        The sample's counts and times.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    con = _connect(store_file, memory_limit, store_file.parent / "tmp")
    handles, writers = {}, {}
    try:
        started = time.perf_counter()
        tagged = [row[0] for row in con.execute(
            f"SELECT contact_id FROM contacts WHERE list_contains(list_transform(tags, lambda t: lower(t)), "
            f"'{BENCH_TAG.lower()}') ORDER BY contact_id").fetchall()]
        rule_select_seconds = time.perf_counter() - started
        population = [("contact_id", contact_id) for contact_id in tagged]
        population += [(s["kind"], s["value"]) for s in source.subject_list]
        step = max(1, len(population) / max(1, sample))
        chosen = [population[int(i * step)] for i in range(min(sample, len(population)))]
        columns = {table: [row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()]
                   for table in BACKED_UP_TABLES}
        for table in BACKED_UP_TABLES:
            handles[table] = (out_dir / f"{table}.csv").open("w", newline="")
            writers[table] = csv.writer(handles[table])
            writers[table].writerow(columns[table])
        lookup = {"contact_id": "SELECT contact_id FROM contacts WHERE contact_id = ?",
                  "email": f"SELECT contact_id FROM contacts WHERE email_key = {_EMAIL_KEY.format('?')}",
                  "phone": f"SELECT contact_id FROM contacts WHERE phone_key = {_PHONE_KEY.format('?')}"}
        contacts = removed = 0
        started = time.perf_counter()
        for kind, value in chosen:
            for (contact_id,) in con.execute(lookup[kind], [value]).fetchall():
                if con.execute("SELECT count(*) FROM contact_lifecycle WHERE contact_id = ? AND state = 'deleted'",
                               [contact_id]).fetchone()[0]:
                    continue
                # The block-or-remove decision: our settings say remove, so the answer only costs its queries.
                con.execute("SELECT count(*) FROM campaign_enrollments e JOIN campaigns k USING (campaign_id) "
                            "WHERE e.contact_id = ? AND k.status = 'active'", [contact_id]).fetchone()
                con.execute("SELECT count(*) FROM workflow_enrollments WHERE contact_id = ? AND status = 'active'",
                            [contact_id]).fetchone()
                for table in BACKED_UP_TABLES:
                    writers[table].writerows(
                        con.execute(f"SELECT * FROM {table} WHERE contact_id = ?", [contact_id]).fetchall())
                con.execute("BEGIN TRANSACTION")
                for table in REMOVED_TABLES:
                    removed += con.execute(f"DELETE FROM {table} WHERE contact_id = ?", [contact_id]).fetchone()[0]
                con.execute("INSERT INTO contact_lifecycle (contact_id, state, deleted_at, deleted_by) "
                            "VALUES (?, 'deleted', ?, 'per-contact')", [contact_id, as_of])
                con.execute("COMMIT")
                contacts += 1
        sample_seconds = time.perf_counter() - started
    finally:
        for handle in handles.values():
            handle.close()
        con.close()
    return PerContactResult(len(chosen), len(population), contacts, removed, rule_select_seconds, sample_seconds)
