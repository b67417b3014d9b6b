"""The proof through Dagster: the nine invariant checks, the blocking backup check, the report, and injected faults."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from assets.deletion import applied_deletions, contact_backups, deletion_plan, request_intake, rule_matches
from assets.ingest import crm_snapshots
from assets.proof import BACKUPS_VERIFY_BEFORE_DELETE, compliance_report, planned_backups_verify, retention_invariants
from compliance.clock import parse_as_of
from compliance.evidence.report import run_folder
from compliance.home import Home
from compliance.invariants import (
    BACKUPS_WITHIN_RETENTION,
    DELETED_CONTACTS_BACKED_UP,
    INVARIANTS,
    NO_ORPHANED_ASSOCIATED_DATA,
    PURGE_RAN,
    SUPPRESSED_STAY_ERASED,
)
from compliance.steps import DATA_DOCS_FOLDER
from compliance.store.connection import Store
from pipelines.definitions import defs
from resources import RetentionResource
from support.crm import AS_OF, base_tables, write_request, write_snapshot

ERASED = "c-4"
# The erasure names the person by email and phone, so the files under inbox/ are the only place they may stay.
ERASURE_SUBJECTS = [{"email": " CY@example.ORG"}, {"phone": "+442079460004"}]
DELETED_AT = parse_as_of(AS_OF)


def personal_values() -> list[str]:
    """Every email and phone of the hand-made snapshot, as written and as bare digits."""
    values = []
    for contact in base_tables()["contacts"]:
        if contact["email"].strip():
            values.append(contact["email"].strip().lower())
        digits = re.sub(r"\D", "", contact["phone"])
        if digits:
            values += [contact["phone"], digits]
    return values


def assert_no_personal_data(text: str, where: str) -> None:
    lowered = text.lower()
    found = [value for value in personal_values() if value.lower() in lowered]
    assert found == [], f"{where} holds personal data: {found}"


def erase_c4(home: Home, instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    """The hand-made snapshot and a GDPR erasure of c-4, through the whole compliance job."""
    write_snapshot(home.snapshots_inbox / "s1")
    write_request(home, "gdpr-c4", subjects=ERASURE_SUBJECTS)
    result = defs.resolve_job_def("compliance_job").execute_in_process(
        run_config={"resources": {"retention": {"config": {"home": str(home.root), "as_of": AS_OF}}}},
        instance=instance or dg.DagsterInstance.ephemeral())
    assert result.success
    return result


def evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()}


def plain(metadata: dict) -> dict:
    return {key: getattr(value, "value", getattr(value, "data", value)) for key, value in metadata.items()}


def check_invariants_again(home: Home, as_of: str = AS_OF, also=()) -> dg.ExecuteInProcessResult:
    """Only retention_invariants (and what is in `also`) materialized: none of its upstream steps run."""
    return dg.materialize([retention_invariants, *also],
                          resources={"retention": RetentionResource(home=str(home.root), as_of=as_of)},
                          instance=dg.DagsterInstance.ephemeral())


def failed_checks(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    checked = evaluations(result)
    assert set(checked) == set(INVARIANTS)
    return {name: plain(e.metadata) for name, e in checked.items() if not e.passed}


def store_rows(home: Home, query: str) -> list[tuple]:
    with Store(home).connect(read_only=True) as con:
        return con.execute(query).fetchall()


@pytest.fixture(scope="module")
def erased(tmp_path_factory) -> tuple[Home, dg.ExecuteInProcessResult, dg.DagsterInstance]:
    """One good compliance run that erased c-4, shared by the tests that only read what it left."""
    home = Home(tmp_path_factory.mktemp("proof") / "home")
    home.init()
    # The tests below read the Data Docs site (tests/conftest.py turns it off for every home that does not ask).
    home.settings_file.write_text("data_docs: true\n")
    instance = dg.DagsterInstance.ephemeral()
    return home, erase_c4(home, instance), instance


def test_a_run_with_data_docs_false_writes_no_data_docs_site_and_its_report_names_none(tmp_path):
    home = Home(tmp_path / "home")
    home.init()
    home.settings_file.write_text("data_docs: false\n")

    result = erase_c4(home)

    assert all(evaluation.passed for evaluation in evaluations(result).values())
    assert not (home.reports_dir / DATA_DOCS_FOLDER).exists()
    report = run_folder(home, run_id=result.run_id, as_of=DELETED_AT) / "report.md"
    assert "Invariants: 9 of 9 passed." in report.read_text() and "Data Docs" not in report.read_text()


def test_a_good_run_passes_the_nine_invariants_and_the_blocking_backup_check(erased):
    home, result, _ = erased
    checked = evaluations(result)

    assert set(checked) == {*INVARIANTS, BACKUPS_VERIFY_BEFORE_DELETE}
    assert {name: e.passed for name, e in checked.items()} == {name: True for name in checked}
    assert checked[BACKUPS_VERIFY_BEFORE_DELETE].asset_key == dg.AssetKey("contact_backups")
    assert plain(checked[BACKUPS_VERIFY_BEFORE_DELETE].metadata) == {
        "backups_checked": 1, "failures": 0, "failed_bulk_actions": [], "first_problem": ""}
    for name in INVARIANTS:
        assert checked[name].asset_key == dg.AssetKey("retention_invariants")
        metadata = plain(checked[name].metadata)
        assert metadata["violations"] == 0 and metadata["sample_ids"] == []
        assert metadata["message"] and metadata["message"] == checked[name].description
    for evaluation in checked.values():
        shown = repr(plain(evaluation.metadata)) + (evaluation.description or "")
        assert_no_personal_data(shown, evaluation.check_name)
    assert store_rows(home, "SELECT contact_id, state FROM contact_lifecycle") == [(ERASED, "deleted")]


def test_the_report_names_the_bulk_actions_and_holds_no_personal_data(erased):
    home, result, _ = erased
    [(bulk_action_id, source)] = store_rows(home, "SELECT bulk_action_id, source FROM bulk_actions")
    folder = run_folder(home, run_id=result.run_id, as_of=DELETED_AT)

    markdown, page, latest = folder / "report.md", folder / "report.html", home.reports_dir / "latest.md"

    assert markdown.is_file() and page.is_file() and latest.is_file()
    assert latest.read_text() == markdown.read_text()
    [materialization] = result.asset_materializations_for_node("compliance_report")
    assert plain(materialization.metadata)["markdown"] == str(markdown)
    assert plain(materialization.metadata)["html"] == str(page)
    for report in (markdown, page):
        text = report.read_text()
        assert bulk_action_id in text and source in text
        assert "Invariants: 9 of 9 passed." in text
        assert "FAILED" not in text
    assert (home.reports_dir / DATA_DOCS_FOLDER / "index.html").is_file()
    assert str(home.reports_dir / DATA_DOCS_FOLDER / "index.html") in markdown.read_text()
    for path in sorted(home.reports_dir.rglob("*")):
        if path.is_file() and path.suffix in (".md", ".html", ".json"):
            assert_no_personal_data(path.read_text(errors="replace"), str(path))


def test_dagster_keeps_no_email_or_phone_of_the_run(erased):
    home, result, instance = erased

    logged = "\n".join(repr(entry) for entry in instance.all_logs(result.run_id))

    assert "applied_deletions" in logged and "retention_invariants" in logged
    assert_no_personal_data(logged, "the run's event log")


@pytest.mark.parametrize("fault", ["notes.csv changed", "contacts.parquet removed"])
def test_a_backup_damaged_before_the_delete_fails_the_blocking_check_and_nothing_is_deleted(home, fault):
    write_snapshot(home.snapshots_inbox / "s1")
    write_request(home, "gdpr-c4", subjects=ERASURE_SUBJECTS)
    resources = {"retention": RetentionResource(home=str(home.root), as_of=AS_OF)}
    instance = dg.DagsterInstance.ephemeral()
    planned = dg.materialize([crm_snapshots, request_intake, rule_matches, deletion_plan, contact_backups,
                              planned_backups_verify], resources=resources, instance=instance)
    assert planned.success and evaluations(planned)[BACKUPS_VERIFY_BEFORE_DELETE].passed
    [folder] = home.backups_dir.iterdir()
    name, damage = fault.split(" ")
    if damage == "changed":
        (folder / name).write_text((folder / name).read_text().replace("unsubscribe", "unsubscribed"))
    else:
        (folder / name).unlink()

    # The delete step again, with the check that guards it (contact_backups itself is not re-run).
    deleting = dg.materialize(
        [contact_backups, planned_backups_verify, applied_deletions], resources=resources, instance=instance,
        selection=dg.AssetSelection.assets(applied_deletions) | dg.AssetSelection.checks(planned_backups_verify),
        raise_on_error=False)

    assert not deleting.success
    verify = evaluations(deleting)[BACKUPS_VERIFY_BEFORE_DELETE]
    assert not verify.passed and verify.severity == dg.AssetCheckSeverity.ERROR
    metadata = plain(verify.metadata)
    [bulk_action_id] = metadata["failed_bulk_actions"]
    assert metadata["backups_checked"] == 1 and metadata["failures"] == 1
    assert folder.name == bulk_action_id and name in metadata["first_problem"]
    assert ("has changed" if damage == "changed" else "is missing") in metadata["first_problem"]
    assert "applied_deletions" not in {step.step_key for step in deleting.all_events if step.is_step_start}
    assert deleting.asset_materializations_for_node("applied_deletions") == []
    assert store_rows(home, "SELECT count(*) FROM contact_lifecycle") == [(0,)]
    assert store_rows(home, "SELECT count(*) FROM bulk_actions") == [(0,)]
    assert store_rows(home, f"SELECT count(*) FROM notes WHERE contact_id = '{ERASED}'") == [(1,)]


def _note_of_the_erased(home: Home) -> None:
    with Store(home).connect() as con:
        con.execute("INSERT INTO notes (note_id, contact_id, body, created_at) "
                    f"VALUES ('n-3', '{ERASED}', 'Asked to unsubscribe', TIMESTAMPTZ '2025-01-03 00:00:00Z')")


def _backup_file(home: Home, name: str) -> Path:
    [folder] = home.backups_dir.iterdir()
    return folder / name


def _reactivate_the_erased(home: Home) -> None:
    with Store(home).connect() as con:
        con.execute(f"UPDATE contact_lifecycle SET state = 'active' WHERE contact_id = '{ERASED}'")


FAULTS = {
    # A cascade that missed a row: the note points at a deleted contact; the row, not the person, is named.
    "a note of the erased contact": (_note_of_the_erased, NO_ORPHANED_ASSOCIATED_DATA, ["notes:n-3"],
                                     "1 associated row of deleted or purged contacts is still in the store"),
    "a corrupted backup file": (lambda home: _backup_file(home, "contacts.parquet").write_bytes(
        _backup_file(home, "contacts.parquet").read_bytes() + b"\0"), DELETED_CONTACTS_BACKED_UP, [ERASED],
                                "contacts.parquet has changed"),
    "a removed backup file": (lambda home: _backup_file(home, "notes.csv").unlink(), DELETED_CONTACTS_BACKED_UP,
                              [ERASED], "notes.csv is missing"),
    # Active again without a restore: the lifecycle no longer counts c-4 as deleted, so the backup, admin and
    # cascade invariants have nothing to say about it; only the suppression list still knows the person.
    "an erased person active again": (_reactivate_the_erased, SUPPRESSED_STAY_ERASED, [ERASED],
                                      "1 contact matching an erased person's keyed hash is not deleted"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_fault_in_the_store_fails_its_own_check_and_no_other(home, fault):
    inject, invariant, samples, message = FAULTS[fault]
    erase_c4(home)
    inject(home)

    result = check_invariants_again(home, also=[compliance_report])

    assert result.success, "a failing invariant is an ERROR check result, not a failed run"
    failed = failed_checks(result)
    assert set(failed) == {invariant}
    assert failed[invariant]["violations"] == 1
    assert failed[invariant]["sample_ids"] == samples
    assert message in failed[invariant]["message"]
    assert all(sample in failed[invariant]["message"] for sample in samples)
    assert_no_personal_data(repr(failed), "check metadata")
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == invariant]
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR and evaluation.description == failed[invariant]["message"]
    report = (home.reports_dir / "latest.md").read_text()
    assert f"| {invariant} | FAILED | 1 |" in report and "Invariants: 8 of 9 passed." in report


@pytest.fixture(scope="module")
def not_purged(tmp_path_factory) -> Home:
    """A home after a run that erased c-4, for checks at later dates; checking the invariants changes no data."""
    home = Home(tmp_path_factory.mktemp("not-purged") / "home")
    home.init()
    erase_c4(home)
    return home


@pytest.mark.parametrize("days, backup_retention_days, expected", [
    (60, 60, set()),
    # Past the restore window the backup is past the (default, equal) backup retention too: the purge that did
    # not run would have removed both, so both invariants fail.
    (61, 60, {PURGE_RAN, BACKUPS_WITHIN_RETENTION}),
    # With a longer backup retention only the purge is missed.
    (61, 90, {PURGE_RAN}),
])
def test_a_deleted_contact_past_the_window_without_a_purge_fails_purge_ran(not_purged, days, backup_retention_days,
                                                                           expected):
    home = not_purged
    home.settings_file.write_text(f"restore_window_days: 60\nbackup_retention_days: {backup_retention_days}\n")
    as_of = (DELETED_AT + timedelta(days=days)).isoformat()

    failed = failed_checks(check_invariants_again(home, as_of=as_of))

    assert set(failed) == expected
    if PURGE_RAN in expected:
        assert failed[PURGE_RAN]["sample_ids"] == [ERASED]
        assert failed[PURGE_RAN]["message"] == (
            f"1 deleted contact past the 60-day restore window is still in the store ({ERASED})")
    if BACKUPS_WITHIN_RETENTION in expected:
        [(bulk_action_id,)] = store_rows(home, "SELECT bulk_action_id FROM backups")
        assert failed[BACKUPS_WITHIN_RETENTION]["sample_ids"] == [bulk_action_id]
        assert "61.0 days old" in failed[BACKUPS_WITHIN_RETENTION]["message"]
    assert store_rows(home, "SELECT contact_id, state FROM contact_lifecycle") == [(ERASED, "deleted")]
