"""Progress of long steps: the domain's `progress(message)` callback, optionally able to show counts and rates."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

Progress = Callable[[str], None]


def count(progress: Progress, step: str, done: int, unit: str = "rows") -> None:
    """Tell the progress callback that `done` more units of a long step are finished, when it can show counts.

    A plain callable (a test's lambda, the default no-op) is left alone, so domain functions keep their contract.

    Args:
        progress: the step's progress callback.
        step: the step's name (ingest, backup, apply, purge, compaction).
        done: units finished since the last count.
        unit: what is counted (rows, contacts, bytes).
    """
    advance = getattr(progress, "advance", None)
    if advance is not None:
        advance(step, done, unit)


class StepProgress:
    """A progress callback for the run's log and the terminal: a rich bar with the rate when stderr is a terminal,
    plain lines when it is not (a service's log), nothing on the terminal when not echoing (`--json`)."""

    def __init__(self, log: Callable[[str], None], *, echo: bool, stream: TextIO | None = None):
        self.log, self.echo, self.stream = log, echo, stream or sys.stderr
        self.totals: dict[str, int] = {}
        self._since = time.monotonic()
        self._console = None
        if echo and self.stream.isatty():
            from rich.console import Console

            self._console = Console(file=self.stream)

    def __call__(self, message: str) -> None:
        self._since = time.monotonic()
        self.log(message)
        if self._console is not None:
            self._console.print(f"  {message}", highlight=False)
        elif self.echo:
            print(f"  {message}", file=self.stream, flush=True)

    def advance(self, step: str, done: int, unit: str) -> None:
        now = time.monotonic()
        rate = done / max(now - self._since, 1e-6)
        self._since = now
        self.totals[step] = self.totals.get(step, 0) + done
        line = f"{step}: {self.totals[step]:,} {unit} ({rate:,.0f} {unit}/s)"
        self.log(line)
        if self._console is not None:
            from rich.progress_bar import ProgressBar
            from rich.table import Table

            row = Table.grid(padding=(0, 1))
            row.add_row(f"  {step}", ProgressBar(total=None, completed=self.totals[step], width=30),
                        f"{self.totals[step]:,} {unit}", f"[cyan]{rate:,.0f} {unit}/s")
            self._console.print(row)
        elif self.echo:
            print(f"  {line}", file=self.stream, flush=True)
