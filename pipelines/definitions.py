"""The one Definitions object: what `dagster dev`, `retention ui` and the command line load."""

import dagster as dg

from assets import deletion, ingest
from pipelines.jobs import compliance_job, daily_compliance_schedule, manual_delete_job
from pipelines.resources import RetentionResource

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([ingest, deletion]),
    jobs=[compliance_job, manual_delete_job],
    schedules=[daily_compliance_schedule],
    resources={"retention": RetentionResource()},
)
