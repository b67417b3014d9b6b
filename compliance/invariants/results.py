"""What a check of the invariants hands back: one result per invariant with its one-line message, ids only."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compliance.invariants.registry import MAX_SAMPLES, Invariant, Row


@dataclass(frozen=True)
class InvariantResult:
    """One invariant as GX judged it; ids only, never an email or phone."""

    name: str
    description: str
    passed: bool
    violations: int
    sample_ids: tuple[str, ...]
    message: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields, e.g. for Dagster check metadata or the compliance report."""
        return {"name": self.name, "description": self.description, "passed": self.passed,
                "violations": self.violations, "sample_ids": list(self.sample_ids), "message": self.message}


@dataclass(frozen=True)
class InvariantSummary:
    """The invariants checked in one run, in INVARIANTS order, and where GX wrote its Data Docs."""

    results: tuple[InvariantResult, ...]
    data_docs_index: Path | None = None

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(result.name for result in self.results if not result.passed)

    def by_name(self, name: str) -> InvariantResult:
        """The result of one invariant.

        Raises:
            KeyError: naming the invariants this summary holds.
        """
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(f"invariant {name!r} was not checked (checked: {', '.join(r.name for r in self.results)})")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields of every result, plus the Data Docs index path."""
        return {"passed": self.passed, "results": [result.as_dict() for result in self.results],
                "data_docs_index": str(self.data_docs_index) if self.data_docs_index else None}


@dataclass
class Verdict:
    """GX's judgement of one invariant: success, which frame rows failed, and any exception it raised."""

    success: bool = True
    failed_rows: set[int] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)


def summarize(invariant: Invariant, verdict: Verdict, rows: list[Row], words: dict[str, int]) -> InvariantResult:
    """One invariant's result: violations weighed by the failed rows (one per subject), samples and message.

    Args:
        invariant: the invariant judged.
        verdict: GX's judgement of its rows.
        rows: the whole frame GX validated (the verdict's failed rows index into it).
        words: the settings its messages may name (Run.words).

    Returns:
        The result, its message one line with at most MAX_SAMPLES ids.
    """
    by_subject: dict[str, Row] = {}
    for index in sorted(verdict.failed_rows):
        by_subject.setdefault(rows[index].subject, rows[index])
    failed = list(by_subject.values())
    violations = sum(row.weight for row in failed)
    samples = list(dict.fromkeys(sample for row in failed for sample in row.samples))
    if verdict.success:
        message = invariant.pass_message.format(**words)
    elif not failed:
        message = f"could not be evaluated: {'; '.join(verdict.errors) or 'GX reported a failure without rows'}"
    else:
        details = "; ".join(row.detail for row in failed[:3]) + ("; …" if len(failed) > 3 else "")
        one = violations == 1
        message = invariant.fail_message.format(n=violations, s=plural(violations), are="is" if one else "are",
                                                have="has" if one else "have", do="does" if one else "do",
                                                details=details, **words)
        if samples:
            shown = samples[:MAX_SAMPLES]
            more = ", …" if violations > len(shown) else ""
            message += f" ({', '.join(shown)}{more})"
    return InvariantResult(invariant.name, invariant.description, bool(verdict.success), violations,
                           tuple(samples[:MAX_SAMPLES]), message)


def plural(count: int) -> str:
    """The plural ending for `count` things: "" for one, "s" otherwise."""
    return "" if count == 1 else "s"
