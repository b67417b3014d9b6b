"""A SIGKILL in the middle of apply: each bulk action is all there or not at all, and the next run finishes the work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from compliance.audit import AuditLog
from compliance.backup import verify_backup
from support.crm import run_deletion, write_request, write_snapshot

LINKED = ("conversations", "notes", "tasks", "activities", "campaign_enrollments", "workflow_enrollments",
          "list_memberships")
# Each bulk action counts the enrollments of three membership tables inside its transaction; the 4th call is the
# first of the second bulk action, so the first one has committed and the second is half done when killed.
BLOCK_AT_CALL = 4

CHILD = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path

    import compliance.deletion as deletion
    import compliance.deletion.apply as applying
    from compliance.clock import parse_as_of
    from compliance.home import Home
    from compliance.ingest import ingest_snapshots
    from compliance.intake import take_requests
    from compliance.keys import KeyedHasher
    from compliance.settings import load_rules, load_settings
    from compliance.store import Store

    home, marker = Home(Path(sys.argv[1])), Path(sys.argv[2])
    block_at, calls = int(sys.argv[3]), []
    keep_metrics = applying._keep_enrollment_metrics

    def keep_metrics_then_hang(con, table):
        keep_metrics(con, table)
        calls.append(table)
        if len(calls) == block_at:
            marker.write_text(table)
            time.sleep(600)

    applying._keep_enrollment_metrics = keep_metrics_then_hang
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


def kill_inside_apply(home, tmp_path: Path) -> None:
    marker = tmp_path / "inside-apply"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(script), str(home.root), str(marker), str(BLOCK_AT_CALL)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            if child.poll() is not None:
                raise AssertionError(f"the child ended before the hook (exit {child.returncode}): "
                                     f"{child.communicate()[1]}")
            assert time.monotonic() < deadline, "the child never reached apply"
            time.sleep(0.02)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL


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


def test_a_kill_inside_apply_leaves_each_bulk_action_whole_and_the_next_run_finishes(home, con, tmp_path):
    write_snapshot(home.snapshots_inbox / "s1")
    write_request(home, "r1", regulation="internal", received_at="2025-12-20T09:00:00Z",
                  subjects=[{"contact_id": "c-2"}])
    write_request(home, "r2", regulation="gdpr", received_at="2025-12-21T09:00:00Z",
                  subjects=[{"email": "ann.lee@example.com"}])
    con.close()

    kill_inside_apply(home, tmp_path)

    from compliance.store import Store
    con = Store(home).connect()
    try:
        planned = dict(con.execute("SELECT source_ref, bulk_action_id FROM plan_sources").fetchall())
        first_folder, killed_folder = (home.backups_dir / planned[ref] for ref in ("r1", "r2"))
        assert first_folder.is_dir() and killed_folder.is_dir()
        c1_before = {"conversations": 2, "notes": 1, "tasks": 1, "activities": 2, "campaign_enrollments": 1,
                     "workflow_enrollments": 0, "list_memberships": 2}
        assert assert_all_or_nothing(con, planned["r1"], "r1", "c-2", {}) is True
        assert assert_all_or_nothing(con, planned["r2"], "r2", "c-1", c1_before) is False
        assert con.execute("SELECT count(*) FROM suppression").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM enrollment_metrics WHERE object_id IN ('camp-1', 'l-1', 'l-2')"
                           ).fetchone()[0] == 0
        assert (home.requests_inbox / "r2.json").is_file()

        run = run_deletion(con, home, as_of="2026-01-01T13:00:00Z")

        finished = run.action("request r2.json")
        assert [a.source for a in run.applied] == ["request r2.json"]
        assert finished.status == "completed" and finished.counts["deleted"] == 1
        assert con.execute("SELECT source_ref, count(*) FROM bulk_actions GROUP BY 1 ORDER BY 1").fetchall() == [
            ("r1", 1), ("r2", 1)]
        assert con.execute("SELECT contact_id, count(*) FROM bulk_action_items WHERE outcome = 'deleted' "
                           "GROUP BY 1 ORDER BY 1").fetchall() == [("c-1", 1), ("c-2", 1)]
        assert con.execute("SELECT request_id, status FROM requests ORDER BY 1").fetchall() == [
            ("r1", "applied"), ("r2", "applied")]
        assert linked(con, "c-1") == dict.fromkeys(LINKED, 0)
        assert con.execute("SELECT count(*) FROM suppression WHERE bulk_action_id = ?",
                           [finished.bulk_action_id]).fetchone()[0] == 3
        backups = con.execute("SELECT bulk_action_id, path, manifest_sha256 FROM backups ORDER BY 1").fetchall()
        assert {row[0] for row in backups} == {planned["r1"], finished.bulk_action_id}
        for _, path, manifest_sha256 in backups:
            assert verify_backup(home.root / path, manifest_sha256).contacts == 1
        assert not killed_folder.exists()
        assert sorted(p.name for p in home.backups_dir.iterdir()) == sorted(row[0] for row in backups)
        assert AuditLog(home.audit_file).verify().ok
        assert sorted(p.name for p in (home.requests_inbox / "processed").iterdir()) == ["r1.json", "r2.json"]
    finally:
        con.close()
