"""The shard benchmark runs 1 and 2 shards through the run queue on the SQLite fallback, with the same outcomes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmarks.shards import overlapped, sqlite_dagster_yaml
from resources.tags import STORE_TAG

ROOT = Path(__file__).resolve().parents[2]
CONTACTS = 2_000


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("bench-shards")
    saved = work / "shards.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.shards", "--contacts", str(CONTACTS), "--shards", "1", "2",
         "--concurrency", "2", "--locations", "20", "--sqlite", "--json", str(saved), "--work-dir", str(work / "homes"),
         "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert completed.returncode == 0, completed.stderr[-4000:] + completed.stdout[-2000:]
    assert "| 2 |" in completed.stdout, "the Markdown table has the 2-shard row"
    return json.loads(saved.read_text())


def test_the_document_has_a_row_per_shard_count_on_the_sqlite_instance(document: dict) -> None:
    assert [row["shards"] for row in document["rows"]] == [1, 2]
    assert document["instance"]["kind"] == "sqlite" and "SQLite fallback" in document["instance"]["note"]
    assert document["params"] == {"contacts": CONTACTS, "locations": 20, "seed": 7, "duckdb_threads": None,
                                  "concurrency": 2, "shards": [1, 2], "as_of": "2026-03-02T02:00:00+00:00"}


def test_each_shard_count_ran_one_successful_run_per_shard(document: dict) -> None:
    for row in document["rows"]:
        assert row["succeeded"]
        assert [run["shard"] for run in row["runs"]] == (
            [None] if row["shards"] == 1 else [f"shard-{k}" for k in range(row["shards"])])
        for run in row["runs"]:
            assert run["status"] == "SUCCESS" and 0 <= run["start_s"] < run["end_s"] <= row["wall_s"]
            assert run["peak_rss_mb"] > 0 and run["cpu_s"] > 0, "the run's worker process was found and sampled"
        assert 0 < row["runs_span_s"] <= row["wall_s"]


def test_every_shard_count_gives_the_outcomes_of_one_shard(document: dict) -> None:
    one, two = (row["outcomes"] for row in document["rows"])
    assert one == two
    assert all(row["same_outcomes_as_first"] for row in document["rows"])
    assert sum(count for state, count in one["contacts"].items() if state != "purged") == CONTACTS
    assert one["contacts"]["deleted"] > 0, "the demo's requests and rule delete someone"
    assert one["requests"].get("applied", 0) > 0 and one["requests"].get("rejected", 0) == 1


def test_the_one_shard_row_is_its_own_baseline(document: dict) -> None:
    first = document["rows"][0]
    assert first["speedup_vs_first"] == 1.0 and first["overlapped"] is False


def test_the_fallback_instance_has_the_queue_of_the_postgres_instance_without_its_storage() -> None:
    config = yaml.safe_load(sqlite_dagster_yaml(3))
    assert "storage" not in config
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_coordinator"]["config"] == {
        "max_concurrent_runs": 3,
        "tag_concurrency_limits": [{"key": STORE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]}


@pytest.mark.parametrize("spans, expected", [
    ([(0, 10), (10, 20)], False),
    ([(0, 10), (9.5, 20)], True),
    ([(0, 5), (6, 8), (7, 9)], True),
    ([(0, 10)], False),
])
def test_runs_overlap_only_when_one_starts_before_another_ends(spans, expected) -> None:
    assert overlapped([{"start": start, "end": end} for start, end in spans]) is expected
