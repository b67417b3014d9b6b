"""Manual selections handed from the command line to a Dagster run by token, not by value."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import duckdb

from compliance.errors import InputError
from compliance.store.sql import scalar

ABANDONED_AFTER = timedelta(hours=1)


def stage_selection(con: duckdb.DuckDBPyConnection, contact_ids: Sequence[str]) -> str:
    """Keep a list of contact ids in the store for the run about to start.

    Args:
        con: a writable store connection.
        contact_ids: the ids the user listed.

    Returns:
        The token to put in the run's config instead of the ids.
    """
    token = uuid.uuid4().hex
    con.execute("INSERT INTO manual_selections VALUES (?, ?, ?)",
                [token, list(dict.fromkeys(contact_ids)), datetime.now(UTC)])
    return token


def take_selection(con: duckdb.DuckDBPyConnection, token: str) -> tuple[str, ...]:
    """The contact ids staged under the token, removed from the store as they are taken.

    Raises:
        InputError: the token is unknown (taken already, or never staged).
    """
    row = con.execute("SELECT contact_ids FROM manual_selections WHERE token = ?", [token]).fetchone()
    if row is None:
        raise InputError(f"manual selection {token} is unknown: it was used already or never staged")
    con.execute("DELETE FROM manual_selections WHERE token = ?", [token])
    return tuple(row[0])


def drop_abandoned_selections(con: duckdb.DuckDBPyConnection) -> int:
    """Remove selections whose run never took them (it failed to start)."""
    cutoff = datetime.now(UTC) - ABANDONED_AFTER
    return scalar(con, "DELETE FROM manual_selections WHERE created_at < ?", [cutoff])
