"""The sharded row: one CRM as homes of 1, 2 and 4 location shards, its daily run through Dagster's run queue.

    python -m benchmarks.shards --contacts 2000000 --shards 1 2 4 --concurrency 2 [--locations 200] [--json out.json]

For each shard count: a fresh home (`retention init --shards N`) on a Dagster instance whose QueuedRunCoordinator
runs up to --concurrency runs at once, one per store (PostgreSQL, a throwaway cluster started as the tests start it;
when none can be started, a SQLite instance with the same run queue, and the output says so). Every home gets the
same demo CRM (generate_snapshot with --locations locations, so the shards are balanced), the demo's sample requests
and rule. The row is the home's first daily run: one `compliance_job` run per shard (the home itself for 1 shard),
submitted with pipelines.runner.launch_job while a Dagster daemon (`python -m dagster._daemon run`, as `retention ui`
starts it) drains the queue. It includes the snapshot's ingest. Wall time runs from the first run's creation to the
last run's end, both read from Dagster's run records; the request sensor is stopped first so that only these runs
go through the queue. Each run's CPU seconds and peak RSS are sampled from /proc (its worker process), and the
speed-up is against the first shard count given. Afterwards the outcomes (contacts by state, requests by status,
over every shard) must equal those of the first configuration, else the command exits 1.

Markdown goes to stdout; --json FILE also saves the document; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from benchmarks.measure import machine
from benchmarks.postgres import PostgresServer, start_cluster, stop_cluster
from benchmarks.report import machine_line
from compliance.home import Home, write_private
from demo_crm import generator as demo_data
from pipelines.instance import postgres_dagster_yaml

AS_OF = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
DEFAULT_LOCATIONS = 200
SNAPSHOT_ID = f"demo-{AS_OF:%Y%m%dT%H%M%S}"
TERMINAL = ("SUCCESS", "FAILURE", "CANCELED")
QUEUE_TIMEOUT_SECONDS = 6 * 3600
DAEMON_READY_TIMEOUT_SECONDS = 120
POLL_SECONDS = 0.5
_MB = 1024 * 1024
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shards", description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, required=True, help="contacts in the demo CRM")
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4], help="shard counts (default 1 2 4)")
    parser.add_argument("--concurrency", type=int, default=2, help="the run queue's max_concurrent_runs (default 2)")
    parser.add_argument("--locations", type=int, default=DEFAULT_LOCATIONS,
                        help=f"locations the contacts are spread over (default {DEFAULT_LOCATIONS})")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--duckdb-threads", type=int, metavar="N",
                        help="the homes' `threads` setting: DuckDB threads per run (default: every core)")
    parser.add_argument("--sqlite", action="store_true", help="use the SQLite instance without trying PostgreSQL")
    parser.add_argument("--work-dir", type=Path, help="where the homes go (default: a new folder under /tmp, removed)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also save the document as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.contacts < 1_000:
        parser.error("--contacts must be at least 1000 (the demo's sample requests need them)")
    if args.concurrency < 1 or args.locations < 1 or min(args.shards) < 1:
        parser.error("--concurrency, --locations and --shards must be at least 1")
    if len(set(args.shards)) != len(args.shards):
        parser.error("--shards: each count once")
    return args


def _retention(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise SystemExit(f"retention {' '.join(args)}: exit {done.returncode}: {done.stderr.strip()[-2000:]}")


def sqlite_dagster_yaml(concurrency: int) -> str:
    """The fallback instance: SQLite storage (the default) behind the run queue `init --dagster-storage` writes.

    Args:
        concurrency: the queue's max_concurrent_runs.

    Returns:
        The dagster.yaml text: the PostgreSQL instance's configuration without its storage.
    """
    config = yaml.safe_load(postgres_dagster_yaml("env:UNUSED", max_concurrent_runs=concurrency))
    del config["storage"]
    return ("# The shard benchmark's fallback: SQLite storage, the run queue of `retention init --dagster-storage`.\n"
            + yaml.safe_dump(config, sort_keys=False))


def make_source(folder: Path, *, contacts: int, locations: int, seed: int) -> Path:
    """The demo CRM, its sample requests and rules, written once and copied into every home.

    Returns:
        The folder holding snapshots/<id>/, requests/ and rules.yaml.
    """
    snapshot = folder / "snapshots" / SNAPSHOT_ID
    demo_data.generate_snapshot(snapshot, contacts=contacts, seed=seed, as_of=AS_OF, fmt="parquet",
                                locations=locations)
    (folder / "requests").mkdir()
    demo_data.write_sample_requests(folder / "requests", snapshot, as_of=AS_OF, seed=seed)
    (folder / "rules.yaml").write_text(demo_data.sample_rules_yaml(snapshot))
    return folder


def make_home(root: Path, *, shards: int, concurrency: int, postgres_url: str | None, source: Path,
              duckdb_threads: int | None = None) -> Home:
    """A fresh home of `shards` shards holding the source's snapshot, requests and rules, its sensor stopped.

    Returns:
        The Home.
    """
    from pipelines.serve import environment, write_workspace
    from sensors.request_drop import SENSOR_NAME

    init = ["init", "--home", str(root), "--shards", str(shards)]
    if postgres_url:
        init += ["--dagster-storage", postgres_url, "--max-concurrent-runs", str(concurrency)]
    _retention(*init)
    home = Home.resolve(root)
    if duckdb_threads is not None:
        home.settings_file.write_text(home.settings_file.read_text() + f"\nthreads: {int(duckdb_threads)}\n")
    if not postgres_url:
        write_private(home.dagster_home / "dagster.yaml", sqlite_dagster_yaml(concurrency))
    shutil.copytree(source / "snapshots" / SNAPSHOT_ID, home.snapshots_inbox / SNAPSHOT_ID)
    for request in sorted((source / "requests").iterdir()):
        shutil.copy2(request, home.requests_inbox / request.name)
    shutil.copy2(source / "rules.yaml", home.rules_file)
    # The daemon's request sensor would start request_job runs for the same files; only the daily runs are measured.
    done = subprocess.run([sys.executable, "-m", "dagster", "sensor", "stop", SENSOR_NAME, "-w",
                           str(write_workspace(home))], env=environment(home), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise SystemExit(f"dagster sensor stop {SENSOR_NAME}: {done.stderr.strip()[-2000:]}")
    return home


class TreeSampler:
    """Samples the RSS of a process and its descendants from /proc: the peak of their sum, each run's peak and CPU.

    A run's worker is the process (a multiprocessing child of the code server) whose children tail the run's
    compute logs, whose paths hold the run's id; a run's peak is the largest kernel high-water mark (VmHWM) of its
    worker and the worker's descendants. VmHWM only grows, so a sample shortly before a process exits holds its peak;
    so does a run's CPU time (user + system of its processes), which shows the work apart from the wait on a busy
    machine.
    """

    def __init__(self, root_pid: int) -> None:
        self.root_pid = root_pid
        # Set once the runs are submitted; the first run may start while the others are being submitted.
        self.run_ids: list[str] = []
        self.peak_tree_bytes = 0
        self.run_peak_bytes: dict[str, int] = {}
        self.run_cpu_seconds: dict[str, float] = {}
        self._workers: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            total, cpu = 0, {}
            for pid, run_id in self._tree():
                status = _status(pid)
                total += status.get("VmRSS", 0)
                if run_id:
                    self.run_peak_bytes[run_id] = max(self.run_peak_bytes.get(run_id, 0), status.get("VmHWM", 0))
                    cpu[run_id] = cpu.get(run_id, 0.0) + _cpu_seconds(pid)
            self.peak_tree_bytes = max(self.peak_tree_bytes, total)
            for run_id, seconds in cpu.items():
                self.run_cpu_seconds[run_id] = max(self.run_cpu_seconds.get(run_id, 0.0), seconds)

    def _tree(self) -> list[tuple[int, str | None]]:
        """(pid, run id or None) of the root and every descendant, a worker's descendants taking its run."""
        children = _children()
        for pid in _walk(self.root_pid, children):
            if pid != self.root_pid and pid not in self._workers:
                run_id = next(filter(None, map(self._run_of, children.get(pid, []))), None)
                if run_id:
                    self._workers[pid] = run_id
        labelled, todo = [], [(self.root_pid, None)]
        while todo:
            pid, inherited = todo.pop()
            run_id = inherited or self._workers.get(pid)
            labelled.append((pid, run_id))
            todo += [(child, run_id) for child in children.get(pid, [])]
        return labelled

    def _run_of(self, pid: int) -> str | None:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return None
        return next((run_id for run_id in self.run_ids if run_id in command), None)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                # The command name (field 2) may hold spaces and parentheses: the ppid is the 2nd field after ')'.
                ppid = int(Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    return children


def _walk(root: int, children: dict[int, list[int]]) -> list[int]:
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # utime and stime, fields 14 and 15 of stat(5), counted from the state (field 3) after the command name.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _status(pid: int) -> dict[str, int]:
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, amount = line.split(":", 1)
                values[key] = int(amount.split()[0]) * 1024
    except OSError:
        pass
    return values


def _run_records(home: Home, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    import dagster as dg

    from pipelines.runner import instance_for

    with instance_for(home) as instance:
        records = instance.get_run_records(filters=dg.RunsFilter(run_ids=run_ids))
    runs = {}
    for record in records:
        created = record.create_timestamp
        created = created.replace(tzinfo=UTC) if created.tzinfo is None else created
        runs[record.dagster_run.run_id] = {
            "status": record.dagster_run.status.value, "created": created.timestamp(),
            "start": record.start_time, "end": record.end_time,
            "shard": record.dagster_run.tags.get("retention/shard")}
    return runs


def _daemon_ready(home: Home) -> bool:
    from pipelines.runner import instance_for

    with instance_for(home) as instance:
        return "QUEUED_RUN_COORDINATOR" in instance.get_daemon_heartbeats()


def run_daily(home: Home, say: Callable[[str], None]) -> dict[str, Any]:
    """Start a daemon on the home's instance, submit one compliance_job run per shard, wait for them all.

    Returns:
        The runs (status, created/start/end epoch seconds, shard), the peak RSS sampled, the submission time.
    """
    from compliance.shards.placement import shard_homes
    from pipelines.runner import launch_job
    from pipelines.serve import Child, environment, stop, write_workspace

    daemon = Child("daemon", subprocess.Popen(
        [sys.executable, "-m", "dagster._daemon", "run", "-w", str(write_workspace(home))],
        env=environment(home), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        process_group=0))
    sampler = TreeSampler(daemon.process.pid)
    try:
        deadline = time.monotonic() + DAEMON_READY_TIMEOUT_SECONDS
        while not _daemon_ready(home):
            if daemon.exited() or time.monotonic() > deadline:
                raise SystemExit("the Dagster daemon did not start (no run queue heartbeat)")
            time.sleep(POLL_SECONDS)
        homes = shard_homes(home)
        started = time.monotonic()
        # Submitted side by side, as the schedule's one tick submits them: each `dagster job launch` loads the code.
        with ThreadPoolExecutor(max_workers=len(homes)) as pool:
            run_ids = list(pool.map(lambda shard: launch_job(shard, "compliance_job", as_of=AS_OF), homes))
        submit_s = time.monotonic() - started
        sampler.run_ids = run_ids
        say(f"  submitted {len(run_ids)} run(s) in {submit_s:.1f}s; the daemon drains the queue")
        deadline = time.monotonic() + QUEUE_TIMEOUT_SECONDS
        while True:
            runs = _run_records(home, run_ids)
            if len(runs) == len(run_ids) and all(run["status"] in TERMINAL for run in runs.values()):
                break
            if daemon.exited() or time.monotonic() > deadline:
                raise SystemExit("the daemon ended, or the runs did not finish in time")
            time.sleep(POLL_SECONDS)
    finally:
        sampler.close()
        stop([daemon])
    ordered = [dict(runs[run_id], run_id=run_id,
                    peak_rss_mb=round(sampler.run_peak_bytes.get(run_id, 0) / _MB, 1) or None,
                    cpu_s=round(sampler.run_cpu_seconds.get(run_id, 0.0), 1) or None)
               for run_id in run_ids]
    return {"runs": ordered, "submit_s": round(submit_s, 2),
            "peak_rss_tree_mb": round(sampler.peak_tree_bytes / _MB, 1)}


def overlapped(runs: list[dict[str, Any]]) -> bool:
    """Whether any two runs were going at the same time (each from its start to its end)."""
    return any(a["start"] < b["end"] and b["start"] < a["end"]
               for i, a in enumerate(runs) for b in runs[i + 1:])


def outcomes(home: Home) -> dict[str, Any]:
    """Contacts by state and requests by status over every shard of the home (read-only)."""
    from compliance.shards.views import whole_home

    with whole_home(home) as con:
        # A contact's state as `retention show` gives it: its lifecycle row, else active while in the store.
        contacts = dict(con.execute(
            "SELECT coalesce(l.state, 'active'), count(*) FROM contacts c LEFT JOIN contact_lifecycle l "
            "USING (contact_id) GROUP BY ALL ORDER BY 1").fetchall())
        contacts["purged"] = con.execute("SELECT count(*) FROM purged_contacts").fetchone()[0]
        requests = dict(con.execute("SELECT status, count(*) FROM requests GROUP BY status ORDER BY status").fetchall())
    return {"contacts": contacts, "requests": requests}


def _row(shards: int, daily: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any]:
    """One configuration's row: wall and run-span seconds, each run's start and end after the first submission."""
    runs = daily["runs"]
    first_created = min(run["created"] for run in runs)
    first_start = min(run["start"] for run in runs if run["start"])
    last_end = max(run["end"] or 0 for run in runs)
    for run in runs:
        run["start_s"] = round(run["start"] - first_created, 2) if run["start"] else None
        run["end_s"] = round(run["end"] - first_created, 2) if run["end"] else None
    return {"shards": shards, "wall_s": round(last_end - first_created, 2),
            "runs_span_s": round(last_end - first_start, 2), "submit_s": daily["submit_s"],
            "succeeded": all(run["status"] == "SUCCESS" for run in runs), "overlapped": overlapped(runs),
            "cpu_s": round(sum(run["cpu_s"] or 0 for run in runs), 1),
            "peak_rss_tree_mb": daily["peak_rss_tree_mb"], "runs": runs, "outcomes": outcome}


def measure(args: argparse.Namespace, work: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """Every configuration of the row, one after the other, on one instance kind (PostgreSQL or SQLite).

    Returns:
        The document: machine, parameters, instance kind (and why SQLite, if so), one row per shard count.
    """
    machine_at_start = machine()
    server: PostgresServer | None = None
    reason = "--sqlite given"
    if not args.sqlite:
        server, reason = start_cluster()
    try:
        instance = {"kind": "postgresql" if server else "sqlite",
                    "note": "" if server else f"SQLite fallback: {reason}"}
        if not server:
            say(f"PostgreSQL not used ({reason}); SQLite instances with the same run queue")
        started = time.monotonic()
        source = make_source(work / "source", contacts=args.contacts, locations=args.locations, seed=args.seed)
        say(f"demo CRM of {args.contacts:,} contacts over {args.locations} locations generated in "
            f"{time.monotonic() - started:.1f}s")
        rows = []
        for shards in args.shards:
            url = server.create_database(f"shards_{shards}") if server else None
            home = make_home(work / f"home-{shards}", shards=shards, concurrency=args.concurrency,
                             postgres_url=url, source=source, duckdb_threads=args.duckdb_threads)
            say(f"{shards} shard(s): home ready at {home.root}")
            load_before = [round(load, 2) for load in os.getloadavg()]
            row = _row(shards, run_daily(home, say), outcomes(home))
            row["loadavg_before"] = load_before
            rows.append(row)
            say(f"  {shards} shard(s): {row['wall_s']:.1f}s wall, runs {[run['status'] for run in row['runs']]}, "
                f"overlapped: {row['overlapped']}")
            if not args.work_dir:
                shutil.rmtree(home.root, ignore_errors=True)
    finally:
        if server:
            stop_cluster(server)
    base = rows[0]
    for row in rows:
        row["speedup_vs_first"] = round(base["wall_s"] / row["wall_s"], 2) if row["wall_s"] else None
        row["span_speedup_vs_first"] = (round(base["runs_span_s"] / row["runs_span_s"], 2)
                                        if row["runs_span_s"] else None)
        row["same_outcomes_as_first"] = row["outcomes"] == base["outcomes"]
    return {"machine": machine_at_start, "loadavg_at_end": [round(load, 2) for load in os.getloadavg()],
            "params": {"contacts": args.contacts, "locations": args.locations, "seed": args.seed,
                       "duckdb_threads": args.duckdb_threads,
                       "concurrency": args.concurrency, "shards": args.shards, "as_of": AS_OF.isoformat()},
            "instance": instance, "rows": rows}


def render(document: dict[str, Any]) -> str:
    """The document as Markdown: one line per shard count, then each run's start, end and peak RSS."""
    p, rows, instance = document["params"], document["rows"], document["instance"]
    header = ("| shards | wall s (first submission → last end) | runs s (first start → last end) | "
              f"speed-up vs {rows[0]['shards']} shard(s): wall (runs) | runs overlapped | "
              "runs' CPU s | peak RSS MB: largest run / daemon tree | same outcomes | load before |")
    lines = [f"### {p['contacts']:,} contacts over {p['locations']} locations: the first daily run (ingest included) "
             f"as {', '.join(str(r['shards']) for r in rows)} shard(s), run queue at concurrency {p['concurrency']}",
             "",
             f"Machine: {machine_line(document['machine'])}. Load average at start "
             f"{document['machine'].get('loadavg_at_start')}, at end {document.get('loadavg_at_end')}.",
             f"Dagster instance: {instance['kind']}" + (f" ({instance['note']})" if instance["note"] else "") + ".",
             f"Command: `{document.get('command', '')}`", "", header, "|---:|---:|---:|---:|---|---:|---:|---|---|"]
    for row in rows:
        largest = max((run["peak_rss_mb"] or 0 for run in row["runs"]), default=0)
        lines.append(f"| {row['shards']} | {row['wall_s']:,.1f} | {row['runs_span_s']:,.1f} | "
                     f"{row['speedup_vs_first']:.2f}x ({row['span_speedup_vs_first']:.2f}x) | "
                     f"{'yes' if row['overlapped'] else 'no'} | {row['cpu_s']:,.1f} | "
                     f"{largest:,.0f} / {row['peak_rss_tree_mb']:,.0f} | "
                     f"{'yes' if row['same_outcomes_as_first'] else '**no**'} | {row['loadavg_before'][0]} |")
    lines += ["", "Runs (seconds after the first submission; the run worker's CPU seconds and peak RSS):", ""]
    for row in rows:
        spans = ", ".join(f"{run['shard'] or 'home'} {run['status']} {run['start_s']}–{run['end_s']} s "
                          f"({run['cpu_s'] or 0:,.1f} CPU s, {run['peak_rss_mb'] or 0:,.0f} MB)" for run in row["runs"])
        lines.append(f"- {row['shards']} shard(s), submitted in {row['submit_s']} s: {spans}")
    outcome = rows[0]["outcomes"]
    lines += ["", f"Outcomes over every shard: contacts {outcome['contacts']}, requests {outcome['requests']}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    say = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-shards-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        document = measure(args, work, say)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    document["command"] = "python -m benchmarks.shards " + " ".join(
        shlex.quote(arg) for arg in (argv if argv is not None else sys.argv[1:]))
    if args.json:
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    print(render(document))
    ok = all(row["succeeded"] and row["same_outcomes_as_first"] for row in document["rows"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
