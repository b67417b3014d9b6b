"""Deletion: one set-based plan per run (requests, rules, manual selections), verified backups, atomic apply."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import duckdb

from compliance.backup import BackupError, BackupManifest, remove_orphans, verify_backup, write_backup
from compliance.home import Home
from compliance.keys import KeyedHasher
from compliance.progress import count
from compliance.rules import predicate
from compliance.schema import ASSOCIATED, MEMBERSHIPS
from compliance.settings import Rules, Settings
from compliance.staff import authorize, recorded_requester
from compliance.store import transaction

Progress = Callable[[str], None]
OUTCOMES = ("deleted", "blocked", "rejected", "not_found", "already_done", "failed")
LEGAL_REGULATIONS = ("gdpr", "ccpa")
_MEMBERSHIP_OBJECTS = {"campaign_enrollments": ("campaign", "campaign_id"),
                       "workflow_enrollments": ("workflow", "workflow_id"),
                       "list_memberships": ("list", "list_id")}


@dataclass(frozen=True)
class ManualSelection:
    """A manual bulk delete: listed contacts, or every contact matching all the filters (a smart list)."""

    requested_by: str
    contact_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    location: str | None = None
    inactive_days: int | None = None
    select_all: bool = False

    def trigger(self) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        if self.tags:
            spec["tags_any"] = list(self.tags)
        if self.location:
            spec["location"] = self.location
        if self.inactive_days is not None:
            spec["inactive_days"] = self.inactive_days
        return spec

    def describe(self) -> str:
        if self.contact_ids:
            return f"{len(self.contact_ids)} listed contact(s)"
        return "all contacts" if not self.trigger() else "smart list " + ", ".join(
            f"{key}={value}" for key, value in self.trigger().items())


@dataclass(frozen=True)
class PlannedAction:
    """One bulk action of the plan: a source, its requester and its counts by outcome."""

    bulk_action_id: str
    source: str
    source_ref: str
    requested_by: str | None
    regulation: str | None
    rejection: str | None
    preview: bool
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class Plan:
    """The run's decisions; the per-contact items are in the store's plan_items table."""

    actions: list[PlannedAction] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {outcome: sum(a.counts.get(outcome, 0) for a in self.actions if not a.preview) for outcome in OUTCOMES}


@dataclass(frozen=True)
class AppliedAction:
    """A bulk action recorded by apply."""

    bulk_action_id: str
    source: str
    status: str
    counts: dict[str, int]
    backup: str | None
    reason: str | None = None


def new_bulk_action_id(as_of: datetime) -> str:
    return f"ba-{as_of:%Y%m%d}-{uuid.uuid4().hex[:10]}"


def build_plan(con: duckdb.DuckDBPyConnection, *, hasher: KeyedHasher, settings: Settings, rules: Rules,
               as_of: datetime, include_requests: bool = True, include_drafts: bool = False,
               manual: ManualSelection | None = None) -> Plan:
    """Decide, for every source and contact, one outcome; nothing is deleted here.

    Sources, in the order they claim a contact: pending erasure requests (by received_at), published rules
    (and draft rules, as previews, when asked), then a manual selection. A contact claimed by an earlier source
    is `already_done` for the later ones.

    Args:
        con: a writable store connection (the plan is written to plan_sources and plan_items).
        hasher: keyed hashes, to recognise subjects already erased and purged.
        settings: cascade and active-enrollment policies.
        rules: the rules of rules.yaml.
        as_of: the run's clock.
        include_requests: plan pending erasure requests (False for a manual delete command).
        include_drafts: plan draft rules too, as previews (for `retention plan`).
        manual: a manual bulk delete to plan.

    Returns:
        The planned bulk actions with their counts.
    """
    sources = _plan_sources(con, rules, as_of, include_requests, include_drafts, manual)
    con.execute("CREATE OR REPLACE TABLE plan_sources (bulk_action_id VARCHAR, ord INTEGER, source_kind VARCHAR,"
                " source VARCHAR, source_ref VARCHAR, requested_by VARCHAR, regulation VARCHAR, legal BOOLEAN,"
                " rejection VARCHAR, preview BOOLEAN, backup_path VARCHAR, backup_sha256 VARCHAR,"
                " backup_written_at TIMESTAMPTZ, backup_verified_at TIMESTAMPTZ, backup_rows BIGINT,"
                " backup_error VARCHAR)")
    if sources:
        con.executemany("INSERT INTO plan_sources (bulk_action_id, ord, source_kind, source, source_ref, requested_by,"
                        " regulation, legal, rejection, preview) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", sources)
    con.execute("CREATE OR REPLACE TABLE plan_candidates (bulk_action_id VARCHAR, contact_id VARCHAR,"
                " subject_no INTEGER, subject VARCHAR)")
    _request_candidates(con)
    for bulk_action_id, _, kind, _, ref, *_ in sources:
        if kind == "rule":
            rule = next(r for r in rules.rules if r.name == ref)
            _selection_candidates(con, bulk_action_id, predicate(rule.trigger, as_of))
        elif kind == "manual" and manual is not None:
            if manual.contact_ids:
                con.executemany("INSERT INTO plan_candidates VALUES (?, ?, NULL, NULL)",
                                [[bulk_action_id, cid] for cid in dict.fromkeys(manual.contact_ids)])
            else:
                _selection_candidates(con, bulk_action_id, predicate(manual.trigger(), as_of))
    _decide(con, hasher, settings)
    return read_plan(con)


def read_plan(con: duckdb.DuckDBPyConnection) -> Plan:
    """The plan last written to plan_sources and plan_items."""
    rows = con.execute(f"""
        SELECT s.bulk_action_id, s.source, s.source_ref, s.requested_by, s.regulation, s.rejection, s.preview,
               {', '.join(f"count(i.outcome) FILTER (WHERE i.outcome = '{o}')" for o in OUTCOMES)}
        FROM plan_sources s LEFT JOIN plan_items i USING (bulk_action_id)
        GROUP BY ALL ORDER BY min(s.ord)""").fetchall()
    return Plan([PlannedAction(*row[:7], counts=dict(zip(OUTCOMES, row[7:]))) for row in rows])


def plan_items(con: duckdb.DuckDBPyConnection, bulk_action_id: str | None = None) -> list[dict[str, Any]]:
    """The plan's per-contact items (of one bulk action, or all), in source order."""
    where = "WHERE i.bulk_action_id = ?" if bulk_action_id else ""
    rows = con.execute(f"SELECT i.bulk_action_id, s.source, i.contact_id, i.outcome, i.reason FROM plan_items i "
                       f"JOIN plan_sources s USING (bulk_action_id) {where} ORDER BY s.ord, i.contact_id NULLS LAST, "
                       f"i.reason", [bulk_action_id] if bulk_action_id else []).fetchall()
    return [dict(zip(("bulk_action_id", "source", "contact_id", "outcome", "reason"), row)) for row in rows]


def _plan_sources(con: duckdb.DuckDBPyConnection, rules: Rules, as_of: datetime, include_requests: bool,
                  include_drafts: bool, manual: ManualSelection | None) -> list[list[Any]]:
    sources: list[list[Any]] = []
    if include_requests:
        for request_id, file, requested_by, regulation, status, reason in con.execute(
                "SELECT request_id, file, requested_by, regulation, status, reason FROM requests "
                "WHERE kind = 'erasure' AND status IN ('pending', 'rejected') AND bulk_action_id IS NULL "
                "ORDER BY received_at, request_id").fetchall():
            sources.append([new_bulk_action_id(as_of), len(sources), "request", f"request {file}", request_id,
                            requested_by, regulation, regulation in LEGAL_REGULATIONS,
                            reason if status == "rejected" else None, False])
    for rule in rules.rules:
        if rule.status == "published" or include_drafts:
            authorization = authorize(con, rule.owner)
            sources.append([new_bulk_action_id(as_of), len(sources), "rule", f"rule {rule.name}", rule.name,
                            authorization.user_id or recorded_requester(rule.owner), None, False,
                            authorization.refusal, rule.status != "published"])
    if manual is not None:
        authorization = authorize(con, manual.requested_by)
        sources.append([new_bulk_action_id(as_of), len(sources), "manual", "manual", manual.describe(),
                        authorization.user_id or recorded_requester(manual.requested_by), None, False,
                        authorization.refusal, False])
    # Previews never claim a contact ahead of a source that will really delete it.
    sources.sort(key=lambda source: (source[9], source[1]))
    for ord_, source in enumerate(sources):
        source[1] = ord_
    return sources


def subject_matches_sql(sources_table: str) -> str:
    """A WITH clause: `subjects` of the request sources in the table, and their `matches` among all contacts.

    A subject matches every contact with its contact_id, email key or phone key (three equi-joins, not one OR-join,
    so that DuckDB hashes them over millions of contacts).
    """
    return f"""
        WITH subjects AS (
            SELECT s.bulk_action_id, p.subject_no, p.contact_id, p.email_key, p.phone_key
            FROM {sources_table} s JOIN pending_subjects p ON p.request_id = s.source_ref
            WHERE s.source_kind = 'request'),
        matches AS (
            SELECT x.bulk_action_id, x.subject_no, c.contact_id FROM subjects x JOIN contacts c USING (contact_id)
            UNION SELECT x.bulk_action_id, x.subject_no, c.contact_id FROM subjects x
                JOIN contacts c ON c.email_key = x.email_key
            UNION SELECT x.bulk_action_id, x.subject_no, c.contact_id FROM subjects x
                JOIN contacts c ON c.phone_key = x.phone_key)"""


def _request_candidates(con: duckdb.DuckDBPyConnection) -> None:
    """Every contact a request subject names, by contact_id, email or phone; unmatched subjects kept with NULL."""
    con.execute(f"""
        INSERT INTO plan_candidates
        {subject_matches_sql('plan_sources')}
        SELECT x.bulk_action_id, m.contact_id, x.subject_no,
               'subject ' || x.subject_no || ' (' || concat_ws(', ',
                   CASE WHEN x.contact_id IS NOT NULL THEN 'contact_id' END,
                   CASE WHEN x.email_key IS NOT NULL THEN 'email' END,
                   CASE WHEN x.phone_key IS NOT NULL THEN 'phone' END) || ')'
        FROM subjects x LEFT JOIN matches m USING (bulk_action_id, subject_no)""")


def _selection_candidates(con: duckdb.DuckDBPyConnection, bulk_action_id: str, condition: str) -> None:
    con.execute(f"""
        INSERT INTO plan_candidates
        SELECT ?, c.contact_id, NULL, NULL FROM contacts c
        WHERE c.contact_id NOT IN (SELECT contact_id FROM contact_lifecycle WHERE state = 'deleted')
          AND {condition}""", [bulk_action_id])


def _decide(con: duckdb.DuckDBPyConnection, hasher: KeyedHasher, settings: Settings) -> None:
    remove_when_active = "true" if settings.active_enrollment == "remove" else "false"
    con.execute(f"""
        CREATE OR REPLACE TABLE plan_items AS
        WITH blockers AS (
            SELECT contact_id, string_agg(what, '; ' ORDER BY what) AS names FROM (
                SELECT e.contact_id, 'active campaign ' || k.campaign_id || ' (' || k.name || ')' AS what
                FROM campaign_enrollments e JOIN campaigns k USING (campaign_id) WHERE k.status = 'active'
                UNION ALL
                SELECT e.contact_id, 'active workflow ' || w.workflow_id || ' (' || w.name || ')'
                FROM workflow_enrollments e JOIN workflows w USING (workflow_id) WHERE e.status = 'active')
            GROUP BY contact_id),
        erased AS (
            SELECT key_hash FROM suppression UNION SELECT contact_hash FROM purged_contacts),
        unmatched AS (
            SELECT c.bulk_action_id, c.subject_no, bool_or(h.key_hash IS NOT NULL) AS erased_before
            FROM plan_candidates c JOIN plan_sources s USING (bulk_action_id)
            JOIN pending_subjects p ON p.request_id = s.source_ref AND p.subject_no = c.subject_no
            LEFT JOIN erased h ON h.key_hash IN ({hasher.sql('contact_id', 'p.contact_id')},
                                                 {hasher.sql('email', 'p.email_key')},
                                                 {hasher.sql('phone', 'p.phone_key')})
            WHERE c.contact_id IS NULL GROUP BY ALL),
        candidates AS (
            SELECT DISTINCT ON (bulk_action_id, coalesce(contact_id, 'subject:' || subject_no))
                   bulk_action_id, contact_id, subject_no, subject
            FROM plan_candidates ORDER BY bulk_action_id, coalesce(contact_id, 'subject:' || subject_no), subject_no),
        facts AS (
            SELECT c.bulk_action_id, c.contact_id, c.subject, s.ord, s.source, s.rejection, s.legal, s.preview,
                   s.regulation, k.contact_id IS NOT NULL AS in_store,
                   coalesce(lc.state = 'deleted', false) AS is_deleted, lc.deleted_at,
                   coalesce(u.erased_before, false)
                       OR (s.source_kind = 'manual' AND c.contact_id IS NOT NULL AND k.contact_id IS NULL
                           AND {hasher.sql('contact_id', 'c.contact_id')} IN (SELECT key_hash FROM erased))
                       AS erased_before,
                   b.names AS blockers
            FROM candidates c JOIN plan_sources s USING (bulk_action_id)
            LEFT JOIN contacts k ON k.contact_id = c.contact_id
            LEFT JOIN contact_lifecycle lc ON lc.contact_id = c.contact_id
            LEFT JOIN blockers b ON b.contact_id = c.contact_id
            LEFT JOIN unmatched u ON u.bulk_action_id = c.bulk_action_id AND u.subject_no = c.subject_no
                                  AND c.contact_id IS NULL),
        proposed AS (
            SELECT *, CASE
                WHEN rejection IS NOT NULL THEN 'rejected'
                WHEN NOT in_store THEN CASE WHEN erased_before THEN 'already_done' ELSE 'not_found' END
                WHEN is_deleted THEN 'already_done'
                WHEN blockers IS NOT NULL AND NOT (legal OR {remove_when_active}) THEN 'blocked'
                ELSE 'deleted' END AS proposal
            FROM facts),
        claimed AS (
            SELECT *, min(ord) FILTER (WHERE proposal = 'deleted' AND NOT preview)
                          OVER (PARTITION BY contact_id) AS winner_ord,
                      arg_min(source, ord) FILTER (WHERE proposal = 'deleted' AND NOT preview)
                          OVER (PARTITION BY contact_id) AS winner
            FROM proposed)
        SELECT bulk_action_id, contact_id,
               CASE WHEN proposal = 'deleted' AND winner_ord < ord THEN 'already_done' ELSE proposal END AS outcome,
               CASE
                 WHEN proposal = 'rejected' THEN rejection
                 WHEN proposal = 'not_found' AND contact_id IS NULL THEN subject || ' matches no contact'
                 WHEN proposal = 'not_found' THEN 'no contact ' || contact_id || ' in the store'
                 WHEN proposal = 'already_done' AND NOT in_store THEN
                     coalesce(subject || ': ', '') || 'already erased and purged'
                 WHEN proposal = 'already_done' THEN 'already deleted on ' || strftime(deleted_at, '%Y-%m-%d')
                 WHEN proposal = 'deleted' AND winner_ord < ord THEN 'deleted in this run by ' || winner
                 WHEN proposal = 'blocked' THEN 'in ' || blockers || ': remove the contact from it first'
                 WHEN blockers IS NOT NULL AND legal THEN
                     'legal erasure (' || regulation || '): removed from ' || blockers || ', then deleted'
                 WHEN blockers IS NOT NULL THEN 'removed from ' || blockers || ', then deleted'
               END AS reason
        FROM claimed""")


def back_up(con: duckdb.DuckDBPyConnection, home: Home, settings: Settings, *,
            progress: Progress = lambda message: None) -> dict[str, BackupManifest | str]:
    """Write and verify a backup of every planned deletion, per bulk action (R5), before anything is removed.

    Args:
        con: the store with a plan.
        home: where backups go.
        settings: backup formats and cascade policy (retained data is not removed, so not backed up).
        progress: called with a line per bulk action.

    Returns:
        bulk_action_id -> its verified manifest, or the error that stops its deletion.
    """
    kept = [row[0] for row in con.execute("SELECT bulk_action_id FROM backups").fetchall()]
    planned = con.execute("SELECT DISTINCT s.bulk_action_id FROM plan_sources s JOIN plan_items i "
                          "USING (bulk_action_id) WHERE i.outcome = 'deleted' AND NOT s.preview "
                          "AND s.bulk_action_id NOT IN (SELECT bulk_action_id FROM bulk_actions) ORDER BY 1"
                          ).fetchall()
    # Leftovers of a run killed before its delete committed hold personal data and back nothing.
    remove_orphans(home.backups_dir, kept + [row[0] for row in planned])
    results: dict[str, BackupManifest | str] = {}
    for (bulk_action_id,) in planned:
        folder = home.backups_dir / bulk_action_id
        progress(f"backing up bulk action {bulk_action_id}")
        try:
            written_at = datetime.now(timezone.utc)
            manifest = write_backup(
                con, folder=folder, bulk_action_id=bulk_action_id,
                contact_ids_sql=(f"SELECT contact_id FROM plan_items WHERE bulk_action_id = '{bulk_action_id}' "
                                 "AND outcome = 'deleted'"),
                tables=removed_tables(settings), formats=settings.backup_formats, written_at=written_at)
            verify_backup(folder, manifest.manifest_sha256)
        except (BackupError, OSError, duckdb.Error) as exc:
            results[bulk_action_id] = f"backup failed: {exc}"
            con.execute("UPDATE plan_sources SET backup_error = ? WHERE bulk_action_id = ?",
                        [results[bulk_action_id], bulk_action_id])
            continue
        results[bulk_action_id] = manifest
        count(progress, "backup", manifest.total_rows)
        con.execute("UPDATE plan_sources SET backup_path = ?, backup_sha256 = ?, backup_written_at = ?,"
                    " backup_verified_at = ?, backup_rows = ? WHERE bulk_action_id = ?",
                    [str(folder), manifest.manifest_sha256, written_at, datetime.now(timezone.utc),
                     manifest.total_rows, bulk_action_id])
    return results


def removed_tables(settings: Settings) -> list[str]:
    """The contact-linked tables a delete removes rows from: associated data per the cascade, and memberships."""
    policy = settings.cascade.model_dump()
    return [spec.name for spec in ASSOCIATED if policy[spec.name] == "delete"] + [spec.name for spec in MEMBERSHIPS]


def apply_deletions(con: duckdb.DuckDBPyConnection, *, hasher: KeyedHasher, settings: Settings, as_of: datetime,
                    run_id: str | None = None, progress: Progress = lambda message: None) -> list[AppliedAction]:
    """Record every planned bulk action and apply its deletions, each in one transaction.

    A bulk action whose backup is missing or no longer verifies deletes nothing and is recorded `failed`.

    Args:
        con: the store with a plan and its backups.
        hasher: keyed hashes for the suppression list of legal erasures.
        settings: the cascade policy.
        as_of: the run's clock: the contacts' deleted_at.
        run_id: the Dagster run, recorded on each bulk action.
        progress: called with a line per bulk action.

    Returns:
        The bulk actions recorded.
    """
    applied = []
    actions = con.execute(
        "SELECT bulk_action_id, source, rejection, backup_path, backup_sha256, backup_error FROM plan_sources "
        "WHERE NOT preview AND bulk_action_id NOT IN (SELECT bulk_action_id FROM bulk_actions) ORDER BY ord"
    ).fetchall()
    for bulk_action_id, source, rejection, backup_path, backup_sha256, backup_error in actions:
        counts = dict(con.execute("SELECT outcome, count(*) FROM plan_items WHERE bulk_action_id = ? GROUP BY 1",
                                  [bulk_action_id]).fetchall())
        source_kind = con.execute("SELECT source_kind FROM plan_sources WHERE bulk_action_id = ?",
                                  [bulk_action_id]).fetchone()[0]
        if not counts and source_kind != "request":
            continue
        if counts.get("deleted") and backup_error is None:
            try:
                verify_backup(Path(backup_path), backup_sha256)
            except (BackupError, TypeError) as exc:
                backup_error = f"backup did not verify before delete: {exc}"
        progress(f"applying bulk action {bulk_action_id} ({source})")
        with transaction(con):
            status = _apply_one(con, bulk_action_id, hasher, settings, as_of, run_id, rejection, backup_error)
        final = dict(con.execute("SELECT outcome, count(*) FROM bulk_action_items WHERE bulk_action_id = ? "
                                 "GROUP BY 1", [bulk_action_id]).fetchall())
        applied.append(AppliedAction(bulk_action_id, source, status, {o: final.get(o, 0) for o in OUTCOMES},
                                     backup_path if status == "completed" and final.get("deleted") else None,
                                     rejection or backup_error))
        count(progress, "apply", final.get("deleted", 0), "contacts")
    return applied


def _apply_one(con: duckdb.DuckDBPyConnection, bulk_action_id: str, hasher: KeyedHasher, settings: Settings,
               as_of: datetime, run_id: str | None, rejection: str | None, backup_error: str | None) -> str:
    if backup_error:
        status = "failed"
        con.execute("CREATE OR REPLACE TEMP TABLE doomed (contact_id VARCHAR)")
    else:
        status = "rejected" if rejection else "completed"
        con.execute("CREATE OR REPLACE TEMP TABLE doomed AS SELECT contact_id FROM plan_items "
                    "WHERE bulk_action_id = ? AND outcome = 'deleted'", [bulk_action_id])
    legal = con.execute("SELECT legal FROM plan_sources WHERE bulk_action_id = ?", [bulk_action_id]).fetchone()[0]
    for name in removed_tables(settings):
        spec = next(s for s in ASSOCIATED + MEMBERSHIPS if s.name == name)
        con.execute(f"INSERT INTO tombstones SELECT '{name}', {spec.row_key_sql('t')}, ? FROM {name} t "
                    f"WHERE t.contact_id IN (SELECT contact_id FROM doomed)", [bulk_action_id])
        if name in _MEMBERSHIP_OBJECTS:
            _keep_enrollment_metrics(con, name)
        con.execute(f"DELETE FROM {name} WHERE contact_id IN (SELECT contact_id FROM doomed)")
    con.execute("""
        INSERT INTO contact_lifecycle (contact_id, state, deleted_at, deleted_by)
        SELECT contact_id, 'deleted', ?, ? FROM doomed
        ON CONFLICT (contact_id) DO UPDATE SET state = 'deleted', deleted_at = excluded.deleted_at,
            deleted_by = excluded.deleted_by, restored_at = NULL, restored_by = NULL""", [as_of, bulk_action_id])
    if legal and not backup_error:
        # A person a legal erasure finds already deleted (by an internal action, maybe in this very run) is erased
        # too: suppressed, so that a later snapshot cannot bring them back.
        # The erased contacts' keys, materialised first: otherwise DuckDB may push `hash IS NOT NULL` below the
        # semi-join and compute the keyed hash of every contact in the store.
        con.execute("CREATE OR REPLACE TEMP TABLE erased AS SELECT contact_id, email_key, phone_key FROM contacts "
                    "WHERE contact_id IN (SELECT contact_id FROM doomed UNION SELECT contact_id FROM plan_items "
                    "WHERE bulk_action_id = ? AND outcome = 'already_done' AND contact_id IS NOT NULL)",
                    [bulk_action_id])
        # An email or phone still carried by an active contact (the same person's other contact, or a shared
        # line) is not suppressed: it would hide that contact from later snapshots while it stays active here.
        still_active = ("NOT EXISTS (SELECT 1 FROM contacts a WHERE a.{key} = e.{key} AND a.contact_id NOT IN "
                        "(SELECT contact_id FROM contact_lifecycle WHERE state = 'deleted'))")
        con.execute(f"""
            INSERT INTO suppression
            SELECT kind, hash, ?, ? FROM (
                SELECT 'contact_id' AS kind, {hasher.sql('contact_id', 'contact_id')} AS hash FROM erased
                UNION SELECT 'email', {hasher.sql('email', 'e.email_key')} FROM erased e
                    WHERE {still_active.format(key='email_key')}
                UNION SELECT 'phone', {hasher.sql('phone', 'e.phone_key')} FROM erased e
                    WHERE {still_active.format(key='phone_key')}
                UNION {_unmatched_subject_hashes(hasher)})
            WHERE hash IS NOT NULL AND hash NOT IN (SELECT key_hash FROM suppression)""",
                    [bulk_action_id, as_of, *[bulk_action_id] * 3])
    item_outcome = "CASE WHEN i.outcome = 'deleted' THEN 'failed' ELSE i.outcome END" if backup_error else "i.outcome"
    item_reason = (f"CASE WHEN i.outcome = 'deleted' THEN {_sql_text(backup_error + '; nothing deleted')} "
                   "ELSE i.reason END") if backup_error else "i.reason"
    con.execute(f"INSERT INTO bulk_action_items SELECT i.bulk_action_id, i.contact_id, {item_outcome}, {item_reason} "
                "FROM plan_items i WHERE i.bulk_action_id = ?", [bulk_action_id])
    final = dict(con.execute("SELECT outcome, count(*) FROM bulk_action_items WHERE bulk_action_id = ? GROUP BY 1",
                             [bulk_action_id]).fetchall())
    con.execute("""
        INSERT INTO bulk_actions (bulk_action_id, kind, source, source_ref, requested_by, regulation,
            requester_authorized, created_at, applied_at, status, reason, run_id,
            total, done, blocked, rejected, not_found, already_done, failed)
        SELECT bulk_action_id, 'delete', source, source_ref, requested_by, regulation, rejection IS NULL,
               ?, now(), ?, coalesce(rejection, ?), ?, ?, ?, ?, ?, ?, ?, ?
        FROM plan_sources WHERE bulk_action_id = ?""",
                [as_of, status, backup_error, run_id, sum(final.values()),
                 *(final.get(outcome, 0) for outcome in OUTCOMES), bulk_action_id])
    if status == "completed" and con.execute("SELECT count(*) FROM doomed").fetchone()[0]:
        con.execute("""
            INSERT INTO backups (bulk_action_id, path, written_at, verified_at, created_as_of, manifest_sha256,
                                 contacts, total_rows)
            SELECT s.bulk_action_id, s.backup_path, s.backup_written_at, s.backup_verified_at, ?, s.backup_sha256,
                   (SELECT count(*) FROM doomed), s.backup_rows
            FROM plan_sources s WHERE s.bulk_action_id = ?""", [as_of, bulk_action_id])
    source_ref, source_kind = con.execute("SELECT source_ref, source_kind FROM plan_sources WHERE bulk_action_id = ?",
                                          [bulk_action_id]).fetchone()
    if source_kind == "request":
        if backup_error:
            con.execute("UPDATE requests SET reason = ? WHERE request_id = ? AND status = 'pending'",
                        [f"{backup_error}; will retry on the next run (bulk action {bulk_action_id})", source_ref])
        else:
            con.execute("UPDATE requests SET status = CASE WHEN status = 'pending' THEN 'applied' ELSE status END,"
                        " bulk_action_id = ? WHERE request_id = ? AND status IN ('pending', 'rejected')"
                        " AND bulk_action_id IS NULL", [bulk_action_id, source_ref])
            con.execute("DELETE FROM pending_subjects WHERE request_id = ?", [source_ref])
    return status


def _unmatched_subject_hashes(hasher: KeyedHasher) -> str:
    """SQL for the hashes of a legal request's unmatched subjects (three parameters, each its bulk action id).

    They are suppressed too, so that the person does not arrive with a later snapshot.
    """
    subjects = ("FROM pending_subjects p JOIN plan_sources s ON p.request_id = s.source_ref "
                "JOIN plan_candidates c ON c.bulk_action_id = s.bulk_action_id AND c.subject_no = p.subject_no "
                "WHERE s.bulk_action_id = ? AND c.contact_id IS NULL")
    return (f"SELECT kind, hash FROM (SELECT 'contact_id' AS kind, {hasher.sql('contact_id', 'p.contact_id')} AS hash "
            f"{subjects} UNION SELECT 'email', {hasher.sql('email', 'p.email_key')} {subjects} "
            f"UNION SELECT 'phone', {hasher.sql('phone', 'p.phone_key')} {subjects})")


def _keep_enrollment_metrics(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Count the enrollments a delete removes per campaign/workflow/list, so aggregate metrics survive (R12)."""
    kind, id_column = _MEMBERSHIP_OBJECTS[table]
    active = "status = 'active'" if table == "workflow_enrollments" else (
        f"{id_column} IN (SELECT campaign_id FROM campaigns WHERE status = 'active')"
        if table == "campaign_enrollments" else "false")
    con.execute(f"""
        INSERT INTO enrollment_metrics
        SELECT '{kind}', {id_column}, count(*), count(*) FILTER (WHERE {active}) FROM {table}
        WHERE contact_id IN (SELECT contact_id FROM doomed) GROUP BY {id_column}
        ON CONFLICT (object_kind, object_id) DO UPDATE SET
            removed_by_deletion = removed_by_deletion + excluded.removed_by_deletion,
            removed_active = removed_active + excluded.removed_active""")


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
