"""Planning a deletion run: the sources (requests, rules, a manual selection), their candidates, and the decision."""

from __future__ import annotations

from dataclasses import astuple, dataclass, field, replace
from datetime import datetime
from typing import Any

import duckdb

from compliance.bulk_actions import new_bulk_action_id
from compliance.contacts import RULE_EXEMPT_IDS
from compliance.requests.intake import CURRENT_ATTEMPT, REQUEST_SOURCE_PREFIX
from compliance.rules import Condition, bind_clock, predicate
from compliance.settings import Rules, Settings
from compliance.staff import authorize, recorded_requester
from compliance.store.keys import KeyedHasher
from compliance.store.sql import run_sql_file
from compliance.vocabulary import (
    DELETE_OUTCOMES,
    LEGAL_REGULATIONS,
    PLANNED_STATUSES,
    ContactState,
    RequestKind,
    RequestStatus,
    SourceKind,
)

OUTCOMES = DELETE_OUTCOMES
# Tables whose request sources subject_matches_sql may read.
_SOURCE_TABLES = ("plan_sources", "restore_sources")


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
class PlanSource:
    """One source of the plan, as a row of plan_sources (its fields in the table's column order)."""

    bulk_action_id: str
    ord: int
    source_kind: SourceKind
    source: str
    source_ref: str
    requested_by: str | None
    regulation: str | None
    legal: bool
    rejection: str | None
    preview: bool


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


def build_plan(con: duckdb.DuckDBPyConnection, *, hasher: KeyedHasher, settings: Settings, rules: Rules,
               as_of: datetime, include_requests: bool = True, include_drafts: bool = False,
               manual: ManualSelection | None = None) -> Plan:
    """Decide, for every source and contact, one outcome; nothing is deleted here.

    Sources, in the order they claim a contact: pending erasure requests (by received_at), published rules
    (and draft rules, as previews, when asked), then a manual selection. A contact claimed by an earlier source
    is `already_done` for the later ones. A contact outside the requester's locations is `rejected` (decide.sql);
    a rule passes over a contact an admin restored until a later snapshot changed it (RULE_EXEMPT_IDS).

    Args:
        con: a writable store connection (the plan is written to plan_sources and plan_items).
        hasher: keyed hashes, to recognise subjects already erased and purged (its macro must be registered on
            con, as Store.connect does).
        settings: cascade and active-enrollment policies.
        rules: the rules of rules.yaml.
        as_of: the run's clock.
        include_requests: plan pending erasure requests (False for a manual delete command).
        include_drafts: plan draft rules too, as previews (for `retention plan`).
        manual: a manual bulk delete to plan.

    Returns:
        The planned bulk actions with their counts.
    """
    bind_clock(con, as_of)
    sources = _plan_sources(con, rules, as_of, include_requests, include_drafts, manual)
    con.execute("CREATE OR REPLACE TABLE plan_sources (bulk_action_id VARCHAR, ord INTEGER, source_kind VARCHAR,"
                " source VARCHAR, source_ref VARCHAR, requested_by VARCHAR, regulation VARCHAR, legal BOOLEAN,"
                " rejection VARCHAR, preview BOOLEAN, backup_path VARCHAR, backup_sha256 VARCHAR,"
                " backup_written_at TIMESTAMPTZ, backup_verified_at TIMESTAMPTZ, backup_rows BIGINT,"
                " backup_bytes BIGINT,"
                " backup_error VARCHAR)")
    if sources:
        con.executemany("INSERT INTO plan_sources (bulk_action_id, ord, source_kind, source, source_ref, requested_by,"
                        " regulation, legal, rejection, preview) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [list(astuple(source)) for source in sources])
    con.execute("CREATE OR REPLACE TABLE plan_candidates (bulk_action_id VARCHAR, contact_id VARCHAR,"
                " subject_no INTEGER, subject VARCHAR)")
    _request_candidates(con)
    for source in sources:
        if source.source_kind == SourceKind.RULE:
            rule = next(r for r in rules.rules if r.name == source.source_ref)
            _selection_candidates(con, source.bulk_action_id, predicate(rule.trigger), rule_exempt=True)
        elif source.source_kind == SourceKind.MANUAL and manual is not None:
            if manual.contact_ids:
                # One statement with a list parameter: a statement per id cost a commit each.
                con.execute("INSERT INTO plan_candidates SELECT ?, unnest(?::VARCHAR[]), NULL, NULL",
                            [source.bulk_action_id, list(dict.fromkeys(manual.contact_ids))])
            else:
                _selection_candidates(con, source.bulk_action_id, predicate(manual.trigger()))
    run_sql_file(con, __package__, "decide.sql", remove_when_active=settings.active_enrollment == "remove")
    return read_plan(con)


def read_plan(con: duckdb.DuckDBPyConnection) -> Plan:
    """The plan last written to plan_sources and plan_items."""
    rows = con.execute(f"""
        SELECT s.bulk_action_id, s.source, s.source_ref, s.requested_by, s.regulation, s.rejection, s.preview,
               {', '.join('count(i.outcome) FILTER (WHERE i.outcome = ?)' for _ in OUTCOMES)}
        FROM plan_sources s LEFT JOIN plan_items i USING (bulk_action_id)
        GROUP BY ALL ORDER BY min(s.ord)""", list(OUTCOMES)).fetchall()
    return Plan([PlannedAction(bulk_action_id, source, source_ref, requested_by, regulation, rejection, preview,
                               counts=dict(zip(OUTCOMES, counts, strict=True)))
                 for bulk_action_id, source, source_ref, requested_by, regulation, rejection, preview, *counts in rows])


def plan_items(con: duckdb.DuckDBPyConnection, bulk_action_id: str | None = None) -> list[dict[str, Any]]:
    """The plan's per-contact items (of one bulk action, or all), in source order."""
    where = "WHERE i.bulk_action_id = ?" if bulk_action_id else ""
    rows = con.execute(f"SELECT i.bulk_action_id, s.source, i.contact_id, i.outcome, i.reason FROM plan_items i "
                       f"JOIN plan_sources s USING (bulk_action_id) {where} ORDER BY s.ord, i.contact_id NULLS LAST, "
                       f"i.reason", [bulk_action_id] if bulk_action_id else []).fetchall()
    columns = ("bulk_action_id", "source", "contact_id", "outcome", "reason")
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _plan_sources(con: duckdb.DuckDBPyConnection, rules: Rules, as_of: datetime, include_requests: bool,
                 include_drafts: bool, manual: ManualSelection | None) -> list[PlanSource]:
    """The plan's sources in the order they claim contacts: requests by received_at, rules, a manual selection.

    Args:
        con: a store connection (requests and staff are read).
        rules: the rules of rules.yaml.
        as_of: the run's clock (in the bulk action ids).
        include_requests: plan pending erasure requests.
        include_drafts: plan draft rules too, as previews.
        manual: a manual bulk delete to plan.

    Returns:
        The sources, their `ord` numbered in claiming order.
    """
    sources: list[PlanSource] = []
    if include_requests:
        for request_id, file, requested_by, regulation, status, reason in con.execute(
                "SELECT request_id, file, requested_by, regulation, status, reason FROM requests r "
                f"WHERE kind = ? AND status IN (?, ?) AND bulk_action_id IS NULL AND {CURRENT_ATTEMPT} "
                "ORDER BY received_at, request_id", [RequestKind.ERASURE, *PLANNED_STATUSES]).fetchall():
            sources.append(PlanSource(
                new_bulk_action_id(as_of), len(sources), SourceKind.REQUEST, REQUEST_SOURCE_PREFIX + file,
                request_id, requested_by, regulation, regulation in LEGAL_REGULATIONS,
                reason if status == RequestStatus.REJECTED else None, False))
    for rule in rules.rules:
        if rule.status == "published" or include_drafts:
            authorization = authorize(con, rule.owner)
            sources.append(PlanSource(
                new_bulk_action_id(as_of), len(sources), SourceKind.RULE, f"rule {rule.name}", rule.name,
                authorization.user_id or recorded_requester(rule.owner), None, False, authorization.refusal,
                rule.status != "published"))
    if manual is not None:
        authorization = authorize(con, manual.requested_by)
        sources.append(PlanSource(
            new_bulk_action_id(as_of), len(sources), SourceKind.MANUAL, "manual", manual.describe(),
            authorization.user_id or recorded_requester(manual.requested_by), None, False, authorization.refusal,
            False))
    # Previews never claim a contact ahead of a source that will really delete it.
    sources.sort(key=lambda source: (source.preview, source.ord))
    return [replace(source, ord=ord_) for ord_, source in enumerate(sources)]


def subject_matches_sql(sources_table: str) -> str:
    """A WITH clause: `subjects` of the request sources in the table, and their `matches` among all contacts.

    A subject matches every contact with its contact_id, or with its email or phone key among the contact's primary
    and additional identifiers (the table contact_keys, ordered by kind and key): the subject's keys become (kind,
    key) rows equi-joined to it, so that DuckDB hashes the join instead of scanning an OR-join, and a few subjects
    read only the row groups holding their keys. The clause takes one parameter: SourceKind.REQUEST.

    Args:
        sources_table: plan_sources or restore_sources.

    Returns:
        The WITH clause.
    """
    if sources_table not in _SOURCE_TABLES:
        raise ValueError(f"unknown sources table {sources_table!r} (allowed: {', '.join(_SOURCE_TABLES)})")
    return f"""
        WITH subjects AS (
            SELECT s.bulk_action_id, p.subject_no, p.contact_id, p.email_key, p.phone_key
            FROM {sources_table} s JOIN pending_subjects p ON p.request_id = s.source_ref
            WHERE s.source_kind = ?),
        subject_keys AS (
            SELECT bulk_action_id, subject_no, 'email' AS kind, email_key AS key FROM subjects
            WHERE email_key IS NOT NULL
            UNION ALL SELECT bulk_action_id, subject_no, 'phone', phone_key FROM subjects WHERE phone_key IS NOT NULL),
        matches AS (
            SELECT x.bulk_action_id, x.subject_no, c.contact_id FROM subjects x JOIN contacts c USING (contact_id)
            UNION SELECT k.bulk_action_id, k.subject_no, i.contact_id FROM subject_keys k
                JOIN contact_keys i ON i.kind = k.kind AND i.key = k.key)"""


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
        FROM subjects x LEFT JOIN matches m USING (bulk_action_id, subject_no)""", [SourceKind.REQUEST])


def _selection_candidates(con: duckdb.DuckDBPyConnection, bulk_action_id: str, condition: Condition, *,
                          rule_exempt: bool = False) -> None:
    """The contacts not deleted yet that a rule's or smart list's condition selects; a rule's (`rule_exempt`)
    without the contacts a restore exempts from rules."""
    exempt = f"AND c.contact_id NOT IN ({RULE_EXEMPT_IDS})" if rule_exempt else ""
    con.execute(f"""
        INSERT INTO plan_candidates
        SELECT ?, c.contact_id, NULL, NULL FROM contacts c
        WHERE c.contact_id NOT IN (SELECT contact_id FROM contact_lifecycle WHERE state = ?) {exempt}
          AND {condition.sql}""", [bulk_action_id, ContactState.DELETED, *condition.parameters])
