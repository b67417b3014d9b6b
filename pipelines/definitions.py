"""The one Definitions object: what `retention ui`, the daemon and the command line load."""

import dagster as dg

from assets import crm, deletion, ingest, proof, restore
from pipelines.jobs import (compliance_job, daily_compliance_schedule, manual_delete_job,
                           manual_restore_job, request_job)
from resources import RetentionResource
from sensors.request_drop import build_request_drop_sensor, sensor_interval_seconds

retention = RetentionResource()

# The sensor's interval is fixed when the definitions load: restart `retention ui` after changing the setting.
request_drop_sensor = build_request_drop_sensor(sensor_interval_seconds(retention.paths))

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([crm, ingest, deletion, restore, proof]),
    asset_checks=dg.load_asset_checks_from_modules([proof]),
    jobs=[compliance_job, manual_delete_job, manual_restore_job, request_job],
    schedules=[daily_compliance_schedule],
    sensors=[request_drop_sensor],
    resources={"retention": retention},
    # One process per run: DuckDB allows one writer, and a run's steps share one store connection.
    executor=dg.in_process_executor,
)
