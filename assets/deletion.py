"""Request intake, rule matches, the deletion plan, verified backups and the applied deletions."""

import dagster as dg

from compliance.audit import AuditLog
from compliance.deletion import ManualSelection, apply_deletions, back_up, build_plan
from compliance.intake import prune_request_records, settle_request_files, take_requests
from compliance.keys import KeyedHasher
from compliance.purge import PLAN_TABLES, forget_plans
from compliance.records import audit_new_records
from compliance.rules import predicate
from compliance.selections import take_selection
from compliance.settings import Rules, load_rules
from pipelines.resources import RetentionResource

from assets.ingest import crm_snapshots


class DeletionPlanConfig(dg.Config):
    """What the plan takes in: the automatic sources, and an optional manual bulk delete (`retention delete`)."""

    automatic_sources: bool = True
    manual_requested_by: str = ""
    manual_selection_token: str = ""
    manual_tags: list[str] = []
    manual_location: str = ""
    manual_inactive_days: int = -1
    manual_all: bool = False

    def manual(self, con) -> ManualSelection | None:
        if not (self.manual_selection_token or self.manual_tags or self.manual_location
                or self.manual_inactive_days >= 0 or self.manual_all):
            return None
        contact_ids = take_selection(con, self.manual_selection_token) if self.manual_selection_token else ()
        return ManualSelection(requested_by=self.manual_requested_by, contact_ids=contact_ids,
                               tags=tuple(self.manual_tags), location=self.manual_location or None,
                               inactive_days=self.manual_inactive_days if self.manual_inactive_days >= 0 else None,
                               select_all=self.manual_all)


@dg.asset(group_name="intake", kinds={"duckdb"}, deps=[crm_snapshots])
def request_intake(context: dg.AssetExecutionContext, retention: RetentionResource) -> dg.MaterializeResult:
    """Request files from inbox/requests, each recorded with status, reason and due date (bad ones quarantined)."""
    con, home = retention.connect(), retention.paths
    pruned = prune_request_records(con, retention.clock, log=AuditLog(home.audit_file))
    result = take_requests(con, home, as_of=retention.clock, settings=retention.settings())
    return dg.MaterializeResult(metadata={"files_seen": result.files_seen, **dict(result.by_status),
                                          "quarantined_files": result.quarantined,
                                          "request_records_pruned": pruned})


@dg.asset(group_name="intake", kinds={"duckdb"}, deps=[crm_snapshots])
def rule_matches(context: dg.AssetExecutionContext, retention: RetentionResource) -> dg.MaterializeResult:
    """How many active contacts each rule of rules.yaml matches now (draft rules only preview)."""
    con = retention.connect()
    matches = {}
    for rule in load_rules(retention.paths.rules_file).rules:
        count = con.execute(
            "SELECT count(*) FROM contacts c WHERE c.contact_id NOT IN "
            f"(SELECT contact_id FROM contact_lifecycle WHERE state = 'deleted') AND "
            f"{predicate(rule.trigger, retention.clock)}").fetchone()[0]
        matches[f"{rule.name} ({rule.status})"] = count
    return dg.MaterializeResult(metadata={"rules": len(matches), **matches})


@dg.asset(group_name="deletion", kinds={"duckdb"}, deps=[request_intake, rule_matches])
def deletion_plan(context: dg.AssetExecutionContext, config: DeletionPlanConfig,
                  retention: RetentionResource) -> dg.MaterializeResult:
    """One outcome per source and contact: deleted, blocked, rejected, not_found or already_done."""
    con, home = retention.connect(), retention.paths
    plan = build_plan(con, hasher=KeyedHasher(home.secret()), settings=retention.settings(),
                      rules=load_rules(home.rules_file) if config.automatic_sources else Rules(),
                      as_of=retention.clock, include_requests=config.automatic_sources, manual=config.manual(con))
    return dg.MaterializeResult(metadata={
        "bulk_actions": [action.bulk_action_id for action in plan.actions], **plan.counts()})


@dg.asset(group_name="deletion", kinds={"parquet", "csv"}, deps=[deletion_plan])
def contact_backups(context: dg.AssetExecutionContext, retention: RetentionResource) -> dg.MaterializeResult:
    """Verified CSV and Parquet backups of every contact and row about to be deleted, written before the delete."""
    results = back_up(retention.connect(), retention.paths, retention.settings(), progress=retention.progress(context))
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
    con, home = retention.connect(), retention.paths
    actions = apply_deletions(con, hasher=KeyedHasher(home.secret()), settings=retention.settings(),
                              as_of=retention.clock, run_id=context.run_id, progress=retention.progress(context))
    settle_request_files(con, home)
    forget_plans(con, PLAN_TABLES)
    audited = audit_new_records(con, AuditLog(home.audit_file), at=retention.clock)
    return dg.MaterializeResult(metadata={
        "bulk_actions": [f"{a.bulk_action_id} {a.source}: {a.status}" for a in actions],
        "contacts_deleted": sum(a.counts["deleted"] for a in actions),
        "blocked": sum(a.counts["blocked"] for a in actions),
        "rejected": sum(a.counts["rejected"] for a in actions),
        "failed": sum(a.counts["failed"] for a in actions),
        "audit_entries": audited})
