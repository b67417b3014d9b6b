"""The kill campaign's short profile: three SIGKILLs of `retention run`, each home whole and converged after."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "kill_campaign.py"


def load_campaign():
    spec = importlib.util.spec_from_file_location("kill_campaign", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up by name.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_three_runs_killed_at_random_moments_each_recover_to_the_uninterrupted_state(tmp_path):
    kill_campaign = load_campaign()

    figures = kill_campaign.campaign(3, seed=5, contacts=200, workdir=tmp_path)

    assert figures["failures"] == []
    assert figures["trials"] == 3 and figures["kills"] >= 2


def test_the_checks_find_a_home_that_differs_from_the_reference(tmp_path):
    kill_campaign = load_campaign()
    from compliance.home import Home
    from compliance.store.connection import Store

    home = Home(tmp_path / "home")
    home.init()
    Store(home).connect().close()
    reference = kill_campaign.store_state(home)
    with Store(home).connect() as con:
        con.execute("INSERT INTO contact_lifecycle (contact_id, state, deleted_by) VALUES ('c-1', 'deleted', 'ba-x')")

    failures = kill_campaign.check_home(home, reference)

    assert "deleted contact c-1 has no backup recorded" in failures
    assert any(failure.startswith("table contact_lifecycle differs") for failure in failures)
    assert any("no `deleted` item" in failure for failure in failures)
