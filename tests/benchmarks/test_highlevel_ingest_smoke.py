"""The HighLevel-versus-Parquet ingest benchmark runs end to end on a small CRM and loads the same rows both ways."""

from __future__ import annotations

from benchmarks.highlevel_ingest import render, run


def test_both_formats_load_the_same_rows_and_the_ratio_is_reported(tmp_path):
    document = run(1_000, tmp_path, warm_up=False, progress=False)

    highlevel, parquet = document["formats"]
    assert (highlevel["format"], parquet["format"]) == ("HighLevel JSON pages", "Parquet")
    assert highlevel["rows"] == parquet["rows"] == document["rows"] > 10_000
    assert highlevel["files"] > parquet["files"] == 12
    assert document["ratio"] == round(highlevel["seconds"] / parquet["seconds"], 2)
    assert "HighLevel / Parquet" in render(document)
