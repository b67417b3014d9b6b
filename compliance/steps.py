"""The compliance run as one ordered sequence of steps, each one domain function.

Every caller runs the same functions: the Dagster assets and checks (one step each, named after the job step it
backs), the benchmark's direct path (all of DAILY_RUN in order) and, through the jobs, the command line. A rule of
the product therefore lives in one step, never in the layer that calls it. The order of DAILY_RUN is the order in
which `compliance_job` executes its steps (a test compares the two).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, TypeVar

import duckdb

from compliance.crm.client import open_client
from compliance.crm.pull import PullResult, pull_snapshot
from compliance.crm.push import PushResult, push_deletions
from compliance.deletion import (
    AppliedAction,
    ManualSelection,
    Plan,
    apply_deletions,
    back_up,
    build_plan,
    planned_backups,
)
from compliance.deletion import verify_planned_backups as deletion_backups_problems
from compliance.deletion.selections import drop_abandoned_selections
from compliance.evidence.anchor import anchored_log, verify_before_writing
from compliance.evidence.audit import AuditLog
from compliance.evidence.report import Report, load_invariants, run_folder, save_invariants, write_report
from compliance.home import Home
from compliance.invariants import InvariantSummary, check_invariants
from compliance.progress import count
from compliance.purge import PLAN_TABLES, RESTORE_PLAN_TABLES, PurgeResult, forget_plans, purge
from compliance.requests.intake import IntakeResult, prune_request_records, settle_request_files, take_requests
from compliance.requests.records import audit_new_records
from compliance.restore import ManualRestore, RestoreAction, apply_restores, plan_restores
from compliance.rules import bind_clock, predicate
from compliance.settings import Rules, Settings, load_rules
from compliance.snapshots.ingest import IngestResult, ingest_snapshots
from compliance.store.backup import BackupManifest
from compliance.store.keys import KeyedHasher
from compliance.store.sql import scalar

DATA_DOCS_FOLDER = "data_docs"


def _silent(message: str) -> None:
    return None


@dataclass
class RunContext:
    """What every step of one run shares: the store connection, the home, its settings, the clock and the run id.

    `connect` gives the run's open store connection; `compact` closes it, rewrites the store file and returns its
    new size, after which `connect` opens a fresh one (the job's resource and the benchmark each supply both).
    """

    connect: Callable[[], duckdb.DuckDBPyConnection]
    home: Home
    settings: Settings
    as_of: datetime
    run_id: str
    progress: Callable[[str], None] = _silent
    compact: Callable[[], int] | None = None
    # `retention run --accept-shrink`: the ingest may load a snapshot that drops more contacts than settings allow.
    accept_shrink: bool = False
    # The rules read once when the run started; None: read rules.yaml once, on first use.
    loaded_rules: Rules | None = None

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        return self.connect()

    @cached_property
    def hasher(self) -> KeyedHasher:
        return KeyedHasher(self.home.secret()).register(self.con)

    @cached_property
    def audit_log(self) -> AuditLog:
        return anchored_log(self.con, self.home)

    def rules(self) -> Rules:
        """The run's rules, the same for every step of the run."""
        return self.loaded_rules if self.loaded_rules is not None else self._rules_file

    @cached_property
    def _rules_file(self) -> Rules:
        return load_rules(self.home.rules_file)


# A step function takes the run context first; some steps take keyword options too (tests, previews, the CLI).
StepFunction = TypeVar("StepFunction", bound=Callable[..., Any])


@dataclass(frozen=True)
class Step:
    """One step of the run: the job step (asset or asset check) it backs, and the function that does it."""

    job_step: str
    run: Callable[[RunContext], Any]


DAILY_RUN: list[Step] = []


def step(job_step: str) -> Callable[[StepFunction], StepFunction]:
    """Register a function as the step backing `job_step`, in the order of the daily run."""
    def register(function: StepFunction) -> StepFunction:
        if any(existing.job_step == job_step for existing in DAILY_RUN):
            raise ValueError(f"job step {job_step!r} has a step already")
        DAILY_RUN.append(Step(job_step, function))
        return function
    return register


@step("crm_pull")
def pull(ctx: RunContext, *, with_associated: bool = False) -> PullResult | None:
    """Pull a new snapshot from the CRM's API into inbox/snapshots when `crm.kind` is set (None when it is not)."""
    crm = ctx.settings.crm
    if crm.kind is None or ctx.home.shard is not None:
        # A shard's run never pulls: every shard ingests the same full export, so it is pulled once for the home
        # (`retention pull`) before the shards run; a pull by each shard would give N different snapshots.
        return None
    with open_client(crm) as client:
        return pull_snapshot(client, ctx.home, crm, as_of=ctx.as_of, with_associated=with_associated)


@step("crm_snapshots")
def ingest(ctx: RunContext) -> IngestResult:
    """Check the audit log against its anchor, then load the snapshots waiting in inbox/snapshots, each once."""
    verify_before_writing(ctx.con, ctx.home)
    return ingest_snapshots(ctx.con, ctx.home, as_of=ctx.as_of, progress=ctx.progress,
                            accept_shrink=ctx.accept_shrink, settings=ctx.settings)


@dataclass(frozen=True)
class Intake:
    """The request files taken by a run, and the request records pruned past their retention."""

    result: IntakeResult
    pruned: int


@step("request_intake")
def intake(ctx: RunContext) -> Intake:
    """Prune request records past their retention, then record every request file waiting in the inbox."""
    verify_before_writing(ctx.con, ctx.home)
    pruned = prune_request_records(ctx.con, ctx.as_of, log=ctx.audit_log)
    return Intake(take_requests(ctx.con, ctx.home, as_of=ctx.as_of, settings=ctx.settings), pruned)


@step("rule_matches")
def count_rule_matches(ctx: RunContext) -> dict[str, int]:
    """How many active contacts each rule matches now, keyed "<name> (<status>)".

    Returns:
        One count per rule of rules.yaml, draft rules included (they only preview).
    """
    matches = {}
    bind_clock(ctx.con, ctx.as_of)
    for rule in ctx.rules().rules:
        condition = predicate(rule.trigger)
        matches[f"{rule.name} ({rule.status})"] = scalar(
            ctx.con, "SELECT count(*) FROM contacts c WHERE c.contact_id NOT IN "
            f"(SELECT contact_id FROM contact_lifecycle WHERE state = 'deleted') AND {condition.sql}",
            condition.parameters)
    return matches


def finish_bulk_actions(ctx: RunContext, plan_tables: tuple[str, ...]) -> int:
    """What follows every applied bulk action: settle the request files, forget the plan, audit the new records.

    Returns:
        The number of audit entries written.
    """
    settle_request_files(ctx.con, ctx.home)
    if plan_tables:
        forget_plans(ctx.con, plan_tables)
    return audit_new_records(ctx.con, ctx.audit_log, at=ctx.as_of)


@dataclass(frozen=True)
class Applied:
    """The bulk actions a step applied, and the audit entries written for them."""

    actions: list[Any]
    audited: int


# Dagster runs the restores before the deletion plan: both follow the intake only, and it orders such steps by name.
@step("applied_restores")
def restore(ctx: RunContext, *, automatic_sources: bool = True, manual: ManualRestore | None = None) -> Applied:
    """Restore inside the window (requests, or a manual restore): the record only, then settle and audit."""
    verify_before_writing(ctx.con, ctx.home)
    plan_restores(ctx.con, hasher=ctx.hasher, settings=ctx.settings, as_of=ctx.as_of,
                  include_requests=automatic_sources, manual=manual)
    actions: list[RestoreAction] = apply_restores(ctx.con, hasher=ctx.hasher, as_of=ctx.as_of, run_id=ctx.run_id)
    return Applied(actions, finish_bulk_actions(ctx, RESTORE_PLAN_TABLES))


@step("deletion_plan")
def plan_deletions(ctx: RunContext, *, automatic_sources: bool = True, manual: ManualSelection | None = None,
                   rules: Rules | None = None) -> Plan:
    """One outcome per source and contact; a manual bulk delete takes no request or rule (automatic_sources off).

    A run that deletes first checks the audit log: no deletion may happen that cannot be audited. `rules` replaces
    rules.yaml (tests and previews).
    """
    verify_before_writing(ctx.con, ctx.home)
    if rules is None:
        rules = ctx.rules() if automatic_sources else Rules()
    return build_plan(ctx.con, hasher=ctx.hasher, settings=ctx.settings, rules=rules, as_of=ctx.as_of,
                      include_requests=automatic_sources, manual=manual)


@step("contact_backups")
def back_up_planned(ctx: RunContext) -> dict[str, BackupManifest | str]:
    """Write and verify the backup of every planned deletion; a bulk action whose backup fails maps to its error."""
    return back_up(ctx.con, ctx.home, ctx.settings, progress=ctx.progress)


@dataclass(frozen=True)
class BackupVerification:
    """The blocking check's finding: how many planned backups it read, and the problem of each that failed."""

    checked: int
    problems: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.problems


@step("contact_backups_planned_backups_verify")
def verify_planned_backups(ctx: RunContext) -> BackupVerification:
    """Re-read every planned deletion's backup: present, checksums and row counts as its manifest says."""
    return BackupVerification(len(planned_backups(ctx.con)), deletion_backups_problems(ctx.con))


@step("applied_deletions")
def apply_planned_deletions(ctx: RunContext, *, forget_plan: bool = True) -> Applied:
    """Apply the planned deletions with their cascades, then settle, forget the plan (unless told not to) and audit."""
    actions: list[AppliedAction] = apply_deletions(ctx.con, hasher=ctx.hasher, settings=ctx.settings,
                                                   as_of=ctx.as_of, run_id=ctx.run_id, progress=ctx.progress)
    return Applied(actions, finish_bulk_actions(ctx, PLAN_TABLES if forget_plan else ()))


@step("crm_push")
def push(ctx: RunContext) -> PushResult:
    """Send each contact the store deleted (backup verified, delete committed) to the CRM's delete, once."""
    return push_deletions(ctx.con, ctx.settings.crm, lambda: open_client(ctx.settings.crm), as_of=ctx.as_of,
                          progress=ctx.progress)


@dataclass(frozen=True)
class Purged:
    """The purge's result, its audit entries, and the store's size after compaction (None when not compacted)."""

    result: PurgeResult
    audited: int
    compacted_bytes: int | None


@step("purged_contacts")
def purge_expired(ctx: RunContext) -> Purged:
    """Purge contacts past the window and expired backups, audit, and rewrite the store when anything went."""
    result = purge(ctx.con, ctx.home, hasher=ctx.hasher, settings=ctx.settings, as_of=ctx.as_of, run_id=ctx.run_id)
    count(ctx.progress, "purge", result.contacts_purged, "contacts")
    forget_plans(ctx.con)
    drop_abandoned_selections(ctx.con)
    audited = audit_new_records(ctx.con, ctx.audit_log, at=ctx.as_of)
    size = None
    if (result.contacts_purged or result.backups_expired) and ctx.compact is not None:
        ctx.progress("compacting the store (rewriting it without the purged rows' free pages)")
        size = ctx.compact()
        count(ctx.progress, "compaction", size, "bytes")
    return Purged(result, audited, size)


@step("retention_invariants")
def prove(ctx: RunContext, only: list[str] | None = None) -> InvariantSummary:
    """Judge the registered retention invariants (or `only` these) with Great Expectations, and keep the result."""
    docs_dir = ctx.home.reports_dir / DATA_DOCS_FOLDER if ctx.settings.data_docs else None
    summary = check_invariants(ctx.con, secret=ctx.home.secret(), settings=ctx.settings, as_of=ctx.as_of,
                               docs_dir=docs_dir, only=only)
    save_invariants(summary, run_folder(ctx.home, run_id=ctx.run_id, as_of=ctx.as_of))
    return summary


@step("compliance_report")
def report(ctx: RunContext) -> Report:
    """Write the run's compliance report from the store and the invariants this run judged."""
    folder = run_folder(ctx.home, run_id=ctx.run_id, as_of=ctx.as_of)
    return write_report(ctx.con, ctx.home, run_id=ctx.run_id, as_of=ctx.as_of, invariants=load_invariants(folder))
