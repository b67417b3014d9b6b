"""The applied_restores and purged_contacts assets: called directly, materialized on a temporary home, and scheduled."""

from __future__ import annotations

import dagster as dg
import pytest

from assets.restore import applied_restores, purged_contacts
from compliance.deletion.selections import stage_selection
from compliance.evidence.audit import AuditLog
from compliance.home import Home
from compliance.store.connection import Store
from compliance.store.keys import KeyedHasher
from pipelines.definitions import defs
from resources import RetentionResource
from support.crm import copy_home, run_deletion, write_request, write_snapshot

RESTORE_DAY = "2026-01-11T12:00:00Z"
PURGE_DAY = "2026-03-03T12:00:00Z"


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Home:
    """A home after c-2 and c-4 were erased under GDPR at 2026-01-01, made once per module."""
    home = Home(tmp_path_factory.mktemp("assets") / "home")
    home.init()
    write_snapshot(home.snapshots_inbox / "s1")
    write_request(home, "erase", subjects=[{"contact_id": "c-2"}, {"contact_id": "c-4"}])
    with Store(home).connect() as con:
        run_deletion(con, home)
    return home


@pytest.fixture
def deleted(tmp_path, template) -> Home:
    return copy_home(template, tmp_path / "home")


def resources(home, as_of: str) -> dict:
    return {"retention": RetentionResource(home=str(home.root), as_of=as_of)}


def metadata_of(result: dg.ExecuteInProcessResult, asset_name: str) -> dict:
    [materialization] = result.asset_materializations_for_node(asset_name)
    return {key: getattr(value, "value", value) for key, value in materialization.metadata.items()}


def lifecycle_states(home) -> dict[str, str]:
    with Store(home).connect(read_only=True) as con:
        return dict(con.execute("SELECT contact_id, state FROM contact_lifecycle").fetchall())


def test_materializing_the_restore_with_a_manual_restore_brings_the_record_back(deleted):
    with Store(deleted).connect() as con:
        token = stage_selection(con, ["c-2", "c-1"])
    config = {"automatic_sources": False, "manual_requested_by": "u-admin-1", "manual_selection_token": token}

    result = dg.materialize([applied_restores], resources=resources(deleted, RESTORE_DAY),
                            run_config={"ops": {"applied_restores": {"config": config}}},
                            instance=dg.DagsterInstance.ephemeral())

    assert result.success
    metadata = metadata_of(result, "applied_restores")
    assert (metadata["restored"], metadata["rejected"], metadata["not_found"], metadata["already_done"]) == (1, 1, 0, 0)
    [bulk_action] = metadata["bulk_actions"]
    assert bulk_action.endswith(" manual")
    assert metadata["audit_entries"] == 1
    assert lifecycle_states(deleted) == {"c-2": "active", "c-4": "deleted"}
    assert AuditLog(deleted.audit_file).entries()[-1]["event"] == "bulk_action.restore"


def test_materializing_restore_then_purge_past_the_window_purges_expires_and_compacts(deleted):
    first = dg.materialize([applied_restores, purged_contacts], resources=resources(deleted, RESTORE_DAY),
                           instance=dg.DagsterInstance.ephemeral())
    assert first.success
    assert metadata_of(first, "applied_restores")["bulk_actions"] == []
    assert metadata_of(first, "purged_contacts")["contacts_purged"] == 0
    assert metadata_of(first, "purged_contacts")["store_compacted_bytes"] == 0

    second = dg.materialize([applied_restores, purged_contacts], resources=resources(deleted, PURGE_DAY),
                            instance=dg.DagsterInstance.ephemeral())

    assert second.success
    metadata = metadata_of(second, "purged_contacts")
    assert metadata["contacts_purged"] == 2
    assert metadata["bulk_action"].startswith("ba-20260303-")
    assert len(metadata["backups_expired"]) == 1 and not any(deleted.backups_dir.iterdir())
    assert metadata["store_compacted_bytes"] == deleted.store_file.stat().st_size
    assert metadata["audit_entries"] == 1
    assert lifecycle_states(deleted) == {}
    hasher = KeyedHasher(deleted.secret())
    with Store(deleted).connect(read_only=True) as con:
        assert sorted(row[0] for row in con.execute("SELECT contact_hash FROM purged_contacts").fetchall()) == sorted(
            hasher.hash("contact_id", contact_id) for contact_id in ("c-2", "c-4"))
        # The run's working tables are dropped: plans name contacts and must not outlive the run.
        assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'plan_%' "
                           "OR table_name LIKE 'restore_%'").fetchone()[0] == 0
    assert b"cy@example.org" not in deleted.store_file.read_bytes()


def test_the_purge_asset_called_directly_reports_what_it_did(deleted):
    context = dg.build_asset_context(resources=resources(deleted, PURGE_DAY))

    with context:
        result = purged_contacts(context)

    assert result.metadata["contacts_purged"] == 2
    assert result.metadata["rows_purged"] == 0
    assert result.metadata["store_compacted_bytes"] > 0


def test_the_daily_schedule_runs_the_job_that_restores_and_purges():
    [schedule] = [s for s in defs.get_repository_def().schedule_defs if s.name == "daily_compliance_schedule"]
    selected = defs.resolve_job_def(schedule.job_name).asset_layer.selected_asset_keys

    assert schedule.job_name == "compliance_job"
    assert {dg.AssetKey("applied_restores"), dg.AssetKey("purged_contacts")} <= selected
    assert defs.resolve_job_def("manual_restore_job").asset_layer.selected_asset_keys == {
        dg.AssetKey("applied_restores")}
