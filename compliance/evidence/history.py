"""The history of every run kept in the store, as series and static SVG charts: counts and dates, never people."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb

from compliance.evidence.metrics import ANSWERED_SQL
from compliance.store.connection import home_of
from compliance.store.files import folder_bytes

# Where a deletion came from, by the bulk action's source ("request <file>", "rule <name>", "manual") and whether
# the request was a legal erasure; never the file or rule name, which a user may have named after a person.
SOURCE_GROUP_SQL = """CASE
        WHEN source LIKE 'request %' AND regulation IN ('gdpr', 'ccpa') THEN 'erasure requests (GDPR/CCPA)'
        WHEN source LIKE 'request %' THEN 'internal requests'
        WHEN source LIKE 'rule %' THEN 'rules'
        ELSE 'manual' END"""
SOURCE_GROUPS = ("erasure requests (GDPR/CCPA)", "internal requests", "rules", "manual")
DAYS_LEFT_BUCKETS = ("overdue", "0-7 days", "8-14 days", "15-30 days", "31-45 days", "over 45 days")
# The statutory periods drawn on the response-time chart: GDPR Art. 12(3) one month (at most 31 days), CCPA 45 days.
DEADLINE_LINES = (("GDPR one month", 31), ("CCPA 45 days", 45))
CHARTS = {
    "deletions": "Contacts deleted per day, by source",
    "restores_purges": "Contacts restored and purged per day",
    "requests_weekly": "Requests received and answered per week",
    "response_days": "Days to answer a request (per week answered): median and 95th percentile",
    "open_requests": "Open requests by days left to their due date",
    "backups": "Backups held over time (count and bytes)",
}


@dataclass(frozen=True)
class History:
    """The series of the report's history section; ids, dates and counts only."""

    as_of: datetime
    deletions_by_day: list[tuple[date, str, int]]
    restores_purges_by_day: list[tuple[date, str, int]]
    requests_by_week: list[tuple[date, int, int, float | None, float | None]]
    open_by_days_left: list[tuple[str, int]]
    backups_by_day: list[tuple[date, int, int, int]]  # (day, backups held, rows held, bytes held)
    backup_bytes_held: int

    def by_quarter(self) -> list[tuple[str, int, int, int, int]]:
        """Per calendar quarter: (quarter, erased by GDPR/CCPA request, other deletions, restored, purged)."""
        quarters: dict[str, list[int]] = {}
        for day, group, count in self.deletions_by_day:
            row = quarters.setdefault(_quarter(day), [0, 0, 0, 0])
            row[0 if group == SOURCE_GROUPS[0] else 1] += count
        for day, kind, count in self.restores_purges_by_day:
            quarters.setdefault(_quarter(day), [0, 0, 0, 0])[2 if kind == "restored" else 3] += count
        return [(quarter, erased, other, restored, purged)
                for quarter, (erased, other, restored, purged) in sorted(quarters.items())]


def _quarter(day: date) -> str:
    return f"{day.year} Q{(day.month - 1) // 3 + 1}"


def build_history(con: duckdb.DuckDBPyConnection, *, as_of: datetime) -> History:
    """Compute the history series from the bulk action, request and backup records (no personal data).

    Days are those of the run's clock that recorded each action (`created_at`), in UTC.

    Args:
        con: a store connection.
        as_of: the report's clock: open requests' days left and the end of the backup series.

    Returns:
        The series.
    """
    deletions = con.execute(f"""
        SELECT created_at::DATE, {SOURCE_GROUP_SQL}, sum(done)::BIGINT FROM bulk_actions
        WHERE kind = 'delete' AND done > 0 GROUP BY ALL ORDER BY 1, 2""").fetchall()
    restores_purges = con.execute("""
        SELECT created_at::DATE, CASE kind WHEN 'restore' THEN 'restored' ELSE 'purged' END, sum(done)::BIGINT
        FROM bulk_actions WHERE kind IN ('restore', 'purge') AND done > 0 GROUP BY ALL ORDER BY 1, 2""").fetchall()
    weekly = con.execute(f"""
        WITH answered AS ({ANSWERED_SQL}),
        received AS (SELECT date_trunc('week', received_at)::DATE AS week, count(*) AS n FROM answered GROUP BY 1),
        done AS (SELECT date_trunc('week', answered_at)::DATE AS week, count(*) AS n,
                        median((epoch(answered_at) - epoch(received_at)) / 86400.0) AS p50,
                        quantile_cont((epoch(answered_at) - epoch(received_at)) / 86400.0, 0.95) AS p95
                 FROM answered WHERE answered_at IS NOT NULL GROUP BY 1)
        SELECT week, coalesce(r.n, 0), coalesce(d.n, 0), round(d.p50, 2), round(d.p95, 2)
        FROM received r FULL JOIN done d USING (week) ORDER BY week""").fetchall()
    open_requests = dict(con.execute("""
        SELECT CASE WHEN days_left < 0 THEN 'overdue' WHEN days_left <= 7 THEN '0-7 days'
                    WHEN days_left <= 14 THEN '8-14 days' WHEN days_left <= 30 THEN '15-30 days'
                    WHEN days_left <= 45 THEN '31-45 days' ELSE 'over 45 days' END, count(*)
        FROM (SELECT floor((epoch(due_at) - epoch(?::TIMESTAMPTZ)) / 86400.0) AS days_left FROM requests
              WHERE status = 'pending' AND due_at IS NOT NULL) GROUP BY 1""", [as_of]).fetchall())
    backups = con.execute("""
        WITH days AS (SELECT unnest(generate_series(min(created_as_of)::DATE, ?::TIMESTAMPTZ::DATE,
                                                    INTERVAL 1 DAY))::DATE AS day FROM backups)
        SELECT day, count(b.bulk_action_id), coalesce(sum(b.total_rows), 0)::BIGINT,
               coalesce(sum(b.bytes), 0)::BIGINT FROM days
        LEFT JOIN backups b ON b.created_as_of::DATE <= day AND (b.expired_at IS NULL OR b.expired_at::DATE > day)
        WHERE day IS NOT NULL GROUP BY day ORDER BY day""", [as_of]).fetchall()
    home = home_of(con)
    held = [home.root / path if home is not None else Path(path)
            for (path,) in con.execute("SELECT path FROM backups WHERE expired_at IS NULL").fetchall()]
    return History(as_of=as_of, deletions_by_day=[tuple(row) for row in deletions],
                   restores_purges_by_day=[tuple(row) for row in restores_purges],
                   requests_by_week=[(w, r, a, _float(p50), _float(p95)) for w, r, a, p50, p95 in weekly],
                   open_by_days_left=[(bucket, open_requests.get(bucket, 0)) for bucket in DAYS_LEFT_BUCKETS],
                   backups_by_day=[tuple(row) for row in backups], backup_bytes_held=sum(map(folder_bytes, held)))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def write_charts(history: History, folder: Path) -> dict[str, Path]:
    """Draw the history as static SVG files in `folder`, text drawn as paths so that no font is needed to view them.

    Args:
        history: the series of build_history.
        folder: the run's report folder.

    Returns:
        Chart name (a key of CHARTS) -> its SVG file.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import rc_context
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    folder.mkdir(parents=True, exist_ok=True)
    drawers = {"deletions": _deletions, "restores_purges": _restores_purges, "requests_weekly": _requests_weekly,
               "response_days": _response_days, "open_requests": _open_requests, "backups": _backups}
    written = {}
    # A fixed hash salt and no date: the same history draws byte-identical files.
    with rc_context({"svg.fonttype": "path", "svg.hashsalt": "retention-history", "font.size": 9}):
        for name, draw in drawers.items():
            figure = Figure(figsize=(9, 2.8), layout="constrained")
            axes = figure.add_subplot()
            axes.set_title(CHARTS[name], loc="left", fontsize=10)
            axes.yaxis.set_major_locator(MaxNLocator(integer=True))
            if not draw(axes, history):
                axes.text(0.5, 0.5, "nothing recorded yet", ha="center", va="center", transform=axes.transAxes)
                axes.set_xticks([])
                axes.set_yticks([])
            path = folder / f"history-{name}.svg"
            figure.savefig(path, format="svg", metadata=_NO_METADATA)
            written[name] = path
    return written


def _stacked_by_day(axes, rows: list[tuple[date, str, int]], groups: tuple[str, ...]) -> bool:
    if not rows:
        return False
    days = sorted({row[0] for row in rows})
    counts = {(day, group): count for day, group, count in rows}
    bottom = [0] * len(days)
    for group in groups:
        heights = [counts.get((day, group), 0) for day in days]
        if any(heights):
            axes.bar(days, heights, bottom=bottom, width=1.0, label=group)
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.set_ylabel("contacts")
    axes.legend(loc="upper left", fontsize=8, frameon=False)
    axes.margins(x=0.01)
    return True


def _deletions(axes, history: History) -> bool:
    return _stacked_by_day(axes, history.deletions_by_day, SOURCE_GROUPS)


def _restores_purges(axes, history: History) -> bool:
    return _stacked_by_day(axes, history.restores_purges_by_day, ("restored", "purged"))


def _requests_weekly(axes, history: History) -> bool:
    rows = history.requests_by_week
    if not rows:
        return False
    weeks = [row[0] for row in rows]
    axes.plot(weeks, [row[1] for row in rows], drawstyle="steps-mid", label="received")
    axes.plot(weeks, [row[2] for row in rows], drawstyle="steps-mid", label="answered")
    axes.set_ylabel("requests")
    axes.legend(loc="upper left", fontsize=8, frameon=False)
    return True


def _response_days(axes, history: History) -> bool:
    rows = [row for row in history.requests_by_week if row[3] is not None]
    if not rows:
        return False
    weeks = [row[0] for row in rows]
    axes.plot(weeks, [row[3] for row in rows], marker=".", label="median")
    axes.plot(weeks, [row[4] for row in rows], marker=".", label="95th percentile")
    for label, days in DEADLINE_LINES:
        axes.axhline(days, linestyle="--", linewidth=0.8, color="#b00")
        axes.annotate(label, (weeks[0], days), xytext=(0, 2), textcoords="offset points", fontsize=7, color="#b00")
    axes.set_ylabel("days")
    axes.legend(loc="upper right", fontsize=8, frameon=False)
    return True


def _open_requests(axes, history: History) -> bool:
    if not any(count for _, count in history.open_by_days_left):
        return False
    buckets = [bucket for bucket, _ in history.open_by_days_left]
    counts = [count for _, count in history.open_by_days_left]
    bars = axes.bar(buckets, counts, color=["#b00"] + ["#4878a8"] * (len(buckets) - 1))
    axes.bar_label(bars, fontsize=8)
    axes.set_ylabel("requests")
    return True


def _backups(axes, history: History) -> bool:
    rows = history.backups_by_day
    if not rows:
        return False
    days = [row[0] for row in rows]
    axes.plot(days, [row[1] for row in rows], label="backups held")
    axes.set_ylabel("backups")
    rows_axes = axes.twinx()
    rows_axes.plot(days, [row[3] / 1_000_000 for row in rows], color="#c07020", label="MB held")
    rows_axes.set_ylabel("MB")
    axes.legend(handles=axes.get_lines() + rows_axes.get_lines(), loc="upper left", fontsize=8, frameon=False)
    return True


# No date (same history, same bytes) and no RDF block, whose namespace addresses only look like links.
_NO_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}
_SVG_PROLOGUE = re.compile(r"\A(?:<\?xml[^>]*\?>\s*|<!DOCTYPE[^>]*>\s*)+")


def inline_svg(path: Path) -> str:
    """An SVG file's markup for embedding in HTML (without its XML declaration and DOCTYPE)."""
    return _SVG_PROLOGUE.sub("", path.read_text())
