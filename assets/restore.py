"""Restores inside the window, and the purge of what has passed it."""

import dagster as dg

from assets.deletion import applied_deletions, request_intake
from compliance import steps
from compliance.deletion.selections import take_selection
from compliance.restore import ManualRestore
from resources import RetentionResource

RESTORE_OUTCOMES = ("restored", "rejected", "not_found", "already_done")


class RestoreConfig(dg.Config):
    """A manual restore (`retention restore`); empty in the scheduled run, which restores by request only."""

    automatic_sources: bool = True
    manual_requested_by: str | None = None
    manual_selection_token: str | None = None


@dg.asset(group_name="restore", kinds={"duckdb"}, deps=[request_intake])
def applied_restores(context: dg.AssetExecutionContext, config: RestoreConfig,
                     retention: RetentionResource) -> dg.MaterializeResult:
    """Deleted contacts brought back inside the restore window: the record only, never its associated data."""
    ctx = retention.run_context(context)
    manual = (ManualRestore(config.manual_requested_by or "", take_selection(ctx.con, config.manual_selection_token))
              if config.manual_selection_token else None)
    applied = steps.restore(ctx, automatic_sources=config.automatic_sources, manual=manual)
    return dg.MaterializeResult(metadata={
        "bulk_actions": [f"{a.bulk_action_id} {a.source}" for a in applied.actions],
        **{outcome: sum(a.counts[outcome] for a in applied.actions) for outcome in RESTORE_OUTCOMES},
        "audit_entries": applied.audited})


@dg.asset(group_name="purge", kinds={"duckdb"}, deps=[applied_deletions, applied_restores])
def purged_contacts(context: dg.AssetExecutionContext, retention: RetentionResource) -> dg.MaterializeResult:
    """Contacts past the restore window permanently removed, expired backups deleted, and the store compacted."""
    purged = steps.purge_expired(retention.run_context(context))
    result = purged.result
    return dg.MaterializeResult(metadata={
        "bulk_action": result.bulk_action_id or "", "contacts_purged": result.contacts_purged,
        "rows_purged": result.rows_purged, "backups_expired": result.backups_expired,
        "store_compacted_bytes": purged.compacted_bytes or 0, "audit_entries": purged.audited})
