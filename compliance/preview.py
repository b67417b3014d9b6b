"""`retention plan`: the decisions a run would make, computed on the store and rolled back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import duckdb

from compliance.deletion import OUTCOMES, build_plan, plan_items
from compliance.home import Home
from compliance.purge import purge_scan
from compliance.requests.intake import take_requests
from compliance.restore import RESTORE_OUTCOMES, plan_restores
from compliance.settings import Rules, Settings
from compliance.snapshots.ingest import ingest_snapshots
from compliance.store.connection import rolled_back
from compliance.store.keys import KeyedHasher
from compliance.vocabulary import BulkActionKind, Outcome

_ITEM = ("contact_id", "outcome", "reason")


def preview_run(con: duckdb.DuckDBPyConnection, home: Home, *, as_of: datetime, settings: Settings, rules: Rules,
                progress: Callable[[str], None] = lambda message: None) -> list[dict[str, Any]]:
    """Ingest, take requests and decide deletes, restores and the purge exactly as a run would, then roll back.

    Draft rules are included, marked preview_only.

    Args:
        con: a writable store connection (written inside a transaction that is rolled back).
        home: the home (its inbox files are read, never moved).
        as_of: the run's clock.
        settings: the home's settings.
        rules: the home's rules.
        progress: called with a line per long step.

    Returns:
        One document per bulk action the run would record, with its per-contact items.
    """
    hasher = KeyedHasher(home.secret()).register(con)
    with rolled_back(con):
        ingest_snapshots(con, home, as_of=as_of, progress=progress)
        take_requests(con, home, as_of=as_of, settings=settings, move_files=False)
        plan = build_plan(con, hasher=hasher, settings=settings, rules=rules, as_of=as_of, include_drafts=True)
        items = plan_items(con)
        actions = [_document(BulkActionKind.DELETE, a.source, a.source_ref, a.requested_by, a.regulation, a.preview,
                             a.rejection, {o: a.counts[o] for o in OUTCOMES},
                             [i for i in items if i["bulk_action_id"] == a.bulk_action_id]) for a in plan.actions]
        for restore in plan_restores(con, hasher=hasher, settings=settings, as_of=as_of):
            restore_items = con.execute("SELECT contact_id, outcome, reason FROM restore_items "
                                        "WHERE bulk_action_id = ? ORDER BY contact_id NULLS LAST",
                                        [restore.bulk_action_id]).fetchall()
            actions.append(_document(BulkActionKind.RESTORE, restore.source, restore.source_ref, restore.requested_by,
                                     None, False, restore.rejection, {o: restore.counts[o] for o in RESTORE_OUTCOMES},
                                     [dict(zip(_ITEM, row, strict=True)) for row in restore_items]))
        scan, scan_parameters = purge_scan(settings, as_of)
        due = con.execute(f"SELECT contact_id, $outcome_purged, reason FROM ({scan}) ORDER BY contact_id",
                          {**scan_parameters, "outcome_purged": Outcome.PURGED}).fetchall()
        if due:
            actions.append(_document(BulkActionKind.PURGE, "restore window", f"{settings.restore_window_days} days",
                                     "system", None, False, None, {Outcome.PURGED.value: len(due)},
                                     [dict(zip(_ITEM, row, strict=True)) for row in due]))
    return actions


def _document(kind: BulkActionKind, source: str, source_ref: str, requested_by: str | None, regulation: str | None,
              preview: bool, rejection: str | None, counts: dict[str, int], items: list[dict]) -> dict[str, Any]:
    return {"kind": kind.value, "source": source, "source_ref": source_ref, "requested_by": requested_by,
            "regulation": regulation, "preview_only": preview, "rejection": rejection,
            "counts": {"total": sum(counts.values()), **counts},
            "items": [{key: item[key] for key in _ITEM} for item in items]}
