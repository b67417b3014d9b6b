"""The text summary of a run and the run summary's bulk actions and problems."""

from __future__ import annotations

from typing import Any

from compliance.evidence.verdict import run_problems
from compliance.home import Home
from compliance.requests.records import DUE_SOON_DAYS, bulk_actions
from compliance.store.connection import Store


def intake_summary(metadata: dict[str, Any]) -> dict[str, Any]:
    """The intake asset's metadata with its counts by status spread out, as `run --json` has always shown them."""
    by_status = metadata.pop("requests_by_status", None) or {}
    files_seen = metadata.pop("files_seen", None)
    return {**({"files_seen": files_seen} if files_seen is not None else {}), **by_status, **metadata}


def deadline_lines(deadlines: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = []
    for flag, label in (("overdue", "OVERDUE"), ("due_soon", f"due within {DUE_SOON_DAYS} days")):
        for record in deadlines.get(flag, []):
            lines.append(f"  ! request {record['request_id']} ({record['regulation']}, {record['file']}) {label}: "
                         f"due {record['due_at']}")
    return lines


def with_bulk_actions(summary: dict[str, Any], home: Home, run_id: str) -> dict[str, Any]:
    with Store(home).connect(read_only=True) as con:
        actions = [action for action in reversed(bulk_actions(con)) if action["run_id"] == run_id]
    summary["bulk_actions"] = actions
    summary["refused_or_failed"] = run_problems(
        actions, summary.get("requests", {}).get("quarantined_files", []) or [], summary.get("checks", {}))
    return summary


def summary_text(summary: dict[str, Any], home: Home) -> str:
    ingest = summary.get("ingest", {})
    lines = [f"Run {summary['run_id']} as of {summary['as_of']} finished in {summary['seconds']}s."]
    snapshots = ingest.get("snapshots_ingested") or []
    if snapshots:
        counts = ingest.get("row_counts", {})
        contacts = sum(count for key, count in counts.items() if key.endswith("/contacts"))
        lines.append(f"  ingested {len(snapshots)} snapshot(s) ({', '.join(snapshots)}): {contacts:,} contacts, "
                     f"{sum(counts.values()):,} rows in all")
    elif ingest:
        lines.append("  no new snapshot in inbox/snapshots")
    for key, label in (("skipped_deleted_contacts", "deleted contacts in the snapshot kept deleted"),
                       ("skipped_suppressed_contacts", "erased people in the snapshot skipped"),
                       ("removed_contacts", "contacts no longer in the snapshot removed from the store")):
        if ingest.get(key):
            lines.append(f"  {ingest[key]:,} {label}")
    if ingest.get("changed_after_ingest_ignored"):
        lines.append(f"  ignored: snapshot folders changed after their ingest: "
                     f"{', '.join(ingest['changed_after_ingest_ignored'])}")
    if ingest.get("out_of_order_ignored"):
        lines.append(f"  ignored: snapshot folders older (by name) than one already ingested: "
                     f"{', '.join(ingest['out_of_order_ignored'])}")
    requests = {k: v for k, v in summary.get("requests", {}).items()
                if k in ("pending", "rejected", "quarantined", "duplicate") and v}
    if requests:
        lines.append("  new requests: " + ", ".join(f"{n} {k}" for k, n in requests.items()))
    lines.extend(deadline_lines(summary.get("deadlines", {})))
    for action in summary.get("bulk_actions", []):
        counts = action["counts"]
        shown = ", ".join(f"{n:,} {k}" for k, n in counts.items() if k != "total" and n)
        lines.append(f"  {action['kind']} {action['bulk_action_id']} {action['source']}: {action['status']}"
                     + (f" ({shown})" if shown else ""))
    checks = summary.get("checks", {})
    if checks:
        passed = sum(1 for check in checks.values() if check["passed"])
        lines.append(f"  checks: {passed} of {len(checks)} passed (retention invariants and backup verification)")
    for problem in summary["refused_or_failed"]:
        lines.append(f"  ! {problem}")
    if summary.get("report"):
        lines.append(f"  report: {summary['report']}")
    if summary.get("data_docs"):
        lines.append(f"  Data Docs: {summary['data_docs']}")
    for shard in summary.get("shards", []):
        lines.append(f"  {shard['shard']}: run {shard['run_id']} {'succeeded' if shard['success'] else 'FAILED'} "
                     f"in {shard['seconds']}s")
    lines.append(f"  store: {home.store_file}" if not summary.get("shards") else
                 f"  stores: {home.root / 'store'}/shard-0 to shard-{len(summary['shards']) - 1}")
    lines.append(f"  bulk actions: retention status --home {home.root}")
    return "\n".join(lines)
