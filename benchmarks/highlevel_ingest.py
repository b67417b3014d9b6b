"""Ingest of one CRM as a HighLevel API export (JSON pages) and as native Parquet: the time of each and the ratio.

The HighLevel export is the demo's (`generate_snapshot(fmt="highlevel")`: pages of 100 records, additional
identifiers, epoch and ISO timestamps). The Parquet snapshot is made from what that export put in the store, table
by table under our column names, so both ingests load the same rows into a fresh home. A small untimed ingest of
each format first keeps first-run costs (imports, phone metadata) out of the numbers.

    python -m benchmarks.highlevel_ingest --contacts 100000 [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.measure import Recorder, machine, max_rss_bytes
from benchmarks.report import machine_line
from compliance.home import Home
from compliance.snapshots.ingest import ingest_snapshots
from compliance.store.connection import Store
from compliance.store.schema import TABLES
from demo_crm.generator import generate_snapshot

AS_OF = datetime(2026, 11, 10, 8, tzinfo=UTC)
TARGET_RATIO = 3.0


def _home(root: Path) -> Home:
    home = Home(root)
    home.init()
    return home


def _folder_size(folder: Path) -> tuple[int, int]:
    """(files, bytes) under a folder."""
    files = [path for path in folder.rglob("*") if path.is_file()]
    return len(files), sum(path.stat().st_size for path in files)


def _export_parquet(store: Store, folder: Path) -> None:
    """Write every CRM table of the store as a native <table>.parquet snapshot (our column names, lists as lists)."""
    folder.mkdir(parents=True)
    with store.connect(read_only=True) as con:
        for spec in TABLES:
            target = str(folder / f"{spec.name}.parquet").replace("'", "''")
            con.execute(f"COPY (SELECT {', '.join(spec.all_columns)} FROM {spec.name}) TO '{target}' (FORMAT parquet)")


def _ingest(recorder: Recorder, name: str, home: Home, rows_expected: int | None = None) -> int:
    """Ingest the home's one snapshot, timed as one step; returns the rows loaded."""
    store = Store(home)
    with store.connect() as con, recorder.step(name, rows_label="snapshot rows") as step:
        [ingested] = ingest_snapshots(con, home, as_of=AS_OF).ingested
        step.rows = sum(ingested.row_counts.values())
    if rows_expected is not None and step.rows != rows_expected:
        raise SystemExit(f"{name}: loaded {step.rows:,} rows, the other format {rows_expected:,}")
    return step.rows


def run(contacts: int, work: Path, *, seed: int = 7, warm_up: bool = True, progress: bool = True) -> dict[str, Any]:
    """Generate the export, make the Parquet twin, ingest both into fresh homes.

    Args:
        contacts: contacts in the CRM.
        work: a folder for the homes (removed by the caller).
        seed: the demo seed.
        warm_up: first ingest a 1,000-contact CRM of each format, untimed.
        progress: log each step to stderr.

    Returns:
        The document: machine, contacts, one row per format (seconds, CPU s, peak RSS, files, bytes) and the ratio.
    """
    recorder = Recorder(progress=progress)
    try:
        if warm_up:
            warm = _home(work / "warm-hl")
            generate_snapshot(warm.snapshots_inbox / "s1", contacts=1_000, seed=seed, as_of=AS_OF, fmt="highlevel")
            with Store(warm).connect() as con:
                ingest_snapshots(con, warm, as_of=AS_OF)
            twin = _home(work / "warm-pq")
            _export_parquet(Store(warm), twin.snapshots_inbox / "s1")
            with Store(twin).connect() as con:
                ingest_snapshots(con, twin, as_of=AS_OF)
            recorder.steps.clear()
        highlevel, parquet = _home(work / "highlevel"), _home(work / "parquet")
        with recorder.step("generate HighLevel export", rows_label="contacts") as step:
            generate_snapshot(highlevel.snapshots_inbox / "s1", contacts=contacts, seed=seed, as_of=AS_OF,
                              fmt="highlevel")
            step.rows = contacts
        rows = _ingest(recorder, "ingest HighLevel JSON pages", highlevel)
        _export_parquet(Store(highlevel), parquet.snapshots_inbox / "s1")
        _ingest(recorder, "ingest Parquet", parquet, rows_expected=rows)
        formats = []
        for name, home in (("HighLevel JSON pages", highlevel), ("Parquet", parquet)):
            step = recorder.get(f"ingest {name}")
            files, size = _folder_size(home.snapshots_inbox / "s1")
            formats.append({**step.as_dict(), "format": name, "files": files, "bytes": size})
        return {"machine": machine(), "contacts": contacts, "rows": rows, "formats": formats,
                "ratio": round(formats[0]["seconds"] / formats[1]["seconds"], 2),
                "cpu_ratio": round(formats[0]["cpu_seconds"] / formats[1]["cpu_seconds"], 2),
                "process_peak_rss_mb": round(max_rss_bytes() / 1024 / 1024, 1)}
    finally:
        recorder.close()


def render(document: dict[str, Any]) -> str:
    """The document as a markdown table."""
    lines = [f"Machine: {machine_line(document['machine'])}. Load average at start "
             f"{document['machine']['loadavg_at_start']}.",
             f"{document['contacts']:,} contacts, {document['rows']:,} snapshot rows.", "",
             "| format | files | MB on disk | ingest s | rows/s | CPU s | peak RSS MB |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in document["formats"]:
        lines.append(f"| {row['format']} | {row['files']:,} | {row['bytes'] / 1e6:,.0f} | {row['seconds']:.2f} | "
                     f"{row['rows_per_s']:,} | {row['cpu_seconds']:.2f} | {row['peak_rss_mb']:,.0f} |")
    lines.append("")
    lines.append(f"HighLevel / Parquet: {document['ratio']:.2f}x wall, {document['cpu_ratio']:.2f}x CPU "
                 f"(target: at most {TARGET_RATIO:.0f}x at 1M contacts).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.highlevel_ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the document as JSON instead of a table")
    parser.add_argument("--work-dir", type=Path, help="where the homes go (default: a temporary folder, removed)")
    parser.add_argument("--no-warm-up", action="store_true", help="skip the untimed small ingests")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    if args.contacts < 1:
        parser.error("--contacts must be at least 1")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-highlevel-"))
    try:
        document = run(args.contacts, work, seed=args.seed, warm_up=not args.no_warm_up, progress=not args.quiet)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(document, indent=2) if args.json else render(document))


if __name__ == "__main__":
    main(sys.argv[1:])
