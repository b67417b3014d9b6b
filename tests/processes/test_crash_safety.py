"""A SIGKILL in the middle of apply: the run's bulk actions are all there or none is, and the next run finishes them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from compliance.clock import parse_as_of
from compliance.evidence.audit import AuditLog
from compliance.invariants import check_invariants
from compliance.settings import load_settings
from compliance.store.backup import verify_backup
from support.crm import run_deletion, write_request, write_snapshot
from support.processes import sigkill_once_marked

pytestmark = pytest.mark.e2e

LINKED = ("conversations", "notes", "tasks", "activities", "campaign_enrollments", "workflow_enrollments",
          "list_memberships")
# Linked rows of the two subjects in the snapshot of support.crm, counted by hand.
C1_LINKED = {"conversations": 2, "notes": 1, "tasks": 1, "activities": 2, "campaign_enrollments": 1,
             "workflow_enrollments": 0, "list_memberships": 2}
C2_LINKED = {"conversations": 1, "notes": 1, "tasks": 0, "activities": 1, "campaign_enrollments": 1,
             "workflow_enrollments": 1, "list_memberships": 0}

CHILD = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path

    import compliance.deletion as deletion
    import compliance.deletion.apply as applying
    from compliance.clock import parse_as_of
    from compliance.home import Home
    from compliance.snapshots.ingest import ingest_snapshots
    from compliance.requests.intake import take_requests
    from compliance.store.keys import KeyedHasher
    from compliance.settings import load_rules, load_settings
    from compliance.store.connection import Store

    home, marker = Home(Path(sys.argv[1])), Path(sys.argv[2])
    hook, block_at, calls = sys.argv[3], int(sys.argv[4]), []
    real = getattr(applying, hook)

    def run_then_hang(*args, **kwargs):
        result = real(*args, **kwargs)
        calls.append(hook)
        if len(calls) == block_at:
            marker.write_text(hook)
            time.sleep(600)
        return result

    setattr(applying, hook, run_then_hang)
    as_of = parse_as_of("2026-01-01T12:00:00Z")
    settings, hasher = load_settings(home.settings_file), KeyedHasher(home.secret())
    con = Store(home).connect()
    ingest_snapshots(con, home, as_of=as_of)
    take_requests(con, home, as_of=as_of, settings=settings)
    deletion.build_plan(con, hasher=hasher, settings=settings, rules=load_rules(home.rules_file), as_of=as_of)
    deletion.back_up(con, home, settings)
    deletion.apply_deletions(con, hasher=hasher, settings=settings, as_of=as_of)
    print("apply finished without being killed", file=sys.stderr)
""")


def kill_inside_apply(home, tmp_path: Path, hook: str, block_at: int) -> None:
    """Run a deletion in a child process and SIGKILL it once apply's `hook` has returned `block_at` times."""
    marker = tmp_path / "inside-apply"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(script), str(home.root), str(marker), hook, str(block_at)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sigkill_once_marked(child, marker, timeout=60, moment="the hook")


def linked(con, contact_id: str) -> dict[str, int]:
    return {table: con.execute(f"SELECT count(*) FROM {table} WHERE contact_id = ?", [contact_id]).fetchone()[0]
            for table in LINKED}


def assert_all_or_nothing(con, bulk_action_id: str, request_id: str, contact_id: str, linked_before: dict) -> bool:
    """Every trace of the bulk action is in the store, or none is; returns whether it was applied."""
    applied = con.execute("SELECT count(*) FROM bulk_actions WHERE bulk_action_id = ?",
                          [bulk_action_id]).fetchone()[0] == 1
    traces = {
        "items": con.execute("SELECT count(*) FROM bulk_action_items WHERE bulk_action_id = ?",
                             [bulk_action_id]).fetchone()[0] > 0,
        "lifecycle": con.execute("SELECT count(*) FROM contact_lifecycle WHERE contact_id = ? AND deleted_by = ?",
                                 [contact_id, bulk_action_id]).fetchone()[0] == 1,
        "tombstones": con.execute("SELECT count(*) FROM tombstones WHERE bulk_action_id = ?",
                                  [bulk_action_id]).fetchone()[0] > 0,
        "backup recorded": con.execute("SELECT count(*) FROM backups WHERE bulk_action_id = ?",
                                       [bulk_action_id]).fetchone()[0] == 1,
        "request applied": con.execute("SELECT status = 'applied' AND bulk_action_id IS NOT DISTINCT FROM ? "
                                       "FROM requests WHERE request_id = ?",
                                       [bulk_action_id, request_id]).fetchone()[0],
        "associated rows removed": sum(linked(con, contact_id).values()) == 0,
    }
    assert all(value is applied for value in traces.values()), (bulk_action_id, applied, traces)
    if not applied:
        assert linked(con, contact_id) == linked_before
        assert con.execute("SELECT status, bulk_action_id FROM requests WHERE request_id = ?",
                           [request_id]).fetchone() == ("pending", None)
    return applied


def two_requests(home) -> None:
    """r1 (internal) names c-2, r2 (GDPR) names c-1 by email: two bulk actions of one run."""
    write_snapshot(home.snapshots_inbox / "s1")
    write_request(home, "r1", regulation="internal", received_at="2025-12-20T09:00:00Z",
                  subjects=[{"contact_id": "c-2"}])
    write_request(home, "r2", regulation="gdpr", received_at="2025-12-21T09:00:00Z",
                  subjects=[{"email": "ann.lee@example.com"}])


def assert_nothing_applied_then_the_next_run_applies_both_once(home, con) -> None:
    """After the kill: neither bulk action left a trace; the next run applies both requests exactly once."""
    planned = dict(con.execute("SELECT source_ref, bulk_action_id FROM plan_sources").fetchall())
    killed_folders = [home.backups_dir / planned[ref] for ref in ("r1", "r2")]
    assert all(folder.is_dir() for folder in killed_folders)
    assert assert_all_or_nothing(con, planned["r1"], "r1", "c-2", C2_LINKED) is False
    assert assert_all_or_nothing(con, planned["r2"], "r2", "c-1", C1_LINKED) is False
    assert con.execute("SELECT count(*) FROM bulk_actions").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM contact_lifecycle").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM suppression").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM enrollment_metrics").fetchone()[0] == 0
    assert con.execute("SELECT request_id, status FROM requests ORDER BY 1").fetchall() == [
        ("r1", "pending"), ("r2", "pending")]
    assert (home.requests_inbox / "r1.json").is_file() and (home.requests_inbox / "r2.json").is_file()

    run = run_deletion(con, home, as_of="2026-01-01T13:00:00Z")

    assert [(a.source, a.status, a.counts["deleted"]) for a in run.applied] == [
        ("request r1.json", "completed", 1), ("request r2.json", "completed", 1)]
    assert con.execute("SELECT source_ref, count(*) FROM bulk_actions GROUP BY 1 ORDER BY 1").fetchall() == [
        ("r1", 1), ("r2", 1)]
    assert con.execute("SELECT contact_id, count(*) FROM bulk_action_items WHERE outcome = 'deleted' "
                       "GROUP BY 1 ORDER BY 1").fetchall() == [("c-1", 1), ("c-2", 1)]
    assert con.execute("SELECT request_id, status FROM requests ORDER BY 1").fetchall() == [
        ("r1", "applied"), ("r2", "applied")]
    assert linked(con, "c-1") == linked(con, "c-2") == dict.fromkeys(LINKED, 0)
    # Each removed row tombstoned once, each enrollment counted once (camp-1 is the active campaign).
    assert con.execute("SELECT count(*), count(DISTINCT (table_name, row_key)) FROM tombstones").fetchone() == (
        sum(C1_LINKED.values()) + sum(C2_LINKED.values()),) * 2
    assert con.execute("SELECT object_id, removed_by_deletion, removed_active FROM enrollment_metrics "
                       "ORDER BY 1").fetchall() == [("camp-1", 1, 1), ("camp-2", 1, 0), ("l-1", 1, 0),
                                                   ("l-2", 1, 0), ("wf-1", 1, 0)]
    gdpr = run.action("request r2.json").bulk_action_id
    assert con.execute("SELECT count(*) FROM suppression WHERE bulk_action_id = ?", [gdpr]).fetchone()[0] == 3
    backups = con.execute("SELECT bulk_action_id, path, manifest_sha256 FROM backups ORDER BY 1").fetchall()
    assert {row[0] for row in backups} == {a.bulk_action_id for a in run.applied}
    for _, path, manifest_sha256 in backups:
        assert verify_backup(home.root / path, manifest_sha256).contacts == 1
    assert not any(folder.exists() for folder in killed_folders)
    assert sorted(p.name for p in home.backups_dir.iterdir()) == sorted(row[0] for row in backups)
    assert AuditLog(home.audit_file).verify().ok
    assert sorted(p.name for p in (home.requests_inbox / "processed").iterdir()) == ["r1.json", "r2.json"]
    summary = check_invariants(con, secret=home.secret(), settings=load_settings(home.settings_file),
                               as_of=parse_as_of("2026-01-01T13:00:00Z"))
    assert summary.passed, summary.failed


# The second of the three membership tables the run's one cascade counts enrollments of; and r1's bulk action
# recorded and its request settled, r2's items and record written (with a transaction per bulk action r1 would
# have committed there).
@pytest.mark.parametrize("function, call", [("_keep_enrollment_metrics", 2), ("record_deletion", 2)],
                         ids=["inside-the-runs-cascade", "between-two-bulk-actions-of-the-shared-transaction"])
def test_a_kill_during_the_runs_apply_leaves_both_bulk_actions_unapplied_and_the_next_run_finishes_them_once(
        home, con, tmp_path, function, call):
    two_requests(home)
    con.close()

    kill_inside_apply(home, tmp_path, function, call)

    from compliance.store.connection import Store
    con = Store(home).connect()
    try:
        assert_nothing_applied_then_the_next_run_applies_both_once(home, con)
    finally:
        con.close()
