"""The CRM connector: pull a snapshot from the CRM's API before ingest, push the applied deletions back after."""

import dagster as dg

from assets.deletion import applied_deletions
from compliance import steps
from resources import RetentionResource


@dg.asset(group_name="ingest", kinds={"http"})
def crm_pull(context: dg.AssetExecutionContext, retention: RetentionResource) -> dg.MaterializeResult:
    """A new snapshot of the CRM pulled from its API into inbox/snapshots (does nothing when `crm.kind` is unset)."""
    pulled = steps.pull(retention.run_context(context))
    if pulled is None:
        return dg.MaterializeResult(metadata={"status": "CRM pull off", "snapshot": "", "records": {}})
    return dg.MaterializeResult(metadata={"status": "pulled", "snapshot": pulled.snapshot_id,
                                          "records": dg.MetadataValue.json(pulled.records)})


@dg.asset(group_name="deletion", kinds={"http"}, deps=[applied_deletions])
def crm_push(context: dg.AssetExecutionContext, retention: RetentionResource) -> dg.MaterializeResult:
    """Each contact the store deleted sent to the CRM's delete once: pushed, already_gone or failed, per contact."""
    pushed = steps.push(retention.run_context(context))
    return dg.MaterializeResult(metadata={
        "mode": pushed.mode, "enqueued": pushed.enqueued, "would_send": pushed.would_send,
        "outcomes": dg.MetadataValue.json(pushed.counts)})
