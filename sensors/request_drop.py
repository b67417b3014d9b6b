"""The request-drop sensor: request files dropped in <home>/inbox/requests launch a request_job run.

One run per tick, not one per file. The store is one DuckDB file, and DuckDB allows one writer process at a time:
runs launched side by side would fight over its lock and all but one would fail. And request_intake takes every
file waiting in the folder, whichever file launched the run, so a run per file would only add runs that find
nothing left to do. So each tick launches at most one run, for every new or changed file at once, and launches
nothing while any run of this home (the sensor's, the daily schedule's, or one from the command line) is still
queued or going.

The cursor is JSON: {"version": 2, "seen": {name key: fingerprint}, "last_run": {"run_key", "attempt",
"files"} | null}. A name key is the keyed hash of a file's name (a file may be named after the person, and
Dagster keeps cursors and run tags forever); run tags name files as intake records them. A fingerprint is the
sha256 of the file's bytes (the same as the `file_hash` of its request records), or "unreadable:<size>:<mtime>"
for a file the sensor may not read: that one still launches a run, whose intake quarantines it with the reason.
The run_key is made of the (name, fingerprint) pairs of the batch, so the instance never launches the same batch
twice; a batch whose run failed is tried again, with the attempt number in its run_key, up to MAX_ATTEMPTS runs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from compliance.errors import InputError
from compliance.home import Home
from compliance.requests.intake import recorded_name
from compliance.requests.parsing import odd_file, pending_request_files
from compliance.settings import Settings, load_settings
from compliance.store.keys import KeyedHasher
from resources import RetentionResource
from resources.lanes import run_lanes

SENSOR_NAME = "request_drop_sensor"
DEFAULT_INTERVAL_SECONDS: int = Settings.model_fields["request_sensor_interval_seconds"].default
# A file modified this recently may still be being copied in; the run waits for it rather than quarantine half.
SETTLE_SECONDS = 3
MAX_ATTEMPTS = 3
# A run still "in progress" after this long is taken for one whose process died; it no longer holds the sensor.
STALE_RUN_SECONDS = 6 * 3600
# The cursor forgets the oldest names beyond this; a forgotten file dropped again only gets re-archived.
REMEMBERED_FILES = 10_000
CURSOR_VERSION = 2
RUN_KEY_PREFIX = "request-drop:"
FILES_TAG = "retention/request_files"
ATTEMPT_TAG = "retention/attempt"
_FILES_TAG_LIMIT = 1_000
ACTIVE_STATUSES = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                    dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
_FAILED_STATUSES = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


def sensor_interval_seconds(home: Home | None = None) -> int:
    """The minimum seconds between two ticks: `request_sensor_interval_seconds` of the home's settings.

    Args:
        home: the home; default: RETENTION_HOME, else ./retention_home, as the RetentionResource resolves it. The
            definitions call this once when they load: restart `retention ui` after changing the setting.

    Returns:
        The setting, or DEFAULT_INTERVAL_SECONDS when there is no home yet or its settings.yaml is invalid (the
        runs themselves then fail with the settings error, and `retention ui` refuses to start on it).
    """
    home = home or Home.resolve(None)
    if not home.exists():
        return DEFAULT_INTERVAL_SECONDS
    try:
        return load_settings(home.settings_file).request_sensor_interval_seconds
    except InputError as exc:
        warnings.warn(f"{exc}; the request-drop sensor looks every {DEFAULT_INTERVAL_SECONDS}s", stacklevel=2)
        return DEFAULT_INTERVAL_SECONDS


def fingerprint(path: Path) -> str | None:
    """The file's sha256, "unreadable:<size>:<mtime_ns>" when it may not be read, None when it has vanished."""
    try:
        if odd_file(path):
            # Never opened: a FIFO would block the sensor. Intake refuses it by name; the run only has to start.
            return f"odd:{os.lstat(path).st_mtime_ns}"
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None
    except OSError:
        try:
            stat = path.stat()
        except OSError:
            return None
        return f"unreadable:{stat.st_size}:{stat.st_mtime_ns}"


def scan(requests_dir: Path, now: float) -> tuple[dict[str, str], list[str]]:
    """The request files waiting in the folder with their fingerprints, and those modified too recently to take.

    Args:
        requests_dir: the home's inbox/requests.
        now: the current time (seconds since the epoch).

    Returns:
        ({name: fingerprint}, [names modified within SETTLE_SECONDS]).
    """
    current, settling = {}, []
    for path in pending_request_files(requests_dir):
        try:
            modified = os.lstat(path).st_mtime
        except OSError:
            continue
        if now - modified < SETTLE_SECONDS:
            settling.append(path.name)
            continue
        mark = fingerprint(path)
        if mark is not None:
            current[path.name] = mark
    return current, settling


def name_key(home: Home, name: str) -> str:
    """How the cursor names a file: the keyed hash of its name under the home's key, never the name itself."""
    return "name:" + KeyedHasher(home.secret()).hash("request_file", name)[:32]


def read_cursor(text: str | None, key: Callable[[str], str] | None = None) -> dict[str, Any]:
    """The cursor as a dict; a missing or unreadable one starts afresh (a file seen again is then re-archived).

    A version 1 cursor, which held raw file names, has its names replaced by their keys (`key`).
    """
    empty: dict[str, Any] = {"version": CURSOR_VERSION, "seen": {}, "last_run": None}
    try:
        cursor = json.loads(text) if text else empty
    except ValueError:
        return empty
    if not isinstance(cursor, dict) or not isinstance(cursor.get("seen"), dict):
        return empty
    if cursor.get("version") == 1 and key is not None:
        last_run = cursor.get("last_run")
        if isinstance(last_run, dict) and isinstance(last_run.get("files"), dict):
            last_run = {**last_run, "files": {key(name): mark for name, mark in last_run["files"].items()}}
        cursor = {"version": CURSOR_VERSION, "seen": {key(name): mark for name, mark in cursor["seen"].items()},
                  "last_run": last_run}
    if cursor.get("version") != CURSOR_VERSION:
        return empty
    return {"version": CURSOR_VERSION, "seen": cursor["seen"], "last_run": cursor.get("last_run")}


def run_key(batch: dict[str, str], attempt: int = 1) -> str:
    """The batch's run_key: a sha256 over its sorted (name, fingerprint) pairs, and the attempt after the first."""
    digest = hashlib.sha256("".join(f"{name}\t{mark}\n" for name, mark in sorted(batch.items())).encode())
    return RUN_KEY_PREFIX + digest.hexdigest() + (f":attempt-{attempt}" if attempt > 1 else "")


def _files_tag(names: list[str]) -> str:
    text = ", ".join(sorted(names))
    if len(text) <= _FILES_TAG_LIMIT:
        return text
    return text[:_FILES_TAG_LIMIT].rsplit(", ", 1)[0] + f" ... ({len(names)} files)"


def _active_run(instance: dg.DagsterInstance, now: datetime) -> dg.DagsterRun | None:
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=ACTIVE_STATUSES), limit=20):
        created = record.create_timestamp
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        if now - created < timedelta(seconds=STALE_RUN_SECONDS):
            return record.dagster_run
    return None


def _retry(instance: dg.DagsterInstance, last_run: dict[str, Any] | None, current: dict[str, str],
           shown: dict[str, str], home: Home) -> tuple[dict[str, str], int, str | None]:
    """The files of the last run to try again (its run failed), the next attempt number, and a note."""
    if not last_run:
        return {}, 1, None
    keys = [lane.run_key(last_run["run_key"], ":") for lane in run_lanes(home)]
    # A batch is tried again when its run failed; in a home of shards, when any shard's run failed (the shards that
    # had applied it find nothing left to do).
    runs = [run for key in keys
            for run in instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": key}), limit=1)
            if run.status in _FAILED_STATUSES]
    if not runs:
        return {}, 1, None
    files = {name: mark for name, mark in last_run["files"].items() if current.get(name) == mark}
    if not files:
        return {}, 1, None
    if last_run["attempt"] >= MAX_ATTEMPTS:
        return {}, 1, (f"run {runs[0].run_id} failed on attempt {last_run['attempt']} of {MAX_ATTEMPTS}; "
                       f"{len(files)} file(s) stay in the inbox for the daily run: "
                       f"{_files_tag([shown.get(key, key) for key in files])}")
    return files, last_run["attempt"] + 1, None


def evaluate(context: dg.SensorEvaluationContext, retention: RetentionResource) -> dg.SensorResult | dg.SkipReason:
    """One tick: at most one run request for every new or changed request file (one per shard), and the cursor."""
    home = retention.paths
    if not home.exists():
        return dg.SkipReason(f"no retention home at {home.root} (set RETENTION_HOME, or run `retention init`)")
    active = _active_run(context.instance, datetime.now(UTC))
    if active is not None:
        return dg.SkipReason(f"waiting for run {active.run_id} ({active.job_name}, {active.status.value}) to "
                             "finish: the store takes one writer at a time")
    found, settling = scan(home.requests_inbox, time.time())
    if settling:
        return dg.SkipReason(f"waiting for {len(settling)} file(s) still being written: "
                             f"{_files_tag([recorded_name(Path(name), '') for name in settling])}")
    key = functools.partial(name_key, home)
    current = {key(name): mark for name, mark in found.items()}
    shown = {key(name): recorded_name(Path(name), mark) for name, mark in found.items()}
    cursor = read_cursor(context.cursor, key)
    retry, attempt, gave_up = _retry(context.instance, cursor["last_run"], current, shown, home)
    if gave_up:
        context.log.warning(gave_up)
        cursor["last_run"] = None
    batch = {**retry, **{name: mark for name, mark in current.items() if cursor["seen"].get(name) != mark}}
    if not batch:
        return dg.SensorResult(skip_reason=gave_up or "no new or changed request files",
                               cursor=json.dumps(cursor, sort_keys=True))
    batch_key = run_key(batch, attempt)
    seen = cursor["seen"]
    for name, mark in batch.items():
        seen.pop(name, None)
        seen[name] = mark
    for name in list(seen)[:max(0, len(seen) - REMEMBERED_FILES)]:
        del seen[name]
    cursor["last_run"] = {"run_key": batch_key, "attempt": attempt, "files": batch}
    tags = {FILES_TAG: _files_tag([shown.get(name, name) for name in batch]), ATTEMPT_TAG: str(attempt)}
    run_config = {"resources": {"retention": {"config": {"home": str(home.root)}}}}
    # A home of N shards: one run per shard, each with the batch's run key and its shard, run side by side.
    requests = [dg.RunRequest(run_key=lane.run_key(batch_key, ":"), partition_key=lane.partition_key,
                              run_config=run_config, tags={**tags, **lane.tags}) for lane in run_lanes(home)]
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))


def build_request_drop_sensor(job: dg.UnresolvedAssetJobDefinition,
                              minimum_interval_seconds: int = DEFAULT_INTERVAL_SECONDS) -> dg.SensorDefinition:
    """The sensor, looking at most every `minimum_interval_seconds`; running by default under the daemon.

    Args:
        job: the job each batch of request files launches (request_job).
        minimum_interval_seconds: the least time between two ticks.

    Returns:
        The sensor definition named SENSOR_NAME, targeting `job`.
    """

    @dg.sensor(name=SENSOR_NAME, job=job, minimum_interval_seconds=minimum_interval_seconds,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Request files dropped in inbox/requests, taken by one request_job run per tick "
                           "(the store has one writer); each file once per content.")
    def request_drop_sensor(context: dg.SensorEvaluationContext,
                            retention: RetentionResource) -> dg.SensorResult | dg.SkipReason:
        """Launch one request_job run for every new or changed request file, once per (name, content).

        One run per tick rather than per file: DuckDB lets one process write the store at a time, and the run's
        intake takes every waiting file anyway; no run is launched while another run of the home is going.
        """
        return evaluate(context, retention)

    return request_drop_sensor
