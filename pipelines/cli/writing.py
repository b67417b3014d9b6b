"""The commands that change data (init, demo, run, delete, restore, requests extend, pull), run through Dagster."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from compliance.crm.client import CrmError, open_client
from compliance.crm.pull import pull_snapshot
from compliance.errors import InputError
from compliance.evidence.anchor import anchored_log
from compliance.evidence.verdict import EXIT_OK, EXIT_REFUSED, combined_run_summary, exit_code
from compliance.home import Home
from compliance.operators import current_operator
from compliance.requests.intake import CONFIRMATION_WORD, extend_request
from compliance.requests.records import deadline_report
from compliance.requests.redaction import audited_requester
from compliance.settings import load_rules, load_settings
from compliance.shards.placement import check_shard_layout, set_shard_count, shard_count, shard_homes
from compliance.shards.views import whole_home
from compliance.staff import authorize
from compliance.store.connection import Store
from pipelines.cli.common import acting_as, chosen_lanes, emit, progress_printer, require_home, stage, store_ready
from pipelines.cli.summary import intake_summary, summary_text, with_bulk_actions
from pipelines.instance import (
    DAGSTER_STORAGE_ENV,
    DEFAULT_MAX_CONCURRENT_RUNS,
    postgres_dagster_yaml,
    write_instance_yaml,
)
from resources.lanes import RunLane, run_lanes


def cmd_init(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    storage = args.dagster_storage or os.environ.get(DAGSTER_STORAGE_ENV)
    dagster_yaml = None
    if storage:
        from pipelines.runner import check_instance_config

        dagster_yaml = postgres_dagster_yaml(storage, max_concurrent_runs=args.max_concurrent_runs)
        check_instance_config(dagster_yaml)
    elif args.max_concurrent_runs != DEFAULT_MAX_CONCURRENT_RUNS:
        raise InputError("--max-concurrent-runs: only with --dagster-storage (the SQLite instance runs one at a time)")
    created = write_instance_yaml(home, dagster_yaml)
    created += [path for path in home.init() if path not in created]
    if args.shards is not None:
        set_shard_count(home, args.shards)
    for shard in shard_homes(home):
        created += [path for path in shard.init() if path not in created]
        Store(shard).connect().close()
    instance_line = (f"\n  Dagster instance: PostgreSQL, run queue of {args.max_concurrent_runs} at once, one per store"
                     if storage else "")
    shards = shard_count(home)
    if shards > 1:
        instance_line += f"\n  {shards} location shards: store/shard-0 to store/shard-{shards - 1}"
    emit(args, {"home": str(home.root), "created": [str(path) for path in created]},
          f"Retention home ready at {home.root}\n"
          f"  drop CRM exports in {home.snapshots_inbox}/<snapshot-id>/ and request files in {home.requests_inbox}/\n"
          f"  then: retention run --home {home.root}" + instance_line)
    return EXIT_OK


def cmd_run(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    require_home(home)
    store_ready(home)
    summary = run_compliance(args, home, as_of)
    emit(args, summary, summary_text(summary, home))
    return exit_code(summary["refused_or_failed"])


def run_compliance(args: argparse.Namespace, home: Home, as_of: datetime) -> dict[str, Any]:
    """One compliance run of the home: of each of its lanes in turn (in-process, one after the other).

    The daemon's schedule and sensor run the shards side by side instead, through the instance's run queue.
    """
    lanes = chosen_lanes(args, home)
    summaries = [run_store(args, lane.home, as_of) for lane in lanes]
    return lanes_summary(args, home, lanes, summaries, as_of, whole_home_checks=True)


def lanes_summary(args: argparse.Namespace, home: Home, lanes: list[RunLane], summaries: list[dict[str, Any]],
                  as_of: datetime, *, whole_home_checks: bool = False) -> dict[str, Any]:
    """The run summary of a command over its lanes: a one-store home's own, or every shard's combined."""
    if lanes[0].partition_key is None:
        return summaries[0]
    from pipelines.runner import overall_checks

    # The home taken whole, after all its shards ran (not after `--shard K`, which leaves the others as they were):
    # its checks join the summary's as overall_<invariant>.
    overall = None if not whole_home_checks or len(lanes) < shard_count(home) else overall_checks(
        home, as_of=as_of, echo_progress=not args.json, tags={"retention/command": args.command})
    return combined_run_summary(summaries, [str(lane.partition_key) for lane in lanes],
                                whole_deadlines(home, as_of) if whole_home_checks else {}, overall=overall)


def whole_deadlines(home: Home, as_of: datetime) -> dict[str, list[dict[str, Any]]]:
    with whole_home(home) as con:
        return deadline_report(con, as_of=as_of)


def run_store(args: argparse.Namespace, home: Home, as_of: datetime) -> dict[str, Any]:
    from pipelines.runner import execute_job, materialization_metadata

    started = time.monotonic()
    result = execute_job(home, "compliance_job", as_of=as_of, echo_progress=not args.json,
                         tags={"retention/command": args.command},
                         accept_shrink=getattr(args, "accept_shrink", False))
    summary = {
        "run_id": result.run_id,
        "as_of": as_of.isoformat(),
        "success": result.success,
        "seconds": round(time.monotonic() - started, 2),
        "ingest": materialization_metadata(result, "crm_snapshots"),
        "requests": intake_summary(materialization_metadata(result, "request_intake")),
        "checks": {evaluation.check_name: {"passed": evaluation.passed, "message": evaluation.description or ""}
                   for evaluation in result.get_asset_check_evaluations()},
        "report": materialization_metadata(result, "compliance_report").get("markdown"),
        "data_docs": materialization_metadata(result, "retention_invariants").get("data_docs"),
    }
    summary = with_bulk_actions(summary, home, result.run_id)
    with Store(home).connect(read_only=True) as con:
        summary["deadlines"] = deadline_report(con, as_of=as_of)
    return summary


def cmd_demo(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    from demo_crm import generator as demo_data

    if args.contacts < 1:
        raise InputError("--contacts: must be at least 1")
    if args.locations is not None and args.locations < 1:
        raise InputError("--locations: must be at least 1")
    home.init()
    if args.shards is not None:
        set_shard_count(home, args.shards)
    for shard in shard_homes(home):
        shard.init()
    progress = progress_printer(args)
    snapshot_dir = home.snapshots_inbox / f"demo-{as_of:%Y%m%dT%H%M%S}"
    if snapshot_dir.exists():
        raise InputError(f"{snapshot_dir} exists already; pass another --as-of or use another --home")
    progress(f"generating a synthetic CRM snapshot of {args.contacts:,} contacts (seed {args.seed})")
    started = time.monotonic()
    demo_data.generate_snapshot(snapshot_dir, contacts=args.contacts, seed=args.seed, as_of=as_of, fmt=args.format,
                                locations=args.locations)
    progress(f"generated in {time.monotonic() - started:.1f}s: {snapshot_dir}")
    if not any(home.requests_inbox.iterdir()) and args.contacts >= 1_000:
        demo_data.write_sample_requests(home.requests_inbox, snapshot_dir, as_of=as_of, seed=args.seed)
    if not load_rules(home.rules_file).rules:
        home.rules_file.write_text(demo_data.sample_rules_yaml(snapshot_dir))
    summary = run_compliance(args, home, as_of)
    summary["demo"] = {"snapshot": str(snapshot_dir), "contacts": args.contacts, "seed": args.seed}
    text = (summary_text(summary, home) +
            f"\n\nDemo home: {home.root}\n"
            f"  snapshot: {snapshot_dir}\n"
            f"  sample requests: {home.requests_inbox}\n"
            f"  rules: {home.rules_file}\n"
            f"  look at a contact: retention show {demo_data.example_contact_id(snapshot_dir)} --home {home.root}\n"
            f"  open the Dagster UI: retention ui --home {home.root}  (then http://127.0.0.1:3000)")
    if summary["refused_or_failed"]:
        text += ("\n\nThe demo's refusals are on purpose: a request by a non-admin (R1) and contacts in active "
                 "campaigns or workflows that a rule may not delete (R11).")
    emit(args, summary, text)
    return exit_code([], success=summary["success"])


def cmd_delete(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    require_home(home)
    acting_as(home, args.as_user)
    if args.confirm != CONFIRMATION_WORD:
        raise InputError(f"--confirm must be exactly {CONFIRMATION_WORD} (got {args.confirm!r}); nothing was deleted")
    filters = bool(args.tag or args.location or args.inactive_days is not None)
    if sum(map(bool, (args.contact, filters, args.all))) != 1:
        raise InputError("give either --contact ID..., or filters (--tag, --location, --inactive-days), or --all")
    if args.inactive_days is not None and args.inactive_days < 0:
        raise InputError("--inactive-days: must be 0 or more")
    store_ready(home)
    return run_manual(args, home, as_of, "manual_delete_job", "deletion_plan", lambda shard: {
        "automatic_sources": False, "manual_requested_by": args.as_user,
        "manual_selection_token": stage(shard, args.contact), "manual_tags": args.tag,
        "manual_location": args.location, "manual_inactive_days": args.inactive_days, "manual_all": args.all})


def cmd_restore(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    require_home(home)
    acting_as(home, args.as_user)
    store_ready(home)
    return run_manual(args, home, as_of, "manual_restore_job", "applied_restores", lambda shard: {
        "automatic_sources": False, "manual_requested_by": args.as_user,
        "manual_selection_token": stage(shard, args.contact)})


def run_manual(args: argparse.Namespace, home: Home, as_of: datetime, job: str, asset: str,
                config: Callable[[Home], dict[str, Any]]) -> int:
    """A manual delete or restore: one run of the job, or one per shard (each acts on the contacts it holds)."""
    from pipelines.runner import execute_job

    lanes = run_lanes(home)
    summaries = []
    for lane in lanes:
        started = time.monotonic()
        result = execute_job(lane.home, job, as_of=as_of, echo_progress=not args.json,
                             tags={"retention/command": args.command},
                             extra_config={"ops": {asset: {"config": config(lane.home)}}})
        summaries.append(with_bulk_actions({"run_id": result.run_id, "as_of": as_of.isoformat(),
                                            "success": result.success,
                                            "seconds": round(time.monotonic() - started, 2)}, lane.home,
                                           result.run_id))
    summary = lanes_summary(args, home, lanes, summaries, as_of)
    summary.pop("deadlines", None)
    emit(args, summary, summary_text(summary, home))
    return exit_code(summary["refused_or_failed"])


def cmd_requests_extend(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    settings = load_settings(home.settings_file)
    acting_as(home, args.as_user)
    check_shard_layout(home)
    # Every shard holds the request's record: each extends it and audits that in its own chain.
    for shard in shard_homes(home):
        with Store(shard, memory_limit=settings.memory_limit).connect() as con:
            extension = extend_request(con, args.request_id, args.reason, as_of, deadlines=settings.deadlines,
                                       requested_by=args.as_user)
            operator, staff_id = current_operator(), authorize(con, args.as_user).user_id
            staff_ids = {staff_id} if staff_id is not None else set()
            anchored_log(con, shard).append("request.extended", as_of, **extension,
                                            requested_by=audited_requester(staff_id, staff_ids),
                                            operator={"os_user": operator.os_user, "host": operator.host})
    document = {key: value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value
                for key, value in extension.items()}
    emit(args, document, f"request {args.request_id} ({extension['regulation']}) extended: due "
                          f"{document['due_at']} (was {document['previous_due_at']})")
    return EXIT_OK


def cmd_pull(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    require_home(home)
    crm = load_settings(home.settings_file).crm
    if crm.kind is None:
        raise InputError(f"{home.settings_file}: crm.kind is not set (see README, \"Connecting HighLevel\")")
    if not crm.location_ids:
        raise InputError(f"{home.settings_file}: crm.location_ids: name at least one location to pull")
    with open_client(crm) as client, pull_progress(args) as progress:
        try:
            result = pull_snapshot(client, home, crm, as_of=as_of, with_associated=args.with_associated,
                                   progress=progress)
        except CrmError as exc:
            print(f"retention: pull failed: {exc} (no snapshot was written)", file=sys.stderr)
            return EXIT_REFUSED
    emit(args, {"snapshot_id": result.snapshot_id, "folder": str(result.folder), "pages": result.pages,
                 "records": result.records},
          f"pulled snapshot {result.snapshot_id} into {result.folder}: "
          + ", ".join(f"{n:,} {name}" for name, n in result.records.items())
          + f"\n  then: retention run --home {home.root}")
    return EXIT_OK


@contextmanager
def pull_progress(args: argparse.Namespace) -> Iterator[Callable[[int, int], None] | None]:
    if args.json or not args.with_associated:
        yield None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("notes, tasks and conversations", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)
