"""Snapshot ingest: the CRM's exports enter the store."""

import dagster as dg

from compliance import steps
from resources import RetentionResource


# The key, not the asset: assets.crm imports the deletion assets, which import this module.
@dg.asset(group_name="ingest", kinds={"duckdb"}, deps=["crm_pull"])
def crm_snapshots(context: dg.AssetExecutionContext, retention: RetentionResource) -> dg.MaterializeResult:
    """The CRM snapshots dropped in inbox/snapshots, loaded into the store in name order, each once."""
    result = steps.ingest(retention.run_context(context))
    row_counts = {f"{s.snapshot_id}/{table}": count for s in result.ingested for table, count in s.row_counts.items()}
    return dg.MaterializeResult(metadata={
        "snapshots_ingested": [s.snapshot_id for s in result.ingested],
        "already_ingested": len(result.already_ingested),
        "changed_after_ingest_ignored": result.changed_after_ingest,
        "out_of_order_ignored": result.out_of_order,
        "skipped_deleted_contacts": sum(s.skipped_deleted for s in result.ingested),
        "skipped_suppressed_contacts": sum(s.skipped_suppressed for s in result.ingested),
        "removed_contacts": sum(s.removed_contacts for s in result.ingested),
        "row_counts": row_counts,
    })
