"""The benchmark runs end to end at 10,000 contacts and counts right; its wall times are never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# The benchmark as its command runs it, in a process of its own.
pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
CONTACTS = 10_000
SUBJECTS = 1_000
RESTORES = 10_000
DAILY_RUN_STEPS = ("ingest", "intake", "rule matches", "plan", "backup", "backup verify (blocking check)",
                   "apply (cascade)", "restores (none due)", "purge (none due)", "invariants + Data Docs",
                   "compliance report")
OTHER_STEPS = ("daily run total (direct)", "delete run (intake → apply)", "floor: hand-written SQL backup + delete",
               "per-contact: measured sample", "per-contact: all subjects", "purge past the window", "compact store",
               "invariants after purge", "compliance_job via execute_job", "single-subject erasure (direct)",
               "single-subject erasure via execute_job (request_job)")
SINGLE_SUBJECT_STEPS = ("intake", "restores (none due)", "plan", "backup", "backup verify (blocking check)",
                        "apply (cascade)")


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("bench")
    # A 100-subject per-contact sample and no warm-up runs keep the test short; neither changes what is counted.
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--contacts", str(CONTACTS), "--json", "--work-dir", str(work),
         "--per-contact-sample", "100", "--no-warm-up", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads(completed.stdout)


def test_every_step_is_present_and_measured(document: dict) -> None:
    names = [step["name"] for step in document["steps"]]
    for name in DAILY_RUN_STEPS + OTHER_STEPS + tuple(f"single-subject: {step}" for step in SINGLE_SUBJECT_STEPS):
        assert name in names, f"{name!r} missing from {names}"
    assert any(name.startswith("restore ") for name in names)
    for step in document["steps"]:
        assert step["seconds"] >= 0
        assert step["peak_rss_mb"] > 0
    assert document["process_peak_rss_mb"] > 0


def test_rows_are_counted_right(document: dict) -> None:
    counts = document["counts"]
    deleted = CONTACTS // 100 + SUBJECTS
    assert counts["contacts"] == CONTACTS
    assert counts["tagged"] == CONTACTS // 100
    assert counts["request_subjects"] == SUBJECTS
    assert counts["expected_deleted"] == counts["deleted"] == deleted
    assert counts["planned"]["deleted"] == deleted
    assert counts["planned"]["blocked"] == counts["planned"]["not_found"] == counts["planned"]["failed"] == 0
    assert counts["floor_deleted"] == counts["dagster_deleted"] == deleted
    assert counts["floor_rows_removed"] == counts["rows_removed"] > 0
    assert counts["floor_rows_backed_up"] == counts["rows_backed_up"] > counts["rows_removed"]
    assert counts["per_contact_deleted"] == counts["per_contact_sample"] == 100
    assert counts["per_contact_population"] == deleted
    assert counts["restore_requested"] == counts["restored"] == min(RESTORES, deleted)
    assert counts["purge_expected"] == counts["purged"] == deleted
    assert counts["invariants_passed_after_daily_run"] in (True, None)
    assert counts["invariants_passed_after_purge"] in (True, None)
    steps = {step["name"]: step for step in document["steps"]}
    assert steps["ingest"]["rows"] == counts["snapshot_rows"]
    assert steps["intake"]["rows"] == SUBJECTS
    assert steps["apply (cascade)"]["rows"] == counts["rows_removed"]
    assert steps["purge past the window"]["rows"] == deleted
    assert document["warnings"] == []


def test_single_subject_erasure_deletes_one_person_each_way_and_times_its_steps(document: dict) -> None:
    single, counts = document["single_subject"], document["counts"]
    assert counts["single_subject_expected_deleted"] == counts["single_subject_deleted"] == 1
    assert counts["single_subject_dagster_deleted"] == 1
    assert list(single["steps_s"]) == list(SINGLE_SUBJECT_STEPS)
    assert single["direct_s"] == pytest.approx(sum(single["steps_s"].values()), abs=0.01)
    assert document["totals"]["single_subject_s"] == single["direct_s"]
    assert single["dagster_overhead_s"] == pytest.approx(single["dagster_s"] - single["direct_s"], abs=0.01)
    assert set(single["dagster_step_seconds"]) >= {"request_intake", "deletion_plan", "applied_deletions"}
    # The daily run's own counts are those of its home: the erasure ran on copies.
    assert counts["purged"] == counts["deleted"]


def test_ratios_targets_and_machine_are_reported(document: dict) -> None:
    assert len(document["ratios"]) == 6
    assert all(ratio["value"] > 0 for ratio in document["ratios"])
    assert {target["status"] for target in document["targets"]} <= {"met", "missed"}
    assert [target["target"].split()[0] for target in document["targets"]] == [
        "delete", "at", "single-subject", "peak", "purge", "restore"]
    # Issue 12's targets are set for 1M and 10M contacts: at 10,000 every one is informative only.
    assert not any(target["applies"] for target in document["targets"])
    for key in ("nproc", "ram_gb", "cpu_model", "python", "duckdb"):
        assert document["machine"][key]
