"""Request intake, rule matches, the deletion plan, verified backups and the applied deletions."""

import dagster as dg

from assets.ingest import crm_snapshots
from compliance import steps
from compliance.deletion import ManualSelection
from compliance.deletion.selections import take_selection
from resources import RetentionResource


class DeletionPlanConfig(dg.Config):
    """What the plan takes in: the automatic sources, and an optional manual bulk delete (`retention delete`).

    Contact ids never appear here: Dagster keeps run config for good, so they come by `manual_selection_token`.
    """

    automatic_sources: bool = True
    manual_requested_by: str | None = None
    manual_selection_token: str | None = None
    manual_tags: list[str] = []
    manual_location: str | None = None
    manual_inactive_days: int | None = None
    manual_all: bool = False

    def is_manual(self) -> bool:
        return bool(self.manual_selection_token or self.manual_tags or self.manual_location
                    or self.manual_inactive_days is not None or self.manual_all)


@dg.asset(group_name="intake", kinds={"duckdb"}, deps=[crm_snapshots])
def request_intake(context: dg.AssetExecutionContext, retention: RetentionResource) -> dg.MaterializeResult:
    """Request files from inbox/requests, each recorded with status, reason and due date (bad ones quarantined)."""
    taken = steps.intake(retention.run_context(context))
    return dg.MaterializeResult(metadata={"files_seen": taken.result.files_seen,
                                          "requests_by_status": dg.MetadataValue.json(dict(taken.result.by_status)),
                                          "quarantined_files": taken.result.quarantined,
                                          "request_records_pruned": taken.pruned})


@dg.asset(group_name="intake", kinds={"duckdb"}, deps=[crm_snapshots])
def rule_matches(context: dg.AssetExecutionContext, retention: RetentionResource) -> dg.MaterializeResult:
    """How many active contacts each rule of rules.yaml matches now (draft rules only preview)."""
    matches = steps.count_rule_matches(retention.run_context(context))
    return dg.MaterializeResult(metadata={"rules": len(matches), "matches": dg.MetadataValue.json(matches)})


@dg.asset(group_name="deletion", kinds={"duckdb"}, deps=[request_intake, rule_matches])
def deletion_plan(context: dg.AssetExecutionContext, config: DeletionPlanConfig,
                  retention: RetentionResource) -> dg.MaterializeResult:
    """One outcome per source and contact: deleted, blocked, rejected, not_found or already_done."""
    ctx = retention.run_context(context)
    manual = None
    if config.is_manual():
        contact_ids = take_selection(ctx.con, config.manual_selection_token) if config.manual_selection_token else ()
        manual = ManualSelection(requested_by=config.manual_requested_by or "", contact_ids=contact_ids,
                                 tags=tuple(config.manual_tags), location=config.manual_location,
                                 inactive_days=config.manual_inactive_days, select_all=config.manual_all)
    plan = steps.plan_deletions(ctx, automatic_sources=config.automatic_sources, manual=manual)
    return dg.MaterializeResult(metadata={"bulk_actions": [action.bulk_action_id for action in plan.actions],
                                          "counts": dg.MetadataValue.json(plan.counts())})


@dg.asset(group_name="deletion", kinds={"parquet", "csv"}, deps=[deletion_plan])
def contact_backups(context: dg.AssetExecutionContext, retention: RetentionResource) -> dg.MaterializeResult:
    """Verified CSV and Parquet backups of every contact and row about to be deleted, written before the delete."""
    results = steps.back_up_planned(retention.run_context(context))
    failed = {bulk_action_id: error for bulk_action_id, error in results.items() if isinstance(error, str)}
    written = {bulk_action_id: m for bulk_action_id, m in results.items() if not isinstance(m, str)}
    return dg.MaterializeResult(metadata={
        "backups_written": len(written), "backups_failed": len(failed),
        "contacts_backed_up": sum(m.contacts for m in written.values()),
        "rows_backed_up": sum(m.total_rows for m in written.values()),
        "folders": [str(m.folder) for m in written.values()], "failures": failed})


@dg.asset(group_name="deletion", kinds={"duckdb"}, deps=[contact_backups])
def applied_deletions(context: dg.AssetExecutionContext, retention: RetentionResource) -> dg.MaterializeResult:
    """The planned deletions applied with their cascades, each bulk action recorded and audited."""
    applied = steps.apply_planned_deletions(retention.run_context(context))
    actions = applied.actions
    return dg.MaterializeResult(metadata={
        "bulk_actions": [f"{a.bulk_action_id} {a.source}: {a.status}" for a in actions],
        "contacts_deleted": sum(a.counts["deleted"] for a in actions),
        "blocked": sum(a.counts["blocked"] for a in actions),
        "rejected": sum(a.counts["rejected"] for a in actions),
        "failed": sum(a.counts["failed"] for a in actions),
        "audit_entries": applied.audited})
