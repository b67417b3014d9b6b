"""The request metrics a business must disclose each year (CCPA regs §7102(a)), from the request records alone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import duckdb

# A request is answered when its bulk action ran: `created_at` is that run's clock (`applied_at` is wall time).
ANSWERED_SQL = """
    SELECT r.kind, coalesce(r.regulation, 'internal') AS regulation, r.status, r.reason, r.received_at,
           CASE WHEN r.status IN ('applied', 'rejected') THEN b.created_at END AS answered_at
    FROM requests r LEFT JOIN bulk_actions b USING (bulk_action_id)
    WHERE r.status NOT IN ('quarantined', 'duplicate') AND r.kind IS NOT NULL"""
# Denial reasons name a requester's user id; grouped by what was wrong, they can be counted and disclosed.
DENIAL_GROUP_SQL = """CASE
        WHEN reason LIKE 'confirm must be exactly%' THEN 'confirmation was not exactly DELETE'
        WHEN reason LIKE '%no requester given%' THEN 'no requester given'
        WHEN reason LIKE '%is an inactive admin%' THEN 'requester is an inactive admin'
        WHEN reason LIKE '%is not an admin%' THEN 'requester is not an admin'
        WHEN reason LIKE '%only an active admin%' THEN 'requester is not on the staff list'
        ELSE 'other' END"""
KINDS = ("erasure", "restore")
REGULATIONS = ("gdpr", "ccpa", "internal")


def request_metrics(con: duckdb.DuckDBPyConnection, *, year: int) -> dict[str, Any]:
    """Per request kind and regulation, the requests received in a calendar year and how they were answered.

    Days to respond run from `received_at` to the clock of the run that answered (applied or rejected) the request;
    requests still open are counted as received and as open, not in the days. Quarantined files and duplicates are
    not requests of their own.

    Args:
        con: a store connection.
        year: the calendar year (UTC) of `received_at`.

    Returns:
        {"year", "rows": [{"kind", "regulation", "received", "complied_in_whole_or_in_part", "denied", "open",
        "denied_reasons": {group: count}, "median_days_to_respond", "mean_days_to_respond"}]}; days rounded to
        two decimals, None when nothing was answered.
    """
    start, end = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    rows = con.execute(f"""
        WITH answered AS ({ANSWERED_SQL}),
        year_requests AS (
            SELECT *, (epoch(answered_at) - epoch(received_at)) / 86400.0 AS days
            FROM answered WHERE received_at >= ? AND received_at < ?)
        SELECT kind, regulation, count(*),
               count(*) FILTER (WHERE status = 'applied'), count(*) FILTER (WHERE status = 'rejected'),
               count(*) FILTER (WHERE status NOT IN ('applied', 'rejected')),
               round(median(days), 2), round(avg(days), 2)
        FROM year_requests GROUP BY ALL ORDER BY kind, regulation""", [start, end]).fetchall()
    reasons = con.execute(f"""
        SELECT kind, coalesce(regulation, 'internal'), {DENIAL_GROUP_SQL} AS denial_group, count(*)
        FROM requests WHERE status = 'rejected' AND received_at >= ? AND received_at < ?
        GROUP BY ALL ORDER BY 1, 2, 4 DESC, 3""", [start, end]).fetchall()
    grouped: dict[tuple[str, str], dict[str, int]] = {}
    for kind, regulation, group, count in reasons:
        grouped.setdefault((kind, regulation), {})[group] = count
    return {"year": year, "rows": [
        {"kind": kind, "regulation": regulation, "received": received, "complied_in_whole_or_in_part": complied,
         "denied": denied, "open": still_open, "denied_reasons": grouped.get((kind, regulation), {}),
         "median_days_to_respond": _number(median), "mean_days_to_respond": _number(mean)}
        for kind, regulation, received, complied, denied, still_open, median, mean in rows]}


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


METRICS_HEADER = ("kind", "regulation", "received", "complied (whole or part)", "denied", "open",
                  "median days", "mean days", "denied because")


def metrics_table(metrics: dict[str, Any]) -> list[list[Any]]:
    """The metrics as table rows under METRICS_HEADER (for the command line and the report).

    Args:
        metrics: the result of request_metrics.

    Returns:
        One row per kind and regulation.
    """
    return [[row["kind"], row["regulation"], row["received"], row["complied_in_whole_or_in_part"], row["denied"],
             row["open"], _days(row["median_days_to_respond"]), _days(row["mean_days_to_respond"]),
             "; ".join(f"{group} ({count})" for group, count in row["denied_reasons"].items()) or "-"]
            for row in metrics["rows"]]


def _days(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def metrics_lines(metrics: dict[str, Any]) -> list[str]:
    """The metrics as text lines for `retention metrics`.

    Args:
        metrics: the result of request_metrics.

    Returns:
        A title line and an aligned table, or a line saying no request was received that year.
    """
    title = f"Requests received in {metrics['year']} (CCPA regs 7102(a)), days from receipt to answer:"
    rows = [list(METRICS_HEADER)] + [[str(cell) for cell in row] for row in metrics_table(metrics)]
    if len(rows) == 1:
        return [title, "  no request received that year"]
    widths = [max(len(row[i]) for row in rows) for i in range(len(METRICS_HEADER) - 1)]
    # The last column is not padded: zip stops at the widths, one fewer than the cells.
    return [title] + ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
                      + "  " + row[-1] for row in rows]
