"""The run's clock (--as-of), the home's resolution and init, private files, and keyed hashes in Python and SQL."""

from __future__ import annotations

import stat
from datetime import UTC, datetime

import duckdb
import pytest

from compliance.clock import parse_as_of
from compliance.errors import InputError
from compliance.home import DEFAULT_HOME, Home, write_private
from compliance.store.keys import KeyedHasher

UTC = UTC


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-01-01T12:00:00Z", datetime(2026, 1, 1, 12, tzinfo=UTC)),
    ("2026-01-01T14:30:00+02:00", datetime(2026, 1, 1, 12, 30, tzinfo=UTC)),
    ("2025-12-31T20:00:00-05:00", datetime(2026, 1, 1, 1, tzinfo=UTC)),
    ("2026-01-01T12:00:00", datetime(2026, 1, 1, 12, tzinfo=UTC)),
    ("2026-01-01", datetime(2026, 1, 1, tzinfo=UTC)),
    (" 2026-01-01T12:00:00z ", datetime(2026, 1, 1, 12, tzinfo=UTC)),
])
def test_parse_as_of_gives_an_aware_utc_time(text, expected):
    value = parse_as_of(text)

    assert value == expected
    assert value.utcoffset().total_seconds() == 0 and value.tzinfo is not None


@pytest.mark.parametrize("text", ["garbage", "2026-13-01", "01/02/2026", ""])
def test_parse_as_of_refuses_what_is_not_iso_8601(text):
    with pytest.raises(InputError, match="--as-of"):
        parse_as_of(text)


def test_home_resolve_prefers_the_explicit_folder_then_the_environment_then_the_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RETENTION_HOME", str(tmp_path / "from-env"))

    assert Home.resolve(tmp_path / "explicit").root == tmp_path / "explicit"
    assert Home.resolve("relative").root == tmp_path / "relative"
    assert Home.resolve().root == tmp_path / "from-env"
    monkeypatch.delenv("RETENTION_HOME")
    assert Home.resolve().root == tmp_path / DEFAULT_HOME
    assert Home.resolve().root.is_absolute()


def test_init_creates_the_layout(tmp_path):
    home = Home(tmp_path / "home")

    created = home.init()

    for path in (home.settings_file, home.rules_file, home.secret_file):
        assert path.is_file() and path in created
    for folder in (home.snapshots_inbox, home.requests_inbox, home.store_dir, home.backups_dir, home.dagster_home):
        assert folder.is_dir()
    for folder in (home.store_dir, home.backups_dir, home.audit_file.parent, home.dagster_home):
        assert mode(folder) == 0o700, folder
    assert not (home.dagster_home / "dagster.yaml").exists(), "the Dagster instance file is the Dagster layer's"
    assert home.exists()


def test_init_is_idempotent_and_never_overwrites(home):
    home.settings_file.write_text("restore_window_days: 30\n")
    home.rules_file.write_text("rules: []  # mine\n")
    (home.dagster_home / "dagster.yaml").write_text("telemetry: {enabled: false}\n# mine\n")
    secret = home.secret()

    assert home.init() == []

    assert home.settings_file.read_text() == "restore_window_days: 30\n"
    assert home.rules_file.read_text() == "rules: []  # mine\n"
    assert (home.dagster_home / "dagster.yaml").read_text().endswith("# mine\n")
    assert home.secret() == secret


def test_the_secret_is_private_and_random(tmp_path, home):
    other = Home(tmp_path / "other")
    other.init()

    assert mode(home.secret_file) == 0o600
    assert len(home.secret()) == 32
    assert home.secret() != other.secret()


def test_write_private_makes_owner_only_files(tmp_path):
    fresh, existing = tmp_path / "fresh.txt", tmp_path / "existing.txt"
    existing.write_text("old, and readable by all")
    existing.chmod(0o644)

    write_private(fresh, "new")
    write_private(existing, "new")

    assert (mode(fresh), fresh.read_text()) == (0o600, "new")
    assert (mode(existing), existing.read_text()) == (0o600, "new")


@pytest.mark.parametrize("secret", [b"k", bytes(range(32)), b"s" * 100])
def test_keyed_hash_in_sql_equals_python(secret):
    hasher = KeyedHasher(secret)
    values = [("email", "bob@example.com"), ("email", "zoë@exämple.com"), ("phone", "15551230002"),
              ("contact_id", "c-1"), ("contact_id", "o'neil"), ("email", "")]

    with duckdb.connect() as con:
        hasher.register(con)
        for kind, value in values:
            in_sql = con.execute(f"SELECT {hasher.sql(kind, 'v')} FROM (SELECT ? AS v)", [value]).fetchone()[0]
            assert in_sql == hasher.hash(kind, value), (kind, value)
        assert con.execute(f"SELECT {hasher.sql('email', 'v')} FROM (SELECT CAST(NULL AS VARCHAR) AS v)"
                           ).fetchone()[0] is None


def test_keyed_hashes_depend_on_the_key_and_the_kind():
    one, two = KeyedHasher(b"one"), KeyedHasher(b"two")

    assert one.hash("email", "bob@example.com") != two.hash("email", "bob@example.com")
    assert one.hash("email", "c-1") != one.hash("contact_id", "c-1")
    assert len(one.hash("email", "bob@example.com")) == 64
