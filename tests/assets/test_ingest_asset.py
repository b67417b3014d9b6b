"""The crm_snapshots asset called directly, materialized on a temporary home, and the compliance job run in process."""

from __future__ import annotations

import dagster as dg

from assets.ingest import crm_snapshots
from compliance.store.connection import Store
from pipelines.definitions import defs
from resources import RetentionResource
from support.crm import AS_OF, base_tables, write_snapshot

EXPECTED_COUNTS = {name: len(rows) for name, rows in base_tables().items()}


def contact_rows(home) -> list[tuple]:
    with Store(home).connect(read_only=True) as con:
        return con.execute("SELECT contact_id, snapshot_id FROM contacts ORDER BY contact_id").fetchall()


def metadata_of(result: dg.ExecuteInProcessResult) -> dict:
    [materialization] = result.asset_materializations_for_node("crm_snapshots")
    return {key: getattr(value, "value", getattr(value, "data", value)) for key, value in
            materialization.metadata.items()}


def test_the_asset_called_directly_ingests_and_reports(home):
    write_snapshot(home.snapshots_inbox / "s1")
    context = dg.build_asset_context(resources={"retention": RetentionResource(home=str(home.root), as_of=AS_OF)})

    with context:
        result = crm_snapshots(context)

    assert result.metadata["snapshots_ingested"] == ["s1"]
    assert result.metadata["row_counts"] == {f"s1/{table}": count for table, count in EXPECTED_COUNTS.items()}
    assert contact_rows(home) == [("c-1", "s1"), ("c-2", "s1"), ("c-3", "s1"), ("c-4", "s1")]


def test_materialize_reports_snapshots_and_row_counts_and_fills_the_store(home):
    write_snapshot(home.snapshots_inbox / "s1")
    resources = {"retention": RetentionResource(home=str(home.root), as_of=AS_OF)}

    first = dg.materialize([crm_snapshots], resources=resources, instance=dg.DagsterInstance.ephemeral())

    assert first.success
    metadata = metadata_of(first)
    assert metadata["snapshots_ingested"] == ["s1"]
    assert metadata["row_counts"] == {f"s1/{table}": count for table, count in EXPECTED_COUNTS.items()}
    assert metadata["already_ingested"] == 0
    assert contact_rows(home) == [("c-1", "s1"), ("c-2", "s1"), ("c-3", "s1"), ("c-4", "s1")]
    with Store(home).connect(read_only=True) as con:
        assert con.execute("SELECT snapshot_id, ingested_at FROM snapshots").fetchall()[0][1].isoformat() == (
            "2026-01-01T12:00:00+00:00")

    second = dg.materialize([crm_snapshots], resources=resources, instance=dg.DagsterInstance.ephemeral())

    assert metadata_of(second)["snapshots_ingested"] == [] and metadata_of(second)["already_ingested"] == 1


def test_the_compliance_job_runs_in_process(home):
    write_snapshot(home.snapshots_inbox / "s1")
    run_config = {"resources": {"retention": {"config": {"home": str(home.root), "as_of": AS_OF}}}}

    result = defs.resolve_job_def("compliance_job").execute_in_process(
        run_config=run_config, instance=dg.DagsterInstance.ephemeral())

    assert result.success
    assert metadata_of(result)["snapshots_ingested"] == ["s1"]
    assert contact_rows(home) == [("c-1", "s1"), ("c-2", "s1"), ("c-3", "s1"), ("c-4", "s1")]
