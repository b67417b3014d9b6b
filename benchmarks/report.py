"""Markdown from a benchmark's JSON document; given several documents, also the fixed-deletions scaling.

`python -m benchmarks.report RUN.json [RUN.json ...]` prints each run's table and, for runs made with
`--fixed-deletions`, how the daily run's and the floor's times grow with the number of contacts; for runs that
measured the single-subject erasure, how it grows. `--readme` prints instead the README's Performance table from the
full runs (1% deleted) and the fixed-deletion runs given, so that README and RESULTS.md come from the same runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

# Issue 12's growth targets, judged from two saved runs (1M and 10M contacts).
SCALING_LIMIT = 2.0
SINGLE_SUBJECT_GROWTH_LIMIT = 1.5


def _num(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _seconds(value: float) -> str:
    return f"{value:,.2f}" if value < 100 else f"{value:,.1f}"


def machine_line(m: dict[str, Any]) -> str:
    return (f"{m['nproc']} vCPU ({m['cpu_model']}), {m['ram_gb']} GB RAM, Linux {m['kernel']}; "
            f"Python {m['python']}, DuckDB {m['duckdb']}, Dagster {m['dagster']}, pyarrow {m['pyarrow']}")


def render(doc: dict[str, Any]) -> str:
    """One run: header, machine, the step table, ratios and targets."""
    p, c = doc["params"], doc["counts"]
    cohort = (f"{p['fixed_deletions']:,} contacts (fixed)" if p.get("fixed_deletions") is not None
              else f"{p['deletions_pct']:g}% of contacts")
    lines = [
        f"### {p['contacts']:,} contacts ({c['snapshot_rows']:,} snapshot rows): {cohort} deleted by a rule "
        f"+ {c['request_subjects']:,} erasure-request subjects",
        "",
        f"Machine: {machine_line(doc['machine'])}. "
        f"DuckDB memory_limit {p['memory_limit'] or 'derived from the default 1GB memory_budget'}. "
        f"Load average at start {doc['machine'].get('loadavg_at_start')}, at end {doc.get('loadavg_at_end')}.",
        f"Command: `{doc['command']}`" + (f" (commit {doc['code']['commit']}"
                                          f"{' + uncommitted changes' if doc['code']['uncommitted'] else ''})"
                                          if doc.get("code") else ""),
        "",
        "| step | rows | seconds | rows/s | peak RSS MB | CPU s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    group = None
    for step in doc["steps"]:
        if step["group"] != group:
            group = step["group"]
            lines.append(f"| **{group}** | | | | | |")
        name = step["name"] + (" *(extrapolated)*" if step["extrapolated"] else "")
        if step["note"]:
            name += f" — {step['note']}"
        rows = f"{step['rows']:,} {step['rows_label']}".strip() if step["rows"] else "–"
        lines.append(f"| {name} | {rows} | {_seconds(step['seconds'])} | {_num(step['rows_per_s'])} | "
                     f"{_num(step['peak_rss_mb'])} | {_seconds(step.get('cpu_seconds', 0))} |")
    lines += ["", f"Process peak RSS (getrusage high-water mark, all of the above): "
                  f"{_num(doc['process_peak_rss_mb'])} MB; most spilled by DuckDB in one step: "
                  f"{_num(doc['max_spill_mb'])} MB."]
    if doc.get("dagster_step_seconds"):
        steps = ", ".join(f"{name} {seconds:,.1f}" for name, seconds in doc["dagster_step_seconds"].items())
        lines += ["", f"Dagster's own step durations (s, from its event log): {steps}."]
    ratios = [r for r in doc["ratios"] if r["value"]]
    if ratios:
        lines += ["", "Ratios:"]
        lines += [f"- {r['label']}: **{r['value']:.2f}x**" for r in ratios]
    if doc["targets"]:
        lines += ["", "Targets (reported, not asserted):"]
        for t in doc["targets"]:
            scope = "" if t["applies"] else f" (target set for {t['defined_at']}; this run is informative only)"
            lines.append(f"- {t['target']}: {t['measured']} → **{t['status']}**{scope}")
    if doc.get("warnings"):
        lines += ["", "Warnings:"] + [f"- {w}" for w in doc["warnings"]]
    return "\n".join(lines) + "\n"


def _step_seconds(doc: dict[str, Any], name: str) -> float:
    return next((step["seconds"] for step in doc["steps"] if step["name"] == name), 0.0)


def _growth(now: float | None, then: float | None) -> str:
    return f"{now / then:.2f}x" if now and then else "–"


def scaling(docs: list[dict[str, Any]]) -> str:
    """Fixed-deletion runs: daily, delete-run and floor times, each relative to the smallest run.

    The delete run's growth is judged against SCALING_LIMIT and shown next to the floor's own growth (the same
    cohort deleted by hand-written SQL): what the floor cannot avoid either is the store's, not ours.
    """
    fixed = sorted((d for d in docs if d["params"].get("fixed_deletions") is not None),
                   key=lambda d: d["params"]["contacts"])
    if len(fixed) < 2:
        return ""
    base = fixed[0]

    def times(d: dict[str, Any]) -> tuple[float, float, float, float | None]:
        daily = d["totals"]["daily_run_s"]
        return daily, daily - _step_seconds(d, "ingest"), d["totals"]["delete_run_s"], d["totals"].get("floor_s")

    lines = ["### Fixed deletions: growth with the number of contacts", "",
             "| contacts | deletions | daily run s | without ingest s | delete run s | floor s | growth: daily / "
             "without ingest / delete run | floor's growth |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for d in fixed:
        now, then = times(d), times(base)
        floor = _seconds(now[3]) if now[3] else "–"
        lines.append(f"| {d['params']['contacts']:,} | {d['counts']['expected_deleted']:,} | "
                     f"{_seconds(now[0])} | {_seconds(now[1])} | {_seconds(now[2])} | {floor} | "
                     f"{now[0] / then[0]:.2f}x / {now[1] / then[1]:.2f}x / {now[2] / then[2]:.2f}x | "
                     f"{_growth(now[3], then[3])} |")
    last = fixed[-1]
    growth = times(last)[2] / times(base)[2]
    status = "met" if growth <= SCALING_LIMIT else "missed"
    floor_growth = _growth(times(last)[3], times(base)[3])
    lines += ["", f"Target: for a fixed {base['counts']['expected_deleted']:,} deletions the delete run grows at most "
                  f"{SCALING_LIMIT:g}x from {base['params']['contacts']:,} to {last['params']['contacts']:,} contacts: "
                  f"{growth:.2f}x → **{status}** (the floor's own growth: {floor_growth})"]
    return "\n".join(lines) + "\n"


def single_subject_growth(docs: list[dict[str, Any]]) -> str:
    """The single-subject erasure of every run that measured it, each relative to the smallest run."""
    runs = sorted((d for d in docs if (d.get("totals") or {}).get("single_subject_s")),
                  key=lambda d: d["params"]["contacts"])
    if len(runs) < 2:
        return ""
    base = runs[0]["totals"]["single_subject_s"]
    lines = ["### Single-subject erasure: growth with the number of contacts", "",
             "| contacts | direct s | growth | via Dagster s | Dagster overhead s |", "|---:|---:|---:|---:|---:|"]
    for d in runs:
        single = d.get("single_subject") or {}
        lines.append(f"| {d['params']['contacts']:,} | {_seconds(d['totals']['single_subject_s'])} | "
                     f"{d['totals']['single_subject_s'] / base:.2f}x | {_num(single.get('dagster_s'), 2)} | "
                     f"{_num(single.get('dagster_overhead_s'), 2)} |")
    growth = runs[-1]["totals"]["single_subject_s"] / base
    status = "met" if growth <= SINGLE_SUBJECT_GROWTH_LIMIT else "missed"
    lines += ["", f"Target: the single-subject erasure at {runs[-1]['params']['contacts']:,} contacts takes at most "
                  f"{SINGLE_SUBJECT_GROWTH_LIMIT:g}x its {runs[0]['params']['contacts']:,}-contact figure: "
                  f"{growth:.2f}x → **{status}**"]
    return "\n".join(lines) + "\n"


def readme_table(docs: list[dict[str, Any]]) -> str:
    """README's Performance table: one column per size of the full runs, the fixed-deletion runs in a row of each."""
    full = sorted((d for d in docs if d["params"].get("fixed_deletions") is None),
                  key=lambda d: d["params"]["contacts"])
    fixed = {d["params"]["contacts"]: d for d in docs if d["params"].get("fixed_deletions") is not None}
    if not full:
        return ""

    def step(d: dict[str, Any], prefix: str) -> dict[str, Any] | None:
        return next((s for s in d["steps"] if s["name"].startswith(prefix)), None)

    def secs(d: dict[str, Any], prefix: str) -> str:
        found = step(d, prefix)
        return f"{_seconds(found['seconds'])} s" if found else "–"

    def cell(d: dict[str, Any], row: str) -> str:
        t, c = d["totals"], d["counts"]
        if row == "ingest":
            return secs(d, "ingest")
        if row == "delete":
            return f"{_seconds(t['delete_run_s'])} s ({c['deleted']:,} deleted)"
        if row == "floor":
            return f"{_seconds(t['floor_s'])} s ({t['delete_run_s'] / t['floor_s']:.2f}x)" if t.get("floor_s") else "–"
        if row == "per_contact":
            return f"{t['per_contact_extrapolated_s']:,.0f} s" if t.get("per_contact_extrapolated_s") else "–"
        if row == "single":
            single = d.get("single_subject") or {}
            return (f"{_seconds(t['single_subject_s'])} s / {_num(single.get('dagster_s'), 2)} s"
                    if t.get("single_subject_s") else "–")
        if row == "fixed":
            run = fixed.get(d["params"]["contacts"])
            if run is None:
                return "–"
            floor = run["totals"].get("floor_s")
            return (f"{_seconds(run['totals']['delete_run_s'])} s" + (f" (floor {_seconds(floor)} s)" if floor else ""))
        if row == "invariants":
            return secs(d, "invariants +")
        if row == "restore":
            found = step(d, "restore ")
            return f"{_seconds(found['seconds'])} s ({found['rows']:,} ids)" if found else "–"
        if row == "purge":
            found = step(d, "purge past")
            return f"{_seconds(found['seconds'])} s ({found['rows']:,} contacts)" if found else "–"
        if row == "dagster":
            return f"{t['dagster_s'] / t['daily_run_s']:.2f}x" if t.get("dagster_s") else "–"
        if row == "rss":
            daily = next((s for s in d["steps"] if s["name"] == "daily run total (direct)"), None)
            return (f"{daily['peak_rss_mb']:,.0f} MB" if daily else "–") + f" ({d['process_peak_rss_mb']:,.0f} MB)"
        raise ValueError(row)

    rows = [("ingest", "snapshot ingest"),
            ("delete", "delete run: intake, plan, backup, verify, apply with cascades (1% by a rule + 1,000 subjects)"),
            ("floor", "the same, hand-written SQL floor (backup + delete only); delete run / floor"),
            ("per_contact", "the same, per contact as DSR tools traverse (extrapolated)"),
            ("fixed", "delete run for a fixed 1,000 deletions (its floor)"),
            ("single", "one-person GDPR erasure, in process / through Dagster's request_job"),
            ("invariants", "invariants (Great Expectations) with Data Docs"),
            ("restore", "manual restore"),
            ("purge", "purge past the window"),
            ("dagster", "whole daily run through Dagster / by direct calls"),
            ("rss", "peak RSS of the daily run (of the whole process, references and Dagster included)")]
    header = " | ".join(f"{d['params']['contacts']:,} contacts" for d in full)
    lines = [f"| step | {header} |", "|---|" + "---:|" * len(full)]
    lines += [f"| {label} | " + " | ".join(cell(d, row) for d in full) + " |" for row, label in rows]
    commits = sorted({d["code"]["commit"] for d in docs if d.get("code")})
    lines += ["", f"Commit{'s' if len(commits) > 1 else ''} {', '.join(commits)}; {machine_line(full[-1]['machine'])}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="JSON documents written by benchmarks.run --json")
    parser.add_argument("--readme", action="store_true", help="print README's Performance table instead")
    args = parser.parse_args(argv)
    docs = [json.loads(path.read_text()) for path in args.runs]
    if args.readme:
        sys.stdout.write(readme_table(docs))
        return
    sys.stdout.write("\n".join(render(doc) for doc in docs))
    for table in (scaling(docs), single_subject_growth(docs)):
        if table:
            sys.stdout.write("\n" + table)


if __name__ == "__main__":
    main()
