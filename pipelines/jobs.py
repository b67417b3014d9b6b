"""Jobs and schedules (the executor is set once, on the Definitions)."""

import dagster as dg

from assets.deletion import applied_deletions, contact_backups, deletion_plan, request_intake
from assets.restore import applied_restores
from assets.shards import SHARDS_OVERVIEW, WHOLE_HOME_TAG
from compliance.shards.placement import shard_home
from resources import RetentionResource
from resources.tags import store_tags

# The assets of the whole home (a home of shards only) run in their own job: a job's assets share one partitioning.
_WHOLE_HOME_ASSETS = dg.AssetSelection.tag(*WHOLE_HOME_TAG)

compliance_job = dg.define_asset_job(
    "compliance_job",
    selection=dg.AssetSelection.all() - _WHOLE_HOME_ASSETS,
    description="One compliance run: ingest, decide, back up, delete, restore, purge, prove.",
)

manual_delete_job = dg.define_asset_job(
    "manual_delete_job",
    selection=dg.AssetSelection.assets(deletion_plan, contact_backups, applied_deletions),
    description="A manual bulk delete (`retention delete`): plan, back up, delete; no requests or rules.",
)

manual_restore_job = dg.define_asset_job(
    "manual_restore_job",
    selection=dg.AssetSelection.assets(applied_restores),
    description="A manual restore (`retention restore`): deleted contacts back inside the window, record only.",
)

request_job = dg.define_asset_job(
    "request_job",
    selection=dg.AssetSelection.assets(request_intake, deletion_plan, contact_backups, applied_deletions,
                                       applied_restores),
    description="Request files dropped in inbox/requests (launched by request_drop_sensor): take them, erase with "
                "backups first, restore; no snapshot ingest or purge, which stay with the daily run.",
)

shards_overview_job = dg.define_asset_job(
    "shards_overview_job",
    selection=dg.AssetSelection.assets(SHARDS_OVERVIEW),
    description="The home of shards taken whole, after the shards' runs: each contact in its location's shard and "
                "in one only, request files recorded by every shard, every shard's last invariants passed.",
)

DAILY_CRON = "0 2 * * *"
DAILY_SCHEDULE_NAME = "daily_compliance_schedule"


def build_daily_schedule(partitions: dg.StaticPartitionsDefinition | None) -> dg.ScheduleDefinition:
    """The daily compliance run at 02:00 UTC (which includes the purge): one run for the home, or one per shard.

    Each run carries its store's tags (retention/home, and retention/shard for a shard), so the instance's run queue
    runs shards side by side but never two runs of one store; a shard's run key is the day and the shard.
    """

    @dg.schedule(name=DAILY_SCHEDULE_NAME, job=compliance_job, cron_schedule=DAILY_CRON, execution_timezone="UTC",
                 default_status=dg.DefaultScheduleStatus.RUNNING,
                 description="The daily compliance run, which includes the purge of contacts past the restore "
                             "window" + ("" if partitions is None else ": one run per shard, run side by side "
                                         "by the run queue"))
    def daily_compliance_schedule(context: dg.ScheduleEvaluationContext,
                                  retention: RetentionResource) -> list[dg.RunRequest]:
        day = context.scheduled_execution_time.strftime("%Y-%m-%d") if context.scheduled_execution_time else "now"
        home = retention.paths
        if partitions is None:
            return [dg.RunRequest(run_key=f"daily-{day}", tags=store_tags(home))]
        return [dg.RunRequest(run_key=f"daily-{day}-{key}", partition_key=key,
                              tags=store_tags(shard_home(home, key))) for key in partitions.get_partition_keys()]

    return daily_compliance_schedule
