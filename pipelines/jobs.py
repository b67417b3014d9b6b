"""Jobs and schedules (the executor is set once, on the Definitions)."""

import dagster as dg

from assets.deletion import applied_deletions, contact_backups, deletion_plan, request_intake
from assets.restore import applied_restores

compliance_job = dg.define_asset_job(
    "compliance_job",
    selection=dg.AssetSelection.all(),
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

daily_compliance_schedule = dg.ScheduleDefinition(
    name="daily_compliance_schedule",
    job=compliance_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="The daily compliance run, which includes the purge of contacts past the restore window.",
)
