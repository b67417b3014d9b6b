"""The one Definitions object loads, with the compliance job and daily schedule; compliance/ stays free of Dagster."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

import compliance
from pipelines.definitions import defs
from pipelines.instance import DAGSTER_YAML


def test_the_definitions_load_with_the_compliance_job():
    jobs = {job.name: job for job in defs.resolve_all_job_defs()}

    assert "compliance_job" in jobs
    assert jobs["compliance_job"].description
    selected = jobs["compliance_job"].asset_layer.selected_asset_keys
    assert dg.AssetKey("crm_snapshots") in selected
    assert selected == {spec.key for spec in defs.resolve_all_asset_specs()}


def test_the_daily_schedule_runs_the_compliance_job():
    schedules = [s for s in defs.get_repository_def().schedule_defs if s.job_name == "compliance_job"]

    assert len(schedules) == 1
    assert schedules[0].cron_schedule == "0 2 * * *"
    assert schedules[0].execution_timezone == "UTC"
    assert schedules[0].description


def test_every_asset_has_a_description_and_a_group():
    specs = list(defs.resolve_all_asset_specs())

    assert dg.AssetKey("crm_snapshots") in {spec.key for spec in specs}
    for spec in specs:
        assert spec.description and spec.description.strip(), spec.key
        assert spec.group_name and spec.group_name != "default", spec.key


def test_compliance_never_imports_dagster():
    folder = Path(compliance.__file__).parent
    offenders = []
    files = sorted(folder.rglob("*.py"))
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            offenders += [f"{path.name}: {name}" for name in names if name.split(".")[0].startswith("dagster")]
    assert len(files) >= 8
    assert offenders == []


def test_dagster_validates_the_definitions(tmp_path):
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
    executable = Path(sys.executable).with_name("dagster")
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}

    result = subprocess.run([str(executable), "definitions", "validate", "-m", "pipelines.definitions"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "pipelines.definitions" in result.stdout + result.stderr


def test_the_instance_file_is_written_once_with_telemetry_off_and_an_edited_one_is_kept(tmp_path):
    from compliance.home import Home
    from pipelines.instance import write_instance_yaml

    home = Home(tmp_path / "home")
    home.init()
    instance_file = home.dagster_home / "dagster.yaml"

    assert write_instance_yaml(home) == [instance_file]
    assert instance_file.read_text() == DAGSTER_YAML and "enabled: false" in DAGSTER_YAML
    instance_file.write_text(DAGSTER_YAML + "# mine\n")
    assert write_instance_yaml(home) == []
    assert instance_file.read_text().endswith("# mine\n")
