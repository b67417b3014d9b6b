"""What a finished command tells its user: the problems worth a line each, and the exit code they make."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

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
