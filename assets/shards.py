"""The whole home of shards: the overall invariants, checked after the shards' runs (a home of several shards only)."""

import dagster as dg

from compliance.shards.invariants import DESCRIPTIONS, check_shard_invariants
from resources import RetentionResource

SHARDS_OVERVIEW = "shards_overview"
# Marks the assets that read every shard: compliance_job, whose assets are partitioned by shard, leaves them out.
WHOLE_HOME_TAG = ("retention/scope", "whole_home")


@dg.asset(name=SHARDS_OVERVIEW, group_name="proof", kinds={"duckdb"}, tags=dict([WHOLE_HOME_TAG]),
          check_specs=[dg.AssetCheckSpec(name, asset=SHARDS_OVERVIEW, description=description)
                       for name, description in DESCRIPTIONS.items()])
def shards_overview(context: dg.AssetExecutionContext, retention: RetentionResource) -> dg.MaterializeResult:
    """The home across its shards: contacts in their own shard only, request files in every shard, shards proven."""
    results = check_shard_invariants(retention.paths, memory_limit=retention.settings().memory_limit)
    return dg.MaterializeResult(
        metadata={"passed": sum(result.passed for result in results),
                  "failed": [result.name for result in results if not result.passed]},
        check_results=[dg.AssetCheckResult(
            check_name=result.name, passed=result.passed, severity=dg.AssetCheckSeverity.ERROR,
            description=result.message,
            metadata={"violations": result.violations, "sample_ids": list(result.sample_ids),
                      "message": result.message}) for result in results])
