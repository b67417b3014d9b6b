"""Suppression of a legal erasure: keyed hashes of the erased person's identifiers, so no snapshot brings them back."""

from __future__ import annotations

from datetime import datetime

import duckdb

from compliance.store.keys import KeyedHasher
from compliance.store.sql import parameters


def suppress_erased(con: duckdb.DuckDBPyConnection, hasher: KeyedHasher, bulk_action_id: str,
                    as_of: datetime) -> None:
    """Add to the suppression list the people a legal erasure deletes, finds deleted, or cannot match.

    A person a legal erasure finds already deleted (by an internal action, maybe in this very run) is erased too:
    suppressed, so that a later snapshot cannot bring them back. So is a subject that matches no contact, so that
    the person does not arrive with a later snapshot. Runs inside the run's transaction, after the cascade (the
    contacts this bulk action deletes are in the temp table `doomed`, those the run's later bulk actions delete in
    `doomed_later`).

    Args:
        con: the store connection, with the keyed-hash macro registered.
        hasher: the keyed hashes.
        bulk_action_id: the legal erasure's bulk action.
        as_of: the run's clock: the suppression's created_at.
    """
    # The erased contacts' ids and identifiers (primary and additional), materialised first: otherwise DuckDB may
    # push `hash IS NOT NULL` below the semi-join and compute the keyed hash of every contact in the store.
    erased = """
        CREATE OR REPLACE TEMP TABLE erased AS SELECT contact_id FROM contacts
        WHERE contact_id IN (SELECT contact_id FROM doomed UNION SELECT contact_id FROM plan_items
            WHERE bulk_action_id = $bulk_action_id AND outcome = $outcome_already_done AND contact_id IS NOT NULL)"""
    con.execute(erased, parameters(erased, {"bulk_action_id": bulk_action_id}))
    # An email or phone still carried by an active contact, as its primary or an additional identifier (the same
    # person's other contact, or a shared line), is not suppressed: it would hide that contact from later snapshots
    # while it stays active here. A contact a later bulk action of the run deletes counts as active, as it was when
    # each bulk action committed on its own (the run's cascade has already marked it deleted).
    # The carriers are found by joining the erased keys to contact_keys first (its (kind, key) order lets the join
    # read only their row groups); a NOT EXISTS straight over contact_keys would test every identifier in the store.
    con.execute("CREATE OR REPLACE TEMP TABLE erased_keys AS SELECT DISTINCT kind, key FROM contact_keys "
                "WHERE contact_id IN (SELECT contact_id FROM erased)")
    con.execute("CREATE OR REPLACE TEMP TABLE erased_key_carriers AS SELECT a.kind, a.key, a.contact_id "
                "FROM contact_keys a JOIN erased_keys e ON a.kind = e.kind AND a.key = e.key")
    still_carried = """
        DELETE FROM erased_keys e WHERE EXISTS (SELECT 1 FROM erased_key_carriers a
            WHERE a.kind = e.kind AND a.key = e.key
              AND (a.contact_id NOT IN (SELECT contact_id FROM contact_lifecycle WHERE state = $state_deleted)
                   OR a.contact_id IN (SELECT contact_id FROM doomed_later)))"""
    con.execute(still_carried, parameters(still_carried, {}))
    insert = f"""
        INSERT INTO suppression
        SELECT kind, hash, $bulk_action_id, $as_of FROM (
            SELECT 'contact_id' AS kind, {hasher.sql('contact_id', 'contact_id')} AS hash FROM erased
            UNION SELECT 'email', {hasher.sql('email', 'key')} FROM erased_keys WHERE kind = 'email'
            UNION SELECT 'phone', {hasher.sql('phone', 'key')} FROM erased_keys WHERE kind = 'phone'
            UNION {_unmatched_subject_hashes(hasher)})
        WHERE hash IS NOT NULL AND hash NOT IN (SELECT key_hash FROM suppression)"""
    con.execute(insert, parameters(insert, {"bulk_action_id": bulk_action_id, "as_of": as_of}))
    con.execute("DROP TABLE erased_keys")
    con.execute("DROP TABLE erased_key_carriers")


def _unmatched_subject_hashes(hasher: KeyedHasher) -> str:
    """SQL for the hashes of a legal request's unmatched subjects (parameter `$bulk_action_id`)."""
    subjects = ("FROM pending_subjects p JOIN plan_sources s ON p.request_id = s.source_ref "
                "JOIN plan_candidates c ON c.bulk_action_id = s.bulk_action_id AND c.subject_no = p.subject_no "
                "WHERE s.bulk_action_id = $bulk_action_id AND c.contact_id IS NULL")
    return (f"SELECT kind, hash FROM (SELECT 'contact_id' AS kind, {hasher.sql('contact_id', 'p.contact_id')} AS hash "
            f"{subjects} UNION SELECT 'email', {hasher.sql('email', 'p.email_key')} {subjects} "
            f"UNION SELECT 'phone', {hasher.sql('phone', 'p.phone_key')} {subjects})")
