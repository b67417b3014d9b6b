"""Two small fixed-deletion runs with --skip-per-contact keep the floor, and benchmarks.report compares their growth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report

# The benchmark as its command runs it, in a process of its own.
pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SIZES = (1_000, 2_000)
FIXED = 20
SUBJECTS = 30


def _run(work: Path, contacts: int) -> dict:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--contacts", str(contacts), "--fixed-deletions", str(FIXED),
         "--request-subjects", str(SUBJECTS), "--restores", "10", "--skip-per-contact", "--skip-dagster",
         "--no-warm-up", "--json", "--quiet", "--work-dir", str(work)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads(completed.stdout)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    work = tmp_path_factory.mktemp("growth")
    paths = []
    for contacts in SIZES:
        path = work / f"fixed-{contacts}.json"
        path.write_text(json.dumps(_run(work, contacts)))
        paths.append(path)
    return paths


def test_skip_per_contact_keeps_the_floor_and_drops_the_per_contact_baseline(saved: list[Path]) -> None:
    for path in saved:
        document = json.loads(path.read_text())
        names = {step["name"] for step in document["steps"]}
        assert "floor: hand-written SQL backup + delete" in names
        assert not any(name.startswith("per-contact") for name in names)
        assert document["counts"]["floor_deleted"] == document["counts"]["deleted"] == FIXED + SUBJECTS
        assert document["totals"]["floor_s"] > 0
        assert document["totals"]["per_contact_extrapolated_s"] is None
        # No Dagster: the single-subject erasure runs by direct calls only.
        assert document["single_subject"]["dagster_s"] is None
        assert document["counts"]["single_subject_deleted"] == 1
        assert document["warnings"] == []


def test_the_report_shows_the_floors_growth_beside_the_delete_runs(saved: list[Path],
                                                                   capsys: pytest.CaptureFixture) -> None:
    report.main([str(path) for path in saved])
    out = capsys.readouterr().out
    small, large = (json.loads(path.read_text()) for path in saved)
    floor_growth = large["totals"]["floor_s"] / small["totals"]["floor_s"]
    assert "| contacts | deletions | daily run s | without ingest s | delete run s | floor s |" in out
    assert f"(the floor's own growth: {floor_growth:.2f}x)" in out
    delete_growth = large["totals"]["delete_run_s"] / small["totals"]["delete_run_s"]
    assert f"grows at most 2x from 1,000 to 2,000 contacts: {delete_growth:.2f}x" in out
    single_growth = large["totals"]["single_subject_s"] / small["totals"]["single_subject_s"]
    assert f"takes at most 1.5x its 1,000-contact figure: {single_growth:.2f}x" in out


def test_growth_is_judged_against_issue_12s_limits_on_both_sides_of_each() -> None:
    def document(contacts: int, delete_s: float, single_s: float) -> dict:
        return {"params": {"contacts": contacts, "fixed_deletions": 500},
                "counts": {"expected_deleted": 1000}, "steps": [{"name": "ingest", "seconds": 1.0}],
                "totals": {"daily_run_s": 10.0, "delete_run_s": delete_s, "floor_s": 1.0,
                           "single_subject_s": single_s}}

    at_limit = [document(1_000_000, 2.0, 1.0), document(10_000_000, 4.0, 1.5)]
    over = [document(1_000_000, 2.0, 1.0), document(10_000_000, 4.02, 1.52)]
    assert "2.00x → **met**" in report.scaling(at_limit)
    assert "2.01x → **missed**" in report.scaling(over)
    assert "1.50x → **met**" in report.single_subject_growth(at_limit)
    assert "1.52x → **missed**" in report.single_subject_growth(over)
    # A run saved before the floor or the single-subject erasure were measured still reports its growth.
    old = [dict(d, totals={"daily_run_s": 10.0, "delete_run_s": d["totals"]["delete_run_s"]}) for d in at_limit]
    assert "(the floor's own growth: –)" in report.scaling(old)
    assert report.single_subject_growth(old) == ""
