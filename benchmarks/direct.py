"""The daily run as direct calls into compliance/, step for step what compliance_job's assets and checks call.

MIRRORED names the job steps these calls stand for; a job step not in it is reported by the benchmark, so a
new asset cannot silently make the Dagster-versus-direct ratio unfair.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

import duckdb

from benchmarks.measure import Recorder
from compliance.audit import AuditLog
from compliance.backup import BackupError, verify_backup
from compliance.deletion import apply_deletions, back_up, build_plan
from compliance.home import Home
from compliance.ingest import ingest_snapshots
from compliance.intake import settle_request_files, take_requests
from compliance.keys import KeyedHasher
from compliance.purge import PurgeResult, compact_store, forget_plans, purge
from compliance.records import audit_new_records
from compliance.restore import apply_restores, plan_restores
from compliance.rules import predicate
from compliance.settings import load_rules, load_settings
from compliance.store import Store

# Job step (asset or check) -> the benchmark step that does its work directly.
MIRRORED = {
    "crm_snapshots": "ingest",
    "request_intake": "intake",
    "rule_matches": "rule matches",
    "deletion_plan": "plan",
    "contact_backups": "backup",
    "contact_backups_planned_backups_verify": "backup verify (blocking check)",
    "applied_deletions": "apply (cascade)",
    "applied_restores": "restores (none due)",
    "purged_contacts": "purge (none due)",
    "retention_invariants": "invariants + Data Docs",
    "compliance_report": "compliance report",
}
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


class DirectHome:
    """One home driven by direct calls, its store connection kept open between steps like the job's resource."""

    GROUP = "daily run (direct calls, one row per job step)"

    def __init__(self, home: Home, memory_limit: str):
        self.home = home
        self.store = Store(home, memory_limit=memory_limit)
        self.con = self.store.connect()
        self.settings = load_settings(home.settings_file)
        self.rules = load_rules(home.rules_file)
        self.hasher = KeyedHasher(home.secret())

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None

    def reopen(self) -> None:
        self.close()
        self.con = self.store.connect()

    def audit(self, as_of: datetime) -> int:
        return audit_new_records(self.con, AuditLog(self.home.audit_file), at=as_of)

    def daily_run(self, rec: Recorder, as_of: datetime, *,
                  after_ingest: Callable[[], None] = lambda: None) -> DailyRun:
        """The whole compliance_job, one recorded step per job step; `after_ingest` runs untimed after ingest."""
        con, home, result, group = self.con, self.home, DailyRun(), self.GROUP
        run_id = uuid.uuid4().hex
        with rec.step("ingest", rows_label="snapshot rows", group=group) as step:
            ingested = ingest_snapshots(con, home, as_of=as_of)
            step.rows = result.snapshot_rows = sum(sum(s.row_counts.values()) for s in ingested.ingested)
        after_ingest()
        with rec.step("intake", rows_label="request subjects", group=group) as step:
            take_requests(con, home, as_of=as_of, settings=self.settings)
            step.rows = con.execute("SELECT count(*) FROM pending_subjects").fetchone()[0]
        with rec.step("rule matches", rows_label="contacts scanned", group=group) as step:
            for rule in self.rules.rules:
                con.execute("SELECT count(*) FROM contacts c WHERE c.contact_id NOT IN "
                            "(SELECT contact_id FROM contact_lifecycle WHERE state = 'deleted') AND "
                            f"{predicate(rule.trigger, as_of)}").fetchone()
            step.rows = con.execute("SELECT count(*) FROM contacts").fetchone()[0] * max(1, len(self.rules.rules))
        with rec.step("plan", rows_label="contacts decided", group=group) as step:
            plan = build_plan(con, hasher=self.hasher, settings=self.settings, rules=self.rules, as_of=as_of)
            result.planned = plan.counts()
            step.rows = sum(result.planned.values())
        with rec.step("backup", rows_label="rows written (x2 formats)", group=group) as step:
            backups = back_up(con, home, self.settings)
            result.rows_backed_up = step.rows = sum(m.total_rows for m in backups.values() if not isinstance(m, str))
        with rec.step("backup verify (blocking check)", rows_label="rows re-read", group=group) as step:
            for _, path, sha256, error in con.execute(
                    "SELECT bulk_action_id, backup_path, backup_sha256, backup_error FROM plan_sources "
                    "WHERE bulk_action_id IN (SELECT bulk_action_id FROM plan_items WHERE outcome = 'deleted') "
                    "AND NOT preview AND bulk_action_id NOT IN (SELECT bulk_action_id FROM bulk_actions)").fetchall():
                if not error:
                    try:
                        verify_backup(Path(path), sha256)
                    except (BackupError, TypeError):
                        pass
            step.rows = result.rows_backed_up
        before = linked_rows(con)
        with rec.step("apply (cascade)", rows_label="rows removed", group=group) as step:
            actions = apply_deletions(con, hasher=self.hasher, settings=self.settings, as_of=as_of, run_id=run_id)
            settle_request_files(con, home)
            self.audit(as_of)
            result.deleted = sum(a.counts["deleted"] for a in actions)
        result.rows_removed = step.rows = before - linked_rows(con)
        with rec.step("restores (none due)", group=group):
            plan_restores(con, hasher=self.hasher, settings=self.settings, as_of=as_of)
            apply_restores(con, hasher=self.hasher, as_of=as_of, run_id=run_id)
            settle_request_files(con, home)
            self.audit(as_of)
        with rec.step("purge (none due)", group=group):
            purged = purge(con, home, hasher=self.hasher, settings=self.settings, as_of=as_of, run_id=run_id)
            forget_plans(con)
            self.audit(as_of)
            if purged.contacts_purged or purged.backups_expired:
                self.close()
                compact_store(self.store)
                self.reopen()
                con = self.con
        summary = self.invariants(rec, as_of, "invariants + Data Docs", group=group, run_id=run_id)
        if summary is not None:
            result.invariants_passed, result.invariants_failed = summary.passed, tuple(summary.failed)
        with rec.step("compliance report", group=group):
            self.report(as_of, run_id)
        return result

    def purge(self, rec: Recorder, as_of: datetime, *, group: str) -> PurgeResult:
        """The purged_contacts asset past the window: purge, forget plans, audit, then compact (its own step)."""
        with rec.step("purge past the window", rows_label="contacts purged", group=group) as step:
            result = purge(self.con, self.home, hasher=self.hasher, settings=self.settings, as_of=as_of,
                           run_id=uuid.uuid4().hex)
            forget_plans(self.con)
            self.audit(as_of)
            step.rows = result.contacts_purged
        with rec.step("compact store", rows_label="MB rewritten", group=group) as step:
            self.close()
            compact_store(self.store)
            self.reopen()
            step.rows = round(self.store.path.stat().st_size / (1024 * 1024))
        return result

    def invariants(self, rec: Recorder, as_of: datetime, name: str, *, group: str, run_id: str):
        """check_invariants as the retention_invariants asset calls it (Data Docs, saved results); None if n/a."""
        try:
            from compliance.invariants import check_invariants
            from compliance.report import run_folder, save_invariants
        except ImportError as exc:
            rec.log(f"{name}: n/a ({exc})")
            return None
        with rec.step(name, rows_label="contacts checked", group=group) as step:
            summary = check_invariants(self.con, secret=self.home.secret(), settings=self.settings, as_of=as_of,
                                       docs_dir=self.home.reports_dir / "data_docs")
            save_invariants(summary, run_folder(self.home, run_id=run_id, as_of=as_of))
            step.rows = self.con.execute("SELECT count(*) FROM contacts").fetchone()[0]
        return summary

    def report(self, as_of: datetime, run_id: str) -> None:
        from compliance.report import load_invariants, run_folder, write_report

        folder = run_folder(self.home, run_id=run_id, as_of=as_of)
        if (folder / "invariants.json").exists():
            write_report(self.con, self.home, run_id=run_id, as_of=as_of, invariants=load_invariants(folder))
