"""The Definitions of a home of shards: assets partitioned by shard, one schedule and sensor run per shard, a shard's
run writing its own store only, and the overall check's asset, job and sensor."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets.shards import SHARDS_OVERVIEW
from compliance.home import Home
from compliance.shards.invariants import DESCRIPTIONS
from compliance.shards.placement import set_shard_count, shard_homes, shard_of
from compliance.store.connection import Store
from demo_crm import generator as demo_data
from pipelines.definitions import build_definitions
from pipelines.runner import execute_job
from resources import PARTITION_TAG, RetentionResource
from resources.tags import HOME_TAG, store_tags
from sensors.request_drop import ATTEMPT_TAG, SENSOR_NAME, name_key, run_key
from sensors.shards_overview import RUN_KEY_PREFIX
from sensors.shards_overview import SENSOR_NAME as OVERVIEW_SENSOR_NAME
from support.crm import write_request

SHARDS = 3
KEYS = [f"shard-{k}" for k in range(SHARDS)]
AS_OF = datetime(2026, 1, 1, 12, tzinfo=UTC)


def sharded_home(root: Path, shards: int = SHARDS) -> Home:
    """A new home of `shards` shards, as `retention init --shards N` makes it."""
    home = Home.resolve(root)
    home.init()
    set_shard_count(home, shards)
    for shard in shard_homes(home):
        shard.init()
        Store(shard).connect().close()
    return home


def dropped_request(home: Home, name: str) -> Path:
    """A request file in the inbox, modified long enough ago for the sensor to take it."""
    path = write_request(home, name)
    past = time.time() - 60
    os.utime(path, (past, past))
    return path


def test_a_home_of_three_shards_partitions_every_asset_by_shard_but_the_overview():
    defs = build_definitions(None, SHARDS)

    specs = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
    overview = specs.pop(SHARDS_OVERVIEW)
    assert len(specs) >= 10
    for name, spec in specs.items():
        assert spec.partitions_def is not None and spec.partitions_def.get_partition_keys() == KEYS, name
    assert overview.partitions_def is None and overview.group_name == "proof"
    job = defs.resolve_job_def("compliance_job")
    assert job.partitions_def.get_partition_keys() == KEYS
    assert dg.AssetKey(SHARDS_OVERVIEW) not in job.asset_layer.selected_asset_keys
    overview_job = defs.resolve_job_def("shards_overview_job")
    assert overview_job.asset_layer.selected_asset_keys == {dg.AssetKey(SHARDS_OVERVIEW)}
    assert {key.name for key in defs.resolve_assets_def(SHARDS_OVERVIEW).check_keys} == set(DESCRIPTIONS)
    assert OVERVIEW_SENSOR_NAME in {sensor.name for sensor in defs.get_repository_def().sensor_defs}


def test_a_home_of_one_shard_keeps_its_assets_unpartitioned_and_has_no_overview():
    defs = build_definitions(None, 1)

    specs = list(defs.resolve_all_asset_specs())
    assert specs and all(spec.partitions_def is None for spec in specs)
    assert SHARDS_OVERVIEW not in {spec.key.to_user_string() for spec in specs}
    assert "shards_overview_job" not in {job.name for job in defs.resolve_all_job_defs()}
    assert OVERVIEW_SENSOR_NAME not in {sensor.name for sensor in defs.get_repository_def().sensor_defs}


def test_the_daily_schedule_of_a_home_of_three_shards_asks_one_run_per_shard_with_its_store_tags(tmp_path):
    home = sharded_home(tmp_path / "home")
    repository = build_definitions(None, SHARDS).get_repository_def()
    schedule = repository.schedule_defs[0]

    with dg.build_schedule_context(scheduled_execution_time=datetime(2026, 1, 2, 2, tzinfo=UTC),
                                   resources={"retention": RetentionResource(home=str(home.root))},
                                   repository_def=repository) as context:
        requests = schedule.evaluate_tick(context).run_requests

    assert [request.partition_key for request in requests] == KEYS
    assert [request.run_key for request in requests] == [f"daily-2026-01-02-{key}" for key in KEYS]
    for k, request in enumerate(requests):
        assert {key: request.tags.get(key) for key in store_tags(home.for_shard(k))} == store_tags(home.for_shard(k))
        assert request.tags[PARTITION_TAG] == KEYS[k]
    assert len({request.tags["retention/store"] for request in requests}) == SHARDS


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance, home: Home, cursor: str | None):
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                 resources={"retention": RetentionResource(home=str(home.root))}) as context:
        data = sensor.evaluate_tick(context)
    return data.run_requests or [], data.cursor


def test_the_request_sensor_asks_one_run_per_shard_and_tries_the_batch_again_when_a_shard_run_failed(tmp_path):
    home = sharded_home(tmp_path / "home")
    path = dropped_request(home, "GDPR-7")
    defs = build_definitions(None, SHARDS)
    batch = {name_key(home, path.name): hashlib.sha256(path.read_bytes()).hexdigest()}

    with dg.instance_for_test() as instance:
        requests, cursor = _tick(defs, instance, home, None)
        assert [request.partition_key for request in requests] == KEYS
        assert [request.run_key for request in requests] == [f"{run_key(batch)}:{key}" for key in KEYS]
        assert all(request.tags[ATTEMPT_TAG] == "1" for request in requests)
        assert [request.tags["retention/shard"] for request in requests] == KEYS

        job = defs.resolve_job_def("request_job")
        for request in requests:
            status = dg.DagsterRunStatus.FAILURE if request.partition_key == "shard-1" else dg.DagsterRunStatus.SUCCESS
            instance.create_run_for_job(job, status=status, tags={
                **request.tags, "dagster/run_key": request.run_key, "dagster/sensor_name": SENSOR_NAME})
        again, _ = _tick(defs, instance, home, cursor)

    assert [request.partition_key for request in again] == KEYS
    assert [request.run_key for request in again] == [f"{run_key(batch, 2)}:{key}" for key in KEYS]
    assert all(request.tags[ATTEMPT_TAG] == "2" for request in again)


def test_the_request_sensor_does_not_try_a_batch_again_when_every_shard_run_succeeded(tmp_path):
    home = sharded_home(tmp_path / "home")
    dropped_request(home, "GDPR-8")
    defs = build_definitions(None, SHARDS)

    with dg.instance_for_test() as instance:
        requests, cursor = _tick(defs, instance, home, None)
        job = defs.resolve_job_def("request_job")
        for request in requests:
            instance.create_run_for_job(job, status=dg.DagsterRunStatus.SUCCESS, tags={
                **request.tags, "dagster/run_key": request.run_key, "dagster/sensor_name": SENSOR_NAME})
        again, _ = _tick(defs, instance, home, cursor)

    assert again == []


@pytest.fixture(scope="module")
def one_shard_run(tmp_path_factory) -> tuple[Home, Path]:
    """A home of three shards whose shard-1 alone ran compliance_job on a demo snapshot of six locations."""
    home = sharded_home(tmp_path_factory.mktemp("shard-run") / "home")
    snapshot = home.snapshots_inbox / "demo-1"
    demo_data.generate_snapshot(snapshot, contacts=300, seed=5, as_of=AS_OF, locations=6)
    result = execute_job(home.for_shard(1), "compliance_job", as_of=AS_OF, echo_progress=False)
    assert result.success
    return home, snapshot


def test_a_run_of_partition_shard_1_writes_exactly_the_contacts_of_its_locations_and_no_other_store(one_shard_run):
    home, snapshot = one_shard_run
    with duckdb.connect() as con:
        everyone = con.execute("SELECT contact_id, location_id FROM read_parquet(?)",
                               [str(snapshot / "contacts.parquet")]).fetchall()
    expected = sorted(contact_id for contact_id, location in everyone if shard_of(location, SHARDS) == 1)

    stores = {}
    for shard in shard_homes(home):
        with Store(shard).connect(read_only=True) as con:
            stores[shard.shard_name] = (
                [row[0] for row in con.execute("SELECT contact_id FROM contacts ORDER BY 1").fetchall()],
                con.execute("SELECT count(*) FROM snapshots").fetchone()[0])

    assert 0 < len(expected) < len(everyone)
    assert stores == {"shard-0": ([], 0), "shard-1": (expected, 1), "shard-2": ([], 0)}
    assert list(home.for_shard(1).reports_dir.glob("*/invariants.json"))
    assert not list(home.for_shard(0).reports_dir.glob("*/invariants.json"))


def test_the_shard_run_is_recorded_as_its_partition_with_its_store_tags(one_shard_run):
    home, _ = one_shard_run
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        [run] = instance.get_runs(filters=dg.RunsFilter(job_name="compliance_job"))

    assert run.tags[PARTITION_TAG] == "shard-1" and run.status == dg.DagsterRunStatus.SUCCESS
    assert {key: run.tags[key] for key in store_tags(home.for_shard(1))} == store_tags(home.for_shard(1))


def _overview_tick(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dg.RunRequest | dg.SkipReason:
    from pipelines.jobs import compliance_job, shards_overview_job
    from sensors.shards_overview import build_shards_overview_sensor

    shards_overview_sensor = build_shards_overview_sensor(compliance_job, shards_overview_job)

    event = dg.DagsterEvent(event_type_value=dg.DagsterEventType.RUN_SUCCESS.value, job_name=run.job_name)
    context = dg.build_run_status_sensor_context(sensor_name=OVERVIEW_SENSOR_NAME, dagster_event=event,
                                                 dagster_instance=instance, dagster_run=run)
    return shards_overview_sensor(context)


def test_the_overview_sensor_launches_the_overall_check_once_no_shard_run_of_the_home_is_left(tmp_path):
    home = sharded_home(tmp_path / "home")
    job = build_definitions(None, SHARDS).resolve_job_def("compliance_job")

    with dg.instance_for_test() as instance:
        runs = [instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED,
                                            tags={**store_tags(home.for_shard(k)), PARTITION_TAG: KEYS[k]})
                for k in range(2)]
        instance.handle_run_event(runs[0].run_id, dg.DagsterEvent(
            event_type_value=dg.DagsterEventType.RUN_SUCCESS.value, job_name=job.name))
        waiting = _overview_tick(instance, instance.get_run_by_id(runs[0].run_id))
        instance.handle_run_event(runs[1].run_id, dg.DagsterEvent(
            event_type_value=dg.DagsterEventType.RUN_SUCCESS.value, job_name=job.name))
        launched = _overview_tick(instance, instance.get_run_by_id(runs[1].run_id))

    assert isinstance(waiting, dg.SkipReason) and runs[1].run_id in waiting.skip_message
    assert isinstance(launched, dg.RunRequest)
    assert launched.run_key.startswith(RUN_KEY_PREFIX) and launched.tags == {HOME_TAG: str(home.root)}
    assert launched.run_config == {"resources": {"retention": {"config": {"home": str(home.root)}}}}
