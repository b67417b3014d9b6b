"""benchmarks.clustering reads every linked table's scans and the subject match from EXPLAIN ANALYZE, on a copy."""

from __future__ import annotations

from benchmarks.clustering import measure, render
from compliance.home import Home
from compliance.store.schema import CONTACT_LINKED


def test_every_linked_table_and_the_subject_match_are_measured_on_a_copy(ingested_template: Home) -> None:
    store_file = ingested_template.store_file
    before = store_file.read_bytes()

    result = measure(store_file, layout="clustered", art=True, ids=2)

    assert store_file.read_bytes() == before
    by_statement = {s["statement"]: s for s in result["statements"]}
    index_scans = 0
    for spec in CONTACT_LINKED:
        scans = [s for s in by_statement[f"{spec.name}: contact_id = ? (1 id)"]["scans"] if s["table"] == spec.name]
        # With the index on contact_id, DuckDB looks one id up instead of scanning; a table whose statistics
        # already exclude the id is not scanned at all.
        assert all(scan["type"] == "Index Scan" for scan in scans), spec.name
        assert all(scan["rows_scanned"] <= result["tables"][spec.name]["rows"] for scan in scans)
        index_scans += len(scans)
        assert f"{spec.name}: DELETE IN (SELECT 2 ids)" in by_statement
    assert index_scans >= 4
    match = by_statement["subject match: 1 email"]["scans"]
    # By contact_id the subject reads contacts; by email, the identifiers table ordered by (kind, key).
    tables = [s["table"] for s in match]
    assert tables.count("contacts") == 1 and tables.count("contact_keys") == 1
    assert "| subject match: 1 email | contact_keys |" in render(result)
