"""The one Definitions object: what `dagster dev`, `retention ui` and the command line load."""

import dagster as dg

from assets import deletion, ingest, proof, restore
from pipelines.jobs import (compliance_job, daily_compliance_schedule, manual_delete_job,
                           manual_restore_job, request_job)
from pipelines.resources import RetentionResource
from sensors.request_drop import request_drop_sensor

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([ingest, deletion, restore, proof]),
    asset_checks=dg.load_asset_checks_from_modules([proof]),
    jobs=[compliance_job, manual_delete_job, manual_restore_job, request_job],
    schedules=[daily_compliance_schedule],
    sensors=[request_drop_sensor],
    resources={"retention": RetentionResource()},
)
