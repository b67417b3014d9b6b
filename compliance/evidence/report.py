"""The per-run compliance report (Markdown and HTML): what came in, what was decided, and what was proven."""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from compliance.evidence.history import CHARTS, build_history, inline_svg, write_charts
from compliance.evidence.metrics import METRICS_HEADER, metrics_table, request_metrics
from compliance.home import Home
from compliance.invariants import InvariantResult, InvariantSummary
from compliance.requests.records import bulk_actions, request_records


def run_folder(home: Home, *, run_id: str, as_of: datetime) -> Path:
    """The run's folder under reports/ (its invariants.json and report files)."""
    return home.reports_dir / f"{as_of:%Y%m%dT%H%M%SZ}-{run_id[:8]}"


def save_invariants(summary: InvariantSummary, folder: Path) -> Path:
    """Keep a run's invariant results beside its report (ids and counts only)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "invariants.json"
    path.write_text(json.dumps(summary.as_dict(), indent=2))
    return path


def load_invariants(folder: Path) -> InvariantSummary:
    """The invariant results saved by save_invariants."""
    data = json.loads((folder / "invariants.json").read_text())
    results = tuple(InvariantResult(**{**r, "sample_ids": tuple(r["sample_ids"])}) for r in data["results"])
    return InvariantSummary(results, Path(data["data_docs_index"]) if data["data_docs_index"] else None)


@dataclass(frozen=True)
class Report:
    """Where a run's report was written."""

    markdown: Path
    html: Path
    latest: Path


def write_report(con: duckdb.DuckDBPyConnection, home: Home, *, run_id: str, as_of: datetime,
                 invariants: InvariantSummary) -> Report:
    """Write the run's compliance report under reports/, with ids and counts only (no personal data).

    Args:
        con: a store connection.
        home: the home.
        run_id: the Dagster run whose bulk actions are reported.
        as_of: the run's clock.
        invariants: the run's invariant results.

    Returns:
        The Markdown and HTML files, and reports/latest.md (a copy of the newest).
    """
    sections = _sections(con, run_id=run_id, as_of=as_of, invariants=invariants, home=home)
    folder = run_folder(home, run_id=run_id, as_of=as_of)
    folder.mkdir(parents=True, exist_ok=True)
    sections["charts"] = write_charts(sections["history"], folder)
    markdown = folder / "report.md"
    page = folder / "report.html"
    markdown.write_text(_markdown(sections))
    page.write_text(_html(sections))
    latest = home.reports_dir / "latest.md"
    tmp = latest.with_suffix(".tmp")
    tmp.write_text(markdown.read_text())
    os.replace(tmp, latest)
    (home.reports_dir / "latest.json").write_text(json.dumps({"markdown": str(markdown), "html": str(page)}))
    return Report(markdown, page, latest)


def _sections(con: duckdb.DuckDBPyConnection, *, run_id: str, as_of: datetime, invariants: InvariantSummary,
              home: Home) -> dict[str, Any]:
    snapshots = con.execute("SELECT snapshot_id, row_counts, skipped_deleted, skipped_suppressed FROM snapshots "
                            "WHERE ingested_at = ? ORDER BY snapshot_id", [as_of]).fetchall()
    requests = request_records(con, as_of=as_of)
    by_status: dict[str, int] = {}
    for record in requests:
        by_status[record["status"]] = by_status.get(record["status"], 0) + 1
    actions = [a for a in reversed(bulk_actions(con)) if a["run_id"] == run_id]
    backups = con.execute("SELECT b.bulk_action_id, b.contacts, b.total_rows FROM backups b JOIN bulk_actions a "
                          "USING (bulk_action_id) WHERE a.run_id = ? ORDER BY 1", [run_id]).fetchall()
    expired = [row[0] for row in con.execute("SELECT bulk_action_id FROM backups WHERE expired_at = ? ORDER BY 1",
                                             [as_of]).fetchall()]
    return {
        "run_id": run_id, "as_of": as_of.isoformat(),
        "snapshots": [(s[0], sum(json.loads(s[1]).values()), json.loads(s[1]).get("contacts", 0), s[2], s[3])
                      for s in snapshots],
        "requests_by_status": by_status,
        "deadlines": [(r["file"], r["request_id"], r["regulation"], r["due_at"], r["deadline"]) for r in requests
                      if r["deadline"] in ("overdue", "due_soon")],
        "actions": actions, "backups": backups, "expired": expired,
        "invariants": invariants.results,
        "data_docs": str(invariants.data_docs_index) if invariants.data_docs_index else None,
        "history": build_history(con, as_of=as_of),
        "metrics": request_metrics(con, year=as_of.year),
    }


Block = tuple  # ("h1" | "h2" | "p", text), ("table", header, rows) or ("chart", title, svg path)


def _blocks(s: dict[str, Any]) -> list[Block]:
    passed = sum(1 for r in s["invariants"] if r.passed)
    blocks: list[Block] = [("h1", f"Compliance report — run {s['run_id']}"), ("p", f"As of {s['as_of']}."),
                           ("p", f"Invariants: {passed} of {len(s['invariants'])} passed."), ("h2", "Ingested")]
    blocks.append(("table", ["snapshot", "rows", "contacts", "deleted kept deleted", "erased skipped"],
                   s["snapshots"]) if s["snapshots"] else ("p", "No new snapshot."))
    blocks.append(("h2", "Requests"))
    blocks.append(("table", ["status", "requests"], sorted(s["requests_by_status"].items()))
                  if s["requests_by_status"] else ("p", "No request files seen yet."))
    if s["deadlines"]:
        blocks += [("p", "Due within 7 days or overdue:"),
                   ("table", ["file", "request", "regulation", "due", "deadline"], s["deadlines"])]
    blocks.append(("h2", "Bulk actions"))
    blocks.append(("table", ["bulk action", "kind", "source", "status", "total", "done", "blocked", "rejected",
                             "not found", "already done", "failed"],
                   [[a["bulk_action_id"], a["kind"], a["source"], a["status"], *a["counts"].values()]
                    for a in s["actions"]]) if s["actions"] else ("p", "None in this run."))
    blocks.append(("h2", "Backups"))
    blocks.append(("table", ["bulk action", "contacts", "rows"], s["backups"]) if s["backups"]
                  else ("p", "None written in this run."))
    blocks.append(("p", f"Expired and removed in this run: {', '.join(s['expired']) or 'none'}."))
    blocks.append(("h2", "Invariants"))
    blocks.append(("table", ["invariant", "result", "violations", "message"],
                   [[r.name, "passed" if r.passed else "FAILED", r.violations, r.message] for r in s["invariants"]]))
    if s["data_docs"]:
        blocks.append(("p", f"Great Expectations Data Docs: {s['data_docs']}"))
    return blocks + _history_blocks(s)


def _history_blocks(s: dict[str, Any]) -> list[Block]:
    history, metrics = s["history"], s["metrics"]
    blocks: list[Block] = [("h2", f"Request metrics {metrics['year']} (CCPA regs §7102(a))"),
                           ("p", "Requests received this calendar year, by kind and regulation; days run from "
                                 "receipt to the run that answered (applied or rejected) the request.")]
    rows = metrics_table(metrics)
    blocks.append(("table", list(METRICS_HEADER), rows) if rows else ("p", "No request received this year."))
    blocks.append(("h2", "History"))
    blocks.append(("p", f"Every run kept in the store, up to {s['as_of']}. Backups held now: "
                        f"{history.backups_by_day[-1][1] if history.backups_by_day else 0}, "
                        f"{history.backup_bytes_held:,} bytes on disk."))
    quarters = history.by_quarter()
    if quarters:
        blocks.append(("table", ["quarter", "erased (GDPR/CCPA requests)", "other deletions", "restored", "purged"],
                       quarters))
    blocks += [("chart", CHARTS[name], path) for name, path in s.get("charts", {}).items()]
    return blocks


def _md_cell(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def _markdown(s: dict[str, Any]) -> str:
    lines: list[str] = []
    for block in _blocks(s):
        if block[0] == "table":
            _, header, rows = block
            lines += ["| " + " | ".join(map(_md_cell, header)) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in rows]
        elif block[0] == "chart":
            lines.append(f"![{block[1]}]({block[2].name})")
        else:
            lines.append({"h1": "# ", "h2": "## ", "p": ""}[block[0]] + block[1])
        lines.append("")
    return "\n".join(lines)


def _html(s: dict[str, Any]) -> str:
    parts: list[str] = []
    for block in _blocks(s):
        if block[0] == "table":
            _, header, rows = block
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
            for row in rows:
                cls = ' class="failed"' if "FAILED" in row else ""
                parts.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
            parts.append("</table>")
        elif block[0] == "chart":
            parts.append(f'<figure aria-label="{html.escape(block[1])}">{inline_svg(block[2])}</figure>')
        elif block[1].startswith("Great Expectations Data Docs: "):
            target = html.escape(block[1].split(": ", 1)[1])
            parts.append(f'<p><a href="file://{target}">Great Expectations Data Docs</a> ({target})</p>')
        else:
            parts.append(f"<{block[0]}>{html.escape(block[1])}</{block[0]}>")
    style = ("body{font-family:sans-serif;max-width:75em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}tr.failed{color:#b00}"
             "figure{margin:1em 0}figure svg{max-width:100%;height:auto}")
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>Compliance report {s['run_id']}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
