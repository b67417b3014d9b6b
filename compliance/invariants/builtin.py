"""The nine invariants of PRODUCT.md section 4, one class each, registered in the order every summary lists them.

A tenth invariant is one more registered class, here or in any module the package imports.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from compliance.clock import utc_iso
from compliance.errors import first_line
from compliance.invariants.reductions import NO_BULK_ACTION, deletion_groups, gone_hits
from compliance.invariants.registry import MAX_SAMPLES, Invariant, Row, Run, register
from compliance.invariants.results import plural
from compliance.settings import Settings
from compliance.store.schema import ASSOCIATED, CONTACT_LINKED, MEMBERSHIPS, TableSpec
from compliance.store.sql import one_row, scalar

PURGE_RAN = "purge_ran"
DELETED_CONTACTS_BACKED_UP = "deleted_contacts_backed_up"
NO_ORPHANED_ASSOCIATED_DATA = "no_orphaned_associated_data"
NO_MEMBERSHIPS_OF_DELETED = "no_memberships_of_deleted"
RESTORES_INSIDE_WINDOW = "restores_inside_window_without_old_data"
DELETIONS_TRACE_TO_ADMIN = "deletions_trace_to_admin"
SUPPRESSED_STAY_ERASED = "suppressed_stay_erased"
BULK_ACTION_COUNTS_ADD_UP = "bulk_action_counts_add_up"
BACKUPS_WITHIN_RETENTION = "backups_within_retention"


@register(PURGE_RAN)
class PurgeRan(Invariant):
    description = "No deleted contact older than the restore window is still in the store (purge ran)."
    pass_message = "no deleted contact is past the {window}-day restore window"
    fail_message = "{n} deleted contact{s} past the {window}-day restore window {are} still in the store"

    def measure(self, run: Run) -> list[Row]:
        count, samples = one_row(
            run.con, "SELECT count(*), list(contact_id ORDER BY deleted_at, contact_id)[1:$samples] "
            "FROM contact_lifecycle WHERE state = 'deleted' AND epoch_us(deleted_at) + $window_us < $as_of_us",
            {"samples": MAX_SAMPLES, "window_us": run.window_us, "as_of_us": run.as_of_us})
        return [self.count_row("past_window", count, samples)]


class _PerDeletion(Invariant):
    """Judged per bulk action that deleted contacts: its row holds (observed 1) or names why it does not."""

    check: str

    def measure(self, run: Run) -> list[Row]:
        rows = []
        for group in run.once(deletion_groups):
            reason = self.reason(group)
            rows.append(Row(self.name, self.check, group["subject"], observed=int(reason is None), expected=1,
                            weight=group["contacts"], samples=group["samples"],
                            detail=f"{group['subject']}: {reason}"))
        return rows

    def reason(self, group: dict[str, Any]) -> str | None:
        """Why this group's deletion breaks the invariant; None when it holds."""
        raise NotImplementedError

    def expectations(self, e: Any, settings: Settings, **common: Any) -> list[Any]:
        return [e.ExpectColumnValuesToBeInSet(column="observed", value_set=[1], **common)]


@register(DELETED_CONTACTS_BACKED_UP)
class DeletedContactsBackedUp(_PerDeletion):
    description = ("Every deleted contact has a verified backup (file present, checksum and row count match), "
                   "written before its deletion.")
    pass_message = "every deleted contact has a verified backup written before its deletion"
    fail_message = "{n} deleted contact{s} {have} no verified backup written before the deletion: {details}"
    check = "verified_backup"

    def reason(self, group: dict[str, Any]) -> str | None:
        from compliance.store.backup import BackupError, verify_backup

        if not group["has_backup"]:
            return "no backup recorded"
        if group["expired_at"] is not None:
            return f"backup expired on {_iso(group['expired_at'])}"
        if not group["verified_in_time"]:
            return f"backup verified at {_iso(group['verified_at'])}, after the deletion"
        folder = Path(group["path"])
        try:
            verify_backup(folder, group["manifest_sha256"])
        except (BackupError, OSError) as exc:
            return first_line(exc).replace(f"backup {folder}: ", "")
        return None


class _NoRowsOfGone(Invariant):
    """No row of the chosen contact-linked tables points at a deleted or purged contact; one row per table."""

    def tables(self, settings: Settings) -> list[TableSpec]:
        raise NotImplementedError

    def measure(self, run: Run) -> list[Row]:
        hits = run.once(gone_hits)
        rows = []
        for spec in self.tables(run.settings):
            count, samples = hits.get(spec.name, (0, []))
            rows.append(self.count_row(spec.name, count, samples, detail=f"{count} in {spec.name}"))
        return rows


@register(NO_ORPHANED_ASSOCIATED_DATA)
class NoOrphanedAssociatedData(_NoRowsOfGone):
    description = "No associated row whose policy is `delete` points at a deleted or purged contact."
    pass_message = "no associated row with cascade policy delete points at a deleted or purged contact"
    fail_message = "{n} associated row{s} of deleted or purged contacts {are} still in the store: {details}"

    def tables(self, settings: Settings) -> list[TableSpec]:
        policy = settings.cascade.model_dump()
        return [spec for spec in ASSOCIATED if policy[spec.name] == "delete"]


@register(NO_MEMBERSHIPS_OF_DELETED)
class NoMembershipsOfDeleted(_NoRowsOfGone):
    description = "No campaign, workflow or list membership points at a deleted or purged contact."
    pass_message = "no campaign, workflow or list membership points at a deleted or purged contact"
    fail_message = "{n} membership{s} of deleted or purged contacts {are} still in the store: {details}"

    def tables(self, settings: Settings) -> list[TableSpec]:
        return list(MEMBERSHIPS)


@register(RESTORES_INSIDE_WINDOW)
class RestoresInsideWindow(Invariant):
    description = ("A restored contact was restored inside its window, and none of its pre-deletion associated "
                   "data came back.")
    pass_message = "every restore was inside the {window}-day window and brought back no pre-deletion data"
    fail_message = "{n} restore violation{s}: {details}"

    def measure(self, run: Run) -> list[Row]:
        count, samples = one_row(
            run.con, "SELECT count(*), list(contact_id ORDER BY contact_id)[1:$samples] FROM contact_lifecycle "
            "WHERE restored_at IS NOT NULL "
            "AND (deleted_at IS NULL OR epoch_us(restored_at) > epoch_us(deleted_at) + $window_us)",
            {"samples": MAX_SAMPLES, "window_us": run.window_us})
        window = run.settings.restore_window_days
        rows = [self.count_row("late_restore", count, samples,
                               detail=f"{count} restored after the {window}-day window")]
        found = self._returned_rows(run)
        for spec in CONTACT_LINKED:
            n, sample = found.get(spec.name, (0, []))
            rows.append(self.count_row(spec.name, n, sample,
                                       detail=f"{n} {spec.name} row{plural(n)} removed by a delete came back"))
        return rows

    @staticmethod
    def _returned_rows(run: Run) -> dict[str, tuple[int, list[str]]]:
        """Per contact-linked table: rows of restored contacts that a delete had tombstoned."""
        hits = "\nUNION ALL\n".join(
            f"SELECT '{spec.name}' AS tbl, '{spec.name}:' || {spec.row_key_sql('t')} AS sample FROM {spec.name} t "
            f"WHERE t.contact_id IN (SELECT contact_id FROM restored) AND EXISTS (SELECT 1 FROM tombstones x "
            f"WHERE x.table_name = '{spec.name}' AND x.row_key = {spec.row_key_sql('t')})"
            for spec in CONTACT_LINKED)
        return {tbl: (n, sample) for tbl, n, sample in run.con.execute(
            "WITH restored AS (SELECT contact_id FROM contact_lifecycle "
            "WHERE state = 'active' AND restored_at IS NOT NULL), "
            f"hits AS ({hits}) SELECT tbl, count(*), list(sample ORDER BY sample)[1:$samples] "
            "FROM hits GROUP BY tbl", {"samples": MAX_SAMPLES}).fetchall()}


def _deleted_outside_scope(run: Run) -> dict[str, tuple[str, int, str]]:
    """Per delete bulk action: its requester, and how many of its deleted contacts lie outside the requester's
    locations (staff.location_ids as last ingested; empty or NULL: every location), with the first such location."""
    rows = run.con.execute("""
        SELECT l.deleted_by, any_value(a.requested_by), count(*), min(coalesce(k.location_id, '(none)'))
        FROM contact_lifecycle l JOIN bulk_actions a ON a.bulk_action_id = l.deleted_by
        JOIN staff st ON st.user_id = a.requested_by
        LEFT JOIN contacts k ON k.contact_id = l.contact_id
        WHERE l.state = 'deleted' AND retention_out_of_scope(st.location_ids, k.location_id)
        GROUP BY l.deleted_by""").fetchall()
    return {bulk_action_id: (requested_by, count, location) for bulk_action_id, requested_by, count, location in rows}


@register(DELETIONS_TRACE_TO_ADMIN)
class DeletionsTraceToAdmin(_PerDeletion):
    description = ("Every deletion traces to an active admin (a request's author or a rule's owner) of the "
                   "contact's location.")
    pass_message = "every deleted contact traces to a delete bulk action by an authorized admin"
    fail_message = "{n} deleted contact{s} {do} not trace to a delete by an authorized admin: {details}"
    check = "authorized_delete"

    def measure(self, run: Run) -> list[Row]:
        self._outside = run.once(_deleted_outside_scope)
        return super().measure(run)

    def reason(self, group: dict[str, Any]) -> str | None:
        if group["kind"] is None:
            return "no bulk action recorded" if group["subject"] == NO_BULK_ACTION else "no such bulk action"
        if group["kind"] != "delete":
            return f"a {group['kind']} bulk action, not a delete"
        if not group["requester_authorized"]:
            return "its requester is not an authorized admin"
        if group["subject"] in self._outside:
            requested_by, count, location = self._outside[group["subject"]]
            return (f"its requester {requested_by} is not an admin of location {location} "
                    f"({count} contact{plural(count)} there)")
        return None


@register(SUPPRESSED_STAY_ERASED)
class SuppressedStayErased(Invariant):
    description = "No suppressed (erased) person is active again."
    pass_message = "no erased person is active again"
    fail_message = "{n} contact{s} matching an erased person's keyed hash {are} not deleted"

    def measure(self, run: Run) -> list[Row]:
        count, samples = 0, []
        if scalar(run.con, "SELECT count(*) FROM suppression"):
            h = run.hasher
            count, samples = one_row(run.con, f"""
                WITH live AS (
                    SELECT c.contact_id FROM contacts c
                    LEFT JOIN contact_lifecycle l ON l.contact_id = c.contact_id
                    WHERE l.state IS NULL OR l.state <> 'deleted'),
                live_keys AS (
                    SELECT i.contact_id, i.kind, i.key FROM contact_identifiers i
                    WHERE i.contact_id IN (SELECT contact_id FROM live)),
                keyed AS (
                    SELECT contact_id, 'contact_id' AS kind, {h.sql('contact_id', 'contact_id')} AS key_hash FROM live
                    UNION ALL SELECT contact_id, 'email', {h.sql('email', 'key')} FROM live_keys WHERE kind = 'email'
                    UNION ALL SELECT contact_id, 'phone', {h.sql('phone', 'key')} FROM live_keys WHERE kind = 'phone'),
                hit AS (SELECT DISTINCT k.contact_id FROM keyed k
                        JOIN suppression s ON s.key_kind = k.kind AND s.key_hash = k.key_hash)
                SELECT count(*), list(contact_id ORDER BY contact_id)[1:$samples] FROM hit""",
                {"samples": MAX_SAMPLES})
        return [self.count_row("active_suppressed", count, samples)]


@register(BULK_ACTION_COUNTS_ADD_UP)
class BulkActionCountsAddUp(Invariant):
    description = "Each bulk action's counts add up to its total."
    pass_message = "every bulk action's outcome counts and items add up to its total"
    fail_message = "{n} bulk action{s} whose counts do not add up: {details}"

    def measure(self, run: Run) -> list[Row]:
        rows = []
        for bulk_action_id, total, parts, items in run.con.execute("""
                SELECT b.bulk_action_id, b.total,
                       b.done + b.blocked + b.rejected + b.not_found + b.already_done + b.failed,
                       coalesce(i.items, 0)
                FROM bulk_actions b
                LEFT JOIN (SELECT bulk_action_id, count(*) AS items FROM bulk_action_items GROUP BY 1) i
                       ON i.bulk_action_id = b.bulk_action_id
                ORDER BY b.bulk_action_id""").fetchall():
            detail = f"{bulk_action_id}: total {total}, outcomes {parts}, items {items}"
            for check, observed in (("outcomes", parts), ("items", items)):
                rows.append(Row(self.name, check, bulk_action_id, observed=int(observed), expected=int(total),
                                samples=(bulk_action_id,), detail=detail))
        return rows

    def expectations(self, e: Any, settings: Settings, **common: Any) -> list[Any]:
        return [e.ExpectColumnPairValuesToBeEqual(column_A="observed", column_B="expected", **common)]


@register(BACKUPS_WITHIN_RETENTION)
class BackupsWithinRetention(Invariant):
    description = "No backup is older than the backup retention."
    pass_message = "no kept backup is older than the {retention}-day retention"
    fail_message = "{n} backup{s} older than the {retention}-day retention {are} still kept: {details}"

    def measure(self, run: Run) -> list[Row]:
        return [Row(self.name, "age", bulk_action_id, age_days=float(age_days), samples=(bulk_action_id,),
                    detail=f"{bulk_action_id}: {age_days:.1f} days old")
                for bulk_action_id, age_days in run.con.execute(
                    "SELECT bulk_action_id, ($as_of_us - epoch_us(created_as_of)) / 86400000000.0 FROM backups "
                    "WHERE expired_at IS NULL ORDER BY bulk_action_id", {"as_of_us": run.as_of_us}).fetchall()]

    def expectations(self, e: Any, settings: Settings, **common: Any) -> list[Any]:
        return [e.ExpectColumnValuesToBeBetween(column="age_days", max_value=settings.backup_retention_days,
                                                **common)]


def _iso(value: datetime | None) -> str:
    return utc_iso(value) or "?"
