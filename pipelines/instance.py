"""The home's Dagster instance: its dagster.yaml (SQLite by default, or PostgreSQL with a run queue per store)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from compliance.errors import InputError
from compliance.home import Home, write_private
from resources.tags import STORE_TAG

DAGSTER_YAML = """\
# A compliance tool makes no outbound calls (nor offers the UI's newsletter sign-up).
telemetry:
  enabled: false
nux:
  enabled: false
# DuckDB has one writer: the daily schedule and the request sensor take turns.
concurrency:
  runs:
    max_concurrent_runs: 1
"""


DAGSTER_STORAGE_ENV = "RETENTION_DAGSTER_STORAGE"
# One, as with SQLite; raise it for homes of several shards and for instances that several homes share (the per-store
# limit keeps each store to one writer).
DEFAULT_MAX_CONCURRENT_RUNS = 1
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg2")
# dagster-postgres's SQL (NOTIFY with a bound parameter) needs psycopg2, its declared driver; SQLAlchemy 2.1 would
# pick psycopg 3 for a bare postgresql:// URL, so the driver is named in the URL.
POSTGRES_DRIVER_SCHEME = "postgresql+psycopg2"
_POSTGRES_HEADER = """\
# Written by `retention init --dagster-storage`. Runs, event log and schedules are in PostgreSQL (dagster-postgres),
# so several machines' webservers, daemons and run workers can share this instance. The run queue runs up to
# max_concurrent_runs runs at once but one per store (tag retention/store: a home's store, or one shard's), because
# a DuckDB store has one writer. Run monitoring marks a run whose worker died as failed, which frees its place in the
# queue.
# A compliance tool makes no outbound calls (nor offers the UI's newsletter sign-up).
"""


def postgres_dagster_yaml(storage: str, *, max_concurrent_runs: int = DEFAULT_MAX_CONCURRENT_RUNS) -> str:
    """The text of a dagster.yaml whose runs, event log and schedules live in PostgreSQL, with a run queue.

    Args:
        storage: `postgresql://user[:password]@host:port/db` (written with the psycopg2 driver named), or `env:NAME`
            to have Dagster read the URL from the environment variable NAME when it starts (the password then stays
            out of the file; that URL must start `postgresql+psycopg2://`).
        max_concurrent_runs: how many queued runs the instance runs at once (over every home sharing it).

    Returns:
        The YAML text: dagster-postgres storage, a QueuedRunCoordinator limited per store by the STORE_TAG tag,
        run monitoring on, telemetry and the newsletter prompt off.

    Raises:
        InputError: the storage is neither a PostgreSQL URL naming a host and database nor `env:NAME`, or the
            concurrency is below 1.
    """
    if isinstance(max_concurrent_runs, bool) or not isinstance(max_concurrent_runs, int) or max_concurrent_runs < 1:
        raise InputError(f"--max-concurrent-runs: must be a whole number of at least 1, not {max_concurrent_runs!r}")
    config = {
        "telemetry": {"enabled": False},
        "nux": {"enabled": False},
        "storage": {"postgres": {"postgres_url": _postgres_url_config(storage)}},
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {
                "max_concurrent_runs": max_concurrent_runs,
                "tag_concurrency_limits": [
                    {"key": STORE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}],
            },
        },
        "run_monitoring": {"enabled": True},
    }
    return _POSTGRES_HEADER + yaml.safe_dump(config, sort_keys=False)


def _postgres_url_config(storage: str) -> str | dict[str, str]:
    """The postgres_url value: the URL itself, or Dagster's `{env: NAME}` indirection."""
    storage = storage.strip()
    if storage.startswith("env:"):
        name = storage[len("env:"):]
        if not _ENV_NAME.fullmatch(name):
            raise InputError(f"--dagster-storage: env:{name} is not an environment variable name")
        return {"env": name}
    parts = urlsplit(storage)
    # The message never repeats the value: it may hold a password.
    if parts.scheme not in _POSTGRES_SCHEMES or not parts.hostname or not parts.path.strip("/"):
        raise InputError("--dagster-storage: expected postgresql://user@host:port/database or env:NAME")
    try:
        _ = parts.port  # urlsplit reads the port lazily: reading it is the check
    except ValueError:
        raise InputError("--dagster-storage: the port is not a number from 0 to 65535") from None
    return POSTGRES_DRIVER_SCHEME + storage[len(parts.scheme):]

def write_instance_yaml(home: Home, dagster_yaml: str | None = None) -> list[Path]:
    """Write the home's dagster.yaml when missing (or when a PostgreSQL one replaces the untouched default).

    Args:
        home: the retention home.
        dagster_yaml: the instance's dagster.yaml (postgres_dagster_yaml), or None for the default SQLite
            instance. It replaces an existing dagster.yaml only when that is still the untouched default;
            any other existing file is kept, and a different one asked for is refused.

    Returns:
        The files created or replaced.

    Raises:
        InputError: dagster_yaml differs from an existing, edited dagster.yaml.
    """
    instance_file = home.dagster_home / "dagster.yaml"
    if dagster_yaml is not None and instance_file.exists():
        existing = instance_file.read_text()
        if existing not in (DAGSTER_YAML, dagster_yaml):
            raise InputError(f"{instance_file}: exists and differs from the default; remove it or edit it "
                             "yourself (init does not overwrite an instance's settings)")
    home.dagster_home.mkdir(parents=True, exist_ok=True)
    home.dagster_home.chmod(0o700)
    if dagster_yaml is None:
        if instance_file.exists():
            return []
        instance_file.write_text(DAGSTER_YAML)
        return [instance_file]
    if instance_file.exists() and instance_file.read_text() == dagster_yaml:
        return []
    # Private: the URL may carry the database password.
    write_private(instance_file, dagster_yaml)
    return [instance_file]
