"""The invariant registry: a tenth invariant is one registered class, names are unique, SQL carries no values."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from compliance.invariants import DESCRIPTIONS, INVARIANTS, REGISTRY, check_invariants, register
from compliance.invariants.registry import select
from compliance.settings import Settings
from support.invariants import NoContactInDoNotDisturb

ROOT = Path(__file__).resolve().parents[2]
CHECK_AT = datetime(2026, 1, 2, 12, tzinfo=UTC)


def check(con, home, **kwargs):
    return check_invariants(con, secret=home.secret(), settings=Settings(), as_of=CHECK_AT, **kwargs)


def test_the_nine_are_registered_in_report_order_each_with_its_own_description_and_messages():
    assert tuple(REGISTRY) == INVARIANTS and len(INVARIANTS) == 9
    assert list(DESCRIPTIONS) == list(INVARIANTS)
    for name, cls in REGISTRY.items():
        assert cls.name == name and cls.description == DESCRIPTIONS[name]
        assert cls.pass_message and cls.fail_message and "{n}" in cls.fail_message, name
    assert len({cls.pass_message for cls in REGISTRY.values()}) == 9


def test_a_tenth_registered_invariant_is_measured_judged_and_reported_after_the_nine(crm, con, tenth):
    summary = check(con, crm)
    assert [result.name for result in summary.results] == [*INVARIANTS, tenth]
    assert summary.failed == (tenth,)
    result = summary.by_name(tenth)
    assert (result.violations, result.sample_ids) == (1, ("c-3",))
    assert result.description == "No contact has asked not to be disturbed."
    assert result.message == "1 contact in do-not-disturb: 1 in contacts (c-3)"

    con.execute("UPDATE contacts SET dnd = false")
    summary = check(con, crm, only=[tenth])
    assert summary.passed and summary.by_name(tenth).message == "no contact is in do-not-disturb"


def test_an_unregistered_invariant_is_no_longer_checked(crm, con, tenth):
    REGISTRY.pop(tenth)
    assert [result.name for result in check(con, crm).results] == list(INVARIANTS)
    with pytest.raises(ValueError, match=f"unknown invariant '{tenth}'"):
        check(con, crm, only=[tenth])


def test_a_name_is_registered_once(tenth):
    class Again(NoContactInDoNotDisturb):
        pass

    with pytest.raises(ValueError, match=f"invariant '{tenth}' is already registered"):
        register(tenth)(Again)
    assert REGISTRY[tenth] is NoContactInDoNotDisturb


def test_an_unknown_name_is_refused_with_every_known_name():
    with pytest.raises(ValueError) as refused:
        select(["purge_ran", "purged"])
    assert str(refused.value) == f"unknown invariant 'purged' (known: {', '.join(INVARIANTS)})"
    assert [invariant.name for invariant in select("purge_ran")] == ["purge_ran"]
    assert [invariant.name for invariant in select(["backups_within_retention", "purge_ran"])] == [
        "purge_ran", "backups_within_retention"]


class Recording:
    """A store connection that keeps the text of every statement it runs."""

    def __init__(self, con):
        self.con = con
        self.statements: list[str] = []

    def execute(self, sql, parameters=None):
        self.statements.append(sql)
        return self.con.execute(sql, parameters) if parameters is not None else self.con.execute(sql)


def test_the_clock_window_and_key_reach_duckdb_as_parameters_never_in_query_text(crm, con):
    con.execute("INSERT INTO purged_contacts VALUES ('00', ?, ?, 'ba-0')", [CHECK_AT, CHECK_AT])
    con.execute("INSERT INTO suppression VALUES ('email', '00', 'ba-0', ?)", [CHECK_AT])
    recording = Recording(con)
    settings = Settings(restore_window_days=47, backup_retention_days=53)
    summary = check_invariants(recording, secret=crm.secret(), settings=settings, as_of=CHECK_AT)
    assert summary.passed
    text = "\n".join(recording.statements)
    assert "retention_keyed_hash" in text and "contact_lifecycle" in text
    as_of_us = (CHECK_AT - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    for value in ("2026", str(as_of_us), str(47 * 86_400_000_000), "47", "53", crm.secret().hex()[:16],
                  "TIMESTAMPTZ '"):
        assert value not in text, value


def test_only_the_suite_module_imports_great_expectations():
    importers = set()
    # benchmarks/ is left out: it imports GX once on purpose, to time the import outside the measured steps.
    for folder in ("compliance", "assets", "pipelines", "sensors"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(name.split(".")[0] == "great_expectations" for name in names):
                    importers.add(path.relative_to(ROOT).as_posix())
    assert importers == {"compliance/invariants/suite.py"}
