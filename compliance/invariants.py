"""The nine retention invariants (PRODUCT.md section 4): measured in DuckDB, judged by one Great Expectations suite.

DuckDB reduces each invariant to a few rows (a violation count with sample ids, or one row per bulk action or
backup, which are few); one GX suite over that small frame decides pass or fail, and the result is a summary
that a Dagster asset check turns into metadata. GX is imported on the first check, never at module import.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import duckdb
import pandas as pd

from compliance.keys import KeyedHasher
from compliance.purge import PURGED_LABEL_PREFIX
from compliance.schema import ASSOCIATED, CONTACT_LINKED, MEMBERSHIPS, TableSpec
from compliance.settings import Settings

PURGE_RAN = "purge_ran"
DELETED_CONTACTS_BACKED_UP = "deleted_contacts_backed_up"
NO_ORPHANED_ASSOCIATED_DATA = "no_orphaned_associated_data"
NO_MEMBERSHIPS_OF_DELETED = "no_memberships_of_deleted"
RESTORES_INSIDE_WINDOW = "restores_inside_window_without_old_data"
DELETIONS_TRACE_TO_ADMIN = "deletions_trace_to_admin"
SUPPRESSED_STAY_ERASED = "suppressed_stay_erased"
BULK_ACTION_COUNTS_ADD_UP = "bulk_action_counts_add_up"
BACKUPS_WITHIN_RETENTION = "backups_within_retention"

INVARIANTS: tuple[str, ...] = (
    PURGE_RAN, DELETED_CONTACTS_BACKED_UP, NO_ORPHANED_ASSOCIATED_DATA, NO_MEMBERSHIPS_OF_DELETED,
    RESTORES_INSIDE_WINDOW, DELETIONS_TRACE_TO_ADMIN, SUPPRESSED_STAY_ERASED, BULK_ACTION_COUNTS_ADD_UP,
    BACKUPS_WITHIN_RETENTION,
)

DESCRIPTIONS: dict[str, str] = {
    PURGE_RAN: "No deleted contact older than the restore window is still in the store (purge ran).",
    DELETED_CONTACTS_BACKED_UP: "Every deleted contact has a verified backup (file present, checksum and row count "
                                "match), written before its deletion.",
    NO_ORPHANED_ASSOCIATED_DATA: "No associated row whose policy is `delete` points at a deleted or purged contact.",
    NO_MEMBERSHIPS_OF_DELETED: "No campaign, workflow or list membership points at a deleted or purged contact.",
    RESTORES_INSIDE_WINDOW: "A restored contact was restored inside its window, and none of its pre-deletion "
                            "associated data came back.",
    DELETIONS_TRACE_TO_ADMIN: "Every deletion traces to an active admin (a request's author or a rule's owner).",
    SUPPRESSED_STAY_ERASED: "No suppressed (erased) person is active again.",
    BULK_ACTION_COUNTS_ADD_UP: "Each bulk action's counts add up to its total.",
    BACKUPS_WITHIN_RETENTION: "No backup is older than the backup retention.",
}

MAX_SAMPLES = 10
SUITE_NAME = "retention_invariants"
DOCS_SITE = "retention_invariants"
_US_PER_DAY = 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_FRAME_COLUMNS = ("invariant", "check", "subject", "observed", "expected", "age_days")
_NONE = "(none)"


@dataclass(frozen=True)
class InvariantResult:
    """One invariant as GX judged it; ids only, never an email or phone."""

    name: str
    description: str
    passed: bool
    violations: int
    sample_ids: tuple[str, ...]
    message: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields, e.g. for Dagster check metadata or the compliance report."""
        return {"name": self.name, "description": self.description, "passed": self.passed,
                "violations": self.violations, "sample_ids": list(self.sample_ids), "message": self.message}


@dataclass(frozen=True)
class InvariantSummary:
    """The invariants checked in one run, in INVARIANTS order, and where GX wrote its Data Docs."""

    results: tuple[InvariantResult, ...]
    data_docs_index: Path | None = None

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(result.name for result in self.results if not result.passed)

    def by_name(self, name: str) -> InvariantResult:
        """The result of one invariant.

        Raises:
            KeyError: naming the invariants this summary holds.
        """
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(f"invariant {name!r} was not checked (checked: {', '.join(r.name for r in self.results)})")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields of every result, plus the Data Docs index path."""
        return {"passed": self.passed, "results": [result.as_dict() for result in self.results],
                "data_docs_index": str(self.data_docs_index) if self.data_docs_index else None}


@dataclass(frozen=True)
class _Row:
    """One row of the frame GX validates; samples and detail stay outside it so Data Docs hold no contact ids."""

    invariant: str
    check: str
    subject: str
    observed: int = 0
    expected: int = 0
    age_days: float = float("nan")
    weight: int = 1
    samples: tuple[str, ...] = ()
    detail: str = ""


def check_invariants(con: duckdb.DuckDBPyConnection, *, secret: bytes, settings: Settings, as_of: datetime,
                     docs_dir: Path | None = None, only: Sequence[str] | None = None) -> InvariantSummary:
    """Measure the invariants in the store and have one Great Expectations validation judge them.

    Args:
        con: a store connection (read-only is enough).
        secret: the home's key for keyed hashes (suppression, purged contacts).
        settings: restore window, backup retention and cascade policy.
        as_of: the run's clock; a naive datetime is taken as UTC.
        docs_dir: when given, GX writes its Data Docs (static HTML) there.
        only: check these invariants only (names from INVARIANTS); default all nine.

    Returns:
        One result per invariant checked, in INVARIANTS order, and the Data Docs index when written.

    Raises:
        ValueError: `only` names an unknown invariant.
    """
    names = _select(only)
    measure = _Measure(con, KeyedHasher(secret).register(con), settings, _epoch_us(as_of))
    rows = [row for name in names for row in getattr(measure, name)()]
    verdicts, index = _judge(rows, names, settings, docs_dir)
    return InvariantSummary(tuple(_result(name, verdicts[name], rows, settings) for name in names), index)


def _select(only: Sequence[str] | None) -> list[str]:
    if only is None:
        return list(INVARIANTS)
    if isinstance(only, str):
        only = [only]
    unknown = [name for name in only if name not in INVARIANTS]
    if unknown:
        raise ValueError(f"unknown invariant {unknown[0]!r} (known: {', '.join(INVARIANTS)})")
    return [name for name in INVARIANTS if name in only]


def _epoch_us(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return (value - _EPOCH) // timedelta(microseconds=1)


class _Measure:
    """What each invariant needs, computed set-based in DuckDB: counts and at most MAX_SAMPLES ids per check."""

    def __init__(self, con: duckdb.DuckDBPyConnection, hasher: KeyedHasher, settings: Settings, as_of_us: int):
        self.con = con
        self.hasher = hasher
        self.settings = settings
        self.as_of_us = as_of_us
        self.window_us = settings.restore_window_days * _US_PER_DAY

    def purge_ran(self) -> list[_Row]:
        count, samples = self.con.execute(
            f"SELECT count(*), list(contact_id ORDER BY deleted_at, contact_id)[1:{MAX_SAMPLES}] "
            "FROM contact_lifecycle WHERE state = 'deleted' AND epoch_us(deleted_at) + ? < ?",
            [self.window_us, self.as_of_us]).fetchone()
        return [_count_row(PURGE_RAN, "past_window", count, samples)]

    def deleted_contacts_backed_up(self) -> list[_Row]:
        from compliance.backup import BackupError, verify_backup

        rows = []
        for group in self._deletion_groups:
            reason = None
            if not group["has_backup"]:
                reason = "no backup recorded"
            elif group["expired_at"] is not None:
                reason = f"backup expired on {_iso(group['expired_at'])}"
            elif not group["verified_in_time"]:
                reason = f"backup verified at {_iso(group['verified_at'])}, after the deletion"
            else:
                folder = Path(group["path"])
                try:
                    verify_backup(folder, group["manifest_sha256"])
                except (BackupError, OSError) as exc:
                    reason = _first_line(exc).replace(f"backup {folder}: ", "")
            rows.append(_Row(DELETED_CONTACTS_BACKED_UP, "verified_backup", group["subject"],
                             observed=int(reason is None), expected=1, weight=group["contacts"],
                             samples=group["samples"], detail=f"{group['subject']}: {reason}"))
        return rows

    def no_orphaned_associated_data(self) -> list[_Row]:
        policy = self.settings.cascade.model_dump()
        return self._rows_of_gone(NO_ORPHANED_ASSOCIATED_DATA,
                                  [spec for spec in ASSOCIATED if policy[spec.name] == "delete"])

    def no_memberships_of_deleted(self) -> list[_Row]:
        return self._rows_of_gone(NO_MEMBERSHIPS_OF_DELETED, list(MEMBERSHIPS))

    def _rows_of_gone(self, invariant: str, specs: list[TableSpec]) -> list[_Row]:
        rows = []
        for spec in specs:
            count, samples = self._gone_hits.get(spec.name, (0, []))
            rows.append(_count_row(invariant, spec.name, count, samples, detail=f"{count} in {spec.name}"))
        return rows

    def restores_inside_window_without_old_data(self) -> list[_Row]:
        count, samples = self.con.execute(
            f"SELECT count(*), list(contact_id ORDER BY contact_id)[1:{MAX_SAMPLES}] FROM contact_lifecycle "
            "WHERE restored_at IS NOT NULL "
            "AND (deleted_at IS NULL OR epoch_us(restored_at) > epoch_us(deleted_at) + ?)", [self.window_us]).fetchone()
        window = self.settings.restore_window_days
        rows = [_count_row(RESTORES_INSIDE_WINDOW, "late_restore", count, samples,
                           detail=f"{count} restored after the {window}-day window")]
        hits = "\nUNION ALL\n".join(
            f"SELECT '{spec.name}' AS tbl, '{spec.name}:' || {spec.row_key_sql('t')} AS sample FROM {spec.name} t "
            f"WHERE t.contact_id IN (SELECT contact_id FROM restored) AND EXISTS (SELECT 1 FROM tombstones x "
            f"WHERE x.table_name = '{spec.name}' AND x.row_key = {spec.row_key_sql('t')})"
            for spec in CONTACT_LINKED)
        found = {tbl: (n, sample) for tbl, n, sample in self.con.execute(
            "WITH restored AS (SELECT contact_id FROM contact_lifecycle "
            "WHERE state = 'active' AND restored_at IS NOT NULL), "
            f"hits AS ({hits}) SELECT tbl, count(*), list(sample ORDER BY sample)[1:{MAX_SAMPLES}] "
            "FROM hits GROUP BY tbl").fetchall()}
        for spec in CONTACT_LINKED:
            n, sample = found.get(spec.name, (0, []))
            rows.append(_count_row(RESTORES_INSIDE_WINDOW, spec.name, n, sample,
                                   detail=f"{n} {spec.name} row{_s(n)} removed by a delete came back"))
        return rows

    def deletions_trace_to_admin(self) -> list[_Row]:
        rows = []
        for group in self._deletion_groups:
            if group["kind"] is None:
                reason = "no bulk action recorded" if group["subject"] == _NONE else "no such bulk action"
            elif group["kind"] != "delete":
                reason = f"a {group['kind']} bulk action, not a delete"
            elif not group["requester_authorized"]:
                reason = "its requester is not an authorized admin"
            else:
                reason = None
            rows.append(_Row(DELETIONS_TRACE_TO_ADMIN, "authorized_delete", group["subject"],
                             observed=int(reason is None), expected=1, weight=group["contacts"],
                             samples=group["samples"], detail=f"{group['subject']}: {reason}"))
        return rows

    def suppressed_stay_erased(self) -> list[_Row]:
        count, samples = 0, []
        if self.con.execute("SELECT count(*) FROM suppression").fetchone()[0]:
            h = self.hasher
            count, samples = self.con.execute(f"""
                WITH live AS (
                    SELECT c.contact_id, c.email_key, c.phone_key FROM contacts c
                    LEFT JOIN contact_lifecycle l ON l.contact_id = c.contact_id
                    WHERE l.state IS NULL OR l.state <> 'deleted'),
                keyed AS (
                    SELECT contact_id, 'contact_id' AS kind, {h.sql('contact_id', 'contact_id')} AS key_hash FROM live
                    UNION ALL SELECT contact_id, 'email', {h.sql('email', 'email_key')} FROM live
                    UNION ALL SELECT contact_id, 'phone', {h.sql('phone', 'phone_key')} FROM live),
                hit AS (SELECT DISTINCT k.contact_id FROM keyed k
                        JOIN suppression s ON s.key_kind = k.kind AND s.key_hash = k.key_hash)
                SELECT count(*), list(contact_id ORDER BY contact_id)[1:{MAX_SAMPLES}] FROM hit""").fetchone()
        return [_count_row(SUPPRESSED_STAY_ERASED, "active_suppressed", count, samples)]

    def bulk_action_counts_add_up(self) -> list[_Row]:
        rows = []
        for bulk_action_id, total, parts, items in self.con.execute("""
                SELECT b.bulk_action_id, b.total,
                       b.done + b.blocked + b.rejected + b.not_found + b.already_done + b.failed,
                       coalesce(i.items, 0)
                FROM bulk_actions b
                LEFT JOIN (SELECT bulk_action_id, count(*) AS items FROM bulk_action_items GROUP BY 1) i
                       ON i.bulk_action_id = b.bulk_action_id
                ORDER BY b.bulk_action_id""").fetchall():
            detail = f"{bulk_action_id}: total {total}, outcomes {parts}, items {items}"
            for check, observed in (("outcomes", parts), ("items", items)):
                rows.append(_Row(BULK_ACTION_COUNTS_ADD_UP, check, bulk_action_id, observed=int(observed),
                                 expected=int(total), samples=(bulk_action_id,), detail=detail))
        return rows

    def backups_within_retention(self) -> list[_Row]:
        return [_Row(BACKUPS_WITHIN_RETENTION, "age", bulk_action_id, age_days=float(age_days),
                     samples=(bulk_action_id,), detail=f"{bulk_action_id}: {age_days:.1f} days old")
                for bulk_action_id, age_days in self.con.execute(
                    "SELECT bulk_action_id, (? - epoch_us(created_as_of)) / 86400000000.0 FROM backups "
                    "WHERE expired_at IS NULL ORDER BY bulk_action_id", [self.as_of_us]).fetchall()]

    @cached_property
    def _deletion_groups(self) -> list[dict[str, Any]]:
        """Deleted contacts grouped by the bulk action that deleted them, with that action and its backup."""
        cursor = self.con.execute(f"""
            WITH g AS (
                SELECT deleted_by, count(*) AS contacts, min(deleted_at) AS first_deleted_at,
                       list(contact_id ORDER BY contact_id)[1:{MAX_SAMPLES}] AS samples
                FROM contact_lifecycle WHERE state = 'deleted' GROUP BY deleted_by)
            SELECT coalesce(g.deleted_by, '{_NONE}') AS subject, g.contacts, g.samples, a.kind,
                   coalesce(a.requester_authorized, false) AS requester_authorized,
                   b.bulk_action_id IS NOT NULL AS has_backup, b.path, b.manifest_sha256, b.verified_at,
                   b.expired_at, coalesce(b.verified_at <= coalesce(a.applied_at, g.first_deleted_at), false)
                       AS verified_in_time
            FROM g
            LEFT JOIN bulk_actions a ON a.bulk_action_id = g.deleted_by
            LEFT JOIN backups b ON b.bulk_action_id = g.deleted_by
            ORDER BY subject""")
        columns = [column[0] for column in cursor.description]
        groups = [dict(zip(columns, values)) for values in cursor.fetchall()]
        for group in groups:
            group["samples"] = tuple(group["samples"] or ())
        return groups

    @cached_property
    def _gone_hits(self) -> dict[str, tuple[int, list[str]]]:
        """Per contact-linked table: rows whose contact is deleted or purged, counted, with sample row names."""
        purged = ""
        if self.con.execute("SELECT count(*) FROM purged_contacts").fetchone()[0]:
            ids = " UNION ".join(f"SELECT contact_id FROM {spec.name}" for spec in CONTACT_LINKED)
            hashed = self.hasher.sql("contact_id", "contact_id")
            # Only ids still referenced somewhere are hashed: a keyed hash cannot be reversed, only matched.
            # A purged contact is named as the purge names it in bulk action items, never by its id.
            purged = f"""
                UNION ALL
                SELECT contact_id, '{PURGED_LABEL_PREFIX}' || left(contact_hash, 16) FROM (
                    SELECT contact_id, {hashed} AS contact_hash FROM ({ids})
                    WHERE contact_id NOT IN (SELECT contact_id FROM contact_lifecycle WHERE state = 'deleted'))
                WHERE contact_hash IN (SELECT contact_hash FROM purged_contacts)"""
        hits = "\nUNION ALL\n".join(
            f"SELECT '{spec.name}' AS tbl, {_row_name(spec)} AS sample FROM {spec.name} t "
            f"JOIN gone g ON g.contact_id = t.contact_id" for spec in CONTACT_LINKED)
        rows = self.con.execute(f"""
            WITH gone AS MATERIALIZED (
                SELECT contact_id, contact_id AS label FROM contact_lifecycle WHERE state = 'deleted'{purged}),
            hits AS ({hits})
            SELECT tbl, count(*), list(sample ORDER BY sample)[1:{MAX_SAMPLES}] FROM hits GROUP BY tbl""").fetchall()
        return {tbl: (count, samples) for tbl, count, samples in rows}


def _row_name(spec: TableSpec) -> str:
    """A row's name for samples; a purged contact's id is not repeated (it must be gone from every report)."""
    parts = [f"CAST(t.{column} AS VARCHAR)" if column != "contact_id" else "g.label" for column in spec.key]
    return f"'{spec.name}:' || " + " || ':' || ".join(parts)


def _count_row(invariant: str, check: str, count: int, samples: list[str] | None, detail: str = "") -> _Row:
    return _Row(invariant, check, check, observed=int(count), expected=0, weight=int(count),
                samples=tuple(samples or ()), detail=detail)


def _expectations(gx: Any, name: str, settings: Settings) -> list[Any]:
    """The GX expectations that judge one invariant's rows of the frame."""
    from great_expectations.expectations.row_conditions import Column

    common = {"row_condition": Column("invariant") == name, "meta": {"invariant": name},
              "notes": DESCRIPTIONS[name]}
    e = gx.expectations
    if name in (DELETED_CONTACTS_BACKED_UP, DELETIONS_TRACE_TO_ADMIN):
        return [e.ExpectColumnValuesToBeInSet(column="observed", value_set=[1], **common)]
    if name == BULK_ACTION_COUNTS_ADD_UP:
        return [e.ExpectColumnPairValuesToBeEqual(column_A="observed", column_B="expected", **common)]
    if name == BACKUPS_WITHIN_RETENTION:
        return [e.ExpectColumnValuesToBeBetween(column="age_days", max_value=settings.backup_retention_days,
                                                **common)]
    return [e.ExpectColumnValuesToBeBetween(column="observed", min_value=0, max_value=0, **common)]


@dataclass
class _Verdict:
    success: bool = True
    failed_rows: set[int] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)


def _judge(rows: list[_Row], names: list[str], settings: Settings,
           docs_dir: Path | None) -> tuple[dict[str, _Verdict], Path | None]:
    """Run the one suite over the frame in one validation; which frame rows failed, per invariant."""
    gx = _import_gx()
    frame = pd.DataFrame([{column: getattr(row, column) for column in _FRAME_COLUMNS} for row in rows],
                         columns=list(_FRAME_COLUMNS))
    frame = frame.astype({"invariant": "str", "check": "str", "subject": "str", "observed": "int64",
                          "expected": "int64", "age_days": "float64"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        context = _context(gx, docs_dir)
        batch = (context.data_sources.add_pandas("retention_store").add_dataframe_asset("invariant_measures")
                 .add_batch_definition_whole_dataframe("this_run"))
        # Built whole, then stored once: add_expectation would re-save the suite after each expectation.
        suite = context.suites.add(gx.ExpectationSuite(
            name=SUITE_NAME, expectations=[e for name in names for e in _expectations(gx, name, settings)]))
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(name="retention_invariants_run", data=batch, suite=suite))
        actions = [gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=[DOCS_SITE])] if docs_dir else []
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name="retention_invariants", validation_definitions=[validation], actions=actions,
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["check", "subject"],
                           "return_unexpected_index_query": False}))
        outcome = checkpoint.run(batch_parameters={"dataframe": frame})
    verdicts = {name: _Verdict() for name in names}
    positions = {(row.invariant, row.check, row.subject): index for index, row in enumerate(rows)}
    for suite_result in outcome.run_results.values():
        for result in suite_result.results:
            name = result.expectation_config.meta["invariant"]
            verdict = verdicts[name]
            verdict.success = verdict.success and bool(result.success)
            for failed in (result.result or {}).get("unexpected_index_list") or ():
                verdict.failed_rows.add(positions[(name, failed["check"], failed["subject"])])
            info = result.exception_info or {}
            if info.get("raised_exception"):
                verdict.errors.append(_first_line(info.get("exception_message") or "GX raised an exception"))
    index = Path(docs_dir) / "index.html" if docs_dir else None
    return verdicts, index if index and index.is_file() else None


def _context(gx: Any, docs_dir: Path | None) -> Any:
    """An in-memory GX context: no project folder, no analytics, no progress bars; Data Docs only when asked."""
    from great_expectations.data_context.types.base import (
        DataContextConfig, InMemoryStoreBackendDefaults, ProgressBarsConfig)

    config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(), analytics_enabled=False,
                               progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False))
    if docs_dir:
        config.data_docs_sites = {DOCS_SITE: {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }}
    return gx.get_context(mode="ephemeral", project_config=config)


def _import_gx() -> Any:
    # A compliance tool makes no outbound calls; set before GX is first imported.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import great_expectations as gx
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    return gx


_PASS = {
    PURGE_RAN: "no deleted contact is past the {window}-day restore window",
    DELETED_CONTACTS_BACKED_UP: "every deleted contact has a verified backup written before its deletion",
    NO_ORPHANED_ASSOCIATED_DATA: "no associated row with cascade policy delete points at a deleted or purged contact",
    NO_MEMBERSHIPS_OF_DELETED: "no campaign, workflow or list membership points at a deleted or purged contact",
    RESTORES_INSIDE_WINDOW: "every restore was inside the {window}-day window and brought back no pre-deletion data",
    DELETIONS_TRACE_TO_ADMIN: "every deleted contact traces to a delete bulk action by an authorized admin",
    SUPPRESSED_STAY_ERASED: "no erased person is active again",
    BULK_ACTION_COUNTS_ADD_UP: "every bulk action's outcome counts and items add up to its total",
    BACKUPS_WITHIN_RETENTION: "no kept backup is older than the {retention}-day retention",
}
_FAIL = {
    PURGE_RAN: "{n} deleted contact{s} past the {window}-day restore window {are} still in the store",
    DELETED_CONTACTS_BACKED_UP: "{n} deleted contact{s} {have} no verified backup written before the deletion: "
                                "{details}",
    NO_ORPHANED_ASSOCIATED_DATA: "{n} associated row{s} of deleted or purged contacts {are} still in the store: "
                                 "{details}",
    NO_MEMBERSHIPS_OF_DELETED: "{n} membership{s} of deleted or purged contacts {are} still in the store: {details}",
    RESTORES_INSIDE_WINDOW: "{n} restore violation{s}: {details}",
    DELETIONS_TRACE_TO_ADMIN: "{n} deleted contact{s} {do} not trace to a delete by an authorized admin: {details}",
    SUPPRESSED_STAY_ERASED: "{n} contact{s} matching an erased person's keyed hash {are} not deleted",
    BULK_ACTION_COUNTS_ADD_UP: "{n} bulk action{s} whose counts do not add up: {details}",
    BACKUPS_WITHIN_RETENTION: "{n} backup{s} older than the {retention}-day retention {are} still kept: {details}",
}


def _result(name: str, verdict: _Verdict, rows: list[_Row], settings: Settings) -> InvariantResult:
    by_subject: dict[str, _Row] = {}
    for index in sorted(verdict.failed_rows):
        by_subject.setdefault(rows[index].subject, rows[index])
    failed = list(by_subject.values())
    violations = sum(row.weight for row in failed)
    samples = list(dict.fromkeys(sample for row in failed for sample in row.samples))
    words = {"window": settings.restore_window_days, "retention": settings.backup_retention_days}
    if verdict.success:
        message = _PASS[name].format(**words)
    elif not failed:
        message = f"could not be evaluated: {'; '.join(verdict.errors) or 'GX reported a failure without rows'}"
    else:
        details = "; ".join(row.detail for row in failed[:3]) + ("; …" if len(failed) > 3 else "")
        message = _FAIL[name].format(n=violations, s=_s(violations), are="is" if violations == 1 else "are",
                                     have="has" if violations == 1 else "have",
                                     do="does" if violations == 1 else "do", details=details, **words)
        if samples:
            shown = samples[:MAX_SAMPLES]
            more = ", …" if violations > len(shown) else ""
            message += f" ({', '.join(shown)}{more})"
    return InvariantResult(name, DESCRIPTIONS[name], bool(verdict.success), violations,
                           tuple(samples[:MAX_SAMPLES]), message)


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _iso(value: datetime | None) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if value else "?"


def _first_line(exc: BaseException | str) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
