"""Shared fixtures: a temporary home, its store, and the hand-made CRM of tests/support/crm.py ingested once."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from compliance.home import Home
from compliance.settings import Settings
from compliance.store.connection import Store
from support.crm import AS_OF, write_snapshot
from support.invariants import tenth_invariant


@pytest.fixture(scope="session", autouse=True)
def data_docs_only_where_asked() -> Iterator[None]:
    """Settings default to `data_docs: false` in the tests: a test that reads the Data Docs site says `data_docs: true`
    in its home's settings.yaml. (A `retention` process started by a test keeps the product's default, true.)"""
    field = Settings.model_fields["data_docs"]
    field.default = False
    Settings.model_rebuild(force=True)
    yield
    field.default = True
    Settings.model_rebuild(force=True)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    home = Home(tmp_path / "home")
    home.init()
    return home


@pytest.fixture
def con(home: Home):
    connection = Store(home).connect()
    yield connection
    connection.close()


@pytest.fixture(scope="session")
def ingested_template(tmp_path_factory) -> Home:
    """A home whose store holds the hand-made snapshot s1, ingested once per session (ingest takes a while)."""
    from compliance.clock import parse_as_of
    from compliance.snapshots.ingest import ingest_snapshots

    home = Home(tmp_path_factory.mktemp("template") / "home")
    home.init()
    write_snapshot(home.snapshots_inbox / "s1")
    with Store(home).connect() as connection:
        ingest_snapshots(connection, home, as_of=parse_as_of(AS_OF))
    return home


@pytest.fixture
def crm(home: Home, ingested_template: Home) -> Home:
    """The home with snapshot s1 in its inbox and already ingested; ask for it before `con`."""
    assert not home.store_file.exists(), "request the crm fixture before con"
    shutil.copytree(ingested_template.snapshots_inbox / "s1", home.snapshots_inbox / "s1")
    shutil.copy2(ingested_template.store_file, home.store_file)
    return home


@pytest.fixture
def tenth():
    """A made-up tenth invariant, registered for one test (see support.invariants)."""
    with tenth_invariant() as name:
        yield name
