"""Runs a job of the Definitions in-process against the home's persistent Dagster instance."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import dagster as dg

from compliance.home import Home


def instance_for(home: Home) -> dg.DagsterInstance:
    """The home's Dagster instance (run history, event log), the same one `retention ui` shows."""
    home.dagster_home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home.dagster_home)
    return dg.DagsterInstance.from_config(str(home.dagster_home))


def execute_job(home: Home, job_name: str, *, as_of: datetime, echo_progress: bool,
                tags: dict[str, str] | None = None, extra_config: dict[str, Any] | None = None,
                accept_shrink: bool = False) -> dg.ExecuteInProcessResult:
    """Run one job for this home and clock; the run appears in the UI's history.

    Args:
        home: the retention home.
        job_name: a job of pipelines.definitions.
        as_of: the run's clock.
        echo_progress: print progress lines on stderr.
        tags: run tags (never personal data: they are kept in Dagster's storage).
        extra_config: more run config (ops config for manual actions).
        accept_shrink: let the ingest load a snapshot that drops more contacts than max_contact_drop allows.

    Returns:
        The finished run's result; a failing step re-raises its own exception.
    """
    from pipelines.definitions import defs

    run_config: dict[str, Any] = {
        "resources": {"retention": {"config": {
            "home": str(home.root), "as_of": as_of.isoformat(), "echo_progress": echo_progress,
            "accept_shrink": accept_shrink}}},
        "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
    }
    run_config.update(extra_config or {})
    with instance_for(home) as instance:
        return defs.resolve_job_def(job_name).execute_in_process(
            run_config=run_config, instance=instance, tags=tags or {})


def materialization_metadata(result: dg.ExecuteInProcessResult, asset_name: str) -> dict[str, Any]:
    """The plain values of an asset's materialization metadata in this run ({} if it did not materialize)."""
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        if materialization.asset_key.to_user_string() == asset_name:
            return {key: getattr(value, "value", value) for key, value in materialization.metadata.items()}
    return {}
