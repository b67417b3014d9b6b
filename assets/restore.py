"""Restores inside the window, and the purge of what has passed it."""

import dagster as dg

from compliance.audit import AuditLog
from compliance.intake import settle_request_files
from compliance.keys import KeyedHasher
from compliance.purge import RESTORE_PLAN_TABLES, forget_plans, purge
from compliance.records import audit_new_records
from compliance.restore import ManualRestore, apply_restores, plan_restores
from compliance.selections import drop_abandoned_selections, take_selection
from pipelines.resources import RetentionResource

from assets.deletion import applied_deletions, request_intake


class RestoreConfig(dg.Config):
    """A manual restore (`retention restore`); empty in the scheduled run, which restores by request only."""

    automatic_sources: bool = True
    manual_requested_by: str = ""
    manual_selection_token: str = ""


@dg.asset(group_name="restore", kinds={"duckdb"}, deps=[request_intake])
def applied_restores(context: dg.AssetExecutionContext, config: RestoreConfig,
                     retention: RetentionResource) -> dg.MaterializeResult:
    """Deleted contacts brought back inside the restore window: the record only, never its associated data."""
    con, home = retention.connect(), retention.paths
    hasher = KeyedHasher(home.secret())
    manual = (ManualRestore(config.manual_requested_by, take_selection(con, config.manual_selection_token))
              if config.manual_selection_token else None)
    plan_restores(con, hasher=hasher, settings=retention.settings(), as_of=retention.clock,
                  include_requests=config.automatic_sources, manual=manual)
    actions = apply_restores(con, hasher=hasher, as_of=retention.clock, run_id=context.run_id)
    settle_request_files(con, home)
    forget_plans(con, RESTORE_PLAN_TABLES)
    audited = audit_new_records(con, AuditLog(home.audit_file), at=retention.clock)
    return dg.MaterializeResult(metadata={
        "bulk_actions": [f"{a.bulk_action_id} {a.source}" for a in actions],
        **{outcome: sum(a.counts[outcome] for a in actions) for outcome in ("restored", "rejected", "not_found",
                                                                            "already_done")},
        "audit_entries": audited})


@dg.asset(group_name="purge", kinds={"duckdb"}, deps=[applied_deletions, applied_restores])
def purged_contacts(context: dg.AssetExecutionContext, retention: RetentionResource) -> dg.MaterializeResult:
    """Contacts past the restore window permanently removed, expired backups deleted, and the store compacted."""
    con, home = retention.connect(), retention.paths
    result = purge(con, home, hasher=KeyedHasher(home.secret()), settings=retention.settings(),
                   as_of=retention.clock, run_id=context.run_id)
    forget_plans(con)
    drop_abandoned_selections(con)
    audited = audit_new_records(con, AuditLog(home.audit_file), at=retention.clock)
    size = retention.compact() if result.contacts_purged or result.backups_expired else None
    return dg.MaterializeResult(metadata={
        "bulk_action": result.bulk_action_id or "", "contacts_purged": result.contacts_purged,
        "rows_purged": result.rows_purged, "backups_expired": result.backups_expired,
        "store_compacted_bytes": size or 0, "audit_entries": audited})
