"""How much of each contact-linked table a few-contact lookup or delete reads, from DuckDB's EXPLAIN ANALYZE.

    python -m benchmarks.clustering STORE.duckdb [--layout as-is|shuffled|clustered] [--art] [--ids 1000]

Works on a copy of an ingested store (the file is never changed). For every contact-linked table it runs, under
`EXPLAIN (ANALYZE, FORMAT json)`: a single-id lookup (`contact_id = ?`), a single-id semi-join (the shape the
deletion's statements take), a semi-join and a DELETE (rolled back) of --ids contacts drawn at random; and the
request-subject match of one email (compliance.deletion.planning.subject_matches_sql, the join to the table
contact_keys). It prints, per statement and table, the rows and row groups the scan read out of the table's.

--layout shuffled first rewrites each linked table in an order unrelated to contact_id (a hash of its own key),
the way a real CRM export lists rows; clustered then rewrites it ordered by contact_id, as the ingest stores it.
--art adds an ART index on contact_id to each linked table, to see whether DuckDB uses it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

from compliance import identifiers
from compliance.store.schema import CONTACT_LINKED
from compliance.store.sql import quote_identifier


def _scans(node: dict[str, Any], found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    info = node.get("extra_info") or {}
    if node.get("name") in ("SEQ_SCAN", "TABLE_SCAN", "INDEX_SCAN") or "Table" in info:
        found.append({"table": str(info.get("Table", "")).rsplit(".", 1)[-1],
                      "type": info.get("Type", node.get("name")),
                      "rows_scanned": node.get("rows_scanned"), "row_groups_scanned": node.get("row_groups_scanned"),
                      "dynamic_filters": info.get("Dynamic Filters")})
    for child in node.get("children", []):
        _scans(child, found)
    return found


def explain(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> tuple[float, list[dict]]:
    """Run `sql` under EXPLAIN ANALYZE; return its wall seconds and one record per table scan in its plan."""
    started = time.perf_counter()
    plan = con.execute(f"EXPLAIN (ANALYZE, FORMAT json) {sql}", params or []).fetchall()[0][1]
    seconds = time.perf_counter() - started
    found: list[dict] = []
    for node in json.loads(plan).get("operator", []):
        _scans(node, found)
    return seconds, found


def row_groups(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return con.execute("SELECT count(DISTINCT row_group_id) FROM pragma_storage_info(?)", [table]).fetchone()[0]


def _layout(con: duckdb.DuckDBPyConnection, layout: str, art: bool, contacts_order: str | None) -> None:
    if contacts_order:
        con.execute(f"CREATE OR REPLACE TABLE contacts AS SELECT * FROM contacts "
                    f"ORDER BY {quote_identifier(contacts_order)}")
    for spec in CONTACT_LINKED:
        name = quote_identifier(spec.name)
        if layout in ("shuffled", "clustered"):
            key = ", ".join(spec.key)
            con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM {name} ORDER BY hash({key})")
        if layout == "clustered":
            con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM {name} ORDER BY contact_id")
        if art:
            con.execute(f"CREATE INDEX {quote_identifier('bench_ix_' + spec.name)} ON {name} (contact_id)")
    con.execute("CHECKPOINT")


def measure(store_file: Path, *, layout: str, art: bool, ids: int, contacts_order: str | None = None,
            seed: float = 0.5) -> dict[str, Any]:
    """EXPLAIN ANALYZE figures of the statements above on a copy of `store_file`.

    Args:
        store_file: an ingested store (left unchanged).
        layout: as-is, shuffled or clustered (see the module's docstring).
        art: add an ART index on contact_id to every linked table.
        ids: how many random contacts the semi-join and DELETE name.
        contacts_order: rewrite contacts ordered by this column first (contact_id, email_key), or leave them.
        seed: DuckDB's random seed for drawing them.

    Returns:
        {"tables": {table: {"rows", "row_groups"}}, "statements": [{"statement", "seconds", "scans"}]}.
    """
    with tempfile.TemporaryDirectory(prefix="retention-clustering-") as folder:
        copy = Path(folder) / "store.duckdb"
        shutil.copyfile(store_file, copy)
        # A store not checkpointed since its last write keeps those writes in its write-ahead log.
        wal = store_file.with_name(store_file.name + ".wal")
        if wal.exists():
            shutil.copyfile(wal, copy.with_name(copy.name + ".wal"))
        con = duckdb.connect(str(copy))
        try:
            con.execute("SET enable_progress_bar = false")
            con.execute("SET memory_limit = '2GB'")
            identifiers.register(con)
            started = time.perf_counter()
            _layout(con, layout, art, contacts_order)
            layout_seconds = time.perf_counter() - started
            result = _statements(con, ids, seed, layout, art, layout_seconds)
            return {**result, "contacts_order": contacts_order}
        finally:
            con.close()


def _statements(con: duckdb.DuckDBPyConnection, ids: int, seed: float, layout: str, art: bool,
                layout_seconds: float) -> dict[str, Any]:
    from compliance.deletion.planning import subject_matches_sql
    from compliance.vocabulary import SourceKind

    tables = {spec.name: {"rows": con.execute(f"SELECT count(*) FROM {spec.name}").fetchone()[0],
                          "row_groups": row_groups(con, spec.name)} for spec in CONTACT_LINKED}
    for name in ("contacts", "contact_keys"):
        tables[name] = {"rows": con.execute(f"SELECT count(*) FROM {name}").fetchone()[0],
                        "row_groups": row_groups(con, name)}
    con.execute("SELECT setseed(?)", [seed])
    con.execute("CREATE TEMP TABLE many AS SELECT contact_id FROM contacts ORDER BY random() LIMIT ?", [ids])
    one, email = con.execute("SELECT contact_id, email FROM contacts WHERE email_key IS NOT NULL "
                             "ORDER BY random() LIMIT 1").fetchone()
    con.execute("CREATE TEMP TABLE one AS SELECT ?::VARCHAR AS contact_id", [one])
    statements = []

    def record(label: str, sql: str, params: list | None = None) -> None:
        seconds, scans = explain(con, sql, params)
        statements.append({"statement": label, "seconds": round(seconds, 4), "scans": scans})

    for spec in CONTACT_LINKED:
        table = spec.name
        record(f"{table}: contact_id = ? (1 id)", f"SELECT count(*) FROM {table} WHERE contact_id = ?", [one])
        record(f"{table}: IN (SELECT 1 id)",
               f"SELECT count(*) FROM {table} WHERE contact_id IN (SELECT contact_id FROM one)")
        record(f"{table}: IN (SELECT {ids:,} ids)",
               f"SELECT count(*) FROM {table} WHERE contact_id IN (SELECT contact_id FROM many)")
        con.execute("BEGIN TRANSACTION")
        record(f"{table}: DELETE IN (SELECT {ids:,} ids)",
               f"DELETE FROM {table} WHERE contact_id IN (SELECT contact_id FROM many)")
        con.execute("ROLLBACK")
    # One GDPR subject named by email, matched the way the plan matches it.
    con.execute("BEGIN TRANSACTION")
    con.execute("CREATE TEMP TABLE plan_sources (bulk_action_id VARCHAR, source_kind VARCHAR, source_ref VARCHAR)")
    con.execute("INSERT INTO plan_sources VALUES ('b1', ?, 'r1')", [SourceKind.REQUEST])
    con.execute("INSERT INTO pending_subjects (request_id, subject_no, email_key) VALUES ('r1', 1, ?)",
                [identifiers.email_key(email)])
    record("subject match: 1 email", f"{subject_matches_sql('plan_sources')} SELECT * FROM matches",
           [SourceKind.REQUEST])
    con.execute("ROLLBACK")
    return {"layout": layout, "art": art, "ids": ids, "layout_seconds": round(layout_seconds, 2), "tables": tables,
            "statements": statements}


def render(result: dict[str, Any]) -> str:
    """A Markdown table: per statement and table scanned, rows and row groups read out of the table's."""
    tables = result["tables"]
    order = f", contacts ordered by {result['contacts_order']}" if result.get("contacts_order") else ""
    lines = [f"Layout {result['layout']}{' + ART index on contact_id' if result['art'] else ''}{order} "
             f"(rewrite {result['layout_seconds']:.1f} s).", "",
             "| statement | table | scan | rows read / table rows | row groups read / total | ms |",
             "|---|---|---|---:|---:|---:|"]
    for statement in result["statements"]:
        for scan in statement["scans"]:
            if scan["table"] not in tables:
                continue
            total = tables[scan["table"]]
            rows = scan["rows_scanned"]
            groups = scan["row_groups_scanned"]
            lines.append(f"| {statement['statement']} | {scan['table']} | {scan['type']} | "
                         f"{'–' if rows is None else f'{rows:,}'} / {total['rows']:,} | "
                         f"{'–' if groups is None else f'{groups:,}'} / {total['row_groups']:,} | "
                         f"{statement['seconds'] * 1000:,.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.clustering", description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path, help="an ingested store file (copied, never changed)")
    parser.add_argument("--layout", choices=("as-is", "shuffled", "clustered"), default="as-is")
    parser.add_argument("--art", action="store_true", help="add an ART index on contact_id to each linked table")
    parser.add_argument("--ids", type=int, default=1000, help="contacts named by the semi-join and DELETE")
    parser.add_argument("--contacts-order", choices=("contact_id", "email_key", "phone_key"),
                        help="rewrite contacts ordered by this column first")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args.store, layout=args.layout, art=args.art, ids=args.ids,
                     contacts_order=args.contacts_order)
    sys.stdout.write(json.dumps(result, indent=1) + "\n" if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
