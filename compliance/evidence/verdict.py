"""What a finished command tells its user: the problems worth a line each, and the exit code they make."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT = 0, 1, 2
REFUSALS = ("blocked", "rejected", "failed")


def run_problems(actions: Iterable[Mapping[str, Any]], quarantined_files: Iterable[str] = (),
                 checks: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """One line per refused, blocked or failed bulk action, quarantined request file and failed check.

    Args:
        actions: bulk action documents (as `records.bulk_actions` gives them) of the run.
        quarantined_files: request files the run quarantined.
        checks: check name -> {"passed", "message"} of the run's asset checks.

    Returns:
        The problems, in that order; empty when the run did everything it was asked.
    """
    problems = []
    for action in actions:
        counts = action["counts"]
        refused = {k: counts[k] for k in REFUSALS if counts.get(k)}
        if refused or action["status"] in ("rejected", "failed"):
            what = ", ".join(f"{n} {k}" for k, n in refused.items()) or action["status"]
            problems.append(f"{action['source']} ({action['bulk_action_id']}): {what}"
                            + (f": {action['reason']}" if action.get("reason") else ""))
    for name in quarantined_files:
        problems.append(f"request file {name} quarantined (see `retention requests`)")
    for name, check in (checks or {}).items():
        if not check["passed"]:
            problems.append(f"check {name} failed: {check['message']}")
    return problems


def exit_code(problems: list[str], *, success: bool = True) -> int:
    """0 when the run succeeded with nothing refused; 1 when it finished but refused, blocked or failed something."""
    return EXIT_OK if success and not problems else EXIT_REFUSED


def combined_run_summary(summaries: list[dict[str, Any]], shards: list[str],
                         deadlines: dict[str, list[dict[str, Any]]],
                         overall: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """One `run --json` document for a run of every shard: the shape of a one-store run, plus `shards`.

    Args:
        summaries: each shard's run summary, in shard order.
        shards: the shards' names (`shard-0` ...), in the same order.
        deadlines: the deadline report of the whole home (requests combined over the shards).
        overall: the checks of the home taken whole (`overall_<invariant>` -> {"passed", "message"}), run after
            the shards.

    Returns:
        The first shard's run id (every shard's under `shards`); success when every shard succeeded; the ingest row
        counts summed; the requests as each shard took them (every shard takes the same files alike); every shard's
        bulk actions and problems, each marked with its shard, then a failed overall check's; a check passed when it
        passed in every shard, and the overall checks beside them.
    """
    ingest: dict[str, Any] = {}
    for summary in summaries:
        for key, value in summary.get("ingest", {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, dict)):
                ingest.setdefault(key, value)
            elif isinstance(value, dict):
                merged = ingest.setdefault(key, {})
                for name, count in value.items():
                    merged[name] = merged.get(name, 0) + count
            else:
                ingest[key] = ingest.get(key, 0) + value
    checks: dict[str, dict[str, Any]] = {}
    for shard, summary in zip(shards, summaries, strict=True):
        for name, check in summary.get("checks", {}).items():
            combined = checks.setdefault(name, {"passed": True, "message": check["message"]})
            if not check["passed"] and combined["passed"]:
                combined.update(passed=False, message=f"{shard}: {check['message']}")
    checks.update({name: dict(check) for name, check in (overall or {}).items()})
    return {
        "run_id": summaries[0]["run_id"],
        "as_of": summaries[0]["as_of"],
        "success": all(summary["success"] for summary in summaries),
        "seconds": round(sum(summary["seconds"] for summary in summaries), 2),
        "ingest": ingest,
        "requests": summaries[0].get("requests", {}),
        "checks": checks,
        "report": summaries[0].get("report"),
        "data_docs": summaries[0].get("data_docs"),
        "bulk_actions": [{**action, "shard": shard} for shard, summary in zip(shards, summaries, strict=True)
                         for action in summary["bulk_actions"]],
        "refused_or_failed": [f"{shard}: {problem}" for shard, summary in zip(shards, summaries, strict=True)
                              for problem in summary["refused_or_failed"]] + run_problems((), checks=overall),
        "deadlines": deadlines,
        "shards": [{"shard": shard, "run_id": summary["run_id"], "success": summary["success"],
                    "seconds": summary["seconds"], "report": summary.get("report")}
                   for shard, summary in zip(shards, summaries, strict=True)],
    }
