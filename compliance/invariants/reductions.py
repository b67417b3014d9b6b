"""Set-based reductions that two invariants read, each computed once per run (`Run.once`)."""

from __future__ import annotations

import contextlib
from typing import Any

from compliance.home import OutsideHome
from compliance.invariants.registry import MAX_SAMPLES, Run
from compliance.purge import PURGED_LABEL_PREFIX
from compliance.store.connection import home_of
from compliance.store.schema import CONTACT_LINKED, TableSpec
from compliance.store.sql import scalar

NO_BULK_ACTION = "(none)"


def deletion_groups(run: Run) -> list[dict[str, Any]]:
    """Deleted contacts grouped by the bulk action that deleted them, with that action and its backup.

    Read by deleted_contacts_backed_up and deletions_trace_to_admin: one group per bulk action, so a backup is
    verified once however many contacts it holds.
    """
    cursor = run.con.execute("""
        WITH g AS (
            SELECT deleted_by, count(*) AS contacts, min(deleted_at) AS first_deleted_at,
                   list(contact_id ORDER BY contact_id)[1:$samples] AS samples
            FROM contact_lifecycle WHERE state = 'deleted' GROUP BY deleted_by)
        SELECT coalesce(g.deleted_by, $none) AS subject, g.contacts, g.samples, a.kind,
               coalesce(a.requester_authorized, false) AS requester_authorized,
               b.bulk_action_id IS NOT NULL AS has_backup, b.path, b.manifest_sha256, b.verified_at,
               b.expired_at, coalesce(b.verified_at <= coalesce(a.applied_at, g.first_deleted_at), false)
                   AS verified_in_time
        FROM g
        LEFT JOIN bulk_actions a ON a.bulk_action_id = g.deleted_by
        LEFT JOIN backups b ON b.bulk_action_id = g.deleted_by
        ORDER BY subject""", {"samples": MAX_SAMPLES, "none": NO_BULK_ACTION})
    columns = [column[0] for column in cursor.description]
    groups = [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]
    home = home_of(run.con)
    for group in groups:
        group["samples"] = tuple(group["samples"] or ())
        if group["path"] is not None and home is not None:
            # Recorded relative to the home; a path leading outside it is checked as written, and fails there.
            with contextlib.suppress(OutsideHome):
                group["path"] = str(home.inside(group["path"]))
    return groups


def gone_hits(run: Run) -> dict[str, tuple[int, list[str]]]:
    """Per contact-linked table: rows whose contact is deleted or purged, counted, with sample row names.

    Read by no_orphaned_associated_data and no_memberships_of_deleted.
    """
    params: dict[str, Any] = {"samples": MAX_SAMPLES}
    purged = ""
    if scalar(run.con, "SELECT count(*) FROM purged_contacts"):
        ids = " UNION ".join(f"SELECT contact_id FROM {spec.name}" for spec in CONTACT_LINKED)
        hashed = run.hasher.sql("contact_id", "contact_id")
        # Only ids still referenced somewhere are hashed: a keyed hash cannot be reversed, only matched.
        # A purged contact is named as the purge names it in bulk action items, never by its id.
        purged = f"""
            UNION ALL
            SELECT contact_id, $purged_prefix || left(contact_hash, 16) FROM (
                SELECT contact_id, {hashed} AS contact_hash FROM ({ids})
                WHERE contact_id NOT IN (SELECT contact_id FROM contact_lifecycle WHERE state = 'deleted'))
            WHERE contact_hash IN (SELECT contact_hash FROM purged_contacts)"""
        params["purged_prefix"] = PURGED_LABEL_PREFIX
    hits = "\nUNION ALL\n".join(
        f"SELECT '{spec.name}' AS tbl, {_row_name(spec)} AS sample FROM {spec.name} t "
        f"JOIN gone g ON g.contact_id = t.contact_id" for spec in CONTACT_LINKED)
    rows = run.con.execute(f"""
        WITH gone AS MATERIALIZED (
            SELECT contact_id, contact_id AS label FROM contact_lifecycle WHERE state = 'deleted'{purged}),
        hits AS ({hits})
        SELECT tbl, count(*), list(sample ORDER BY sample)[1:$samples] FROM hits GROUP BY tbl""", params).fetchall()
    return {tbl: (count, samples) for tbl, count, samples in rows}


def _row_name(spec: TableSpec) -> str:
    """A row's name for samples; a purged contact's id is not repeated (it must be gone from every report)."""
    parts = [f"CAST(t.{column} AS VARCHAR)" if column != "contact_id" else "g.label" for column in spec.key]
    return f"'{spec.name}:' || " + " || ':' || ".join(parts)
