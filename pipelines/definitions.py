"""The Definitions: what `retention ui`, the daemon and the command line load, built for the home's shard count."""

from __future__ import annotations

import functools
from types import ModuleType

import dagster as dg

from assets import crm, deletion, ingest, proof, restore
from assets.shards import shards_overview
from compliance.home import Home, shard_name
from compliance.shards.placement import shard_count
from pipelines.jobs import (
    build_daily_schedule,
    compliance_job,
    manual_delete_job,
    manual_restore_job,
    request_job,
    shards_overview_job,
)
from resources import RetentionResource
from sensors.request_drop import SENSOR_NAME, build_request_drop_sensor, sensor_interval_seconds
from sensors.shards_overview import build_shards_overview_sensor


def shard_partitions(shards: int) -> dg.StaticPartitionsDefinition | None:
    """One partition per shard (`shard-0` ...), or None for a home of one shard, whose assets stay unpartitioned."""
    return None if shards == 1 else dg.StaticPartitionsDefinition([shard_name(k) for k in range(shards)])


def _assets_of(modules: list[ModuleType]) -> list[dg.AssetsDefinition]:
    """The assets the modules define: @dg.asset functions only, each of which shards partition."""
    loaded = dg.load_assets_from_modules(modules)
    assets = [asset for asset in loaded if isinstance(asset, dg.AssetsDefinition)]
    if len(assets) != len(loaded):
        raise TypeError("the asset modules must define @dg.asset functions only")
    return assets


@functools.cache
def build_definitions(home_root: str | None, shards: int) -> dg.Definitions:
    """The Definitions for a home of `shards` shards: every asset partitioned by shard when there are several.

    Args:
        home_root: the home the resource points at (None: RETENTION_HOME, else ./retention_home, resolved per run).
        shards: the home's shard count (settings.yaml `shards`), read once when the definitions load.

    Returns:
        Assets, checks, jobs, the daily schedule (one run per shard), the request sensor (one run per shard) and
        the resource, with the in-process executor. A home of several shards also gets the unpartitioned
        shards_overview (the overall invariants), its job, and the sensor that runs it after the shards' runs.
    """
    retention = RetentionResource(home=home_root or "")
    assets: list[dg.AssetsDefinition | dg.AssetSpec] = [*_assets_of([crm, ingest, deletion, restore, proof])]
    jobs = [compliance_job, manual_delete_job, manual_restore_job, request_job]
    partitions = shard_partitions(shards)
    # The sensor's interval is fixed when the definitions load: restart `retention ui` after changing it.
    sensors = [build_request_drop_sensor(request_job, sensor_interval_seconds(retention.paths))]
    if partitions is not None:
        assets = [*dg.map_asset_specs(lambda spec: spec.replace_attributes(partitions_def=partitions), assets),
                  shards_overview]
        jobs.append(shards_overview_job)
        sensors.append(build_shards_overview_sensor(compliance_job, shards_overview_job))
    return dg.Definitions(
        assets=assets,
        asset_checks=dg.load_asset_checks_from_modules([proof]),
        jobs=jobs,
        schedules=[build_daily_schedule(partitions)],
        sensors=sensors,
        resources={"retention": retention},
        # One process per run: DuckDB allows one writer per store, and a run's steps share one store connection.
        # Shards run in parallel as separate runs, through the instance's run queue.
        executor=dg.in_process_executor,
    )


def definitions_for(home: Home) -> dg.Definitions:
    """The Definitions for this home's shard count (the command line runs jobs of these in-process)."""
    return build_definitions(None, shard_count(home))


defs = build_definitions(None, shard_count(Home.resolve(None)))
request_drop_sensor = defs.resolve_sensor_def(SENSOR_NAME)
