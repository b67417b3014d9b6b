"""The proof: blocking backup verification before the delete, the nine invariants as checks, and the report."""

import dagster as dg

from assets.deletion import contact_backups
from assets.restore import purged_contacts
from compliance import steps
from compliance.invariants import descriptions
from resources import RetentionResource

BACKUPS_VERIFY_BEFORE_DELETE = "planned_backups_verify"


@dg.asset_check(asset=contact_backups, name=BACKUPS_VERIFY_BEFORE_DELETE, blocking=True,
                description="Every backup of this run's planned deletions is present and matches its checksums and "
                            "row counts; if not, the delete does not run.")
def planned_backups_verify(context: dg.AssetCheckExecutionContext,
                           retention: RetentionResource) -> dg.AssetCheckResult:
    """Blocks the delete unless every planned deletion's backup verifies."""
    verification = steps.verify_planned_backups(retention.run_context(context))
    problems = verification.problems
    first = next(iter(problems.values()), "")
    return dg.AssetCheckResult(passed=verification.passed, description=(
        f"{verification.checked} planned backup(s) verified" if verification.passed else
        f"{len(problems)} of {verification.checked} planned backups failed verification: {first}"), metadata={
        "backups_checked": verification.checked, "failures": len(problems),
        "failed_bulk_actions": list(problems)[:10], "first_problem": first})


def build_retention_invariants() -> dg.AssetsDefinition:
    """The retention_invariants asset, with one asset check per invariant registered when it is built."""
    checks = descriptions()

    @dg.asset(name="retention_invariants", group_name="proof", kinds={"duckdb"}, deps=[purged_contacts],
              check_specs=[dg.AssetCheckSpec(name, asset="retention_invariants", description=description)
                           for name, description in checks.items()])
    def retention_invariants(context: dg.AssetExecutionContext,
                             retention: RetentionResource) -> dg.MaterializeResult:
        """The retention invariants of the store after this run, judged by a Great Expectations suite."""
        summary = steps.prove(retention.run_context(context), only=list(checks))
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
    report = steps.report(retention.run_context(context))
    return dg.MaterializeResult(metadata={"markdown": dg.MetadataValue.path(str(report.markdown)),
                                          "html": dg.MetadataValue.path(str(report.html)),
                                          "preview": dg.MetadataValue.md(report.markdown.read_text())})
