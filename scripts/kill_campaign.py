"""Kill campaign: SIGKILL `retention run` at random moments, then prove the home is whole and the next run converges.

A prepared home has a first run's deletions (61 days old, so the run under test purges them, expires their backups
and compacts the store), a new snapshot and new request files: one `retention run` goes through ingest, intake,
backup, apply, purge and compaction. The campaign runs it once uninterrupted (the reference), then, per trial, on a
fresh copy of the prepared home: starts it, SIGKILLs it at a random moment, runs it again to the end, and checks

- the audit chain is intact and passes through the store's anchor;
- every deleted contact has a verified backup (present, checksums and row counts as its manifest says);
- nothing is half-applied: every bulk action holds all its items, every deleted contact its `deleted` item, no
  plan table, `.partial` backup or compaction copy is left;
- the store's tables equal the reference's (ids, run ids and wall-clock times set aside).

Usage:
    python scripts/kill_campaign.py [--trials N] [--seed S] [--contacts N] [--workdir DIR] [--json]

RETENTION_KILLS=long makes the default 20 trials (else 3, the suite's short profile). Exit 0 when every trial
passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from compliance.clock import parse_as_of  # noqa: E402
from compliance.evidence.anchor import anchored_log  # noqa: E402
from compliance.home import Home, OutsideHome  # noqa: E402
from compliance.store.backup import PARTIAL_SUFFIX, BackupError, verify_backup  # noqa: E402
from compliance.store.connection import Store  # noqa: E402
from demo_crm import generator as demo_data  # noqa: E402

FIRST_RUN = parse_as_of("2026-01-05T09:00:00Z")
RUN_UNDER_TEST = FIRST_RUN + timedelta(days=61)
LONG_TRIALS, SHORT_TRIALS = 20, 3
# Columns whose values differ between two runs doing the same work: random ids, run ids and wall-clock times.
VOLATILE = frozenset({"bulk_action_id", "deleted_by", "restored_by", "run_id", "applied_at", "written_at",
                      "verified_at", "anchored_at", "path", "manifest_sha256", "token"})
# The audit anchor counts entries, and a kill between an append and its flag repeats an entry by design.
NOT_COMPARED = frozenset({"audit_anchor", "manual_selections"})
# A published rule is judged on every run, and the contacts it may not delete (blocked) are recorded again by each
# run that finds them: a run repeated after a kill adds such a record, which is not a difference of state.
REPEATED_RULE_RECORDS = "SELECT bulk_action_id FROM bulk_actions WHERE source LIKE 'rule %' AND done = 0"
ONLY_STATE = {
    "bulk_actions": f"WHERE bulk_action_id NOT IN ({REPEATED_RULE_RECORDS})",
    "bulk_action_items": f"WHERE bulk_action_id NOT IN ({REPEATED_RULE_RECORDS})",
}
PLAN_TABLES = ("plan_sources", "plan_candidates", "plan_items", "restore_sources", "restore_candidates",
               "restore_items")
# Progress lines of `retention run` that name the phase the run is in.
PHASES = (("compact", "compaction"), ("purg", "purge"), ("applying", "apply"), ("backing up", "backup"),
          ("backup", "backup"), ("request", "intake"), ("ingest", "ingest"), ("snapshot", "ingest"))


@dataclass
class Trial:
    """One trial: whether the run was killed, in which phase, how long after its start, and what failed."""

    number: int
    killed: bool
    phase: str
    seconds: float
    failures: list[str] = field(default_factory=list)


def retention(home: Home, as_of, *extra: str) -> subprocess.Popen:
    """Start `retention run` on the home in a child process (stderr carries its progress lines)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop("RETENTION_HOME", None)
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", "--home", str(home.root), "--as-of",
                             as_of.isoformat(), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=str(ROOT))


def run_to_end(home: Home, as_of) -> tuple[int, float]:
    """Run `retention run` to its end; its exit code and seconds taken."""
    started = time.monotonic()
    child = retention(home, as_of)
    _, error = child.communicate(timeout=1800)
    if child.returncode not in (0, 1):
        raise RuntimeError(f"retention run on {home.root} exited {child.returncode}: {error.strip()[-2000:]}")
    return child.returncode, time.monotonic() - started


def prepare(root: Path, contacts: int, seed: int) -> Home:
    """The home every trial copies: a first run's deletions 61 days old, a new snapshot and new requests."""
    home = Home(root)
    home.init()
    Store(home).connect().close()
    first = home.snapshots_inbox / "s1-first"
    demo_data.generate_snapshot(first, contacts=contacts, seed=seed, as_of=FIRST_RUN, fmt="parquet")
    demo_data.write_sample_requests(home.requests_inbox, first, as_of=FIRST_RUN, seed=seed)
    home.rules_file.write_text(demo_data.SAMPLE_RULES_YAML)
    run_to_end(home, FIRST_RUN)
    second = home.snapshots_inbox / "s2-second"
    demo_data.generate_snapshot(second, contacts=contacts, seed=seed + 1, as_of=RUN_UNDER_TEST, fmt="parquet")
    demo_data.write_sample_requests(home.requests_inbox, second, as_of=RUN_UNDER_TEST, seed=seed + 1)
    return home


def store_state(home: Home) -> dict[str, list[str]]:
    """Every compared table of the store, volatile columns left out, rows as sorted text."""
    state = {}
    with Store(home).connect(read_only=True) as con:
        tables = [row[0] for row in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' AND table_type = "
            "'BASE TABLE' AND table_catalog = current_database() ORDER BY 1").fetchall()]
        for table in tables:
            if table in NOT_COMPARED:
                continue
            columns = [row[0] for row in con.execute(f'DESCRIBE "{table}"').fetchall() if row[0] not in VOLATILE]
            if not columns:
                continue
            selected = ", ".join(f'"{column}"' for column in columns)
            rows = con.execute(f'SELECT {selected} FROM "{table}" {ONLY_STATE.get(table, "")}').fetchall()
            state[table] = sorted(repr(row) for row in rows)
    return state


def check_home(home: Home, reference: dict[str, list[str]]) -> list[str]:
    """What is wrong with a home after a killed run and its recovery run (empty when nothing is)."""
    failures = []
    with Store(home).connect(read_only=True) as con:
        verification = anchored_log(con, home).verify()
        if not verification.ok:
            failures.append(f"audit chain: entry {verification.first_bad_entry}: {verification.reason}")
        for contact_id, path, sha in con.execute(
                "SELECT l.contact_id, b.path, b.manifest_sha256 FROM contact_lifecycle l LEFT JOIN backups b "
                "ON b.bulk_action_id = l.deleted_by AND b.expired_at IS NULL WHERE l.state = 'deleted'"
        ).fetchall():
            if path is None:
                failures.append(f"deleted contact {contact_id} has no backup recorded")
                continue
            try:
                verify_backup(home.inside(path), sha)
            except (BackupError, OutsideHome) as exc:
                failures.append(f"deleted contact {contact_id}: {exc}")
        for bulk_action_id, total, items in con.execute(
                "SELECT a.bulk_action_id, a.total, count(i.bulk_action_id) FROM bulk_actions a LEFT JOIN "
                "bulk_action_items i USING (bulk_action_id) GROUP BY ALL HAVING a.total <> count(i.bulk_action_id)"
        ).fetchall():
            failures.append(f"bulk action {bulk_action_id} counts {total} items but holds {items}")
        half = con.execute(
            "SELECT count(*) FROM contact_lifecycle l WHERE l.state = 'deleted' AND NOT EXISTS (SELECT 1 FROM "
            "bulk_action_items i WHERE i.bulk_action_id = l.deleted_by AND i.contact_id = l.contact_id "
            "AND i.outcome = 'deleted')").fetchone()[0]
        if half:
            failures.append(f"{half} deleted contacts have no `deleted` item in the bulk action that deleted them")
        left = [table for table in PLAN_TABLES if con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]).fetchone()[0]]
        if left:
            failures.append(f"plan tables left after the run: {', '.join(left)}")
    leftovers = [path.name for path in home.backups_dir.iterdir() if path.name.endswith(PARTIAL_SUFFIX)]
    leftovers += [path.name for path in home.store_dir.glob("*.compact*")]
    if leftovers:
        failures.append(f"unfinished files left: {', '.join(sorted(leftovers))}")
    state = store_state(home)
    for table in sorted(set(state) | set(reference)):
        if state.get(table) != reference.get(table):
            extra = len(set(state.get(table, [])) - set(reference.get(table, [])))
            missing = len(set(reference.get(table, [])) - set(state.get(table, [])))
            failures.append(f"table {table} differs from the uninterrupted run ({extra} rows more, {missing} fewer)")
    return failures


def _phase_of(line: str) -> str | None:
    lowered = line.lower()
    return next((phase for word, phase in PHASES if word in lowered), None)


def kill_at_random(home: Home, delay: float) -> tuple[bool, str]:
    """Start `retention run` and SIGKILL it `delay` seconds later; whether it was still running, and its phase."""
    child = retention(home, RUN_UNDER_TEST)
    phase = ["start-up"]

    def follow() -> None:
        for line in child.stderr:
            phase[0] = _phase_of(line) or phase[0]

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.01)
    killed = child.poll() is None
    if killed:
        os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    reader.join(timeout=10)
    return killed, phase[0]


def campaign(trials: int, *, seed: int = 11, contacts: int = 300, workdir: Path | None = None,
             say=lambda message: None) -> dict[str, Any]:
    """Run the campaign; its figures and every failure.

    Args:
        trials: how many runs to kill (a run that ends before its kill is tried again, closer to its start).
        seed: the random moments and the generated data.
        contacts: contacts in each generated snapshot.
        workdir: where the homes go (default: a temporary folder, removed after).
        say: called with a line per trial.

    Returns:
        {"trials", "kills", "finished_before_kill", "failures", "phases", "reference_seconds", "seed"}.
    """
    chooser = random.Random(seed)
    owned = workdir is None
    base = Path(tempfile.mkdtemp(prefix="kill-campaign-")) if owned else Path(workdir)
    try:
        prepared = prepare(base / "prepared", contacts, seed)
        reference_home = Home(base / "reference")
        shutil.copytree(prepared.root, reference_home.root, symlinks=True)
        reference_code, reference_seconds = run_to_end(reference_home, RUN_UNDER_TEST)
        reference = store_state(reference_home)
        say(f"reference run: exit {reference_code} in {reference_seconds:.1f}s")
        results: list[Trial] = []
        missed, recent = 0, reference_seconds
        for number in range(1, trials + 1):
            trial_home = Home(base / f"trial-{number:02d}")
            # The machine's load changes how long a run takes: the last full run is the best guess of the next.
            span = recent
            for _ in range(4):
                shutil.rmtree(trial_home.root, ignore_errors=True)
                shutil.copytree(prepared.root, trial_home.root, symlinks=True)
                delay = chooser.uniform(0.05, 0.95) * span
                killed, phase = kill_at_random(trial_home, delay)
                if killed:
                    break
                missed += 1
                span *= 0.6
            code, recent = run_to_end(trial_home, RUN_UNDER_TEST)
            failures = check_home(trial_home, reference)
            if code != reference_code:
                failures.append(f"the recovery run exited {code}, the uninterrupted one {reference_code}")
            results.append(Trial(number, killed, phase, round(delay, 2), failures))
            say(f"trial {number}: {'killed' if killed else 'not killed'} after {delay:.1f}s in {phase}: "
                + ("ok" if not failures else "; ".join(failures)))
            if not failures:
                shutil.rmtree(trial_home.root, ignore_errors=True)
        return {
            "seed": seed, "trials": trials, "kills": sum(t.killed for t in results), "finished_before_kill": missed,
            "reference_seconds": round(reference_seconds, 1),
            "phases": dict(Counter(t.phase for t in results if t.killed)),
            "failures": [{"trial": t.number, "phase": t.phase, "after_seconds": t.seconds, "failures": t.failures}
                         for t in results if t.failures],
        }
    finally:
        if owned:
            shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    default = LONG_TRIALS if os.environ.get("RETENTION_KILLS") == "long" else SHORT_TRIALS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=default, help=f"runs to kill (default {default})")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--contacts", type=int, default=300)
    parser.add_argument("--workdir", type=Path, help="keep the homes here (failed trials stay for a look)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    figures = campaign(args.trials, seed=args.seed, contacts=args.contacts, workdir=args.workdir,
                       say=lambda message: print(message, file=sys.stderr, flush=True))
    print(json.dumps(figures, indent=2) if args.json else
          f"{figures['trials']} trials, {figures['kills']} kills ({figures['phases']}), "
          f"{len(figures['failures'])} failed")
    return 0 if not figures["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
