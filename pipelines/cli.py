"""The `retention` command line (PRODUCT.md section 3)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from compliance.audit_anchor import AuditLogBroken, anchored_log
from compliance.clock import parse_as_of
from compliance.contacts import show_contact
from compliance.crm.client import CrmError, open_client
from compliance.crm.pull import pull_snapshot
from compliance.crm.push import crm_outcomes
from compliance.errors import InputError
from compliance.home import DAGSTER_STORAGE_ENV, DEFAULT_MAX_CONCURRENT_RUNS, Home, postgres_dagster_yaml
from compliance.intake import CONFIRMATION_WORD, extend_request
from compliance.keys import KeyedHasher
from compliance.operators import check_operator, current_operator
from compliance.preview import preview_run
from compliance.records import DUE_SOON_DAYS, bulk_actions, deadline_report, request_records
from compliance.redaction import audited_requester
from compliance.selections import stage_selection
from compliance.settings import load_rules, load_settings
from compliance.shard_views import whole_home
from compliance.shards import check_shard_layout, set_shard_count, shard_count, shard_homes
from compliance.staff import authorize
from compliance.store import Store, StoreBusy, refuse_missing_store
from compliance.verdict import EXIT_BAD_INPUT, EXIT_OK, EXIT_REFUSED, combined_run_summary, exit_code, run_problems


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        self.exit(EXIT_BAD_INPUT, f"retention: error: {message}\n")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", help="the retention home (default: $RETENTION_HOME, else ./retention_home)")
    parser.add_argument("--as-of", help="the run's clock, ISO 8601 (default: now, UTC)")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout and nothing else")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="retention", description="Delete CRM contacts provably, restore within the window, "
                                                   "purge after it, and prove it.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    init = commands.add_parser("init", help="create the home with default settings, rules and inbox folders")
    _common(init)
    init.add_argument("--dagster-storage", metavar="URL",
                      help="keep the Dagster instance in PostgreSQL: postgresql://user@host:port/db, or env:NAME to "
                           f"read the URL from that variable (default: ${DAGSTER_STORAGE_ENV}, else SQLite in the home)")
    init.add_argument("--max-concurrent-runs", type=int, default=DEFAULT_MAX_CONCURRENT_RUNS, metavar="N",
                      help="with --dagster-storage: runs the queue runs at once, one per store "
                           f"(default {DEFAULT_MAX_CONCURRENT_RUNS})")
    init.add_argument("--shards", type=int, metavar="N",
                      help="location shards: N DuckDB stores written in parallel, a location's contacts in one "
                           "(settings.yaml `shards`, default 1; fixed once the home holds data)")
    demo = commands.add_parser("demo", help="make a synthetic CRM snapshot and sample requests, then run")
    _common(demo)
    demo.add_argument("--contacts", type=int, default=10_000, help="contacts to generate (default 10,000)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (same seed, same data)")
    demo.add_argument("--format", choices=("parquet", "csv", "highlevel"), default="parquet",
                      help="snapshot format: native parquet or csv files, or a HighLevel API export")
    demo.add_argument("--locations", type=int, metavar="L",
                      help="spread the contacts over L locations (default: the demo's five named ones)")
    demo.add_argument("--shards", type=int, metavar="N", help="a new demo home of N location shards (default 1)")
    run = commands.add_parser("run", help="one compliance run")
    _common(run)
    run.add_argument("--accept-shrink", action="store_true",
                     help="load a snapshot even when it drops more contacts than max_contact_drop allows")
    run.add_argument("--shard", type=int, metavar="K",
                     help="in a home of shards: run shard K only (default: every shard, one after the other)")
    _common(commands.add_parser("plan", help="the decisions of a run, changing nothing"))
    delete = commands.add_parser("delete", help="a manual bulk delete of listed contacts or of a smart list")
    _common(delete)
    delete.add_argument("--contact", nargs="+", default=[], metavar="ID", help="contact ids to delete")
    delete.add_argument("--tag", nargs="+", default=[], metavar="T", help="contacts carrying any of these tags")
    delete.add_argument("--location", help="contacts of this location")
    delete.add_argument("--inactive-days", type=int, help="contacts with no activity for N days")
    delete.add_argument("--all", action="store_true", help="every active contact")
    delete.add_argument("--as-user", required=True, help="the staff user_id or email doing it (an active admin)")
    delete.add_argument("--confirm", required=True, help="must be exactly DELETE")
    restore = commands.add_parser("restore", help="restore deleted contacts inside the window (record only)")
    _common(restore)
    restore.add_argument("--contact", nargs="+", required=True, metavar="ID", help="contact ids to restore")
    restore.add_argument("--as-user", required=True, help="the staff user_id or email doing it (an active admin)")
    status = commands.add_parser("status", help="the bulk actions, or one with its items")
    _common(status)
    status.add_argument("bulk_action_id", nargs="?")
    requests_parser = commands.add_parser("requests",
                                          help="every request file seen, with status, reason and due date")
    _common(requests_parser)
    requests_commands = requests_parser.add_subparsers(dest="requests_command", parser_class=_Parser)
    extend = requests_commands.add_parser("extend", help="extend an open GDPR/CCPA request's deadline, once")
    _common(extend)
    extend.add_argument("request_id")
    extend.add_argument("--reason", required=True, help="why, as told to the requester (no emails or phones)")
    extend.add_argument("--as-user", required=True, help="the staff user_id or email recording it (an active admin)")
    audit = commands.add_parser("audit", help="the audit trail")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, parser_class=_Parser)
    _common(audit_commands.add_parser("verify", help="check the audit log's hash chain"))
    show = commands.add_parser("show", help="one contact's state")
    _common(show)
    show.add_argument("contact_id")
    pull = commands.add_parser("pull", help="pull a snapshot from the CRM's API (settings: crm) into inbox/snapshots")
    _common(pull)
    pull.add_argument("--with-associated", action="store_true",
                      help="also pull each contact's notes, tasks and conversations (one request each)")
    ui = commands.add_parser("ui", help="serve the Dagster UI and daemon on this home (stopped together)")
    _common(ui)
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    only = ui.add_mutually_exclusive_group()
    only.add_argument("--webserver-only", action="store_true", help="the UI without the daemon")
    only.add_argument("--daemon-only", action="store_true", help="the daemon (schedule, sensor) without the UI")
    metrics = commands.add_parser("metrics", help="the CCPA regs 7102(a) request metrics of a calendar year")
    _common(metrics)
    metrics.add_argument("--year", type=int, required=True, help="the calendar year, e.g. 2026")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.getLogger("dagster").setLevel(logging.CRITICAL)
    handler: Callable[[argparse.Namespace, Home, datetime], int] = _COMMANDS[args.command]
    try:
        as_of = parse_as_of(args.as_of) if args.as_of else datetime.now(timezone.utc)
        return handler(args, Home.resolve(args.home), as_of)
    except InputError as exc:
        print(f"retention: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except AuditLogBroken as exc:
        print(f"retention: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except StoreBusy as exc:
        print(f"retention: busy: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except Exception as exc:
        if os.environ.get("RETENTION_DEBUG"):
            raise
        print(f"retention: failed: {type(exc).__name__}: {exc} (RETENTION_DEBUG=1 shows the traceback; "
              "the run, if one started, is in `retention ui`)", file=sys.stderr)
        return EXIT_REFUSED


def _emit(args: argparse.Namespace, document: dict[str, Any], text: str) -> None:
    print(json.dumps(document, indent=2, default=str) if args.json else text)


def _progress(args: argparse.Namespace) -> Callable[[str], None]:
    return (lambda message: None) if args.json else (lambda message: print(f"  {message}", file=sys.stderr,
                                                                          flush=True))


def _require_home(home: Home) -> None:
    if not home.exists():
        raise InputError(f"no retention home at {home.root} (create one with `retention init --home {home.root}`)")
    load_settings(home.settings_file)
    load_rules(home.rules_file)


def _store_ready(home: Home) -> None:
    """Before a run starts: refuse a home whose stores do not match its shard count or that lost a store, and wait
    (saying so) while another run holds one."""
    check_shard_layout(home)
    for shard in shard_homes(home):
        refuse_missing_store(shard, with_dagster_runs=True)
        Store(shard).connect().close()


def _run_homes(args: argparse.Namespace, home: Home) -> list[Home]:
    """The stores a run works on: every shard (or the home's one store), or the one shard `--shard` names."""
    homes = shard_homes(home)
    chosen = getattr(args, "shard", None)
    if chosen is None:
        return homes
    if homes[0].shard is None or not 0 <= chosen < len(homes):
        raise InputError(f"--shard {chosen}: this home has {len(homes)} shard(s)"
                         + ("" if homes[0].shard is None else f", 0 to {len(homes) - 1}"))
    return [homes[chosen]]


def _acting_as(home: Home, as_user: str) -> None:
    """Refuse --as-user when settings bind this OS user to other staff ids (`operators:`)."""
    check_operator(load_settings(home.settings_file), as_user)


def cmd_init(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    storage = args.dagster_storage or os.environ.get(DAGSTER_STORAGE_ENV)
    dagster_yaml = None
    if storage:
        from pipelines.runner import check_instance_config

        dagster_yaml = postgres_dagster_yaml(storage, max_concurrent_runs=args.max_concurrent_runs)
        check_instance_config(dagster_yaml)
    elif args.max_concurrent_runs != DEFAULT_MAX_CONCURRENT_RUNS:
        raise InputError("--max-concurrent-runs: only with --dagster-storage (the SQLite instance runs one at a time)")
    created = home.init(dagster_yaml)
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
    _emit(args, {"home": str(home.root), "created": [str(path) for path in created]},
          f"Retention home ready at {home.root}\n"
          f"  drop CRM exports in {home.snapshots_inbox}/<snapshot-id>/ and request files in {home.requests_inbox}/\n"
          f"  then: retention run --home {home.root}" + instance_line)
    return EXIT_OK


def cmd_run(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    _require_home(home)
    _store_ready(home)
    summary = _run_compliance(args, home, as_of)
    _emit(args, summary, _summary_text(summary, home))
    return exit_code(summary["refused_or_failed"])


def _run_compliance(args: argparse.Namespace, home: Home, as_of: datetime) -> dict[str, Any]:
    """One compliance run of the home: of its store, or of each shard in turn (in-process, one after the other).

    The daemon's schedule and sensor run the shards side by side instead, through the instance's run queue.
    """
    homes = _run_homes(args, home)
    if homes[0].shard is None:
        return _run_store(args, homes[0], as_of)
    from pipelines.runner import overall_checks

    summaries = [_run_store(args, shard, as_of) for shard in homes]
    # The home taken whole, after all its shards ran (not after `--shard K`, which leaves the others as they were):
    # its checks join the summary's as overall_<invariant>.
    overall = None if len(homes) < shard_count(home) else overall_checks(
        home, as_of=as_of, echo_progress=not args.json, tags={"retention/command": args.command})
    return combined_run_summary(summaries, [shard.shard_name for shard in homes], _whole_deadlines(home, as_of),
                                overall=overall)


def _whole_deadlines(home: Home, as_of: datetime) -> dict[str, list[dict[str, Any]]]:
    with whole_home(home) as con:
        return deadline_report(con, as_of=as_of)


def _run_store(args: argparse.Namespace, home: Home, as_of: datetime) -> dict[str, Any]:
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
        "requests": _intake_summary(materialization_metadata(result, "request_intake")),
        "checks": {evaluation.check_name: {"passed": evaluation.passed, "message": evaluation.description or ""}
                   for evaluation in result.get_asset_check_evaluations()},
        "report": materialization_metadata(result, "compliance_report").get("markdown"),
        "data_docs": materialization_metadata(result, "retention_invariants").get("data_docs"),
    }
    summary = _with_bulk_actions(summary, home, result.run_id)
    with Store(home).connect(read_only=True) as con:
        summary["deadlines"] = deadline_report(con, as_of=as_of)
    return summary


def _intake_summary(metadata: dict[str, Any]) -> dict[str, Any]:
    """The intake asset's metadata with its counts by status spread out, as `run --json` has always shown them."""
    by_status = metadata.pop("requests_by_status", None) or {}
    files_seen = metadata.pop("files_seen", None)
    return {**({"files_seen": files_seen} if files_seen is not None else {}), **by_status, **metadata}


def _deadline_lines(deadlines: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = []
    for flag, label in (("overdue", "OVERDUE"), ("due_soon", f"due within {DUE_SOON_DAYS} days")):
        for record in deadlines.get(flag, []):
            lines.append(f"  ! request {record['request_id']} ({record['regulation']}, {record['file']}) {label}: "
                         f"due {record['due_at']}")
    return lines


def _with_bulk_actions(summary: dict[str, Any], home: Home, run_id: str) -> dict[str, Any]:
    with Store(home).connect(read_only=True) as con:
        actions = [action for action in reversed(bulk_actions(con)) if action["run_id"] == run_id]
    summary["bulk_actions"] = actions
    summary["refused_or_failed"] = run_problems(
        actions, summary.get("requests", {}).get("quarantined_files", []) or [], summary.get("checks", {}))
    return summary


def _summary_text(summary: dict[str, Any], home: Home) -> str:
    ingest = summary.get("ingest", {})
    lines = [f"Run {summary['run_id']} as of {summary['as_of']} finished in {summary['seconds']}s."]
    snapshots = ingest.get("snapshots_ingested") or []
    if snapshots:
        counts = ingest.get("row_counts", {})
        contacts = sum(count for key, count in counts.items() if key.endswith("/contacts"))
        lines.append(f"  ingested {len(snapshots)} snapshot(s) ({', '.join(snapshots)}): {contacts:,} contacts, "
                     f"{sum(counts.values()):,} rows in all")
    elif ingest:
        lines.append("  no new snapshot in inbox/snapshots")
    for key, label in (("skipped_deleted_contacts", "deleted contacts in the snapshot kept deleted"),
                       ("skipped_suppressed_contacts", "erased people in the snapshot skipped"),
                       ("removed_contacts", "contacts no longer in the snapshot removed from the store")):
        if ingest.get(key):
            lines.append(f"  {ingest[key]:,} {label}")
    if ingest.get("changed_after_ingest_ignored"):
        lines.append(f"  ignored: snapshot folders changed after their ingest: "
                     f"{', '.join(ingest['changed_after_ingest_ignored'])}")
    if ingest.get("out_of_order_ignored"):
        lines.append(f"  ignored: snapshot folders older (by name) than one already ingested: "
                     f"{', '.join(ingest['out_of_order_ignored'])}")
    requests = {k: v for k, v in summary.get("requests", {}).items()
                if k in ("pending", "rejected", "quarantined", "duplicate") and v}
    if requests:
        lines.append("  new requests: " + ", ".join(f"{n} {k}" for k, n in requests.items()))
    lines.extend(_deadline_lines(summary.get("deadlines", {})))
    for action in summary.get("bulk_actions", []):
        counts = action["counts"]
        shown = ", ".join(f"{n:,} {k}" for k, n in counts.items() if k != "total" and n)
        lines.append(f"  {action['kind']} {action['bulk_action_id']} {action['source']}: {action['status']}"
                     + (f" ({shown})" if shown else ""))
    checks = summary.get("checks", {})
    if checks:
        passed = sum(1 for check in checks.values() if check["passed"])
        lines.append(f"  checks: {passed} of {len(checks)} passed (retention invariants and backup verification)")
    for problem in summary["refused_or_failed"]:
        lines.append(f"  ! {problem}")
    if summary.get("report"):
        lines.append(f"  report: {summary['report']}")
    if summary.get("data_docs"):
        lines.append(f"  Data Docs: {summary['data_docs']}")
    for shard in summary.get("shards", []):
        lines.append(f"  {shard['shard']}: run {shard['run_id']} {'succeeded' if shard['success'] else 'FAILED'} "
                     f"in {shard['seconds']}s")
    lines.append(f"  store: {home.store_file}" if not summary.get("shards") else
                 f"  stores: {home.root / 'store'}/shard-0 to shard-{len(summary['shards']) - 1}")
    lines.append(f"  bulk actions: retention status --home {home.root}")
    return "\n".join(lines)


def cmd_demo(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    from compliance import demo_data

    if args.contacts < 1:
        raise InputError("--contacts: must be at least 1")
    if args.locations is not None and args.locations < 1:
        raise InputError("--locations: must be at least 1")
    home.init()
    if args.shards is not None:
        set_shard_count(home, args.shards)
    for shard in shard_homes(home):
        shard.init()
    progress = _progress(args)
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
    summary = _run_compliance(args, home, as_of)
    summary["demo"] = {"snapshot": str(snapshot_dir), "contacts": args.contacts, "seed": args.seed}
    text = (_summary_text(summary, home) +
            f"\n\nDemo home: {home.root}\n"
            f"  snapshot: {snapshot_dir}\n"
            f"  sample requests: {home.requests_inbox}\n"
            f"  rules: {home.rules_file}\n"
            f"  look at a contact: retention show {demo_data.example_contact_id(snapshot_dir)} --home {home.root}\n"
            f"  open the Dagster UI: retention ui --home {home.root}  (then http://127.0.0.1:3000)")
    if summary["refused_or_failed"]:
        text += ("\n\nThe demo's refusals are on purpose: a request by a non-admin (R1) and contacts in active "
                 "campaigns or workflows that a rule may not delete (R11).")
    _emit(args, summary, text)
    return exit_code([], success=summary["success"])


def cmd_show(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    _require_home(home)
    settings = load_settings(home.settings_file)
    with whole_home(home, memory_limit=settings.memory_limit) as con:
        contact = show_contact(con, args.contact_id, restore_window_days=settings.restore_window_days,
                               hasher=KeyedHasher(home.secret()))
    lines = [f"{contact['contact_id']}: {contact['state']}"]
    if contact["state"] == "deleted":
        lines.append(f"  deleted at {contact['deleted_at']}, restorable until {contact['restorable_until']}")
    if contact["state"] == "purged":
        lines.append(f"  deleted at {contact['deleted_at']}, purged at {contact['purged_at']}: permanently removed")
    if contact["restored_at"]:
        lines.append(f"  restored at {contact['restored_at']} (record only: its earlier associated data stays gone)")
    lines.append("  associated: " + ", ".join(f"{k} {v}" for k, v in contact["associated"].items()))
    lines.append("  enrollments: " + ", ".join(f"{k} {v}" for k, v in contact["enrollments"].items()))
    _emit(args, contact, "\n".join(lines))
    return EXIT_OK


def cmd_plan(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    _require_home(home)
    settings = load_settings(home.settings_file)
    check_shard_layout(home)
    actions = []
    for shard in shard_homes(home):
        with Store(shard, memory_limit=settings.memory_limit).connect() as con:
            planned = preview_run(con, shard, as_of=as_of, settings=settings, rules=load_rules(home.rules_file),
                                  progress=_progress(args))
        actions += [action if shard.shard is None else {**action, "shard": shard.shard_name} for action in planned]
    lines = [f"Plan as of {as_of.isoformat()} (nothing changed):"]
    for action in actions:
        draft = " [draft rule: preview only]" if action["preview_only"] else ""
        counts = ", ".join(f"{n} {k}" for k, n in action["counts"].items() if k != "total" and n) or "nothing"
        where = f" [{action['shard']}]" if "shard" in action else ""
        lines.append(f"  {action['kind']} by {action['source']}{draft}{where} ({action['requested_by']}): {counts}")
        for item in action["items"]:
            lines.append(f"    {item['contact_id'] or '-'}  {item['outcome']}"
                         + (f"  ({item['reason']})" if item["reason"] else ""))
    if not actions:
        lines.append("  nothing to do")
    _emit(args, {"as_of": as_of.isoformat(), "bulk_actions": actions}, "\n".join(lines))
    return EXIT_OK


def cmd_delete(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    _require_home(home)
    _acting_as(home, args.as_user)
    if args.confirm != CONFIRMATION_WORD:
        raise InputError(f"--confirm must be exactly {CONFIRMATION_WORD} (got {args.confirm!r}); nothing was deleted")
    filters = bool(args.tag or args.location or args.inactive_days is not None)
    if sum(map(bool, (args.contact, filters, args.all))) != 1:
        raise InputError("give either --contact ID..., or filters (--tag, --location, --inactive-days), or --all")
    if args.inactive_days is not None and args.inactive_days < 0:
        raise InputError("--inactive-days: must be 0 or more")
    _store_ready(home)
    return _run_manual(args, home, as_of, "manual_delete_job", "deletion_plan", lambda shard: {
        "automatic_sources": False, "manual_requested_by": args.as_user,
        "manual_selection_token": _stage(shard, args.contact), "manual_tags": args.tag,
        "manual_location": args.location, "manual_inactive_days": args.inactive_days, "manual_all": args.all})


def cmd_restore(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    _require_home(home)
    _acting_as(home, args.as_user)
    _store_ready(home)
    return _run_manual(args, home, as_of, "manual_restore_job", "applied_restores", lambda shard: {
        "automatic_sources": False, "manual_requested_by": args.as_user,
        "manual_selection_token": _stage(shard, args.contact)})


def _run_manual(args: argparse.Namespace, home: Home, as_of: datetime, job: str, asset: str,
                config: Callable[[Home], dict[str, Any]]) -> int:
    """A manual delete or restore: one run of the job, or one per shard (each acts on the contacts it holds)."""
    from pipelines.runner import execute_job

    summaries = []
    for shard in shard_homes(home):
        started = time.monotonic()
        result = execute_job(shard, job, as_of=as_of, echo_progress=not args.json,
                             tags={"retention/command": args.command},
                             extra_config={"ops": {asset: {"config": config(shard)}}})
        summaries.append(_with_bulk_actions({"run_id": result.run_id, "as_of": as_of.isoformat(),
                                             "success": result.success,
                                             "seconds": round(time.monotonic() - started, 2)}, shard, result.run_id))
    shards = shard_homes(home)
    summary = summaries[0] if shards[0].shard is None else combined_run_summary(
        summaries, [shard.shard_name for shard in shards], {})
    summary.pop("deadlines", None)
    _emit(args, summary, _summary_text(summary, home))
    return exit_code(summary["refused_or_failed"])


def _stage(home: Home, contact_ids: list[str]) -> str | None:
    """Hand the listed ids to the run by token: Dagster keeps run config forever, and ids must go with a purge."""
    if not contact_ids:
        return None
    with Store(home).connect() as con:
        return stage_selection(con, contact_ids)


def cmd_status(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    _require_home(home)
    with whole_home(home) as con:
        actions = bulk_actions(con, args.bulk_action_id)
    if args.bulk_action_id:
        if not actions:
            raise InputError(f"no bulk action {args.bulk_action_id} (see `retention status`)")
        action = actions[0]
        with whole_home(home) as con:
            crm = crm_outcomes(con, args.bulk_action_id)
        for item in action["items"]:
            if item["contact_id"] in crm:
                item["crm"] = crm[item["contact_id"]]
        lines = [_action_line(action)] + [
            f"  {item['contact_id'] or '-'}  {item['outcome']}" + (f"  ({item['reason']})" if item["reason"] else "")
            + (f"  CRM: {item['crm']}" if "crm" in item else "")
            for item in action["items"]]
        _emit(args, action, "\n".join(lines))
        return EXIT_OK
    _emit(args, {"bulk_actions": actions}, "\n".join(map(_action_line, actions)) or "no bulk actions yet")
    return EXIT_OK


def _action_line(action: dict[str, Any]) -> str:
    counts = ", ".join(f"{n:,} {k}" for k, n in action["counts"].items() if n or k == "total")
    return (f"{action['bulk_action_id']}  {action['kind']:<7} {action['status']:<9} {action['created_at']}  "
            f"{action['source']} by {action['requested_by']}: {counts}")


def cmd_requests(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    _require_home(home)
    if args.requests_command == "extend":
        return _extend_request(args, home, as_of)
    with whole_home(home) as con:
        records = request_records(con, as_of=as_of)
    lines = []
    for record in records:
        flag = {"overdue": "  OVERDUE", "due_soon": "  due within 7 days"}.get(record["deadline"] or "", "")
        lines.append(f"{_printable(record['file'])}  {_printable(record['request_id'] or '-')}  "
                     f"{_printable(record['kind'] or '-')}  {_printable(record['regulation'] or '-')}  "
                     f"{record['status']}  due {record['due_at'] or '-'}{flag}"
                     + (f"  ({_printable(record['reason'])})" if record["reason"] else ""))
    overdue, due_soon = (sum(1 for r in records if r["deadline"] == flag) for flag in ("overdue", "due_soon"))
    if overdue or due_soon:
        lines.append(f"{overdue} overdue, {due_soon} due within {DUE_SOON_DAYS} days")
    _emit(args, {"requests": records}, "\n".join(lines) or "no request files seen yet")
    return EXIT_OK


def _printable(text: str) -> str:
    """Text from a request file as one terminal line: control and format characters escaped, never interpreted."""
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")
                   for ch in str(text))


def _extend_request(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    settings = load_settings(home.settings_file)
    _acting_as(home, args.as_user)
    check_shard_layout(home)
    # Every shard holds the request's record: each extends it and audits that in its own chain.
    for shard in shard_homes(home):
        with Store(shard, memory_limit=settings.memory_limit).connect() as con:
            extension = extend_request(con, args.request_id, args.reason, as_of, deadlines=settings.deadlines,
                                       requested_by=args.as_user)
            operator, staff_id = current_operator(), authorize(con, args.as_user).user_id
            anchored_log(con, shard).append("request.extended", as_of, **extension,
                                            requested_by=audited_requester(staff_id, {staff_id}),
                                            operator={"os_user": operator.os_user, "host": operator.host})
    document = {key: value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value
                for key, value in extension.items()}
    _emit(args, document, f"request {args.request_id} ({extension['regulation']}) extended: due "
                          f"{document['due_at']} (was {document['previous_due_at']})")
    return EXIT_OK


def cmd_audit(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    _require_home(home)
    check_shard_layout(home)
    documents, lines = [], []
    # One hash chain per shard, each verified against its own store's anchor.
    for shard in shard_homes(home):
        with Store(shard).connect(read_only=True) as con:
            verification = anchored_log(con, shard).verify()
        documents.append({"ok": verification.ok, "entries": verification.entries, "path": verification.path,
                          "first_bad_entry": verification.first_bad_entry,
                          "anchored_entries": verification.anchored_entries, "reason": verification.reason})
        lines.append(f"audit log {verification.path}: {verification.entries} entries, chain intact"
                     if verification.ok else f"audit log {verification.path}: broken at entry "
                                             f"{verification.first_bad_entry}: {verification.reason}")
    if len(documents) == 1:
        document = documents[0]
    else:
        broken = next((d for d in documents if not d["ok"]), None)
        document = {"ok": broken is None, "entries": sum(d["entries"] for d in documents),
                    "path": (broken or documents[0])["path"],
                    "first_bad_entry": broken["first_bad_entry"] if broken else None,
                    "anchored_entries": sum(d["anchored_entries"] or 0 for d in documents),
                    "reason": broken["reason"] if broken else None, "chains": documents}
    _emit(args, document, "\n".join(lines))
    return EXIT_OK if document["ok"] else EXIT_REFUSED


def cmd_pull(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    _require_home(home)
    crm = load_settings(home.settings_file).crm
    if crm.kind is None:
        raise InputError(f"{home.settings_file}: crm.kind is not set (see README, \"Connecting HighLevel\")")
    if not crm.location_ids:
        raise InputError(f"{home.settings_file}: crm.location_ids: name at least one location to pull")
    with open_client(crm) as client, _pull_progress(args) as progress:
        try:
            result = pull_snapshot(client, home, crm, as_of=as_of, with_associated=args.with_associated,
                                   progress=progress)
        except CrmError as exc:
            print(f"retention: pull failed: {exc} (no snapshot was written)", file=sys.stderr)
            return EXIT_REFUSED
    _emit(args, {"snapshot_id": result.snapshot_id, "folder": str(result.folder), "pages": result.pages,
                 "records": result.records},
          f"pulled snapshot {result.snapshot_id} into {result.folder}: "
          + ", ".join(f"{n:,} {name}" for name, n in result.records.items())
          + f"\n  then: retention run --home {home.root}")
    return EXIT_OK


@contextmanager
def _pull_progress(args: argparse.Namespace) -> Iterator[Callable[[int, int], None] | None]:
    if args.json or not args.with_associated:
        yield None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("notes, tasks and conversations", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def cmd_ui(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    _require_home(home)
    from pipelines.runner import instance_for
    from pipelines.serve import supervise

    instance_for(home).dispose()
    what = ("the daemon (schedule and request sensor)" if args.daemon_only else
            f"the Dagster UI on http://{args.host}:{args.port}" if args.webserver_only else
            f"the Dagster UI on http://{args.host}:{args.port} with the daemon (schedule and request sensor)")
    print(f"retention ui: {what} for {home.root}; SIGTERM or Ctrl-C stops everything", file=sys.stderr, flush=True)
    return supervise(home, host=args.host, port=args.port, webserver=not args.daemon_only,
                     daemon=not args.webserver_only)


def cmd_metrics(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    _require_home(home)
    from compliance.metrics import request_metrics, metrics_lines

    with whole_home(home) as con:
        metrics = request_metrics(con, year=args.year)
    _emit(args, metrics, "\n".join(metrics_lines(metrics)))
    return EXIT_OK


_COMMANDS: dict[str, Callable[[argparse.Namespace, Home, datetime], int]] = {
    "init": cmd_init, "demo": cmd_demo, "run": cmd_run, "plan": cmd_plan, "delete": cmd_delete, "restore": cmd_restore,
    "status": cmd_status, "requests": cmd_requests, "show": cmd_show, "audit": cmd_audit, "ui": cmd_ui,
    "metrics": cmd_metrics,
    "pull": cmd_pull,
}

if __name__ == "__main__":
    sys.exit(main())
