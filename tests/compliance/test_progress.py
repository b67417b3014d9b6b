"""Progress of long steps: counts with rates on a terminal, plain lines in a log, nothing under --json."""

from __future__ import annotations

import io

from compliance.clock import parse_as_of
from compliance.progress import StepProgress, count
from compliance.snapshots.ingest import ingest_snapshots
from support.crm import AS_OF, write_snapshot

CLOCK = parse_as_of(AS_OF)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_counts_go_to_the_log_and_as_plain_lines_when_stderr_is_not_a_terminal():
    logged, stream = [], io.StringIO()
    progress = StepProgress(logged.append, echo=True, stream=stream)

    progress("backing up bulk action ba-1")
    count(progress, "backup", 1200)
    count(progress, "backup", 300)

    assert logged[0] == "backing up bulk action ba-1"
    assert logged[2].startswith("backup: 1,500 rows (") and logged[2].endswith(" rows/s)")
    assert stream.getvalue().splitlines()[0] == "  backing up bulk action ba-1"
    assert "\x1b[" not in stream.getvalue() and stream.getvalue().count("\n") == 3


def test_a_terminal_gets_a_rich_bar_with_the_rate():
    stream = _Terminal()
    progress = StepProgress(lambda message: None, echo=True, stream=stream)

    count(progress, "apply", 42, "contacts")

    assert "42 contacts" in stream.getvalue() and "contacts/s" in stream.getvalue()
    assert "━" in stream.getvalue() or "-" in stream.getvalue()


def test_nothing_reaches_the_terminal_when_not_echoing_but_the_log_still_has_it():
    logged, stream = [], _Terminal()
    progress = StepProgress(logged.append, echo=False, stream=stream)

    progress("loading snapshot s-1")
    count(progress, "ingest", 10)

    assert stream.getvalue() == ""
    assert len(logged) == 2


def test_a_plain_callback_is_left_alone_by_count():
    messages = []

    count(messages.append, "ingest", 10)

    assert messages == []


def test_ingest_counts_the_rows_it_loaded(home, con):
    write_snapshot(home.snapshots_inbox / "s-1")
    logged = []

    result = ingest_snapshots(con, home, as_of=CLOCK, progress=StepProgress(logged.append, echo=False))

    total = sum(result.ingested[0].row_counts.values())
    assert [line for line in logged if line.startswith("ingest: ")][0].startswith(f"ingest: {total:,} rows (")
