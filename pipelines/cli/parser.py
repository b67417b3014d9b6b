"""The `retention` argument parser: every command, its options and their help (PRODUCT.md section 3)."""

from __future__ import annotations

import argparse
from typing import NoReturn

from compliance.evidence.verdict import EXIT_BAD_INPUT
from pipelines.instance import DAGSTER_STORAGE_ENV, DEFAULT_MAX_CONCURRENT_RUNS


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"retention: error: {message}\n")


def common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", help="the retention home (default: $RETENTION_HOME, else ./retention_home)")
    parser.add_argument("--as-of", help="the run's clock, ISO 8601 (default: now, UTC)")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout and nothing else")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="retention", description="Delete CRM contacts provably, restore within the window, "
                                                   "purge after it, and prove it.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    init = commands.add_parser("init", help="create the home with default settings, rules and inbox folders")
    common(init)
    init.add_argument("--dagster-storage", metavar="URL",
                      help="keep the Dagster instance in PostgreSQL: postgresql://user@host:port/db, or env:NAME to "
                           f"read the URL from that variable (default: ${DAGSTER_STORAGE_ENV}, else SQLite in the "
                           "home)")
    init.add_argument("--max-concurrent-runs", type=int, default=DEFAULT_MAX_CONCURRENT_RUNS, metavar="N",
                      help="with --dagster-storage: runs the queue runs at once, one per store "
                           f"(default {DEFAULT_MAX_CONCURRENT_RUNS})")
    init.add_argument("--shards", type=int, metavar="N",
                      help="location shards: N DuckDB stores written in parallel, a location's contacts in one "
                           "(settings.yaml `shards`, default 1; fixed once the home holds data)")
    demo = commands.add_parser("demo", help="make a synthetic CRM snapshot and sample requests, then run")
    common(demo)
    demo.add_argument("--contacts", type=int, default=10_000, help="contacts to generate (default 10,000)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (same seed, same data)")
    demo.add_argument("--format", choices=("parquet", "csv", "highlevel"), default="parquet",
                      help="snapshot format: native parquet or csv files, or a HighLevel API export")
    demo.add_argument("--locations", type=int, metavar="L",
                      help="spread the contacts over L locations (default: the demo's five named ones)")
    demo.add_argument("--shards", type=int, metavar="N", help="a new demo home of N location shards (default 1)")
    run = commands.add_parser("run", help="one compliance run")
    common(run)
    run.add_argument("--accept-shrink", action="store_true",
                     help="load a snapshot even when it drops more contacts than max_contact_drop allows")
    run.add_argument("--shard", type=int, metavar="K",
                     help="in a home of shards: run shard K only (default: every shard, one after the other)")
    common(commands.add_parser("plan", help="the decisions of a run, changing nothing"))
    delete = commands.add_parser("delete", help="a manual bulk delete of listed contacts or of a smart list")
    common(delete)
    delete.add_argument("--contact", nargs="+", default=[], metavar="ID", help="contact ids to delete")
    delete.add_argument("--tag", nargs="+", default=[], metavar="T", help="contacts carrying any of these tags")
    delete.add_argument("--location", help="contacts of this location")
    delete.add_argument("--inactive-days", type=int, help="contacts with no activity for N days")
    delete.add_argument("--all", action="store_true", help="every active contact")
    delete.add_argument("--as-user", required=True, help="the staff user_id or email doing it (an active admin)")
    delete.add_argument("--confirm", required=True, help="must be exactly DELETE")
    restore = commands.add_parser("restore", help="restore deleted contacts inside the window (record only)")
    common(restore)
    restore.add_argument("--contact", nargs="+", required=True, metavar="ID", help="contact ids to restore")
    restore.add_argument("--as-user", required=True, help="the staff user_id or email doing it (an active admin)")
    status = commands.add_parser("status", help="the bulk actions, or one with its items")
    common(status)
    status.add_argument("bulk_action_id", nargs="?")
    requests_parser = commands.add_parser("requests",
                                          help="every request file seen, with status, reason and due date")
    common(requests_parser)
    requests_commands = requests_parser.add_subparsers(dest="requests_command", parser_class=_Parser)
    extend = requests_commands.add_parser("extend", help="extend an open GDPR/CCPA request's deadline, once")
    common(extend)
    extend.add_argument("request_id")
    extend.add_argument("--reason", required=True, help="why, as told to the requester (no emails or phones)")
    extend.add_argument("--as-user", required=True, help="the staff user_id or email recording it (an active admin)")
    audit = commands.add_parser("audit", help="the audit trail")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, parser_class=_Parser)
    common(audit_commands.add_parser("verify", help="check the audit log's hash chain"))
    show = commands.add_parser("show", help="one contact's state")
    common(show)
    show.add_argument("contact_id")
    pull = commands.add_parser("pull", help="pull a snapshot from the CRM's API (settings: crm) into inbox/snapshots")
    common(pull)
    pull.add_argument("--with-associated", action="store_true",
                      help="also pull each contact's notes, tasks and conversations (one request each)")
    ui = commands.add_parser("ui", help="serve the Dagster UI and daemon on this home (stopped together)")
    common(ui)
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    only = ui.add_mutually_exclusive_group()
    only.add_argument("--webserver-only", action="store_true", help="the UI without the daemon")
    only.add_argument("--daemon-only", action="store_true", help="the daemon (schedule, sensor) without the UI")
    metrics = commands.add_parser("metrics", help="the CCPA regs 7102(a) request metrics of a calendar year")
    common(metrics)
    metrics.add_argument("--year", type=int, required=True, help="the calendar year, e.g. 2026")
    return parser
