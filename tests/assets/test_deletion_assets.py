"""The deletion assets: called directly, materialized on a temporary home, their lineage and their metadata."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from assets.deletion import (
    DeletionPlanConfig,
    applied_deletions,
    contact_backups,
    deletion_plan,
    request_intake,
    rule_matches,
)
from assets.ingest import crm_snapshots
from compliance.deletion.selections import stage_selection
from compliance.evidence.audit import AuditLog
from compliance.store.backup import verify_backup
from compliance.store.connection import Store
from pipelines.definitions import defs
from resources import RetentionResource
from support.crm import AS_OF, write_request, write_snapshot

DELETION_ASSETS = [crm_snapshots, request_intake, rule_matches, deletion_plan, contact_backups, applied_deletions]
RULES_YAML = """\
rules:
  - name: remove-unsubscribed
    status: published
    owner: u-admin-1
    trigger: {tags_any: [Unsubscribed]}
  - name: dnd-draft
    status: draft
    owner: u-admin-1
    trigger: {dnd: true}
"""


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [materialization] = result.asset_materializations_for_node(asset)
    return {key: getattr(value, "value", getattr(value, "data", value)) for key, value in
            materialization.metadata.items()}


def resources(home) -> dict:
    return {"retention": RetentionResource(home=str(home.root), as_of=AS_OF)}


def test_applied_deletions_is_downstream_of_the_backups_which_follow_the_plan():
    graph = defs.resolve_asset_graph()

    def parents(name: str) -> set[str]:
        return {key.to_user_string() for key in graph.get(dg.AssetKey(name)).parent_keys}

    assert parents("applied_deletions") == {"contact_backups"}
    assert parents("contact_backups") == {"deletion_plan"}
    assert parents("deletion_plan") == {"request_intake", "rule_matches"}
    assert parents("request_intake") == {"crm_snapshots"}
    job = defs.resolve_job_def("compliance_job")
    assert {"contact_backups", "applied_deletions", "deletion_plan"} <= {
        key.to_user_string() for key in job.asset_layer.executable_asset_keys}


def test_materializing_the_deletion_assets_deletes_backs_up_and_reports(home):
    write_snapshot(home.snapshots_inbox / "s1")
    write_request(home, "r1", subjects=[{"phone": "+1 (555) 123-0001"}])
    write_request(home, "r2", requested_by="u-user-1", subjects=[{"contact_id": "c-2"}])
    home.rules_file.write_text(RULES_YAML)

    result = dg.materialize(DELETION_ASSETS, resources=resources(home), instance=dg.DagsterInstance.ephemeral())

    assert result.success
    by_status = metadata(result, "request_intake")["requests_by_status"]
    assert by_status["pending"] == 1 and by_status["rejected"] == 1
    assert metadata(result, "rule_matches") == {"rules": 2, "matches": {"remove-unsubscribed (published)": 1,
                                                                       "dnd-draft (draft)": 1}}
    plan = metadata(result, "deletion_plan")
    assert len(plan["bulk_actions"]) == 3 and plan["counts"]["deleted"] == 2 and plan["counts"]["rejected"] == 1
    backups = metadata(result, "contact_backups")
    assert backups["backups_written"] == 2 and backups["backups_failed"] == 0 and backups["contacts_backed_up"] == 2
    applied = metadata(result, "applied_deletions")
    assert applied["contacts_deleted"] == 2 and applied["rejected"] == 1 and applied["failed"] == 0
    assert applied["audit_entries"] == 3 + 2
    with Store(home).connect(read_only=True) as con:
        recorded = con.execute("SELECT bulk_action_id, source, status, run_id FROM bulk_actions ORDER BY source"
                               ).fetchall()
        deleted = con.execute("SELECT contact_id FROM contact_lifecycle WHERE state = 'deleted' ORDER BY 1").fetchall()
        backup_paths = [str(home.root / row[0]) for row in con.execute("SELECT path FROM backups ORDER BY path"
                                                                        ).fetchall()]
    assert sorted(applied["bulk_actions"]) == sorted(f"{ba} {source}: {status}" for ba, source, status, _ in recorded)
    assert sorted(plan["bulk_actions"]) == sorted(row[0] for row in recorded)
    assert {row[3] for row in recorded} == {result.run_id}
    assert deleted == [("c-1",), ("c-4",)]
    assert sorted(backups["folders"]) == backup_paths
    for path in backup_paths:
        verify_backup(Path(path))
    assert AuditLog(home.audit_file).verify().ok
    assert sorted(p.name for p in (home.requests_inbox / "processed").iterdir()) == ["r1.json", "r2.json"]


def test_the_plan_asset_called_directly_plans_a_manual_selection(home):
    write_snapshot(home.snapshots_inbox / "s1")
    write_request(home, "r1")
    context = dg.build_asset_context(resources=resources(home))
    config = DeletionPlanConfig(automatic_sources=False, manual_requested_by="u-admin-1", manual_tags=["customer"])

    with context:
        crm_snapshots(context)
        result = deletion_plan(context, config)

    assert len(result.metadata["bulk_actions"]) == 1
    counts = result.metadata["counts"].value
    assert counts["deleted"] == 1 and counts["blocked"] == 0
    with Store(home).connect(read_only=True) as con:
        assert con.execute("SELECT source, source_ref FROM plan_sources").fetchall() == [
            ("manual", "smart list tags_any=['customer']")]
        assert con.execute("SELECT contact_id, outcome FROM plan_items").fetchall() == [("c-2", "deleted")]
        assert con.execute("SELECT count(*) FROM contact_lifecycle").fetchone()[0] == 0


def test_a_manual_delete_through_the_job_config_deletes_only_the_listed_contacts(home):
    write_snapshot(home.snapshots_inbox / "s1")
    write_request(home, "r1")
    instance = dg.DagsterInstance.ephemeral()
    dg.materialize([crm_snapshots], resources=resources(home), instance=instance)
    with Store(home).connect() as con:
        token = stage_selection(con, ["c-2", "c-9"])

    result = dg.materialize(
        [deletion_plan, contact_backups, applied_deletions], resources=resources(home), instance=instance,
        run_config={"ops": {"deletion_plan": {"config": {
            "automatic_sources": False, "manual_requested_by": "u-admin-1", "manual_selection_token": token}}}})

    assert result.success
    assert metadata(result, "applied_deletions")["contacts_deleted"] == 1
    with Store(home).connect(read_only=True) as con:
        assert con.execute("SELECT contact_id, outcome FROM bulk_action_items ORDER BY 1").fetchall() == [
            ("c-2", "deleted"), ("c-9", "not_found")]
        # The request file was not taken: a manual delete plans no requests.
        assert con.execute("SELECT count(*) FROM requests").fetchone()[0] == 0
