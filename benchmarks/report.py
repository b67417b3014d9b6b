"""Markdown from a benchmark's JSON document; given several documents, also the fixed-deletions scaling.

`python -m benchmarks.report RUN.json [RUN.json ...]` prints each run's table and, for runs made with
`--fixed-deletions`, how the daily run's and the floor's times grow with the number of contacts; for runs that
measured the single-subject erasure, how it grows.
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
        f"Machine: {machine_line(doc['machine'])}. DuckDB memory_limit {p['memory_limit'] or 'derived from the default 1GB memory_budget'}. "
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="JSON documents written by benchmarks.run --json")
    args = parser.parse_args(argv)
    docs = [json.loads(path.read_text()) for path in args.runs]
    sys.stdout.write("\n".join(render(doc) for doc in docs))
    for table in (scaling(docs), single_subject_growth(docs)):
        if table:
            sys.stdout.write("\n" + table)


if __name__ == "__main__":
    main()
