"""The connector as users run it: `retention pull`, `retention run` with a refused token, the crm_push asset in the
job, and the token found nowhere under the home or in Dagster's storage afterwards."""

import json
import subprocess
from pathlib import Path

import dagster as dg
import pytest
import yaml
from test_highlevel_push import crm_tables, standin_for

from compliance.deletion import ManualSelection
from support.cli import run_main
from support.crm import AS_OF, run_deletion, write_snapshot
from support.highlevel_standin import StandIn, start

TOKEN = "hl-cli-token-3c8e7b15"


@pytest.fixture
def standin(monkeypatch):
    monkeypatch.setenv("HIGHLEVEL_TOKEN", TOKEN)
    state = standin_for(6)
    state.token = TOKEN
    server, state = start(state)
    yield state
    server.shutdown()


def configure(home, state: StandIn, **crm) -> None:
    home.settings_file.write_text(yaml.safe_dump({"crm": {
        "kind": "highlevel", "base_url": state.base_url, "location_ids": ["loc-a", "loc-b"], **crm}}))


def retention(*args: str) -> subprocess.CompletedProcess:
    """`retention ARGS` in this process (HIGHLEVEL_TOKEN passes through; --home is among ARGS)."""
    return run_main(list(args), cwd=Path.cwd())


def token_hits(root: Path) -> list[str]:
    """Every file under root whose bytes hold the token."""
    return [str(p) for p in root.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]


def test_retention_pull_writes_a_snapshot_and_reports_it(home, standin):
    configure(home, standin)

    pulled = retention("pull", "--home", str(home.root), "--as-of", AS_OF, "--json")

    assert pulled.returncode == 0, pulled.stderr
    document = json.loads(pulled.stdout)
    assert document["records"]["contacts"] == 6
    assert (home.snapshots_inbox / document["snapshot_id"] / "highlevel" / "contacts").is_dir()
    assert token_hits(home.root) == []


def test_retention_pull_with_a_refused_token_exits_1_naming_the_problem_and_writes_nothing(home, standin):
    configure(home, standin)
    standin.faults.unauthorized = True

    pulled = retention("pull", "--home", str(home.root), "--as-of", AS_OF)

    assert pulled.returncode == 1
    assert "refused the token from $HIGHLEVEL_TOKEN (HTTP 401" in pulled.stderr
    assert TOKEN not in pulled.stderr + pulled.stdout
    assert list(home.snapshots_inbox.iterdir()) == []


def test_retention_pull_without_crm_settings_is_bad_input(home):
    pulled = retention("pull", "--home", str(home.root))

    assert pulled.returncode == 2
    assert "crm.kind is not set" in pulled.stderr


def test_a_run_with_a_refused_token_exits_1_naming_it_and_leaves_the_token_nowhere(home, standin):
    configure(home, standin, push="on")
    standin.faults.unauthorized = True

    ran = retention("run", "--home", str(home.root), "--as-of", AS_OF)

    assert ran.returncode == 1
    assert "HIGHLEVEL_TOKEN" in ran.stderr and "HTTP 401" in ran.stderr
    assert TOKEN not in ran.stderr + ran.stdout
    assert token_hits(home.root) == []


def test_the_crm_push_asset_pushes_the_deleted_contacts_and_dagster_keeps_no_token(home, con, standin):
    from pipelines.definitions import defs
    from pipelines.runner import instance_for, materialization_metadata

    write_snapshot(home.snapshots_inbox / "s1", crm_tables(6))
    run_deletion(con, home, manual=ManualSelection(requested_by="u-admin-1", select_all=True),
                 include_requests=False)
    con.close()
    configure(home, standin, push="on")
    run_config = {"resources": {"retention": {"config": {"home": str(home.root), "as_of": AS_OF}}}}

    with instance_for(home) as instance:
        result = defs.resolve_job_def("compliance_job").execute_in_process(
            run_config=run_config, instance=instance, asset_selection=[dg.AssetKey("crm_push")])

    assert result.success
    metadata = materialization_metadata(result, "crm_push")
    assert metadata["outcomes"] == {"pushed": 6} and metadata["mode"] == "on"
    assert len(standin.deletes(200)) == 6
    assert token_hits(home.root) == []


def test_the_crm_assets_sit_before_ingest_and_after_the_deletions_in_the_lineage():
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    assert dg.AssetKey("crm_pull") in graph.get(dg.AssetKey("crm_snapshots")).parent_keys
    assert dg.AssetKey("applied_deletions") in graph.get(dg.AssetKey("crm_push")).parent_keys
    assert {"crm_pull", "crm_push"} <= set(defs.resolve_job_def("compliance_job").graph.node_dict)
