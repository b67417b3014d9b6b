"""The overall check of a home of shards, launched when its shards' compliance runs are done.

A shard's compliance run that succeeds launches shards_overview_job once no other compliance run of the home is still
queued or going, so the overview reads every shard after its run (the last shard to finish launches it). Its run key
is the day the shard run ended: one overview a day, however many shard runs end that day.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from resources import PARTITION_TAG
from resources.tags import HOME_TAG
from sensors.request_drop import ACTIVE_STATUSES

SENSOR_NAME = "shards_overview_sensor"
RUN_KEY_PREFIX = "shards-overview-"


def evaluate(context: dg.RunStatusSensorContext,
             compliance_job_name: str = "compliance_job") -> dg.RunRequest | dg.SkipReason:
    """The overview's run for the home of the shard run that succeeded, or why not now."""
    run = context.dagster_run
    home = run.tags.get(HOME_TAG)
    if home is None or PARTITION_TAG not in run.tags:
        return dg.SkipReason(f"run {run.run_id} is not the run of a shard")
    others = context.instance.get_runs(filters=dg.RunsFilter(job_name=compliance_job_name, statuses=ACTIVE_STATUSES,
                                                             tags={HOME_TAG: home}), limit=1)
    if others:
        return dg.SkipReason(f"waiting for run {others[0].run_id} ({others[0].tags.get(PARTITION_TAG, 'the home')}): "
                             "the overview reads every shard after its run")
    record = context.instance.get_run_record_by_id(run.run_id)
    ended = record.end_time if record is not None and record.end_time else None
    day = (datetime.fromtimestamp(ended, UTC) if ended else datetime.now(UTC)).strftime("%Y-%m-%d")
    return dg.RunRequest(run_key=f"{RUN_KEY_PREFIX}{day}", tags={HOME_TAG: home},
                         run_config={"resources": {"retention": {"config": {"home": home}}}})


def build_shards_overview_sensor(compliance_job: dg.UnresolvedAssetJobDefinition,
                                 overview_job: dg.UnresolvedAssetJobDefinition) -> dg.RunStatusSensorDefinition:
    """The sensor that launches `overview_job` once a day after the shards' runs of `compliance_job` have ended."""

    @dg.run_status_sensor(name=SENSOR_NAME, run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[compliance_job],
                          request_job=overview_job, default_status=dg.DefaultSensorStatus.RUNNING,
                          description="The overall invariants of the home of shards, once a day after its shards' "
                                      "compliance runs have all ended.")
    def shards_overview_sensor(context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason:
        """Launch the overall check of the home when its last running shard's compliance run succeeds."""
        return evaluate(context, compliance_job.name)

    return shards_overview_sensor
