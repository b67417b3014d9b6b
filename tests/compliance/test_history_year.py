"""A simulated year of runs: the report's history charts, §7102 metrics recomputed, offline HTML, no personal data."""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from compliance.deletion import ManualSelection, apply_deletions, back_up, build_plan
from compliance.evidence.history import CHARTS, DAYS_LEFT_BUCKETS, SOURCE_GROUPS, build_history
from compliance.evidence.metrics import request_metrics
from compliance.evidence.report import write_report
from compliance.home import Home
from compliance.invariants import InvariantSummary
from compliance.purge import purge
from compliance.requests.intake import take_requests
from compliance.requests.records import bulk_actions, request_records
from compliance.restore import apply_restores, plan_restores
from compliance.settings import load_rules, load_settings
from compliance.snapshots.ingest import ingest_snapshots
from compliance.store.connection import Store
from compliance.store.keys import KeyedHasher
from demo_crm import generator as demo_data
from support.cli import run_main

START = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
DAYS = 365
CONTACTS = 300
RUN_EVERY_DAYS = 7
REQUEST_EVERY_DAYS = 6
# Every LATE_EVERY-th request reaches the privacy team LATE_BY_DAYS after the person sent it: answered late.
LATE_EVERY, LATE_BY_DAYS = 10, 50
DENIED_EVERY = 12
RESTORE_DAYS = (40, 130, 250)
MANUAL_DAYS = (100, 200)
CHROMIUM = "/usr/bin/chromium"
SCREENSHOT_COPY = "RETENTION_REPORT_SCREENSHOT"


@dataclass
class Year:
    """The home after the simulated year, the report written at its end, and what the simulation sent."""

    home: Home
    report_html: Path
    report_md: Path
    end: datetime
    late_request_ids: list[str]
    personal_values: list[str]


def _drop(home: Home, request_id: str, **fields) -> None:
    document = {"request_id": request_id, "kind": "erasure", "requested_by": "u-admin-1", "confirm": "DELETE",
                **fields}
    (home.requests_inbox / f"{request_id}.json").write_text(json.dumps(document))


def _run(con: duckdb.DuckDBPyConnection, home: Home, as_of: datetime, run_id: str,
         manual: ManualSelection | None = None) -> None:
    """One daily run of the compliance job's domain steps, in the assets' order."""
    settings, hasher = load_settings(home.settings_file), KeyedHasher(home.secret())
    ingest_snapshots(con, home, as_of=as_of)
    take_requests(con, home, as_of=as_of, settings=settings)
    build_plan(con, hasher=hasher, settings=settings, rules=load_rules(home.rules_file), as_of=as_of, manual=manual)
    back_up(con, home, settings)
    apply_deletions(con, hasher=hasher, settings=settings, as_of=as_of, run_id=run_id)
    plan_restores(con, hasher=hasher, settings=settings, as_of=as_of)
    apply_restores(con, hasher=hasher, as_of=as_of, run_id=run_id)
    purge(con, home, hasher=hasher, settings=settings, as_of=as_of, run_id=run_id)


def simulate_year(root: Path) -> Year:
    """Drive the domain's run steps over 365 days with the clock moved (not 365 Dagster runs).

    A request arrives every REQUEST_EVERY_DAYS days (GDPR, CCPA and internal in turn); every LATE_EVERY-th, from
    the first, reaches the team LATE_BY_DAYS after its receipt, so it is answered late; every DENIED_EVERY-th comes
    from an inactive admin and is denied. A published rule, two manual deletes and three restore requests add the
    other sources; the compliance run happens weekly, and the year ends with the last requests taken in but open.
    """
    home = Home(root / "home")
    home.init()
    snapshot = home.snapshots_inbox / "2026-01-01"
    demo_data.generate_snapshot(snapshot, contacts=CONTACTS, seed=11, as_of=START)
    home.rules_file.write_text(demo_data.SAMPLE_RULES_YAML)
    # One backup format keeps a year of weekly runs quick; the history does not depend on the format.
    home.settings_file.write_text(home.settings_file.read_text().replace("backup_formats: [csv, parquet]",
                                                                         "backup_formats: [parquet]"))
    with duckdb.connect() as scratch:
        people = scratch.execute(f"SELECT contact_id, email, phone, first_name || ' ' || last_name "
                                 f"FROM '{snapshot}/contacts.parquet' ORDER BY contact_id").fetchall()
    contact_ids = [row[0] for row in people]
    personal = [value for row in people for value in row[1:] if value and len(value) > 5]
    late, number, deleted_by_request = [], 0, []
    with Store(home).connect() as con:
        for day in range(DAYS):
            as_of = START + timedelta(days=day)
            if day % REQUEST_EVERY_DAYS == 0:
                number += 1
                regulation = ("gdpr", "ccpa", "internal")[number % 3]
                request_id = f"{regulation.upper()}-{number:04d}"
                received = as_of - timedelta(hours=5)
                if number % LATE_EVERY == 1:
                    received -= timedelta(days=LATE_BY_DAYS)
                    late.append(request_id)
                subject = contact_ids[(number * 7) % len(contact_ids)]
                _drop(home, request_id, regulation=regulation, received_at=received.isoformat(),
                      requested_by="u-admin-2" if number % DENIED_EVERY == 0 else "u-admin-1",
                      subjects=[{"contact_id": subject}])
                deleted_by_request.append((day, subject))
            if day in RESTORE_DAYS:
                restored = next(s for d, s in reversed(deleted_by_request) if d <= day - 10)
                _drop(home, f"RESTORE-{day:03d}", kind="restore", received_at=as_of.isoformat(),
                      subjects=[{"contact_id": restored}], confirm=None)
            if day % RUN_EVERY_DAYS == 0 or day in MANUAL_DAYS:
                manual = (ManualSelection(requested_by="u-admin-1", contact_ids=tuple(contact_ids[-day // 20:]))
                          if day in MANUAL_DAYS else None)
                _run(con, home, as_of, f"run-{day:03d}", manual)
        end = START + timedelta(days=DAYS - 1, hours=20)
        open_requests = (("GDPR-OPEN-1", end - timedelta(hours=1)), ("CCPA-OPEN-2", end - timedelta(days=40)))
        for request_id, received in open_requests:
            _drop(home, request_id, regulation=request_id[:4].lower(), received_at=received.isoformat(),
                  subjects=[{"contact_id": contact_ids[0]}])
        take_requests(con, home, as_of=end, settings=load_settings(home.settings_file))
        # The invariants have their own tests; judging them here would only add Great Expectations' start-up.
        report = write_report(con, home, run_id="run-year-end", as_of=end, invariants=InvariantSummary((), None))
    return Year(home, report.html, report.markdown, end, late, personal)


@pytest.fixture(scope="module")
def year(tmp_path_factory) -> Year:
    return simulate_year(tmp_path_factory.mktemp("year"))


def test_the_report_holds_every_history_chart_as_inline_svg_and_links_the_same_files(year):
    page, markdown = year.report_html.read_text(), year.report_md.read_text()

    for name, title in CHARTS.items():
        svg = year.report_html.parent / f"history-{name}.svg"
        assert svg.is_file(), name
        assert f"![{title}](history-{name}.svg)" in markdown
        assert f'<figure aria-label="{title}"><svg' in page, name
    assert page.count("<svg") == len(CHARTS)
    assert "nothing recorded yet" not in page
    assert "<text" not in page, "chart text is drawn as paths, so no font is needed"
    assert "<img" not in page and "<metadata" not in page
    assert [ref for ref in re.findall(r'(?:href|src)="([^"#][^"]*)"', page) if not ref.startswith("file://")] == []


def _recomputed_metrics(year: Year) -> dict[tuple[str, str], dict]:
    """The §7102 numbers for 2026 from the request records and bulk actions, computed here in Python."""
    with Store(year.home).connect(read_only=True) as con:
        records = request_records(con, as_of=year.end)
        answered_at = {a["bulk_action_id"]: datetime.fromisoformat(a["created_at"]) for a in bulk_actions(con)}
    rows: dict[tuple[str, str], dict] = {}
    for record in records:
        received = datetime.fromisoformat(record["received_at"]) if record["received_at"] else None
        if record["status"] in ("quarantined", "duplicate") or received is None or received.year != 2026:
            continue
        row = rows.setdefault((record["kind"], record["regulation"]),
                              {"received": 0, "applied": 0, "rejected": 0, "days": []})
        row["received"] += 1
        if record["status"] in ("applied", "rejected"):
            row[record["status"]] += 1
            row["days"].append((answered_at[record["bulk_action_id"]] - received).total_seconds() / 86400)
    return rows


def test_the_metrics_command_gives_the_numbers_recomputed_from_the_request_records(year):
    result = run_main(["metrics", "--year", "2026", "--json"], cwd=year.home.root.parent,
                      env={"RETENTION_HOME": str(year.home.root)})
    assert result.returncode == 0, result.stderr
    shown = {(row["kind"], row["regulation"]): row for row in json.loads(result.stdout)["rows"]}
    expected = _recomputed_metrics(year)

    assert set(shown) == set(expected) == {("erasure", "gdpr"), ("erasure", "ccpa"), ("erasure", "internal"),
                                            ("restore", "internal")}
    for key, row in expected.items():
        assert shown[key]["received"] == row["received"]
        assert shown[key]["complied_in_whole_or_in_part"] == row["applied"]
        assert shown[key]["denied"] == row["rejected"]
        assert shown[key]["open"] == row["received"] - row["applied"] - row["rejected"]
        assert shown[key]["median_days_to_respond"] == pytest.approx(statistics.median(row["days"]), abs=0.006)
        assert shown[key]["mean_days_to_respond"] == pytest.approx(statistics.mean(row["days"]), abs=0.006)
    denied = sum(row["denied"] for row in shown.values())
    assert denied >= 5 and shown[("erasure", "gdpr")]["denied_reasons"].get("requester is an inactive admin", 0) > 0
    late_days = [days for row in expected.values() for days in row["days"] if days > 45]
    with Store(year.home).connect(read_only=True) as con:
        records = {r["request_id"]: r for r in request_records(con, as_of=year.end)}
    # A late internal erasure whose person is in an active campaign is still open, waiting until nothing blocks it.
    late_waiting = [rid for rid in year.late_request_ids if records[rid]["status"] == "pending"]
    assert all(records[rid]["reason"].startswith("waiting: ") for rid in late_waiting)
    assert len(late_days) + len(late_waiting) >= 5, "the late requests are answered past the CCPA period, or waiting"
    assert sum(row["open"] for row in shown.values()) >= 1


def test_a_late_request_received_the_year_before_is_counted_in_that_year_only(year):
    with Store(year.home).connect(read_only=True) as con:
        earlier = request_metrics(con, year=2025)
        records = {r["request_id"]: r for r in request_records(con, as_of=year.end)}
    received_2025 = [rid for rid in year.late_request_ids if records[rid]["received_at"].startswith("2025")]

    assert received_2025, "the first late request was received in December 2025"
    assert sum(row["received"] for row in earlier["rows"]) == len(received_2025)


def test_the_history_series_carry_only_dates_counts_and_fixed_labels(year):
    with Store(year.home).connect(read_only=True) as con:
        history = build_history(con, as_of=year.end)
        metrics = request_metrics(con, year=2026)

    assert {group for _, group, _ in history.deletions_by_day} == set(SOURCE_GROUPS)
    assert {kind for _, kind, _ in history.restores_purges_by_day} == {"restored", "purged"}
    assert [bucket for bucket, _ in history.open_by_days_left] == list(DAYS_LEFT_BUCKETS)
    assert all(isinstance(day, date) and isinstance(n, int) for day, _, n in history.deletions_by_day)
    assert history.backups_by_day[-1][0] == year.end.date() and max(row[1] for row in history.backups_by_day) > 1
    assert history.backup_bytes_held > 0
    assert max(row[3] for row in history.backups_by_day) > 0, "bytes held are recorded with each backup"
    strings = {value for row in metrics["rows"] for key, value in row.items() if isinstance(value, str)}
    strings |= {reason for row in metrics["rows"] for reason in row["denied_reasons"]}
    assert strings <= {"erasure", "restore", "gdpr", "ccpa", "internal", "requester is an inactive admin"}


def test_no_email_phone_or_name_of_a_contact_is_in_the_report_or_its_charts(year):
    texts = [path.read_text().lower() for path in year.report_html.parent.iterdir() if path.is_file()]

    assert len(texts) >= len(CHARTS) + 2
    assert [value for value in year.personal_values if any(value.lower() in text for text in texts)] == []


@pytest.mark.ui
def test_the_report_opens_offline_in_headless_chromium_without_a_network_request(year, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("request", lambda request: requested.append(request.url))
            page.goto(year.report_html.as_uri(), wait_until="load")
            drawn = page.locator("figure svg").count()
            widths = page.eval_on_selector_all("figure svg", "svgs => svgs.map(s => s.getBoundingClientRect().width)")
            shot = tmp_path / "report-history.png"
            page.locator("h2", has_text="Request metrics").scroll_into_view_if_needed()
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()

    assert drawn == len(CHARTS) and min(widths) > 400
    assert requested and all(url.startswith(("file://", "data:")) for url in requested), requested
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    if os.environ.get(SCREENSHOT_COPY):
        shutil.copyfile(shot, os.environ[SCREENSHOT_COPY])
