"""The benchmark's synthetic home: a generated snapshot with a tagged cohort, one big erasure request, rules.

The source (snapshot, request file, settings, rules) is built once, in a child process so that the generator's
DuckDB (which runs without a memory limit) does not count against the measured process; each home then gets
hard links to the same snapshot files, so the homes are identical.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

SNAPSHOT_ID = "0001-bench"
BENCH_TAG = "BenchDelete"
RULE_NAME = "bench-delete-tagged"
ADMIN = "u-admin-1"
REQUEST_ID = "GDPR-BENCH-0001"
REQUEST_FILE = "gdpr-bench-0001.json"

SINGLE_REQUEST_ID = "GDPR-BENCH-SINGLE"
SINGLE_REQUEST_FILE = "gdpr-bench-single.json"

RULES_YAML = f"""\
rules:
  - name: {RULE_NAME}
    status: published
    owner: {ADMIN}
    trigger: {{tags_any: [{BENCH_TAG}]}}
    action: delete_contact
"""


def settings_yaml(memory_limit: str | None) -> str:
    # remove: the tagged cohort is deleted even when enrolled in an active campaign (it is the work we measure).
    # No memory_limit: the default settings (DuckDB's limit derived from the 1GB memory budget) are what we measure.
    return "active_enrollment: remove\n" + (f"memory_limit: {memory_limit}\n" if memory_limit else "")


@dataclass(frozen=True)
class Source:
    """What the child process built, read back from fixture.json."""

    folder: Path
    contacts: int
    tagged: int
    subjects: int
    snapshot_rows: dict[str, int]
    generate_seconds: float
    tag_seconds: float
    tagged_ids: list[str]
    subject_list: list[dict[str, str]]

    @property
    def snapshot_dir(self) -> Path:
        return self.folder / "snapshot" / SNAPSHOT_ID

    @property
    def request_file(self) -> Path:
        return self.folder / REQUEST_FILE

    @property
    def total_rows(self) -> int:
        return sum(self.snapshot_rows.values())


def build_source(folder: Path, *, contacts: int, seed: int, as_of: datetime, deletions_pct: float,
                 fixed_deletions: int | None, request_subjects: int) -> Source:
    """Build the source in a child process and read back what it made.

    Args:
        folder: an empty folder for the snapshot, request file and fixture.json.
        contacts: contacts to generate.
        seed: the generator's seed.
        as_of: the daily run's clock; the snapshot is exported an hour before, the request received a day before.
        deletions_pct: percent of contacts tagged for the rule (ignored when fixed_deletions is given).
        fixed_deletions: tag exactly this many contacts instead.
        request_subjects: subjects of the one GDPR erasure request.

    Returns:
        The source.
    """
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "benchmarks.fixtures", "--folder", str(folder), "--contacts", str(contacts),
               "--seed", str(seed), "--as-of", as_of.isoformat(), "--deletions-pct", repr(deletions_pct),
               "--request-subjects", str(request_subjects)]
    if fixed_deletions is not None:
        command += ["--fixed-deletions", str(fixed_deletions)]
    # The generator's progress bars go to the child's stdout; keep them off ours.
    subprocess.run(command, check=True, stdout=sys.stderr, cwd=Path(__file__).resolve().parent.parent)
    document = json.loads((folder / "fixture.json").read_text())
    return Source(folder=folder, **document)


def make_home(root: Path, source: Source, memory_limit: str | None):
    """A fresh home whose inbox holds (hard links to) the source's snapshot and a copy of its request file."""
    from compliance.home import Home

    home = Home(root.resolve())
    home.init()
    home.settings_file.write_text(settings_yaml(memory_limit))
    home.rules_file.write_text(RULES_YAML)
    target = home.snapshots_inbox / SNAPSHOT_ID
    target.mkdir(parents=True)
    for path in sorted(source.snapshot_dir.iterdir()):
        try:
            os.link(path, target / path.name)
        except OSError:
            shutil.copy2(path, target / path.name)
    if source.subjects:
        shutil.copy2(source.request_file, home.requests_inbox / REQUEST_FILE)
    return home


def write_single_subject_request(home, email: str, received_at: datetime) -> Path:
    """Drop a GDPR erasure request naming one person by email in the home's inbox/requests.

    Args:
        home: the home (compliance.home.Home).
        email: the person's email, as the request names it.
        received_at: when the request was received.

    Returns:
        The request file.
    """
    request = {"request_id": SINGLE_REQUEST_ID, "kind": "erasure", "regulation": "gdpr", "requested_by": ADMIN,
               "received_at": received_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "confirm": "DELETE",
               "subjects": [{"email": email}]}
    path = home.requests_inbox / SINGLE_REQUEST_FILE
    path.write_text(json.dumps(request, indent=1) + "\n")
    return path


def _spoken(phone: str) -> str:
    digits = "".join(ch for ch in phone if ch.isdigit())
    if digits.startswith("1") and len(digits) == 11:
        return f"+1 ({digits[1:4]}) {digits[4:7]}-{digits[7:]}"
    return f"+{digits[:2]} {digits[2:6]} {digits[6:]}"


def _child(args: argparse.Namespace) -> None:
    """The per-contact worker process (one subject per call, as DSR tools traverse).

    Long because it is a self-contained script run in a child process: its imports, setup and loop stay together so
    that nothing of the parent's state is measured with it.
    """
    import time

    import duckdb

    from demo_crm.generator import generate_snapshot

    folder = Path(args.folder)
    as_of = datetime.fromisoformat(args.as_of)
    snapshot_dir = folder / "snapshot" / SNAPSHOT_ID
    started = time.perf_counter()
    counts = generate_snapshot(snapshot_dir, contacts=args.contacts, seed=args.seed,
                               as_of=as_of - timedelta(hours=1), fmt="parquet")
    generate_seconds = time.perf_counter() - started

    started = time.perf_counter()
    contacts_file = snapshot_dir / "contacts.parquet"
    target = (args.fixed_deletions if args.fixed_deletions is not None
              else round(args.contacts * args.deletions_pct / 100))
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute(f"""
            CREATE TABLE c AS
            SELECT contact_id, email, phone, lower(trim(email)) AS email_key,
                   nullif(regexp_replace(phone, '[^0-9]', '', 'g'), '') AS phone_key,
                   hash(contact_id, 'bench-tag', {args.seed}) AS tag_draw,
                   hash(contact_id, 'bench-subject', {args.seed}) AS subject_draw
            FROM read_parquet('{contacts_file}')""")
        con.execute(f"CREATE TABLE tagged AS SELECT contact_id FROM c ORDER BY tag_draw, contact_id LIMIT {target}")
        # Subjects whose email and phone each name one contact only, so every subject matches exactly one contact
        # and the expected number of deletions is exact.
        subjects = con.execute(f"""
            WITH counted AS (
                SELECT *, count(*) OVER (PARTITION BY email_key) AS email_n,
                       count(*) OVER (PARTITION BY phone_key) AS phone_n FROM c)
            SELECT contact_id, email, phone FROM counted
            WHERE email_key IS NOT NULL AND phone_key IS NOT NULL AND email_n = 1 AND phone_n = 1
              AND contact_id NOT IN (SELECT contact_id FROM tagged)
            ORDER BY subject_draw, contact_id LIMIT {args.request_subjects}""").fetchall()
        if len(subjects) < args.request_subjects:
            raise SystemExit(f"only {len(subjects)} contacts can be request subjects; use more contacts")
        rewritten = snapshot_dir / "contacts.parquet.tmp"
        con.execute(f"""
            COPY (SELECT * REPLACE (CASE WHEN contact_id IN (SELECT contact_id FROM tagged)
                                         THEN list_append(tags, '{BENCH_TAG}') ELSE tags END AS tags)
                  FROM read_parquet('{contacts_file}'))
            TO '{rewritten}' (FORMAT parquet)""")
        os.replace(rewritten, contacts_file)
        tagged_ids = [row[0] for row in con.execute("SELECT contact_id FROM tagged ORDER BY contact_id").fetchall()]
    finally:
        con.close()
    subject_list = []
    for number, (contact_id, email, phone) in enumerate(subjects):
        kind = ("contact_id", "email", "phone")[number % 3]
        value = {"contact_id": contact_id, "email": f"  {email.upper()} ", "phone": _spoken(phone)}[kind]
        subject_list.append({"kind": kind, "value": value, "contact_id": contact_id})
    if subject_list:
        request = {"request_id": REQUEST_ID, "kind": "erasure", "regulation": "gdpr", "requested_by": ADMIN,
                   "received_at": (as_of - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"), "confirm": "DELETE",
                   "subjects": [{s["kind"]: s["value"]} for s in subject_list]}
        (folder / REQUEST_FILE).write_text(json.dumps(request, indent=1) + "\n")
    tag_seconds = time.perf_counter() - started
    (folder / "fixture.json").write_text(json.dumps({
        "contacts": args.contacts, "tagged": len(tagged_ids), "subjects": len(subject_list),
        "snapshot_rows": counts, "generate_seconds": generate_seconds, "tag_seconds": tag_seconds,
        "tagged_ids": tagged_ids, "subject_list": subject_list}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build a benchmark source (used by benchmarks.run).")
    parser.add_argument("--folder", required=True)
    parser.add_argument("--contacts", type=int, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--as-of", required=True)
    parser.add_argument("--deletions-pct", type=float, default=1.0)
    parser.add_argument("--fixed-deletions", type=int)
    parser.add_argument("--request-subjects", type=int, default=1000)
    _child(parser.parse_args(argv))


if __name__ == "__main__":
    main()
