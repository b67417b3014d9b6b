"""Benchmark the pipeline on a synthetic home of N contacts, in one process, step by step.

    python -m benchmarks.run --contacts 1000000 [--deletions-pct 1 | --fixed-deletions 1000]
        [--request-subjects 1000] [--restores 10000] [--work-dir DIR] [--memory-limit SIZE] [--json]

What is measured, in order (each with wall seconds, rows per second and the peak RSS while it ran):
1. the daily run by direct calls into compliance/, one step per job step: ingest, intake, rule matches, plan,
   backup, the blocking backup verification, apply with cascades, (nothing due to) restore and purge,
   invariants with Data Docs, report;
2. the floor (hand-written set-based SQL) and the per-contact baseline, each on a copy of the ingested store;
3. a single-subject erasure: one GDPR request naming one person by email, dropped after the daily run, run as
   request_job runs it (its steps as direct calls, one row each; then the same job through Dagster on an identical
   copy of the home, whose overhead is reported on its own);
4. a manual restore of --restores deleted ids (undone afterwards by putting back a copy of the store, so that the
   purge that follows still finds the whole deleted cohort), the purge past the window, the store compaction,
   the invariants again;
5. the same daily run through Dagster (pipelines.runner.execute_job) on a second, identical home.

Markdown goes to stdout (or one JSON document with --json); progress lines go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.fixtures import ADMIN, build_source, make_home
from benchmarks.measure import Recorder, StepResult, machine, max_rss_bytes
from benchmarks.report import render

AS_OF = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
RESTORE_AS_OF = AS_OF + timedelta(days=1)
SINGLE_SUBJECT_AS_OF = AS_OF + timedelta(hours=1)
# Issue 12's targets (reported, not asserted); the growth targets are benchmarks.report's, from two saved runs.
DELETE_VS_FLOOR_LIMIT = 1.5
PER_CONTACT_MIN_FACTOR = 100.0
SINGLE_SUBJECT_LIMIT_S = 3.0
RSS_LIMIT_MB = 1024
PURGE_LIMIT_S = 30.0
RESTORE_LIMIT_S = 1.0
RESTORE_TARGET_IDS = 10_000
SINGLE_GROUP = "single-subject erasure (request_job's steps, direct calls)"
SINGLE_PREFIX = "single-subject: "
_MB = 1024 * 1024


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, required=True, help="contacts in the synthetic CRM")
    cohort = parser.add_mutually_exclusive_group()
    cohort.add_argument("--deletions-pct", type=float, default=1.0,
                        help="percent of contacts tagged for the deleting rule (default 1)")
    cohort.add_argument("--fixed-deletions", type=int,
                        help="tag exactly this many contacts instead (measures growth with the store's size)")
    parser.add_argument("--request-subjects", type=int, default=1000,
                        help="subjects of the one GDPR erasure request, by contact_id, email and phone (default 1000)")
    parser.add_argument("--restores", type=int, default=10_000, help="deleted ids restored manually (default 10000)")
    parser.add_argument("--per-contact-sample", type=int, default=1000,
                        help="subjects the per-contact baseline processes before extrapolating (default 1000)")
    parser.add_argument("--work-dir", type=Path, help="where the homes go (default: a new folder under /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the homes after the run")
    parser.add_argument("--memory-limit", default=None,
                        help="DuckDB memory_limit of every store (default: none, so the default memory_budget "
                             "of 1GB derives it, as on a user's home)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-references", action="store_true", help="no floor or per-contact baseline")
    parser.add_argument("--skip-per-contact", action="store_true",
                        help="no per-contact baseline, but the floor (the fixed-deletion runs compare growth with it)")
    parser.add_argument("--skip-single-subject", action="store_true", help="no single-subject erasure")
    parser.add_argument("--skip-dagster", action="store_true", help="no run through Dagster")
    parser.add_argument("--no-warm-up", action="store_true",
                        help="skip the untimed warm-up runs (faster; first-run costs then land in the timings)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of Markdown")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.contacts < 100:
        parser.error("--contacts must be at least 100")
    return args


def _copy_store(store_file: Path, target_dir: Path) -> Path:
    target_dir.mkdir(parents=True, exist_ok=True)
    (target_dir / "tmp").mkdir(exist_ok=True)
    target = target_dir / store_file.name
    shutil.copyfile(store_file, target)
    return target


def _code_version() -> dict[str, Any]:
    """The commit measured, the uncommitted changes to the pipeline's code, and where compliance/ was loaded from."""
    import subprocess

    import compliance

    repo = Path(__file__).resolve().parent.parent

    def git(*command: str) -> str:
        try:
            return subprocess.run(["git", *command], cwd=repo, capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = [line[3:] for line in git("status", "--porcelain", "--", "compliance", "assets", "pipelines",
                                        "sensors").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD").strip() or None, "uncommitted": changed,
            "compliance_package": str(Path(compliance.__file__).parent)}


def _ratio(label: str, numerator: float, denominator: float) -> dict[str, Any] | None:
    if not numerator or not denominator:
        return None
    return {"label": label, "value": round(numerator / denominator, 3)}


def _warm_up(folder: Path, args: argparse.Namespace, *, skip_dagster: bool) -> dict[str, float]:
    """One untimed daily run on an empty home each way, so that neither measured run pays first-run costs
    (lazy imports, Great Expectations' context, Dagster's first job in the process), and one request_job through
    Dagster for the single-subject erasure; their times are reported."""
    from benchmarks.direct import DirectHome
    from compliance.home import Home

    times = {}
    home = Home(folder / "direct")
    home.init()
    direct = DirectHome(home, args.memory_limit)
    scratch = Recorder(progress=False)
    started = time.perf_counter()
    try:
        direct.daily_run(scratch, AS_OF)
    finally:
        times["warm_up_direct_s"] = round(time.perf_counter() - started, 2)
        scratch.close()
        direct.close()
    if not skip_dagster:
        from pipelines.runner import execute_job

        home = Home(folder / "dagster")
        home.init()
        started = time.perf_counter()
        execute_job(home, "compliance_job", as_of=AS_OF, echo_progress=False)
        times["warm_up_dagster_s"] = round(time.perf_counter() - started, 2)
        if not args.skip_single_subject:
            # The single-subject erasure runs request_job: its first run in the process is paid here too.
            started = time.perf_counter()
            execute_job(home, "request_job", as_of=SINGLE_SUBJECT_AS_OF, echo_progress=False)
            times["warm_up_dagster_request_job_s"] = round(time.perf_counter() - started, 2)
    shutil.rmtree(folder, ignore_errors=True)
    return times


def _target(target: str, value: float, measured: str, met: bool, applies: bool, defined_at: str) -> dict[str, Any]:
    return {"target": target, "measured": measured, "status": "met" if met else "missed", "applies": applies,
            "defined_at": defined_at, "value": round(value, 3)}


def _targets(args: argparse.Namespace, *, delete_run: StepResult, floor, per_contact, single: dict | None,
             daily_peak_mb: float, process_peak_mb: float, purge_s: float,
             restore: tuple[int, float]) -> list[dict[str, Any]]:
    """Issue 12's targets that one run can judge (the two growth targets need two runs: benchmarks.report).

    Each says whether it applies to this run's size; a run of another size reports it as informative only.
    """
    at_1m, at_10m = args.contacts == 1_000_000, args.contacts == 10_000_000
    both, ten = "1,000,000 and 10,000,000 contacts", "10,000,000 contacts"
    targets = []
    if floor:
        value = delete_run.seconds / floor.seconds
        targets.append(_target(f"delete run at most {DELETE_VS_FLOOR_LIMIT:g}x the floor", value, f"{value:.2f}x",
                               value <= DELETE_VS_FLOOR_LIMIT, at_1m or at_10m, both))
    if per_contact:
        value = per_contact.extrapolated_seconds / delete_run.seconds
        targets.append(_target(f"at least {PER_CONTACT_MIN_FACTOR:g}x faster than per-contact", value,
                               f"{value:.1f}x", value >= PER_CONTACT_MIN_FACTOR, at_1m or at_10m, both))
    if single:
        value = single["direct_s"]
        targets.append(_target(f"single-subject erasure at most {SINGLE_SUBJECT_LIMIT_S:g} s in process", value,
                               f"{value:.2f} s", value <= SINGLE_SUBJECT_LIMIT_S, at_10m, ten))
    peak = f"{daily_peak_mb:,.0f} MB (process high-water mark {process_peak_mb:,.0f} MB)"
    targets.append(_target(f"peak RSS of the daily run at most {RSS_LIMIT_MB:,} MB "
                           f"(memory_limit {args.memory_limit or 'default'})",
                           daily_peak_mb, peak, daily_peak_mb <= RSS_LIMIT_MB, at_10m, ten))
    targets.append(_target(f"purge of the deleted cohort at most {PURGE_LIMIT_S:g} s", purge_s, f"{purge_s:.2f} s",
                           purge_s <= PURGE_LIMIT_S, at_10m, ten))
    ids, seconds = restore
    targets.append(_target(f"restore of {RESTORE_TARGET_IDS:,} ids at most {RESTORE_LIMIT_S:g} s", seconds,
                           f"{seconds:.2f} s for {ids:,} ids", seconds <= RESTORE_LIMIT_S,
                           ids == RESTORE_TARGET_IDS and (at_1m or at_10m), f"{RESTORE_TARGET_IDS:,} ids, {both}"))
    return targets


def _per_contact(args: argparse.Namespace, work: Path, store_copy: Path, source, rec: Recorder):
    """The per-contact baseline on its copy of the store: the measured sample, and its linear extrapolation."""
    from benchmarks.references import run_per_contact

    group = "references (same cohort, copies of the store)"
    with rec.step("per-contact: measured sample", rows_label="subjects", group=group) as step:
        per_contact = run_per_contact(store_copy, work / "per_contact" / "export", source, as_of=AS_OF,
                                      memory_limit=args.memory_limit, sample=args.per_contact_sample)
        step.rows = per_contact.sample
    shutil.rmtree(work / "per_contact", ignore_errors=True)
    sample_step = rec.get("per-contact: measured sample")
    extrapolated = rec.add(StepResult(
        "per-contact: all subjects", rows=per_contact.population, rows_label="subjects",
        seconds=per_contact.extrapolated_seconds, peak_rss_mb=sample_step.peak_rss_mb,
        cpu_seconds=sample_step.cpu_seconds / max(1, per_contact.sample) * per_contact.population,
        group=group, extrapolated=True, note=f"from {per_contact.sample:,} subjects, linearly"))
    return per_contact, extrapolated


def _erasure_subject(con) -> tuple[str, int]:
    """A live contact's email, drawn deterministically, and how many live contacts that email names (primary or
    additional), which is how many the erasure should delete."""
    live = "contact_id NOT IN (SELECT contact_id FROM contact_lifecycle WHERE state = 'deleted')"
    email, key = con.execute(f"SELECT email, email_key FROM contacts WHERE email_key IS NOT NULL AND {live} "
                             f"ORDER BY hash(contact_id), contact_id LIMIT 1").fetchone()
    expected = con.execute(f"SELECT count(DISTINCT contact_id) FROM contact_identifiers "
                           f"WHERE kind = 'email' AND key = ? AND {live}", [key]).fetchone()[0]
    return email, expected


def _single_subject(args: argparse.Namespace, work: Path, ours, rec: Recorder,
                    warnings: list[str]) -> dict[str, Any]:
    """One GDPR erasure request naming one person by email, as request_job runs it, on copies of the home.

    The home as the daily run left it is copied (untimed) once for the direct calls and once for Dagster, so that
    both erase the same person from the same store and the daily run's own home is left as it was. The direct row
    excludes Dagster by construction; the Dagster row's wall time minus the direct total is its overhead.
    """
    from benchmarks.direct import DirectHome
    from benchmarks.fixtures import write_single_subject_request
    from compliance.home import Home

    email, expected = _erasure_subject(ours.connection())
    ours.close()
    homes = {"direct": work / "single-direct"}
    if not args.skip_dagster:
        homes["dagster"] = work / "single-dagster"
    for folder in homes.values():
        shutil.copytree(ours.home.root, folder, symlinks=True)
        write_single_subject_request(Home(folder), email, AS_OF)
    ours.reopen()
    direct = DirectHome(Home(homes["direct"]), args.memory_limit)
    rec.spill_dirs.append(direct.home.store_dir / "tmp")
    try:
        done = direct.request_run(rec, SINGLE_SUBJECT_AS_OF, prefix=SINGLE_PREFIX, group=SINGLE_GROUP)
    finally:
        direct.close()
    shutil.rmtree(homes["direct"], ignore_errors=True)
    parts = [s for s in rec.steps if s.group == SINGLE_GROUP]
    total = rec.add(StepResult("single-subject erasure (direct)", rows=done.deleted, rows_label="contacts deleted",
                               seconds=sum(s.seconds for s in parts), cpu_seconds=sum(s.cpu_seconds for s in parts),
                               peak_rss_mb=max(s.peak_rss_mb for s in parts),
                               spill_mb=max(s.spill_mb for s in parts), group="totals"))
    if done.deleted != expected:
        warnings.append(f"the single-subject erasure deleted {done.deleted:,} contacts, expected {expected:,}")
    result = {"expected_deleted": expected, "deleted": done.deleted, "direct_s": round(total.seconds, 3),
              "steps_s": {s.name.removeprefix(SINGLE_PREFIX): round(s.seconds, 3) for s in parts},
              "dagster_s": None, "dagster_overhead_s": None, "dagster_step_seconds": {}, "dagster_deleted": None}
    if "dagster" in homes:
        from pipelines.runner import execute_job

        with rec.step("single-subject erasure via execute_job (request_job)", rows_label="contacts deleted",
                      group="Dagster") as step:
            outcome = execute_job(Home(homes["dagster"]), "request_job", as_of=SINGLE_SUBJECT_AS_OF,
                                  echo_progress=False)
        if not outcome.success:
            warnings.append("the Dagster request_job run did not succeed")
        step_seconds = {event.step_key: round(event.event_specific_data.duration_ms / 1000, 3)
                        for event in outcome.get_step_success_events()}
        deleted = sum(event.step_materialization_data.materialization.metadata["contacts_deleted"].value
                      for event in outcome.get_asset_materialization_events()
                      if event.asset_key.path[-1] == "applied_deletions")
        step.rows = deleted
        result.update(dagster_s=round(step.seconds, 3), dagster_overhead_s=round(step.seconds - total.seconds, 3),
                      dagster_step_seconds=step_seconds, dagster_deleted=deleted)
        if deleted != done.deleted:
            warnings.append(f"request_job via Dagster deleted {deleted:,} contacts, direct calls {done.deleted:,}")
        shutil.rmtree(homes["dagster"], ignore_errors=True)
    return result


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    warnings: list[str] = []
    root = args.work_dir.resolve() if args.work_dir else Path(tempfile.mkdtemp(prefix="retention-bench-"))
    work = root / f"run-{args.contacts}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    rec = Recorder(progress=not args.quiet)
    try:
        return _run(args, command, work, rec, warnings)
    finally:
        rec.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
            if not args.work_dir:
                shutil.rmtree(root, ignore_errors=True)


def _run(args: argparse.Namespace, command: str, work: Path, rec: Recorder, warnings: list[str]) -> dict[str, Any]:
    """The benchmark's phases in order: the daily run, the references, restore and purge, Dagster, the figures.

    One long function because the phases share the measured values the figures are computed from (about thirty);
    it is a script, timed from the outside, whose order is the story RESULTS.md tells. Split it into phase
    functions returning a small record each when a phase is added.
    """
    machine_info, code = machine(), _code_version()
    # Imports paid once per process, outside every measured step.
    started = time.perf_counter()
    import great_expectations  # noqa: F401
    gx_import_s = time.perf_counter() - started
    started = time.perf_counter()
    from pipelines.definitions import defs
    dagster_import_s = time.perf_counter() - started
    from benchmarks.direct import DELETE_RUN_STEPS, MIRRORED, REQUEST_JOB_STEPS, DirectHome
    from compliance import steps
    from compliance.restore import ManualRestore
    from compliance.store.connection import Store

    warm_up = {} if args.no_warm_up else _warm_up(work / "warm-up", args, skip_dagster=args.skip_dagster)
    rec.log(f"building the source: {args.contacts:,} contacts")
    source = build_source(work / "source", contacts=args.contacts, seed=args.seed, as_of=AS_OF,
                          deletions_pct=args.deletions_pct, fixed_deletions=args.fixed_deletions,
                          request_subjects=args.request_subjects)
    expected_deleted = source.tagged + source.subjects
    ours_home = make_home(work / "ours", source, args.memory_limit)
    rec.spill_dirs.append(ours_home.store_dir / "tmp")

    # 1. The daily run, direct calls; right after ingest, copies of the store for the two references.
    ours = DirectHome(ours_home, args.memory_limit)
    copies: dict[str, Path] = {}

    def after_ingest() -> None:
        if args.skip_references:
            return
        ours.con.execute("CHECKPOINT")
        for name in ("floor",) + (() if args.skip_per_contact else ("per_contact",)):
            copies[name] = _copy_store(ours_home.store_file, work / name)
            rec.spill_dirs.append(work / name / "tmp")

    daily = ours.daily_run(rec, AS_OF, after_ingest=after_ingest)
    store_mb = ours_home.store_file.stat().st_size / _MB
    if daily.deleted != expected_deleted:
        warnings.append(f"the daily run deleted {daily.deleted:,} contacts, expected {expected_deleted:,}")
    daily_steps = [s for s in rec.steps if s.group == DirectHome.GROUP]
    daily_total = rec.add(StepResult("daily run total (direct)", rows=daily.deleted, rows_label="contacts deleted",
                                     seconds=sum(s.seconds for s in daily_steps),
                                     cpu_seconds=sum(s.cpu_seconds for s in daily_steps),
                                     peak_rss_mb=max(s.peak_rss_mb for s in daily_steps),
                                     spill_mb=max(s.spill_mb for s in daily_steps), group="totals"))
    delete_steps = [s for s in daily_steps if s.name in DELETE_RUN_STEPS]
    delete_run = rec.add(StepResult("delete run (intake → apply)", rows=daily.deleted, rows_label="contacts deleted",
                                    seconds=sum(s.seconds for s in delete_steps),
                                    cpu_seconds=sum(s.cpu_seconds for s in delete_steps),
                                    peak_rss_mb=max(s.peak_rss_mb for s in delete_steps),
                                    spill_mb=max(s.spill_mb for s in delete_steps), group="totals"))

    # 2. The references.
    floor = per_contact = per_contact_extrapolated = None
    if not args.skip_references:
        from benchmarks.references import run_floor

        # Our store's buffers would otherwise count against the references' memory (each DuckDB has its own limit).
        ours.close()

        with rec.step("floor: hand-written SQL backup + delete", rows_label="contacts deleted",
                      group="references (same cohort, copies of the store)") as step:
            floor = run_floor(copies["floor"], work / "floor" / "backup", source, as_of=AS_OF,
                              memory_limit=args.memory_limit)
            step.rows = floor.contacts
        # Like our steps, which share an open connection, the floor is timed without opening its store.
        step.seconds = floor.seconds
        shutil.rmtree(work / "floor", ignore_errors=True)
        if not args.skip_per_contact:
            per_contact, per_contact_extrapolated = _per_contact(args, work, copies["per_contact"], source, rec)
        if floor.contacts != expected_deleted:
            warnings.append(f"the floor deleted {floor.contacts:,} contacts, expected {expected_deleted:,}")
        ours.reopen()

    # 3. One GDPR request naming one person, on copies of the home as the daily run left it.
    single = None if args.skip_single_subject else _single_subject(args, work, ours, rec, warnings)

    # 4. Restore, then put the store back as it was so that the purge still finds the whole deleted cohort.
    ids = [row[0] for row in ours.con.execute(
        "SELECT contact_id FROM contact_lifecycle WHERE state = 'deleted' ORDER BY contact_id LIMIT ?",
        [args.restores]).fetchall()]
    ours.close()
    before_restore = shutil.copyfile(ours_home.store_file, work / "before-restore.duckdb")
    ours.reopen()
    with rec.step(f"restore {len(ids):,} ids (manual)", rows_label="contacts restored", group="later days",
                  note="undone after, by copying the store back") as step:
        applied = steps.restore(ours.context(RESTORE_AS_OF), automatic_sources=False,
                                manual=ManualRestore(ADMIN, tuple(ids)))
        restored = step.rows = sum(a.counts["restored"] for a in applied.actions)
    ours.close()
    os.replace(before_restore, ours_home.store_file)
    ours_home.store_file.with_name(ours_home.store_file.name + ".wal").unlink(missing_ok=True)
    ours.reopen()
    purge_as_of = AS_OF + timedelta(days=ours.settings.restore_window_days + 1)
    purged = ours.purge(rec, purge_as_of, group="later days")
    store_mb_after = ours_home.store_file.stat().st_size / _MB
    after_purge = ours.invariants(rec, purge_as_of, "invariants after purge", group="later days",
                                  run_id=uuid.uuid4().hex)
    ours.close()

    # 5. The same daily run through Dagster, on a fresh identical home.
    dagster_step = None
    dagster_deleted = None
    dagster_steps: dict[str, float] = {}
    unmirrored = sorted(set(defs.resolve_job_def("compliance_job").graph.node_dict) - set(MIRRORED))
    if unmirrored:
        warnings.append(f"compliance_job has steps the direct run does not mirror: {', '.join(unmirrored)}")
    request_steps = set(defs.resolve_job_def("request_job").graph.node_dict)
    if single and request_steps != set(REQUEST_JOB_STEPS):
        warnings.append(f"request_job's steps ({', '.join(sorted(request_steps))}) are not the ones the "
                        f"single-subject erasure runs ({', '.join(REQUEST_JOB_STEPS)})")
    if not args.skip_dagster:
        from pipelines.runner import execute_job

        dagster_home = make_home(work / "dagster", source, args.memory_limit)
        rec.spill_dirs.append(dagster_home.store_dir / "tmp")
        with rec.step("compliance_job via execute_job", rows_label="contacts deleted", group="Dagster") as step:
            result = execute_job(dagster_home, "compliance_job", as_of=AS_OF, echo_progress=False)
        dagster_step = step
        dagster_steps = {event.step_key: round(event.event_specific_data.duration_ms / 1000, 3)
                         for event in result.get_step_success_events()}
        if not result.success:
            warnings.append("the Dagster run did not succeed")
        con = Store(dagster_home, memory_limit=args.memory_limit).connect(read_only=True)
        try:
            dagster_deleted = step.rows = con.execute(
                "SELECT count(*) FROM contact_lifecycle WHERE state = 'deleted'").fetchone()[0]
        finally:
            con.close()
        if dagster_deleted != daily.deleted:
            warnings.append(f"Dagster deleted {dagster_deleted:,} contacts, direct calls {daily.deleted:,}")

    # Ratios and targets.
    ratios = [r for r in (
        _ratio("delete run / floor (ours over the hand-written SQL)", delete_run.seconds,
               floor.seconds if floor else 0),
        _ratio("per-contact (extrapolated) / delete run", per_contact.extrapolated_seconds if per_contact else 0,
               delete_run.seconds),
        _ratio("Dagster compliance_job / direct calls (whole daily run)",
               dagster_step.seconds if dagster_step else 0, daily_total.seconds),
        # CPU seconds are steadier than wall time when other jobs share the machine.
        _ratio("Dagster compliance_job / direct calls, in CPU seconds",
               dagster_step.cpu_seconds if dagster_step else 0, daily_total.cpu_seconds),
        _ratio("delete run / floor, in CPU seconds", delete_run.cpu_seconds,
               rec.get("floor: hand-written SQL backup + delete").cpu_seconds if floor else 0),
        _ratio("single-subject erasure: Dagster request_job / direct calls",
               single["dagster_s"] if single and single["dagster_s"] else 0, single["direct_s"] if single else 0),
    ) if r]
    process_peak_mb = max_rss_bytes() / _MB
    targets = _targets(args, delete_run=delete_run, floor=floor, per_contact=per_contact, single=single,
                       daily_peak_mb=daily_total.peak_rss_mb, process_peak_mb=process_peak_mb,
                       purge_s=rec.get("purge past the window").seconds,
                       restore=(len(ids), rec.get(f"restore {len(ids):,} ids (manual)").seconds))

    counts = {
        "contacts": source.contacts, "snapshot_rows": source.total_rows, "tagged": source.tagged,
        "request_subjects": source.subjects, "expected_deleted": expected_deleted, "deleted": daily.deleted,
        "planned": daily.planned, "rows_backed_up": daily.rows_backed_up, "rows_removed": daily.rows_removed,
        "restore_requested": len(ids), "restored": restored,
        "purge_expected": daily.deleted, "purged": purged.contacts_purged, "rows_purged": purged.rows_purged,
        "backups_expired": len(purged.backups_expired),
        "floor_deleted": floor.contacts if floor else None,
        "floor_rows_removed": floor.rows_removed if floor else None,
        "floor_rows_backed_up": floor.rows_backed_up if floor else None,
        "per_contact_sample": per_contact.sample if per_contact else None,
        "per_contact_population": per_contact.population if per_contact else None,
        "per_contact_deleted": per_contact.contacts if per_contact else None,
        "dagster_deleted": dagster_deleted,
        "single_subject_expected_deleted": single["expected_deleted"] if single else None,
        "single_subject_deleted": single["deleted"] if single else None,
        "single_subject_dagster_deleted": single["dagster_deleted"] if single else None,
        "invariants_passed_after_daily_run": daily.invariants_passed,
        "invariants_failed_after_daily_run": list(daily.invariants_failed),
        "invariants_passed_after_purge": after_purge.passed if after_purge else None,
        "invariants_failed_after_purge": list(after_purge.failed) if after_purge else [],
    }
    for label, passed in (("after the daily run", daily.invariants_passed),
                          ("after the purge", after_purge.passed if after_purge else None)):
        if passed is False:
            warnings.append(f"invariants failed {label}")
    return {
        "command": command,
        "machine": machine_info,
        "code": code,
        "params": {"contacts": args.contacts, "deletions_pct": None if args.fixed_deletions is not None
                   else args.deletions_pct, "fixed_deletions": args.fixed_deletions,
                   "request_subjects": args.request_subjects, "restores": args.restores,
                   "per_contact_sample": None if args.skip_per_contact else args.per_contact_sample,
                   "memory_limit": args.memory_limit,
                   "seed": args.seed, "as_of": AS_OF.isoformat()},
        "setup": {"generate_s": round(source.generate_seconds, 2), "tag_and_request_s": round(source.tag_seconds, 2),
                  "gx_import_s": round(gx_import_s, 2), "dagster_import_s": round(dagster_import_s, 2),
                  **warm_up,
                  "store_mb_after_daily_run": round(store_mb, 1),
                  "store_mb_after_purge_and_compact": round(store_mb_after, 1)},
        "steps": [step.as_dict() for step in rec.steps],
        "totals": {"daily_run_s": round(daily_total.seconds, 3), "delete_run_s": round(delete_run.seconds, 3),
                   "floor_s": round(floor.seconds, 3) if floor else None,
                   "per_contact_extrapolated_s": round(per_contact_extrapolated.seconds, 3)
                   if per_contact_extrapolated else None,
                   "dagster_s": round(dagster_step.seconds, 3) if dagster_step else None,
                   "single_subject_s": single["direct_s"] if single else None,
                   "single_subject_dagster_s": single["dagster_s"] if single else None},
        "counts": counts,
        "dagster_step_seconds": dagster_steps,
        "single_subject": single,
        "ratios": ratios,
        "targets": targets,
        "process_peak_rss_mb": round(process_peak_mb, 1),
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        "max_spill_mb": round(max(step.spill_mb for step in rec.steps), 1),
        "warnings": warnings,
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    command = "python -m benchmarks.run " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                                                  else sys.argv[1:]))
    # DuckDB's progress bars and any library chatter go to stderr; stdout carries only the result.
    sys.stdout.flush()
    real_stdout = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    try:
        document = run(args, re.sub(r"--work-dir \S+ ?", "", command).strip())
    finally:
        sys.stdout.flush()
    if args.json:
        real_stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        real_stdout.write(render(document))
    real_stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
