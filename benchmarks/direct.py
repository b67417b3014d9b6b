"""The daily run as direct calls: compliance.steps.DAILY_RUN, the job's own step functions, in the job's order.

MIRRORED gives each job step the benchmark row that times it; a job step without a row is reported by the
benchmark (and fails a test), so a new asset cannot silently make the Dagster-versus-direct ratio unfair.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from benchmarks.measure import Recorder
from compliance import steps
from compliance.home import Home
from compliance.purge import PurgeResult, compact_store
from compliance.settings import load_rules, load_settings
from compliance.store.connection import Store

# Job step (asset or check) -> the benchmark step that does its work directly.
MIRRORED = {
    "crm_pull": "CRM pull (off)",
    "crm_snapshots": "ingest",
    "request_intake": "intake",
    "rule_matches": "rule matches",
    "deletion_plan": "plan",
    "contact_backups": "backup",
    "contact_backups_planned_backups_verify": "backup verify (blocking check)",
    "applied_deletions": "apply (cascade)",
    "crm_push": "CRM push (off)",
    "applied_restores": "restores (none due)",
    "purged_contacts": "purge (none due)",
    "retention_invariants": "invariants + Data Docs",
    "compliance_report": "compliance report",
}
# request_job's steps (pipelines/jobs.py), in the order compliance_job (and so steps.DAILY_RUN) runs them.
REQUEST_JOB_STEPS = ("request_intake", "applied_restores", "deletion_plan", "contact_backups",
                     "contact_backups_planned_backups_verify", "applied_deletions")
DELETE_RUN_STEPS = ("intake", "rule matches", "plan", "backup", "backup verify (blocking check)", "apply (cascade)")
LINKED_TABLES = ("conversations", "notes", "tasks", "activities", "campaign_enrollments", "workflow_enrollments",
                 "list_memberships")


@dataclass
class DailyRun:
    """What the direct daily run did, for the counts the benchmark checks."""

    snapshot_rows: int = 0
    planned: dict[str, int] = field(default_factory=dict)
    deleted: int = 0
    rows_backed_up: int = 0
    rows_removed: int = 0
    invariants_passed: bool | None = None
    invariants_failed: tuple[str, ...] = ()


def linked_rows(con: duckdb.DuckDBPyConnection) -> int:
    return sum(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in LINKED_TABLES)


def _rows_of(job_step: str, out: Any, con: duckdb.DuckDBPyConnection, run: DailyRun) -> int | None:
    """The rows a step's benchmark row counts, from the step's own result (None: the row shows no count)."""
    if job_step == "crm_snapshots":
        run.snapshot_rows = sum(sum(s.row_counts.values()) for s in out.ingested)
        return run.snapshot_rows
    if job_step == "request_intake":
        return con.execute("SELECT count(*) FROM pending_subjects").fetchone()[0]
    if job_step == "rule_matches":
        return con.execute("SELECT count(*) FROM contacts").fetchone()[0] * max(1, len(out))
    if job_step == "deletion_plan":
        run.planned = out.counts()
        return sum(run.planned.values())
    if job_step == "contact_backups":
        run.rows_backed_up = sum(m.total_rows for m in out.values() if not isinstance(m, str))
        return run.rows_backed_up
    if job_step == "contact_backups_planned_backups_verify":
        return run.rows_backed_up
    if job_step == "applied_deletions":
        run.deleted = sum(a.counts["deleted"] for a in out.actions)
        return None
    if job_step == "retention_invariants":
        run.invariants_passed, run.invariants_failed = out.passed, tuple(out.failed)
        return con.execute("SELECT count(*) FROM contacts").fetchone()[0]
    return None


ROWS_LABELS = {"crm_snapshots": "snapshot rows", "request_intake": "request subjects",
               "rule_matches": "contacts scanned", "deletion_plan": "contacts decided",
               "contact_backups": "rows written (x2 formats)", "contact_backups_planned_backups_verify": "rows re-read",
               "applied_deletions": "rows removed", "retention_invariants": "contacts checked"}


class DirectHome:
    """One home driven by direct calls, its store connection kept open between steps like the job's resource."""

    GROUP = "daily run (direct calls, one row per job step)"

    def __init__(self, home: Home, memory_limit: str | None):
        self.home = home
        self.store = Store(home, memory_limit=memory_limit)
        self.con = self.store.connect()
        self.settings = load_settings(home.settings_file)
        self.rules = load_rules(home.rules_file)

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None

    def reopen(self) -> None:
        self.close()
        self.con = self.store.connect()

    def connection(self) -> duckdb.DuckDBPyConnection:
        if self.con is None:
            self.con = self.store.connect()
        return self.con

    def compact(self) -> int:
        self.close()
        size = compact_store(self.store)
        self.reopen()
        return size

    def context(self, as_of: datetime, run_id: str | None = None) -> steps.RunContext:
        """The same RunContext the job's resource gives its steps."""
        return steps.RunContext(connect=self.connection, home=self.home, settings=self.settings, as_of=as_of,
                                run_id=run_id or uuid.uuid4().hex, compact=self.compact)

    def daily_run(self, rec: Recorder, as_of: datetime, *,
                  after_ingest: Callable[[], None] = lambda: None) -> DailyRun:
        """The whole compliance_job: every step of steps.DAILY_RUN in order, one recorded row each.

        `after_ingest` runs untimed after the ingest step.
        """
        ctx, result = self.context(as_of), DailyRun()
        for step in steps.DAILY_RUN:
            name = MIRRORED[step.job_step]
            before = linked_rows(ctx.con) if step.job_step == "applied_deletions" else 0
            with rec.step(name, rows_label=ROWS_LABELS.get(step.job_step, "rows"), group=self.GROUP) as timed:
                out = step.run(ctx)
            rows = _rows_of(step.job_step, out, ctx.con, result)
            if step.job_step == "applied_deletions":
                rows = result.rows_removed = before - linked_rows(ctx.con)
            if rows is not None:
                timed.rows = rows
            if step.job_step == "crm_snapshots":
                after_ingest()
        return result

    def request_run(self, rec: Recorder, as_of: datetime, *, prefix: str, group: str) -> DailyRun:
        """What request_job runs, as direct calls: the REQUEST_JOB_STEPS of steps.DAILY_RUN in order, one row each.

        Rows are named `<prefix><the daily run's row name>`.
        """
        ctx, result = self.context(as_of), DailyRun()
        for step in steps.DAILY_RUN:
            if step.job_step not in REQUEST_JOB_STEPS:
                continue
            # One person's erasure is counted in contacts deleted (the daily run's row counts rows removed).
            label = "contacts deleted" if step.job_step == "applied_deletions" else ROWS_LABELS.get(step.job_step,
                                                                                                     "rows")
            with rec.step(prefix + MIRRORED[step.job_step], rows_label=label, group=group) as timed:
                out = step.run(ctx)
            rows = _rows_of(step.job_step, out, ctx.con, result)
            timed.rows = result.deleted if step.job_step == "applied_deletions" else (rows or 0)
        return result

    def purge(self, rec: Recorder, as_of: datetime, *, group: str) -> PurgeResult:
        """The purged_contacts step past the window, with its compaction timed as its own row."""
        ctx = self.context(as_of)
        ctx.compact = None
        with rec.step("purge past the window", rows_label="contacts purged", group=group) as step:
            result = steps.purge_expired(ctx).result
            step.rows = result.contacts_purged
        with rec.step("compact store", rows_label="MB rewritten", group=group) as step:
            self.compact()
            step.rows = round(self.store.path.stat().st_size / (1024 * 1024))
        return result

    def invariants(self, rec: Recorder, as_of: datetime, name: str, *, group: str, run_id: str):
        """The retention_invariants step (Data Docs, saved results)."""
        with rec.step(name, rows_label="contacts checked", group=group) as step:
            summary = steps.prove(self.context(as_of, run_id))
            step.rows = self.con.execute("SELECT count(*) FROM contacts").fetchone()[0]
        return summary
