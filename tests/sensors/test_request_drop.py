"""The request-drop sensor run for real on a temporary home and Dagster instance, and request deadlines and records."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from compliance.clock import parse_as_of
from compliance.errors import InputError
from compliance.evidence.audit import AuditLog
from compliance.home import Home
from compliance.requests.intake import WITHHELD_REASON, extend_request, prune_request_records, take_requests
from compliance.requests.records import audit_new_records, deadline_report, request_records
from compliance.settings import Settings
from compliance.store.connection import Store
from pipelines.definitions import defs, request_drop_sensor
from pipelines.jobs import request_job
from pipelines.runner import instance_for
from resources import RetentionResource
from sensors import request_drop
from sensors.request_drop import (
    ATTEMPT_TAG,
    DEFAULT_INTERVAL_SECONDS,
    FILES_TAG,
    MAX_ATTEMPTS,
    SENSOR_NAME,
    build_request_drop_sensor,
    name_key,
    read_cursor,
    run_key,
    sensor_interval_seconds,
)
from support.crm import write_request

SENSOR = defs.resolve_sensor_def(SENSOR_NAME)
NOW = datetime.now(UTC).replace(microsecond=0)
RECEIVED = (NOW - timedelta(days=1)).isoformat().replace("+00:00", "Z")


@pytest.fixture
def live(crm: Home, monkeypatch) -> tuple[Home, dg.DagsterInstance]:
    """The ingested home as RETENTION_HOME, with its own persistent Dagster instance (the one `retention ui` shows)."""
    monkeypatch.setenv("RETENTION_HOME", str(crm.root))
    monkeypatch.setenv("DAGSTER_HOME", str(crm.dagster_home))
    instance = instance_for(crm)
    yield crm, instance
    instance.dispose()


def drop(path: Path) -> Path:
    """Make a file just written look settled (the sensor leaves files modified in the last seconds alone)."""
    past = time.time() - 60
    os.utime(path, (past, past))
    return path


def drop_request(home: Home, name: str, **fields) -> Path:
    return drop(write_request(home, name, **{"received_at": RECEIVED, **fields}))


def tick(instance: dg.DagsterInstance, cursor: str | None):
    """One evaluation as the daemon makes it; the cursor after it (unchanged when the tick only skipped)."""
    with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                 resources={"retention": RetentionResource()}) as context:
        data = SENSOR.evaluate_tick(context)
    return data.run_requests or [], data.skip_message, data.cursor if data.cursor is not None else cursor


def launch(instance: dg.DagsterInstance, request: dg.RunRequest) -> dg.ExecuteInProcessResult | None:
    """Launch the requested run as the daemon would: never twice for one run_key of this sensor."""
    tags = {**request.tags, "dagster/run_key": request.run_key, "dagster/sensor_name": SENSOR_NAME}
    if instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": request.run_key,
                                                     "dagster/sensor_name": SENSOR_NAME})):
        return None
    job_name = request.job_name or "request_job"
    return defs.resolve_job_def(job_name).execute_in_process(run_config=request.run_config, tags=tags,
                                                             instance=instance)


def store_rows(home: Home, sql: str) -> list[tuple]:
    with Store(home).connect(read_only=True) as con:
        return con.execute(sql).fetchall()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_dropped_erasure_is_applied_once_and_a_changed_copy_is_a_duplicate(live):
    home, instance = live
    path = drop_request(home, "GDPR-1", subjects=[{"email": "bob@example.com"}])
    digest = sha256(path)

    [request], _, cursor = tick(instance, None)

    assert request.run_key == run_key({name_key(home, "GDPR-1.json"): digest})
    assert request.tags[FILES_TAG] == "GDPR-1.json" and request.tags[ATTEMPT_TAG] == "1"
    assert request.run_config == {"resources": {"retention": {"config": {"home": str(home.root)}}}}
    assert json.loads(cursor)["seen"] == {name_key(home, "GDPR-1.json"): digest}
    assert "GDPR-1" not in cursor
    result = launch(instance, request)
    assert result.success
    assert store_rows(home, "SELECT contact_id, state FROM contact_lifecycle ORDER BY 1") == [
        ("c-2", "deleted"), ("c-3", "deleted")]
    [(status, bulk_action_id, file_hash)] = store_rows(home, "SELECT status, bulk_action_id, file_hash FROM requests")
    assert status == "applied" and bulk_action_id and file_hash == digest
    assert not path.exists() and (home.requests_inbox / "processed" / "GDPR-1.json").exists()
    assert instance.get_run_by_id(result.run_id).tags["dagster/run_key"] == request.run_key

    requests, skipped, cursor = tick(instance, cursor)
    assert requests == [] and skipped == "no new or changed request files"

    shutil.copy2(home.requests_inbox / "processed" / "GDPR-1.json", path)
    requests, _, cursor = tick(instance, cursor)
    assert requests == []
    [again], _, _ = tick(instance, None)
    assert again.run_key == request.run_key and launch(instance, again) is None

    drop_request(home, "GDPR-1", subjects=[{"email": "bob@example.com"}, {"contact_id": "c-4"}])
    [changed], _, cursor = tick(instance, cursor)
    assert changed.run_key != request.run_key
    assert launch(instance, changed).success
    rows = store_rows(home, "SELECT status, reason FROM requests ORDER BY seen_at")
    assert [status for status, _ in rows] == ["applied", "duplicate"]
    assert rows[1][1].startswith("request_id GDPR-1 was already received in GDPR-1.json (applied)")
    assert store_rows(home, "SELECT state FROM contact_lifecycle WHERE contact_id = 'c-4'") == []
    assert sorted(p.name for p in (home.requests_inbox / "processed").iterdir()) == ["GDPR-1-1.json", "GDPR-1.json"]


def test_one_run_takes_every_new_file_and_leaves_no_raw_subject_behind(live):
    home, instance = live
    drop_request(home, "GDPR-2", subjects=[{"contact_id": "c-2"}, {"phone": "+1 555 123 0002"}])
    drop_request(home, "CCPA-3", regulation="ccpa", requested_by="u-user-1", subjects=[{"email": "cy@example.org"}])

    [request], _, cursor = tick(instance, None)

    assert request.tags[FILES_TAG] == "CCPA-3.json, GDPR-2.json"
    assert launch(instance, request).success
    assert store_rows(home, "SELECT request_id, status FROM requests ORDER BY request_id") == [
        ("CCPA-3", "rejected"), ("GDPR-2", "applied")]
    drop_request(home, "RESTORE-4", kind="restore", confirm=None, subjects=[{"contact_id": "c-2"}])
    [restore], _, _ = tick(instance, cursor)
    assert launch(instance, restore).success
    assert store_rows(home, "SELECT status FROM requests WHERE request_id = 'RESTORE-4'") == [("applied",)]
    assert store_rows(home, "SELECT state FROM contact_lifecycle WHERE contact_id = 'c-2'") == [("active",)]
    assert store_rows(home, "SELECT count(*) FROM pending_subjects") == [(0,)]
    records = json.dumps(store_rows(home, "SELECT * FROM requests"), default=str).lower()
    for raw in ("bob@example.com", "cy@example.org", "5551230002", "15551230002"):
        assert raw not in records


def test_bad_files_never_crash_the_sensor_and_end_quarantined_with_their_reason(live, monkeypatch):
    home, instance = live
    inbox = home.requests_inbox
    (inbox / "broken.json").write_text("{not json")
    drop(inbox / "broken.json")
    (inbox / "latin.csv").write_bytes("request_id,kind\nr-\xe9,erasure\n".encode("latin-1"))
    drop(inbox / "latin.csv")
    drop_request(home, "locked")
    drop_request(home, "gone")
    real_read_bytes = pathlib.Path.read_bytes

    def read_bytes(self):
        if self.name == "locked.json":
            raise PermissionError(13, "Permission denied")
        if self.name == "gone.json":
            raise FileNotFoundError(2, "No such file or directory")
        return real_read_bytes(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)

    [request], _, cursor = tick(instance, None)

    assert request.tags[FILES_TAG] == "broken.json, latin.csv, locked.json"
    assert json.loads(cursor)["seen"][name_key(home, "locked.json")].startswith("unreadable:")
    assert launch(instance, request).success
    rows = dict(store_rows(home, "SELECT file, reason FROM requests WHERE status = 'quarantined'"))
    assert set(rows) == {"broken.json", "latin.csv", "locked.json"}
    assert "not valid JSON" in rows["broken.json"] and "not UTF-8" in rows["latin.csv"]
    assert rows["locked.json"] == "locked.json: cannot be read (Permission denied)"
    assert (inbox / "quarantine" / "locked.json.reason.txt").read_text().strip() == rows["locked.json"]
    assert sorted(p.name for p in inbox.iterdir() if p.is_file()) == ["gone.json"]


def test_the_sensor_waits_for_files_being_written_and_for_a_run_holding_the_store(live, monkeypatch):
    home, instance = live
    write_request(home, "fresh")

    assert tick(instance, None)[:2] == ([], "waiting for 1 file(s) still being written: fresh.json")

    drop(home.requests_inbox / "fresh.json")
    busy = instance.create_run_for_job(defs.resolve_job_def("compliance_job"), status=dg.DagsterRunStatus.STARTED)
    requests, skipped, cursor = tick(instance, None)
    assert requests == [] and cursor is None
    assert skipped == (f"waiting for run {busy.run_id} (compliance_job, STARTED) to finish: the store takes one "
                       "writer at a time")
    monkeypatch.setattr(request_drop, "STALE_RUN_SECONDS", 0)
    assert len(tick(instance, None)[0]) == 1


def test_no_home_means_a_skip_not_a_crash(tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTION_HOME", str(tmp_path / "nowhere"))
    with dg.DagsterInstance.ephemeral() as instance:
        requests, skipped, _ = tick(instance, "not json at all")

    assert requests == [] and skipped.startswith("no retention home at")


def test_a_batch_whose_run_failed_is_tried_again_up_to_the_limit(live):
    home, instance = live
    drop_request(home, "GDPR-5")
    job = defs.resolve_job_def("request_job")
    cursor = None
    keys = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        [request], _, cursor = tick(instance, cursor)
        assert request.tags[ATTEMPT_TAG] == str(attempt)
        keys.append(request.run_key)
        instance.create_run_for_job(job, status=dg.DagsterRunStatus.FAILURE,
                                    tags={"dagster/run_key": request.run_key, "dagster/sensor_name": SENSOR_NAME})

    requests, skipped, cursor = tick(instance, cursor)

    assert keys[1] == keys[0] + ":attempt-2" and len(set(keys)) == MAX_ATTEMPTS
    assert requests == [] and f"failed on attempt {MAX_ATTEMPTS} of {MAX_ATTEMPTS}" in skipped
    assert "GDPR-5.json" in skipped and tick(instance, cursor)[:2] == ([], "no new or changed request files")


def test_the_interval_is_30_seconds_by_default_and_follows_the_setting(tmp_path, monkeypatch):
    home = Home(tmp_path / "home")
    monkeypatch.setenv("RETENTION_HOME", str(home.root))

    assert sensor_interval_seconds() == DEFAULT_INTERVAL_SECONDS == 30
    assert request_drop_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    home.init()
    assert sensor_interval_seconds() == 30
    home.settings_file.write_text("request_sensor_interval_seconds: 5\n")
    assert sensor_interval_seconds(home) == 5
    assert build_request_drop_sensor(request_job, 5).minimum_interval_seconds == 5
    home.settings_file.write_text("request_sensor_interval_seconds: 0\n")
    with pytest.warns(UserWarning, match="request_sensor_interval_seconds"):
        assert sensor_interval_seconds(home) == 30


@pytest.mark.e2e
def test_a_process_loading_the_definitions_reads_the_interval_from_the_homes_settings(tmp_path):
    home = Home(tmp_path / "home")
    home.init()
    home.settings_file.write_text("request_sensor_interval_seconds: 5\n")
    env = {**os.environ, "RETENTION_HOME": str(home.root), "DAGSTER_HOME": str(home.dagster_home)}

    loaded = subprocess.run(
        [sys.executable, "-c", "from pipelines.definitions import defs; s = defs.resolve_sensor_def("
         "'request_drop_sensor'); print(s.minimum_interval_seconds, s.default_status.value, s.job_name)"],
        env=env, capture_output=True, text=True, timeout=120)

    assert loaded.stdout.split() == ["5", "RUNNING", "request_job"], loaded.stderr


@pytest.mark.parametrize("regulation, received, due", [
    ("gdpr", "2026-01-31T10:00:00Z", "2026-02-28T10:00:00Z"),
    ("gdpr", "2028-01-31T10:00:00Z", "2028-02-29T10:00:00Z"),
    ("gdpr", "2026-03-31T23:30:00Z", "2026-04-30T23:30:00Z"),
    ("ccpa", "2026-01-31T10:00:00Z", "2026-03-17T10:00:00Z"),
    ("internal", "2026-01-31T10:00:00Z", None),
])
def test_the_due_date_recorded_by_the_intake(crm, con, regulation, received, due):
    write_request(crm, "r1", regulation=regulation, received_at=received)

    take_requests(con, crm, as_of=parse_as_of(received), settings=Settings())

    [record] = request_records(con, as_of=parse_as_of(received))
    assert (record["regulation"], record["received_at"], record["due_at"]) == (regulation, received, due)


def test_an_extension_in_the_first_file_is_recorded_with_the_longer_deadline(crm, con):
    write_request(crm, "r1", received_at="2026-01-31T10:00:00Z", extension={"reason": "complex: 14 systems"})
    write_request(crm, "r2", received_at="2026-01-31T10:00:00Z", extension={"reason": "ask dana@crm.example"})

    take_requests(con, crm, as_of=parse_as_of("2026-02-01T00:00:00Z"), settings=Settings())

    records = {r["request_id"]: r for r in request_records(con, as_of=parse_as_of("2026-02-01T00:00:00Z"))}
    assert (records["r1"]["due_at"], records["r1"]["extended_reason"], records["r1"]["extended_at"]) == (
        "2026-04-30T10:00:00Z", "complex: 14 systems", "2026-02-01T00:00:00Z")
    assert records["r2"]["extended_reason"] == WITHHELD_REASON


def test_extend_request_moves_the_due_date_once_before_it_passes(crm, con):
    write_request(crm, "g1", received_at="2026-01-31T10:00:00Z")
    write_request(crm, "c1", regulation="ccpa", received_at="2026-03-01T09:00:00Z")
    take_requests(con, crm, as_of=parse_as_of("2026-03-01T10:00:00Z"), settings=Settings(), move_files=False)
    before = parse_as_of("2026-02-28T10:00:00Z")

    gdpr = extend_request(con, "g1", "complex request", before, requested_by="dana.admin@crm.example")
    ccpa = extend_request(con, "c1", "many systems", parse_as_of("2026-04-15T09:00:00Z"))

    assert (gdpr["previous_due_at"], gdpr["due_at"]) == (before, parse_as_of("2026-04-30T10:00:00Z"))
    assert ccpa["due_at"] == parse_as_of("2026-05-30T09:00:00Z")
    records = {r["request_id"]: r for r in request_records(con, as_of=parse_as_of("2026-04-25T10:00:00Z"))}
    assert (records["g1"]["due_at"], records["g1"]["deadline"], records["g1"]["extended_reason"]) == (
        "2026-04-30T10:00:00Z", "due_soon", "complex request")
    report = deadline_report(con, as_of=parse_as_of("2026-05-01T00:00:00Z"))
    assert [r["request_id"] for r in report["overdue"]] == ["g1"] and report["due_soon"] == []
    with pytest.raises(InputError, match="already extended on 2026-02-28; the law allows one extension"):
        extend_request(con, "g1", "again", before)


@pytest.mark.parametrize("fields, request_id, reason, as_of, requested_by, message", [
    ({}, "nope", "why", "2026-01-01T00:00:00Z", None, "no request nope has been received"),
    ({}, "r1", " ", "2026-01-01T00:00:00Z", None, "needs a reason"),
    ({}, "r1", "ask ann.lee@example.com", "2026-01-01T00:00:00Z", None, "without personal data"),
    ({}, "r1", "why", "2026-01-20T09:00:01Z", None, "was due 2026-01-20 09:00 UTC"),
    ({"regulation": "internal"}, "r1", "why", "2026-01-01T00:00:00Z", None, "only gdpr and ccpa"),
    ({}, "r1", "why", "2026-01-01T00:00:00Z", "u-user-1", "u-user-1 is not an admin"),
    ({"requested_by": "u-user-1"}, "r1", "why", "2026-01-01T00:00:00Z", None, "already answered (rejected)"),
], ids=["unknown", "no-reason", "personal-data", "past-due", "internal", "not-admin", "answered"])
def test_an_extension_is_refused_with_its_reason_and_changes_nothing(crm, con, fields, request_id, reason, as_of,
                                                                     requested_by, message):
    write_request(crm, "r1", **fields)
    take_requests(con, crm, as_of=parse_as_of("2025-12-20T10:00:00Z"), settings=Settings(), move_files=False)
    if fields.get("requested_by"):
        con.execute("UPDATE requests SET status = 'rejected'")
    before = con.execute("SELECT * FROM requests").fetchall()

    with pytest.raises(InputError) as raised:
        extend_request(con, request_id, reason, parse_as_of(as_of), requested_by=requested_by)

    assert message in str(raised.value) and "ann.lee" not in str(raised.value)
    assert con.execute("SELECT * FROM requests").fetchall() == before


def test_a_second_file_with_an_extension_extends_the_first(crm, con):
    write_request(crm, "r1", received_at="2026-01-31T10:00:00Z")
    take_requests(con, crm, as_of=parse_as_of("2026-02-01T00:00:00Z"), settings=Settings(), move_files=False)
    path = write_request(crm, "r1", received_at="2026-01-31T10:00:00Z", extension={"reason": "complex"})
    path.rename(path.with_name("r1-extension.json"))

    take_requests(con, crm, as_of=parse_as_of("2026-02-10T00:00:00Z"), settings=Settings(), move_files=False)

    rows = con.execute("SELECT file, status, due_at, extended_reason, reason FROM requests ORDER BY seen_at").fetchall()
    assert [row[:4] for row in rows] == [
        ("r1.json", "pending", parse_as_of("2026-04-30T10:00:00Z"), "complex"),
        ("r1-extension.json", "duplicate", parse_as_of("2026-04-30T10:00:00Z"), None)]
    assert rows[1][4].endswith("; extension recorded: now due 2026-04-30 10:00 UTC")


@pytest.mark.parametrize("as_of, kept", [("2026-01-15T10:00:00Z", True), ("2026-01-15T10:00:01Z", False)])
def test_request_records_are_kept_24_months_then_pruned(crm, con, as_of, kept):
    write_request(crm, "old", received_at="2024-01-10T10:00:00Z", requested_by="u-user-1")
    write_request(crm, "open", received_at="2024-01-10T10:00:00Z")
    seen = parse_as_of("2024-01-15T10:00:00Z")
    take_requests(con, crm, as_of=seen, settings=Settings(), move_files=False)
    con.execute("UPDATE requests SET status = 'rejected' WHERE request_id = 'old'")
    con.execute("DELETE FROM pending_subjects WHERE request_id = 'old'")
    audit_new_records(con, AuditLog(crm.audit_file), at=seen)
    log = AuditLog(crm.audit_file)

    pruned = prune_request_records(con, parse_as_of(as_of), log=log)

    remaining = [row[0] for row in con.execute("SELECT request_id FROM requests ORDER BY 1").fetchall()]
    assert (pruned, remaining) == ((0, ["old", "open"]) if kept else (1, ["open"]))
    assert log.verify().ok
    assert ('"requests.pruned"' in crm.audit_file.read_text()) is not kept


def test_a_file_named_after_a_person_leaves_no_trace_of_its_name_in_the_cursor_or_the_run_tags(live):
    home, instance = live
    path = home.requests_inbox / "ann.lee@example.com.json"
    path.write_text(json.dumps({"request_id": "GDPR-9", "kind": "erasure", "regulation": "gdpr",
                                "requested_by": "u-admin-1", "received_at": RECEIVED, "confirm": "DELETE",
                                "subjects": [{"contact_id": "c-1"}]}))
    drop(path)

    [request], _, cursor = tick(instance, None)

    assert "ann.lee" not in cursor and "ann.lee" not in json.dumps(request.tags)
    assert request.tags[FILES_TAG] == f"request-{sha256(path)[:12]}.json"
    assert tick(instance, cursor)[:2] == ([], "no new or changed request files")


def test_a_cursor_of_version_1_with_raw_names_is_read_with_its_names_hashed(live):
    home, instance = live
    path = drop_request(home, "GDPR-8")
    old = json.dumps({"version": 1, "seen": {"GDPR-8.json": sha256(path)}, "last_run": None})

    requests, skipped, cursor = tick(instance, old)

    assert requests == [] and skipped == "no new or changed request files"
    assert read_cursor(old, lambda name: name_key(home, name))["seen"] == {name_key(home, "GDPR-8.json"): sha256(path)}
