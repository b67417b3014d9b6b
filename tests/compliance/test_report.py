"""The compliance report: Markdown and HTML from the store, its sections, failures, deadlines, no personal data."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from compliance.clock import parse_as_of
from compliance.deletion import apply_deletions, back_up, build_plan
from compliance.evidence.report import load_invariants, run_folder, save_invariants, write_report
from compliance.invariants import (
    DESCRIPTIONS,
    INVARIANTS,
    NO_ORPHANED_ASSOCIATED_DATA,
    InvariantResult,
    InvariantSummary,
)
from compliance.requests.intake import settle_request_files, take_requests
from compliance.settings import Rules, load_settings
from compliance.store.keys import KeyedHasher
from support.crm import AS_OF, base_tables, write_request

RUN_ID = "0f1e2d3c-run-of-this-report"
CLOCK = parse_as_of(AS_OF)
# A file name is the user's to choose; the report must show it as text, never as markup.
ODD_REQUEST = "gdpr<b>-c4"


def summary(failed: str | None = None, docs: Path | None = None) -> InvariantSummary:
    results = []
    for name in INVARIANTS:
        if name == failed:
            results.append(InvariantResult(name, DESCRIPTIONS[name], False, 1, ("notes:n-3",),
                                           "1 associated row of deleted or purged contacts is still in the store: "
                                           "1 in notes (notes:n-3)"))
        else:
            results.append(InvariantResult(name, DESCRIPTIONS[name], True, 0, (), f"{name} holds"))
    return InvariantSummary(tuple(results), docs)


def personal_values() -> list[str]:
    values = []
    for contact in base_tables()["contacts"]:
        if contact["email"].strip():
            values.append(contact["email"].strip().lower())
        digits = re.sub(r"\D", "", contact["phone"])
        if digits:
            values += [contact["phone"], digits]
    return values


class _Tags(HTMLParser):
    """Counts opened and closed tags, to tell a well-formed page from a broken one."""

    VOID = {"meta", "br", "hr", "img", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.seen: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.seen.append(tag)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


@pytest.fixture
def reported(crm, con):
    """c-4 erased by email by this run's request; another request left pending long past its due date."""
    home = crm
    settings = load_settings(home.settings_file)
    write_request(home, ODD_REQUEST, subjects=[{"email": "cy@example.org"}])
    take_requests(con, home, as_of=CLOCK, settings=settings)
    build_plan(con, hasher=KeyedHasher(home.secret()), settings=settings, rules=Rules(), as_of=CLOCK,
               include_requests=True)
    back_up(con, home, settings)
    [action] = apply_deletions(con, hasher=KeyedHasher(home.secret()), settings=settings, as_of=CLOCK, run_id=RUN_ID)
    settle_request_files(con, home)
    # Received on 1 October: GDPR's one month ran out on 1 November, two months before this report.
    write_request(home, "late", received_at="2025-10-01T09:00:00Z", subjects=[{"contact_id": "c-2"}])
    take_requests(con, home, as_of=CLOCK, settings=settings)
    docs = home.reports_dir / "data_docs" / "index.html"
    report = write_report(con, home, run_id=RUN_ID, as_of=CLOCK,
                          invariants=summary(failed=NO_ORPHANED_ASSOCIATED_DATA, docs=docs))
    return home, report, action


def test_markdown_html_and_latest_are_written_in_the_run_folder(reported):
    home, report, _ = reported

    assert report.markdown == run_folder(home, run_id=RUN_ID, as_of=CLOCK) / "report.md"
    assert report.html == report.markdown.with_name("report.html")
    assert report.latest == home.reports_dir / "latest.md"
    assert report.markdown.read_text() == report.latest.read_text()
    assert report.markdown.read_text().startswith(f"# Compliance report — run {RUN_ID}\n")


def test_the_report_has_every_section_with_this_runs_bulk_action_and_backup(reported):
    _, report, action = reported
    markdown, page = report.markdown.read_text(), report.html.read_text()

    for section in ("Ingested", "Requests", "Bulk actions", "Backups", "Invariants"):
        assert f"\n## {section}\n" in markdown
        assert f"<h2>{section}</h2>" in page
    assert "| s1 | 31 | 4 | 0 | 0 |" in markdown
    # Markdown cells are escaped: the UI renders the report as Markdown.
    odd = ODD_REQUEST.replace("<", "&lt;")
    assert f"| {action.bulk_action_id} | delete | request {odd}.json | completed | 1 | 1 |" in markdown
    assert f"| {action.bulk_action_id} | 1 | " in markdown
    assert "| applied | 1 |" in markdown and "| pending | 1 |" in markdown
    assert "As of 2026-01-01T12:00:00+00:00." in markdown


def test_a_failed_invariant_is_marked_failed_with_its_message(reported):
    _, report, _ = reported
    markdown, page = report.markdown.read_text(), report.html.read_text()

    assert "Invariants: 8 of 9 passed." in markdown
    assert (f"| {NO_ORPHANED_ASSOCIATED_DATA} | FAILED | 1 | 1 associated row of deleted or purged contacts is "
            "still in the store: 1 in notes (notes:n-3) |") in markdown
    assert markdown.count("| FAILED |") == 1 and markdown.count("| passed | 0 |") == 8
    assert f'<tr class="failed"><td>{NO_ORPHANED_ASSOCIATED_DATA}</td><td>FAILED</td>' in page
    assert page.count('<tr class="failed">') == 1


def test_the_deadlines_section_lists_the_overdue_request(reported):
    _, report, _ = reported
    markdown, page = report.markdown.read_text(), report.html.read_text()

    assert "Due within 7 days or overdue:" in markdown
    assert "| late.json | late | gdpr | 2025-11-01T09:00:00Z | overdue |" in markdown
    assert "<td>late.json</td><td>late</td><td>gdpr</td><td>2025-11-01T09:00:00Z</td><td>overdue</td>" in page
    assert f"{ODD_REQUEST}.json | " not in markdown.split("Due within 7 days or overdue:")[1].split("## ")[0]


def test_the_html_is_a_well_formed_page_that_escapes_what_came_from_files(reported):
    home, report, _ = reported
    page = report.html.read_text()
    parser = _Tags()

    parser.feed(page)
    parser.close()

    assert page.startswith("<!doctype html>") and '<meta charset="utf-8">' in page
    assert parser.errors == [] and parser.stack == []
    assert page.split("<h2>Request metrics")[0].count("<table>") == 6 and "th" in parser.seen and "td" in parser.seen
    assert parser.seen.count("table") == page.count("<table>") and parser.seen.count("svg") == 6
    assert "b" not in parser.seen, "a file name's <b> became markup"
    assert "gdpr&lt;b&gt;-c4.json" in page and ODD_REQUEST not in page
    docs = home.reports_dir / "data_docs" / "index.html"
    assert f'<a href="file://{docs}">Great Expectations Data Docs</a>' in page


def test_no_email_or_phone_of_anyone_is_in_the_report(reported):
    home, report, _ = reported

    for path in sorted(home.reports_dir.rglob("*")):
        if path.is_file():
            text = path.read_text().lower()
            assert [value for value in personal_values() if value.lower() in text] == [], path


def test_a_run_with_nothing_new_says_so(home, con):
    report = write_report(con, home, run_id="empty-run", as_of=CLOCK, invariants=summary())
    markdown = report.markdown.read_text()

    assert "Invariants: 9 of 9 passed." in markdown and "FAILED" not in markdown
    assert "No new snapshot." in markdown
    assert "No request files seen yet." in markdown
    assert "Due within 7 days or overdue:" not in markdown
    assert "None in this run." in markdown and "None written in this run." in markdown
    assert "Expired and removed in this run: none." in markdown
    assert "Data Docs" not in markdown and "Data Docs" not in report.html.read_text()


def test_the_invariant_results_saved_beside_the_report_load_back(tmp_path):
    saved = summary(failed=NO_ORPHANED_ASSOCIATED_DATA, docs=tmp_path / "docs" / "index.html")

    path = save_invariants(saved, tmp_path / "run")

    assert path == tmp_path / "run" / "invariants.json"
    assert load_invariants(tmp_path / "run") == saved
