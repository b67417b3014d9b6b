"""The production Dagster instance: `init --dagster-storage` on a real PostgreSQL, its run queue, the SQLite default."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
import yaml

from compliance.errors import InputError
from compliance.home import Home
from compliance.shards.placement import shard_of
from compliance.store.connection import Store
from demo_crm import generator as demo_data
from pipelines.instance import DAGSTER_YAML, postgres_dagster_yaml
from pipelines.runner import instance_for, launch_job
from pipelines.serve import Child, environment, stop, write_workspace
from resources import PARTITION_TAG
from resources.tags import STORE_TAG, store_tags
from support.cli import run_main
from support.ports import free_port

AS_OF = "2026-01-01T12:00:00Z"
QUEUE_TIMEOUT_SECONDS = 900
TERMINAL = ("SUCCESS", "FAILURE", "CANCELED")

needs_dagster_postgres = pytest.mark.skipif(
    importlib.util.find_spec("dagster_postgres") is None,
    reason="dagster-postgres is not installed (pip install -e . installs it with the matching dagster)")


def _retention(*args: str) -> subprocess.CompletedProcess:
    """`retention ARGS` in this process (--home is among ARGS)."""
    return run_main(list(args), cwd=Path.cwd())


def _demo_home(root: Path, url: str, contacts: int = 1_000, shards: int = 1) -> Home:
    done = _retention("init", "--home", str(root), "--dagster-storage", url, "--max-concurrent-runs", "2",
                      "--shards", str(shards))
    assert done.returncode == 0, done.stderr
    home = Home.resolve(root)
    demo_data.generate_snapshot(home.snapshots_inbox / "demo-1", contacts=contacts, seed=3,
                                as_of=datetime(2026, 1, 1, tzinfo=UTC), fmt="parquet",
                                locations=None if shards == 1 else 6)
    return home


def _runs(url: str, run_ids: list[str]) -> dict[str, tuple]:
    import psycopg

    with psycopg.connect(url) as con:
        rows = con.execute("SELECT run_id, status, start_time, end_time FROM runs WHERE run_id = ANY(%s)",
                           [run_ids]).fetchall()
    return {row[0]: row[1:] for row in rows}


def _drain_queue(home: Home, read_runs) -> None:
    """Run the Dagster daemon on the home's instance until every run read_runs() gives has ended."""
    daemon = Child("daemon", subprocess.Popen(
        [sys.executable, "-m", "dagster._daemon", "run", "-w", str(write_workspace(home))],
        env=environment(home), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        process_group=0))
    try:
        deadline = time.monotonic() + QUEUE_TIMEOUT_SECONDS
        while time.monotonic() < deadline and not all(status in TERMINAL for status, _, _ in read_runs().values()):
            assert not daemon.exited(), "the daemon ended before the runs finished"
            time.sleep(2)
    finally:
        stop([daemon])


def test_the_postgres_instance_keeps_runs_events_and_schedules_in_postgres_behind_a_run_queue_per_store():
    config = yaml.safe_load(postgres_dagster_yaml("postgresql://ops@db.internal:5433/dagster", max_concurrent_runs=3))
    assert config["storage"] == {"postgres": {"postgres_url": "postgresql+psycopg2://ops@db.internal:5433/dagster"}}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_coordinator"]["config"] == {
        "max_concurrent_runs": 3,
        "tag_concurrency_limits": [{"key": STORE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]}
    assert config["telemetry"] == {"enabled": False} and config["nux"] == {"enabled": False}


def test_an_env_storage_keeps_the_url_and_its_password_out_of_the_file():
    text = postgres_dagster_yaml("env:DAGSTER_PG_URL")
    assert yaml.safe_load(text)["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_PG_URL"}


@pytest.mark.parametrize("storage", ["sqlite:///x.db", "postgresql://user@/db", "postgresql://user:s3cret@host:5432/",
                                     "postgresql://user:s3cret@host:port/db", "env:1BAD", "env:"])
def test_a_storage_that_is_not_a_postgres_url_or_env_name_is_refused_without_repeating_it(storage):
    with pytest.raises(InputError) as refused:
        postgres_dagster_yaml(storage)
    assert "s3cret" not in str(refused.value) and str(refused.value).startswith("--dagster-storage:")


@pytest.mark.parametrize("runs, accepted", [(0, False), (1, True), (2, True), (True, False)])
def test_the_queue_takes_at_least_one_run_at_a_time(runs, accepted):
    if accepted:
        assert yaml.safe_load(postgres_dagster_yaml("env:PG", max_concurrent_runs=runs))[
            "run_coordinator"]["config"]["max_concurrent_runs"] == runs
    else:
        with pytest.raises(InputError, match="--max-concurrent-runs"):
            postgres_dagster_yaml("env:PG", max_concurrent_runs=runs)


def test_init_without_storage_keeps_the_sqlite_instance_that_runs_one_run_at_a_time(tmp_path):
    done = _retention("init", "--home", str(tmp_path / "home"))
    assert done.returncode == 0, done.stderr
    home = Home.resolve(tmp_path / "home")
    assert (home.dagster_home / "dagster.yaml").read_text() == DAGSTER_YAML
    with instance_for(home) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 1


def test_max_concurrent_runs_without_postgres_is_bad_input_and_creates_nothing(tmp_path):
    done = _retention("init", "--home", str(tmp_path / "home"), "--max-concurrent-runs", "3")
    assert done.returncode == 2 and "only with --dagster-storage" in done.stderr
    assert not (tmp_path / "home").exists()


@needs_dagster_postgres
def test_init_refuses_a_server_it_cannot_reach_and_creates_nothing(tmp_path):
    closed_port = free_port()
    done = _retention("init", "--home", str(tmp_path / "home"), "--dagster-storage",
                      f"postgresql://nobody:s3cret@127.0.0.1:{closed_port}/dagster")
    assert done.returncode == 2 and "cannot be opened" in done.stderr and "s3cret" not in done.stderr
    assert not (tmp_path / "home").exists()


@pytest.mark.postgres
@needs_dagster_postgres
def test_init_refuses_to_replace_an_edited_instance_file(tmp_path, postgres_server):
    url = postgres_server.create_database("edited_instance")
    home = Home.resolve(tmp_path / "home")
    home.init()
    (home.dagster_home / "dagster.yaml").write_text(DAGSTER_YAML + "# mine\n")
    done = _retention("init", "--home", str(home.root), "--dagster-storage", url)
    assert done.returncode == 2 and "exists and differs from the default" in done.stderr
    assert (home.dagster_home / "dagster.yaml").read_text().endswith("# mine\n")


@pytest.mark.postgres
@needs_dagster_postgres
def test_a_run_on_a_postgres_instance_is_recorded_in_its_runs_table(tmp_path, postgres_server):
    url = postgres_server.create_database("one_run")
    home = _demo_home(tmp_path / "home", url)
    instance_file = home.dagster_home / "dagster.yaml"
    assert instance_file.stat().st_mode & 0o777 == 0o600
    done = _retention("run", "--home", str(home.root), "--as-of", AS_OF, "--json")
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    status, started, ended = _runs(url, [run_id])[run_id]
    assert status == "SUCCESS" and started < ended
    assert not list(home.dagster_home.glob("**/*.db")), "nothing of the run may land in SQLite files"


@pytest.mark.e2e
@pytest.mark.postgres
@needs_dagster_postgres
def test_two_homes_queued_at_concurrency_two_run_at_the_same_time(tmp_path, postgres_server):
    """Two homes, not two runs of one home: a home's DuckDB store has one writer, and the queue's tag limit keeps
    one run per home, so only runs of different homes may overlap."""
    url = postgres_server.create_database("two_homes")
    homes = [_demo_home(tmp_path / name, url) for name in ("acme", "globex")]
    as_of = datetime(2026, 1, 1, 12, tzinfo=UTC)
    run_ids = [launch_job(home, "compliance_job", as_of=as_of) for home in homes]
    assert {status for status, _, _ in _runs(url, run_ids).values()} == {"QUEUED"}
    with instance_for(homes[0]) as instance:
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 2
        assert [limit["key"] for limit in queue.tag_concurrency_limits] == [STORE_TAG]
        assert [instance.get_run_by_id(run_id).tags[STORE_TAG] for run_id in run_ids] == [
            store_tags(home)[STORE_TAG] for home in homes]
    _drain_queue(homes[0], lambda: _runs(url, run_ids))
    runs = _runs(url, run_ids)
    assert [runs[run_id][0] for run_id in run_ids] == ["SUCCESS", "SUCCESS"]
    (_, start_a, end_a), (_, start_b, end_b) = (runs[run_id] for run_id in run_ids)
    assert start_a < end_b and start_b < end_a, "the two runs did not overlap in time"
    for home in homes:
        with Store(home).connect(read_only=True) as con:
            assert con.execute("SELECT count(*) FROM contacts").fetchone()[0] == 1_000, "each run wrote its own home"


def _shard_stores_hold_their_own_contacts(home: Home, shards: int) -> None:
    with duckdb.connect() as con:
        everyone = con.execute("SELECT contact_id, location_id FROM read_parquet(?)",
                               [str(home.snapshots_inbox / "demo-1" / "contacts.parquet")]).fetchall()
    for k in range(shards):
        with Store(home.for_shard(k)).connect(read_only=True) as con:
            held = sorted(row[0] for row in con.execute("SELECT contact_id FROM contacts").fetchall())
        expected = sorted(contact_id for contact_id, location in everyone if shard_of(location, shards) == k)
        assert expected and held == expected, f"shard-{k} holds exactly the contacts of its locations"


@pytest.mark.e2e
@pytest.mark.postgres
@needs_dagster_postgres
def test_two_shard_runs_of_one_home_overlap_in_time_through_the_run_queue(tmp_path, postgres_server):
    """Two shards of one home, not two homes: each shard is its own store, so the queue's per-store limit lets
    them run side by side at concurrency 2."""
    url = postgres_server.create_database("two_shards")
    home = _demo_home(tmp_path / "home", url, shards=2)
    as_of = datetime(2026, 1, 1, 12, tzinfo=UTC)
    run_ids = [launch_job(home.for_shard(k), "compliance_job", as_of=as_of) for k in range(2)]
    assert {status for status, _, _ in _runs(url, run_ids).values()} == {"QUEUED"}
    with instance_for(home) as instance:
        runs = [instance.get_run_by_id(run_id) for run_id in run_ids]
        assert [run.tags[PARTITION_TAG] for run in runs] == ["shard-0", "shard-1"]
        assert [run.tags[STORE_TAG] for run in runs] == [str(home.for_shard(k).store_file) for k in range(2)]
    _drain_queue(home, lambda: _runs(url, run_ids))
    runs = _runs(url, run_ids)
    assert [runs[run_id][0] for run_id in run_ids] == ["SUCCESS", "SUCCESS"]
    (_, start_a, end_a), (_, start_b, end_b) = (runs[run_id] for run_id in run_ids)
    assert start_a < end_b and start_b < end_a, "the two shard runs did not overlap in time"
    _shard_stores_hold_their_own_contacts(home, 2)


@pytest.mark.e2e
def test_the_default_sqlite_instance_runs_the_two_shard_runs_of_a_home_one_after_the_other(tmp_path):
    done = _retention("init", "--home", str(tmp_path / "home"), "--shards", "2")
    assert done.returncode == 0, done.stderr
    home = Home.resolve(tmp_path / "home")
    demo_data.generate_snapshot(home.snapshots_inbox / "demo-1", contacts=500, seed=3,
                                as_of=datetime(2026, 1, 1, tzinfo=UTC), fmt="parquet", locations=6)
    as_of = datetime(2026, 1, 1, 12, tzinfo=UTC)
    run_ids = [launch_job(home.for_shard(k), "compliance_job", as_of=as_of) for k in range(2)]
    _runs_one_after_the_other_on_sqlite(home, run_ids)
    _shard_stores_hold_their_own_contacts(home, 2)


@pytest.mark.e2e
def test_the_default_sqlite_instance_runs_two_queued_runs_of_a_home_one_after_the_other(tmp_path):
    home = Home.resolve(tmp_path / "home")
    home.init()
    demo_data.generate_snapshot(home.snapshots_inbox / "demo-1", contacts=500, seed=3,
                                as_of=datetime(2026, 1, 1, tzinfo=UTC), fmt="parquet")
    as_of = datetime(2026, 1, 1, 12, tzinfo=UTC)
    run_ids = [launch_job(home, "compliance_job", as_of=as_of) for _ in range(2)]
    _runs_one_after_the_other_on_sqlite(home, run_ids)


def _runs_one_after_the_other_on_sqlite(home: Home, run_ids: list[str]) -> None:
    """The queued runs, drained by a daemon on the home's SQLite instance (concurrency 1), succeed without overlap."""

    def read_runs() -> dict[str, tuple]:
        with instance_for(home) as instance:
            records = {run_id: instance.get_run_record_by_id(run_id) for run_id in run_ids}
        return {run_id: (record.dagster_run.status.value, record.start_time, record.end_time)
                for run_id, record in records.items()}

    assert {status for status, _, _ in read_runs().values()} == {"QUEUED"}
    _drain_queue(home, read_runs)
    runs = read_runs()
    assert [runs[run_id][0] for run_id in run_ids] == ["SUCCESS", "SUCCESS"]
    (_, start_a, end_a), (_, start_b, end_b) = sorted(runs.values(), key=lambda run: run[1])
    assert end_a <= start_b, "concurrency 1: the second run starts after the first ended"


def test_the_documented_docker_example_shares_its_storage_and_queue_with_what_init_writes():
    example = yaml.safe_load((Path(__file__).parents[2] / "docs" / "dagster-docker.yaml").read_text())
    written = yaml.safe_load(postgres_dagster_yaml("env:RETENTION_DAGSTER_PG_URL", max_concurrent_runs=4))
    assert {key: example[key] for key in written} == written
    assert example["run_launcher"]["class"] == "DockerRunLauncher"
