"""The `retention` command as a user runs it: init, run, show, --json, bad input (exit 2), the Dagster run history."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import dagster as dg
import pytest
import yaml

from compliance.clock import parse_as_of
from compliance.home import Home
from compliance.snapshots.ingest import ingest_snapshots
from compliance.store.connection import Store
from support.cli import run_retention as retention
from support.crm import AS_OF, base_tables, store_contents, write_snapshot


def one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("retention: error:"), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """A home made by `retention init`, given the hand-made CSV snapshot as s1, then `retention run --json`."""
    cwd = tmp_path_factory.mktemp("cli")
    root = cwd / "home"
    init = retention("init", home=root, cwd=cwd)
    assert init.returncode == 0, init.stderr
    write_snapshot(root / "inbox" / "snapshots" / "s1")
    run = retention("run", "--as-of", AS_OF, "--json", home=root, cwd=cwd)
    return root, cwd, init, run


def test_init_creates_the_home(ran):
    root, _, init, _ = ran

    assert str(root) in init.stdout
    for name in ("settings.yaml", "rules.yaml"):
        assert (root / name).is_file()
    for folder in ("inbox/snapshots", "inbox/requests"):
        assert (root / folder).is_dir()
    assert yaml.safe_load((root / "dagster" / "dagster.yaml").read_text())["telemetry"]["enabled"] is False


def test_run_prints_one_json_document_and_ingests(ran):
    root, _, _, run = ran

    assert run.returncode == 0, run.stderr
    document = json.loads(run.stdout)
    assert document["success"] is True
    assert document["ingest"]["snapshots_ingested"] == ["s1"]
    assert document["ingest"]["row_counts"]["s1/contacts"] == 4
    assert "validating snapshot" not in run.stdout + run.stderr


def test_show_gives_the_contact_state_as_json(ran):
    root, cwd, _, _ = ran

    shown = retention("show", "c-1", "--json", home=root, cwd=cwd)
    unknown = retention("show", "c-404", "--json", home=root, cwd=cwd)

    assert shown.returncode == 0 and unknown.returncode == 0, shown.stderr + unknown.stderr
    contact = json.loads(shown.stdout)
    assert contact["contact_id"] == "c-1" and contact["state"] == "active"
    assert contact["deleted_at"] is None and contact["restorable_until"] is None
    assert contact["associated"] == {"conversations": 2, "notes": 1, "tasks": 1, "activities": 2}
    assert contact["enrollments"] == {"campaigns": 1, "workflows": 0, "lists": 2}
    missing = json.loads(unknown.stdout)
    assert missing["contact_id"] == "c-404" and missing["state"] == "unknown"
    assert sum(missing["associated"].values()) == 0


def test_the_run_is_in_the_homes_dagster_history(ran):
    root, _, _, run = ran
    run_id = json.loads(run.stdout)["run_id"]

    with dg.DagsterInstance.from_config(str(root / "dagster")) as instance:
        runs = {r.run_id: r for r in instance.get_runs()}

    assert run_id in runs
    assert runs[run_id].job_name == "compliance_job"
    assert runs[run_id].status == dg.DagsterRunStatus.SUCCESS
    assert runs[run_id].tags.get("retention/command") == "run"


def _pending_home(tmp_path: Path) -> Home:
    home = Home(tmp_path / "home")
    home.init()
    write_snapshot(home.snapshots_inbox / "s1")
    return home


def test_a_bad_snapshot_exits_2_naming_it_and_changes_nothing(tmp_path):
    home = _pending_home(tmp_path)
    with Store(home).connect() as con:
        ingest_snapshots(con, home, as_of=parse_as_of(AS_OF))
        before = store_contents(con)
    tables = base_tables()
    tables["notes"][2]["created_at"] = "last tuesday"
    write_snapshot(home.snapshots_inbox / "s2", tables)

    result = retention("run", "--as-of", "2026-01-02T12:00:00Z", "--json", home=home.root, cwd=tmp_path)

    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    message = one_error_line(result)
    for fragment in ("s2", "notes", "row 3", "created_at", "last tuesday"):
        assert fragment in message, message
    with Store(home).connect(read_only=True) as con:
        assert store_contents(con) == before


@pytest.mark.parametrize("case", ["unknown settings key", "bad --as-of", "no such home"])
def test_bad_input_exits_2_with_one_line_and_changes_nothing(tmp_path, case):
    home = _pending_home(tmp_path)
    args, target, fragments = ["run"], home.root, []
    if case == "unknown settings key":
        home.settings_file.write_text("restore_window_days: 60\nrestore_windw_days: 30\n")
        fragments = [str(home.settings_file), "restore_windw_days", "restore_window_days"]
    elif case == "bad --as-of":
        args += ["--as-of", "next monday"]
        fragments = ["--as-of", "next monday"]
    else:
        target = tmp_path / "nowhere"
        fragments = [str(target), "retention init"]

    result = retention(*args, home=target, cwd=tmp_path)

    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    message = one_error_line(result)
    for fragment in fragments:
        assert fragment in message, message
    assert not (tmp_path / "nowhere").exists()
    with Store(home).connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM contacts").fetchone()[0] == 0
    assert not (home.dagster_home / "storage").exists()
