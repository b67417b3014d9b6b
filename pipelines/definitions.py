"""The one Definitions object: what `dagster dev`, `retention ui` and the command line load."""

import dagster as dg

from assets import deletion, ingest, restore
from pipelines.jobs import (compliance_job, daily_compliance_schedule, manual_delete_job,
                           manual_restore_job)
from pipelines.resources import RetentionResource

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([ingest, deletion, restore]),
    jobs=[compliance_job, manual_delete_job, manual_restore_job],
    schedules=[daily_compliance_schedule],
    resources={"retention": RetentionResource()},
)
