"""The proof: blocking backup verification before the delete, the nine invariants as checks, and the report."""

from pathlib import Path

import dagster as dg

from compliance.backup import BackupError, verify_backup
from compliance.invariants import check_invariants, descriptions
from compliance.report import load_invariants, run_folder, save_invariants, write_report
from pipelines.resources import RetentionResource

from assets.deletion import contact_backups
from assets.restore import purged_contacts

BACKUPS_VERIFY_BEFORE_DELETE = "planned_backups_verify"
DATA_DOCS_FOLDER = "data_docs"


@dg.asset_check(asset=contact_backups, name=BACKUPS_VERIFY_BEFORE_DELETE, blocking=True,
                description="Every backup of this run's planned deletions is present and matches its checksums and "
                            "row counts; if not, the delete does not run.")
def planned_backups_verify(retention: RetentionResource) -> dg.AssetCheckResult:
    """Blocks the delete unless every planned deletion's backup verifies."""
    con = retention.connect()
    rows = con.execute("SELECT bulk_action_id, backup_path, backup_sha256, backup_error FROM plan_sources "
                       "WHERE bulk_action_id IN (SELECT bulk_action_id FROM plan_items WHERE outcome = 'deleted') "
                       "AND NOT preview AND bulk_action_id NOT IN (SELECT bulk_action_id FROM bulk_actions)"
                       ).fetchall() if _has_table(con, "plan_sources") else []
    problems = {}
    for bulk_action_id, path, sha256, error in rows:
        if error:
            continue  # recorded as a failed bulk action by the delete step, which deletes nothing for it
        try:
            verify_backup(Path(path), sha256)
        except (BackupError, TypeError) as exc:
            problems[bulk_action_id] = str(exc)
    first = next(iter(problems.values()), "")
    return dg.AssetCheckResult(passed=not problems, description=(
        f"{len(rows)} planned backup(s) verified" if not problems else
        f"{len(problems)} of {len(rows)} planned backups failed verification: {first}"), metadata={
        "backups_checked": len(rows), "failures": len(problems),
        "failed_bulk_actions": list(problems)[:10], "first_problem": first})


def _has_table(con, name: str) -> bool:
    return con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()[0] > 0


def build_retention_invariants() -> dg.AssetsDefinition:
    """The retention_invariants asset, with one asset check per invariant registered when it is built."""
    checks = descriptions()

    @dg.asset(name="retention_invariants", group_name="proof", kinds={"duckdb"}, deps=[purged_contacts],
              check_specs=[dg.AssetCheckSpec(name, asset="retention_invariants", description=description)
                           for name, description in checks.items()])
    def retention_invariants(context: dg.AssetExecutionContext,
                             retention: RetentionResource) -> dg.MaterializeResult:
        """The nine retention invariants of the store after this run, judged by a Great Expectations suite."""
        home = retention.paths
        summary = check_invariants(retention.connect(), secret=home.secret(), settings=retention.settings(),
                                   as_of=retention.clock, docs_dir=home.reports_dir / DATA_DOCS_FOLDER,
                                   only=list(checks))
        save_invariants(summary, run_folder(home, run_id=context.run_id, as_of=retention.clock))
        return dg.MaterializeResult(
            metadata={"passed": len(summary.results) - len(summary.failed), "failed": list(summary.failed),
                      "data_docs": str(summary.data_docs_index or "")},
            check_results=[dg.AssetCheckResult(
                check_name=result.name, passed=result.passed,
                severity=dg.AssetCheckSeverity.ERROR,
                description=result.message,
                metadata={"violations": result.violations, "sample_ids": list(result.sample_ids),
                          "message": result.message}) for result in summary.results])

    return retention_invariants


retention_invariants = build_retention_invariants()


@dg.asset(group_name="proof", kinds={"markdown", "html"}, deps=[retention_invariants])
def compliance_report(context: dg.AssetExecutionContext, retention: RetentionResource) -> dg.MaterializeResult:
    """The run's compliance report: ingest, requests and deadlines, bulk actions, backups and invariants."""
    home = retention.paths
    folder = run_folder(home, run_id=context.run_id, as_of=retention.clock)
    report = write_report(retention.connect(), home, run_id=context.run_id, as_of=retention.clock,
                          invariants=load_invariants(folder))
    return dg.MaterializeResult(metadata={"markdown": dg.MetadataValue.path(str(report.markdown)),
                                          "html": dg.MetadataValue.path(str(report.html)),
                                          "preview": dg.MetadataValue.md(report.markdown.read_text())})
