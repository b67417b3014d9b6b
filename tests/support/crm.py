"""Test helpers: a small hand-made CRM (four contacts and their data) written as a snapshot, request files, store
contents, and a deletion pass as the job runs it."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from compliance.home import Home
from compliance.store.connection import Store
from compliance.store.schema import TABLES

AS_OF = "2026-01-01T12:00:00Z"


def base_tables() -> dict[str, list[dict]]:
    """A small CRM: four contacts (c-1 in an active campaign, c-2 in a paused one, c-3 a duplicate person of c-2,
    c-4 unsubscribed), their associated data, and staff with an active admin, an inactive admin and a user."""
    return {
        "contacts": [
            dict(contact_id="c-1", location_id="loc-a", first_name="Ann", last_name="Lee", email="Ann.Lee@Example.com",
                 phone="+15551230001", tags="Lead,VIP", dnd="false", created_at="2024-01-01T00:00:00Z",
                 updated_at="2025-06-01T00:00:00Z", last_activity_at="2025-12-01T00:00:00Z", source="web"),
            dict(contact_id="c-2", location_id="loc-a", first_name="Bob", last_name="Ray", email="bob@example.com",
                 phone="+15551230002", tags="Customer", dnd="false", created_at="2024-02-01T00:00:00Z",
                 updated_at="2025-06-01T00:00:00Z", last_activity_at="2023-01-01T00:00:00Z", source="import"),
            dict(contact_id="c-3", location_id="loc-b", first_name="Bob", last_name="Ray", email=" BOB@example.com ",
                 phone="", tags="", dnd="true", created_at="2024-03-01T00:00:00Z",
                 updated_at="2025-06-01T00:00:00Z", last_activity_at="", source="import"),
            dict(contact_id="c-4", location_id="loc-b", first_name="Cy", last_name="Ng", email="cy@example.org",
                 phone="+44 20 7946 0004", tags="unsubscribed, Newsletter", dnd="false",
                 created_at="2024-04-01T00:00:00Z", updated_at="2025-06-01T00:00:00Z",
                 last_activity_at="2025-11-01T00:00:00Z", source="web"),
        ],
        "conversations": [
            dict(conversation_id="conv-1", contact_id="c-1", channel="sms", last_message_at="2025-12-01T00:00:00Z",
                 last_message_body="Hi Ann"),
            dict(conversation_id="conv-2", contact_id="c-1", channel="email", last_message_at="2025-12-02T00:00:00Z",
                 last_message_body="=HYPERLINK(\"http://x\")"),
            dict(conversation_id="conv-3", contact_id="c-2", channel="sms", last_message_at="2025-10-01T00:00:00Z",
                 last_message_body="Hello Bob"),
        ],
        "notes": [
            dict(note_id="n-1", contact_id="c-1", body="Called Ann", created_at="2025-01-01T00:00:00Z"),
            dict(note_id="n-2", contact_id="c-2", body="Bob prefers email", created_at="2025-01-02T00:00:00Z"),
            dict(note_id="n-3", contact_id="c-4", body="Asked to unsubscribe", created_at="2025-01-03T00:00:00Z"),
        ],
        "tasks": [
            dict(task_id="t-1", contact_id="c-1", title="Follow up", status="open", due_at="2026-02-01T00:00:00Z"),
        ],
        "activities": [
            dict(activity_id="a-1", contact_id="c-1", activity_type="email_opened", occurred_at="2025-12-01T00:00:00Z"),
            dict(activity_id="a-2", contact_id="c-1", activity_type="page_view", occurred_at="2025-12-02T00:00:00Z"),
            dict(activity_id="a-3", contact_id="c-2", activity_type="call", occurred_at="2023-01-01T00:00:00Z"),
            dict(activity_id="a-4", contact_id="c-3", activity_type="call", occurred_at="2023-01-01T00:00:00Z"),
        ],
        "campaigns": [
            dict(campaign_id="camp-1", name="Winter sale", status="active"),
            dict(campaign_id="camp-2", name="Autumn", status="paused"),
        ],
        "campaign_enrollments": [
            dict(campaign_id="camp-1", contact_id="c-1", enrolled_at="2025-11-01T00:00:00Z"),
            dict(campaign_id="camp-2", contact_id="c-2", enrolled_at="2025-09-01T00:00:00Z"),
        ],
        "workflows": [
            dict(workflow_id="wf-1", name="Onboarding", status="published"),
            dict(workflow_id="wf-2", name="Nurture", status="draft"),
        ],
        "workflow_enrollments": [
            dict(workflow_id="wf-1", contact_id="c-3", status="active"),
            dict(workflow_id="wf-1", contact_id="c-2", status="finished"),
        ],
        "lists": [dict(list_id="l-1", name="Newsletter"), dict(list_id="l-2", name="VIP")],
        "list_memberships": [
            dict(list_id="l-1", contact_id="c-1"), dict(list_id="l-2", contact_id="c-1"),
            dict(list_id="l-1", contact_id="c-4"),
        ],
        "staff": [
            dict(user_id="u-admin-1", email="Dana.Admin@crm.example", name="Dana", role="admin", active="true"),
            dict(user_id="u-admin-2", email="old.admin@crm.example", name="Old", role="admin", active="false"),
            dict(user_id="u-user-1", email="sam@crm.example", name="Sam", role="user", active="true"),
        ],
    }


def write_snapshot(folder: Path, tables: dict[str, list[dict]] | None = None, fmt: str = "csv") -> Path:
    """Write the tables as one snapshot folder, in CSV or (through DuckDB) Parquet."""
    tables = tables if tables is not None else base_tables()
    folder.mkdir(parents=True)
    for spec in TABLES:
        rows = tables[spec.name]
        columns = list(rows[0]) if rows else list(spec.columns)
        csv_path = folder / f"{spec.name}.csv"
        with csv_path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        if fmt == "parquet":
            with duckdb.connect() as con:
                con.execute(f"COPY (SELECT * FROM read_csv('{csv_path}', header = true, all_varchar = true)) "
                            f"TO '{folder / f'{spec.name}.parquet'}' (FORMAT parquet)")
            csv_path.unlink()
    return folder


def store_contents(con, exclude_columns: tuple[str, ...] = ()) -> dict[str, list[tuple]]:
    """Every table of the store with its rows in a stable order, to prove a step changed nothing (or the same)."""
    tables = [row[0] for row in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
        "AND table_catalog = current_database() ORDER BY table_name").fetchall()]
    contents = {}
    for table in tables:
        columns = [row[0] for row in con.execute(f"DESCRIBE {table}").fetchall() if row[0] not in exclude_columns]
        rows = con.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
        contents[table] = sorted(rows, key=repr)
    return contents


def write_request(home: Home, name: str, **fields) -> Path:
    """Drop one JSON request file in inbox/requests; by default a confirmed GDPR erasure of c-1 by u-admin-1.

    A field given as None is left out of the file."""
    document = {"request_id": name, "kind": "erasure", "regulation": "gdpr", "requested_by": "u-admin-1",
                "received_at": "2025-12-20T09:00:00Z", "confirm": "DELETE", "subjects": [{"contact_id": "c-1"}]}
    document.update(fields)
    path = home.requests_inbox / f"{name}.json"
    path.write_text(json.dumps({key: value for key, value in document.items() if value is not None}))
    return path


@dataclass
class DeletionRun:
    """What each step of one deletion pass (as the compliance job runs it) returned."""

    intake: object
    plan: object
    backups: dict
    applied: list
    audited: int

    def action(self, source: str):
        """The applied bulk action of one source, e.g. 'request r1.json' or 'rule remove-unsubscribed'."""
        [found] = [action for action in self.applied if action.source == source]
        return found


def run_deletion(con, home: Home, *, as_of: str | datetime = AS_OF, settings=None, rules=None, manual=None,
                 include_requests: bool = True) -> DeletionRun:
    """Ingest, take requests, plan, back up, apply, settle the request files and audit: the job's own steps, in order.

    `rules` replaces rules.yaml (default: no rule); the plan stays in the store for the test to read.
    """
    from compliance import steps
    from compliance.clock import parse_as_of
    from compliance.settings import Rules, load_settings

    ctx = steps.RunContext(connect=lambda: con, home=home,
                           as_of=parse_as_of(as_of) if isinstance(as_of, str) else as_of,
                           settings=settings if settings is not None else load_settings(home.settings_file),
                           run_id="test-run")
    steps.ingest(ctx)
    intake = steps.intake(ctx).result
    plan = steps.plan_deletions(ctx, automatic_sources=include_requests, manual=manual,
                                rules=rules if rules is not None else Rules())
    backups = steps.back_up_planned(ctx)
    applied = steps.apply_planned_deletions(ctx, forget_plan=False)
    return DeletionRun(intake, plan, backups, applied.actions, applied.audited)


def copy_home(template: Home, root: Path) -> Home:
    """A copy of a prepared home at root; the backup paths its store records are re-pointed at the copy, so that a
    purge in the copy never removes the template's backups."""
    shutil.copytree(template.root, root)
    home = Home(root)
    with Store(home).connect() as connection:
        connection.execute("UPDATE backups SET path = replace(path, ?, ?)", [str(template.root), str(home.root)])
    return home
