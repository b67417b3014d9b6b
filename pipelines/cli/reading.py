"""The commands that read (show, plan, status, requests, audit verify, metrics) and `ui`."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from compliance.contacts import show_contact
from compliance.crm.push import crm_outcomes
from compliance.errors import InputError
from compliance.evidence.anchor import anchored_log
from compliance.evidence.verdict import EXIT_OK, EXIT_REFUSED
from compliance.home import Home
from compliance.preview import preview_run
from compliance.requests.records import DUE_SOON_DAYS, bulk_actions, request_records
from compliance.settings import load_rules, load_settings
from compliance.shards.placement import check_shard_layout, shard_homes
from compliance.shards.views import whole_home
from compliance.store.connection import Store
from compliance.store.keys import KeyedHasher
from pipelines.cli import writing
from pipelines.cli.common import emit, printable, progress_printer, require_home
from resources.lanes import run_lanes


def cmd_show(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    require_home(home)
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
    emit(args, contact, "\n".join(lines))
    return EXIT_OK


def cmd_plan(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    require_home(home)
    settings = load_settings(home.settings_file)
    check_shard_layout(home)
    actions = []
    for lane in run_lanes(home):
        with Store(lane.home, memory_limit=settings.memory_limit).connect() as con:
            planned = preview_run(con, lane.home, as_of=as_of, settings=settings, rules=load_rules(home.rules_file),
                                  progress=progress_printer(args))
        actions += [lane.label(action) for action in planned]
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
    emit(args, {"as_of": as_of.isoformat(), "bulk_actions": actions}, "\n".join(lines))
    return EXIT_OK


def cmd_status(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    require_home(home)
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
        lines = [action_line(action)] + [
            f"  {item['contact_id'] or '-'}  {item['outcome']}" + (f"  ({item['reason']})" if item["reason"] else "")
            + (f"  CRM: {item['crm']}" if "crm" in item else "")
            for item in action["items"]]
        emit(args, action, "\n".join(lines))
        return EXIT_OK
    emit(args, {"bulk_actions": actions}, "\n".join(map(action_line, actions)) or "no bulk actions yet")
    return EXIT_OK


def action_line(action: dict[str, Any]) -> str:
    counts = ", ".join(f"{n:,} {k}" for k, n in action["counts"].items() if n or k == "total")
    return (f"{action['bulk_action_id']}  {action['kind']:<7} {action['status']:<9} {action['created_at']}  "
            f"{action['source']} by {action['requested_by']}: {counts}")


def cmd_requests(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    require_home(home)
    if args.requests_command == "extend":
        return writing.cmd_requests_extend(args, home, as_of)
    with whole_home(home) as con:
        records = request_records(con, as_of=as_of)
    lines = []
    for record in records:
        flag = {"overdue": "  OVERDUE", "due_soon": "  due within 7 days"}.get(record["deadline"] or "", "")
        lines.append(f"{printable(record['file'])}  {printable(record['request_id'] or '-')}  "
                     f"{printable(record['kind'] or '-')}  {printable(record['regulation'] or '-')}  "
                     f"{record['status']}  due {record['due_at'] or '-'}{flag}"
                     + (f"  ({printable(record['reason'])})" if record["reason"] else ""))
    overdue, due_soon = (sum(1 for r in records if r["deadline"] == flag) for flag in ("overdue", "due_soon"))
    if overdue or due_soon:
        lines.append(f"{overdue} overdue, {due_soon} due within {DUE_SOON_DAYS} days")
    emit(args, {"requests": records}, "\n".join(lines) or "no request files seen yet")
    return EXIT_OK


def cmd_audit(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    require_home(home)
    check_shard_layout(home)
    documents: list[dict[str, Any]] = []
    lines: list[str] = []
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
    emit(args, document, "\n".join(lines))
    return EXIT_OK if document["ok"] else EXIT_REFUSED


def cmd_ui(args: argparse.Namespace, home: Home, as_of: datetime) -> int:
    require_home(home)
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
    require_home(home)
    from compliance.evidence.metrics import metrics_lines, request_metrics

    with whole_home(home) as con:
        metrics = request_metrics(con, year=args.year)
    emit(args, metrics, "\n".join(metrics_lines(metrics)))
    return EXIT_OK
