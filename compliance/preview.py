"""`retention plan`: the decisions a run would make, computed on the store and rolled back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

import duckdb

from compliance.deletion import Plan, build_plan, plan_items
from compliance.home import Home
from compliance.ingest import ingest_snapshots
from compliance.intake import take_requests
from compliance.keys import KeyedHasher
from compliance.settings import Rules, Settings
from compliance.store import rolled_back


@dataclass(frozen=True)
class Preview:
    """A run's decisions, per bulk action and per contact; nothing was changed."""

    plan: Plan
    items: list[dict[str, Any]]


def preview_run(con: duckdb.DuckDBPyConnection, home: Home, *, as_of: datetime, settings: Settings, rules: Rules,
                progress: Callable[[str], None] = lambda message: None) -> Preview:
    """Ingest, take requests and plan exactly as a run would, draft rules included, then roll it all back.

    Args:
        con: a writable store connection (written inside a transaction that is rolled back).
        home: the home (its inbox files are read, never moved).
        as_of: the run's clock.
        settings: the home's settings.
        rules: the home's rules.
        progress: called with a line per long step.

    Returns:
        The plan with its per-contact items.
    """
    with rolled_back(con):
        ingest_snapshots(con, home, as_of=as_of, progress=progress)
        take_requests(con, home, as_of=as_of, settings=settings, move_files=False)
        plan = build_plan(con, hasher=KeyedHasher(home.secret()), settings=settings, rules=rules, as_of=as_of,
                          include_drafts=True)
        items = plan_items(con)
    return Preview(plan, items)
