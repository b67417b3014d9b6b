"""Runs a job of the Definitions in-process against the home's persistent Dagster instance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg

from compliance.errors import InputError
from compliance.home import Home
from pipelines.instance import write_instance_yaml
from resources import PARTITION_TAG
from resources.tags import store_tags


def instance_for(home: Home) -> dg.DagsterInstance:
    """The home's Dagster instance (run history, event log), the same one `retention ui` shows."""
    write_instance_yaml(home)
    os.environ["DAGSTER_HOME"] = str(home.dagster_home)
    return dg.DagsterInstance.from_config(str(home.dagster_home))


def execute_job(home: Home, job_name: str, *, as_of: datetime, echo_progress: bool,
                tags: dict[str, str] | None = None, extra_config: dict[str, Any] | None = None,
                accept_shrink: bool = False) -> dg.ExecuteInProcessResult:
    """Run one job for this home (or one shard of it) and clock; the run appears in the UI's history.

    Args:
        home: the retention home; a shard's home (Home.for_shard) runs that shard's partition.
        job_name: a job of pipelines.definitions.
        as_of: the run's clock.
        echo_progress: print progress lines on stderr.
        tags: run tags (never personal data: they are kept in Dagster's storage).
        extra_config: more run config (ops config for manual actions).
        accept_shrink: let the ingest load a snapshot that drops more contacts than max_contact_drop allows.

    Returns:
        The finished run's result; a failing step re-raises its own exception.
    """
    from pipelines.definitions import definitions_for

    run_config = _run_config(home, as_of, echo_progress=echo_progress, accept_shrink=accept_shrink)
    run_config.update(extra_config or {})
    with instance_for(home) as instance:
        return definitions_for(home).resolve_job_def(job_name).execute_in_process(
            run_config=run_config, instance=instance, tags={**(tags or {}), **store_tags(home)},
            partition_key=home.shard_name)


OVERALL_CHECK_PREFIX = "overall_"


def overall_checks(home: Home, *, as_of: datetime, echo_progress: bool,
                   tags: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Run shards_overview_job for a home of shards, and its checks as `run --json` names them.

    Returns:
        {"overall_<invariant>": {"passed", "message"}}, one per overall invariant.
    """
    result = execute_job(home.whole, "shards_overview_job", as_of=as_of, echo_progress=echo_progress, tags=tags)
    return {OVERALL_CHECK_PREFIX + evaluation.check_name: {"passed": evaluation.passed,
                                                           "message": evaluation.description or ""}
            for evaluation in result.get_asset_check_evaluations()}


def _run_config(home: Home, as_of: datetime, *, echo_progress: bool, accept_shrink: bool = False) -> dict[str, Any]:
    return {
        "resources": {"retention": {"config": {
            "home": str(home.root), "as_of": as_of.isoformat(), "echo_progress": echo_progress,
            "accept_shrink": accept_shrink}}},
        "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
    }


def launch_job(home: Home, job_name: str, *, as_of: datetime, tags: dict[str, str] | None = None) -> str:
    """Submit one run of a job to the home's instance through its run coordinator, and return without waiting.

    With the QueuedRunCoordinator of `retention init --dagster-storage` the run is queued, and the daemon
    (`retention ui` or `--daemon-only`) launches it when the instance's limits allow: up to max_concurrent_runs at
    once, one per home. `dagster job launch` does the submission, since it is Dagster's public way to create a run
    that a daemon in another process can launch (the run carries the workspace's code location).

    Args:
        home: the retention home (its instance and workspace file); a shard's home launches that shard's partition.
        job_name: a job of pipelines.definitions.
        as_of: the run's clock.
        tags: more run tags (never personal data); the home's tag is always added.

    Returns:
        The new run's id.
    """
    from pipelines.serve import environment, write_workspace

    run_id = str(uuid.uuid4())
    tags = {**(tags or {}), **store_tags(home)}
    if home.shard_name is not None:
        tags[PARTITION_TAG] = home.shard_name
    command = [sys.executable, "-m", "dagster", "job", "launch", "-w", str(write_workspace(home)), "-j", job_name,
               "--run-id", run_id, "--config-json", json.dumps(_run_config(home, as_of, echo_progress=False)),
               "--tags", json.dumps(tags)]
    subprocess.run(command, env=environment(home), check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return run_id


def check_instance_config(dagster_yaml: str) -> None:
    """Open an instance from this dagster.yaml once (creating its tables), before a home is made to use it.

    Args:
        dagster_yaml: the text of the instance's dagster.yaml.

    Raises:
        InputError: the instance cannot be opened (server down, wrong database, a missing env variable); the
            message names the error's type only, since the database's own message may repeat the URL.
    """
    with tempfile.TemporaryDirectory(prefix="retention-instance-") as folder:
        Path(folder, "dagster.yaml").write_text(dagster_yaml)
        try:
            with dg.DagsterInstance.from_config(folder) as instance:
                instance.get_runs_count()
        except Exception as exc:
            raise InputError(f"--dagster-storage: the Dagster instance cannot be opened ({type(exc).__name__}); "
                             "check that the server is up, the database exists and any env: variable is set") from None


def materialization_metadata(result: dg.ExecuteInProcessResult, asset_name: str) -> dict[str, Any]:
    """The plain values of an asset's materialization metadata in this run ({} if it did not materialize)."""
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        if materialization.asset_key.to_user_string() == asset_name:
            return {key: getattr(value, "value", value) for key, value in materialization.metadata.items()}
    return {}
