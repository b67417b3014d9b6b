"""The home folder: where the settings, inbox, store, backups, reports and Dagster instance live."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from compliance.errors import InputError

DEFAULT_HOME = "retention_home"


class OutsideHome(ValueError):
    """A recorded path leads outside its home: it is never read, written or removed."""

DEFAULT_SETTINGS_YAML = """\
# Contact retention settings. Every key is optional; the values below are the defaults.

# Days a deleted contact can still be restored (inclusive); the first run after that purges it.
restore_window_days: 60

# Days a backup is kept; it is removed (with the purge) once older than this. Default: the restore window.
# backup_retention_days: 60

# What happens to a deleted contact's associated data, per type: delete | retain
cascade:
  conversations: delete
  notes: delete
  tasks: delete
  activities: delete

# A contact in an active campaign or workflow: block (refuse, naming it) | remove (unenroll, then delete).
# Legal erasures (gdpr, ccpa) always remove.
active_enrollment: block

# Backup file formats written before any delete: csv, parquet (one or both).
backup_formats: [csv, parquet]

# Answer deadlines: GDPR Art. 12(3) one month (+2 on extension); CCPA regs 7021 45 days (+45).
# internal requests have no deadline unless internal_days is set.
deadlines:
  gdpr_months: 1
  gdpr_extension_months: 2
  ccpa_days: 45
  ccpa_extension_days: 45
  internal_days: null

# RAM the whole process may use (a number and a unit: 1GB, 1.5GB, 768MiB). DuckDB gets the budget minus 384MiB for
# Python, Dagster and Great Expectations, at least 640MiB, and spills the rest to <home>/store/tmp.
memory_budget: 2.5GB
# Or DuckDB's own limit, set as is (the process then holds 0.3-0.5GB more); when set, memory_budget is not used.
# memory_limit: 2GB

# DuckDB's threads in each run's process (unset: every core). Shards run side by side on one machine share its
# cores: their runs' threads together need not exceed them.
# threads: 2

# Seconds between two looks of the request-drop sensor at inbox/requests (at least 1).
# Read when the Dagster UI and daemon start (`retention ui`): restart them after a change.
request_sensor_interval_seconds: 30

# Seconds a command waits, with a countdown, while another run holds the store; then it exits 1 naming that run.
store_wait_seconds: 300

# Location shards: N DuckDB stores, a location's contacts all in one (a stable hash of location_id), written in
# parallel by one Dagster run each. Set by `retention init --shards N`; fixed once the home holds data.
shards: 1

# OS users and the staff ids (user_id or email) each may act as with --as-user; unset: anyone may act as anyone.
# operators:
#   dana: [u-admin-1]
"""

DEFAULT_RULES_YAML = """\
# Tag rules: a published rule deletes the contacts matching its trigger on every run,
# like a workflow's Delete Contact action; a draft rule only shows in `retention plan`.
# The owner must be an active admin (a staff user_id or email).
# Triggers: tags_any: [..], inactive_days: N, dnd: true|false (all given must hold).
rules: []
# Example:
# rules:
#   - name: remove-unsubscribed
#     status: draft              # published | draft
#     owner: u-admin-1
#     trigger: {tags_any: [Unsubscribed]}
#     action: delete_contact
"""

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


# The run tags naming a run's home, its store and its shard. The queue runs one run per store at a time (a DuckDB
# store has one writer), so the shards of a home run side by side and a home of one shard runs one run at a time.
HOME_TAG = "retention/home"
STORE_TAG = "retention/store"
SHARD_TAG = "retention/shard"
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
# a DuckDB store has one writer. Run monitoring marks a run whose worker died as failed, which frees its place in the queue.
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
        parts.port
    except ValueError:
        raise InputError("--dagster-storage: the port is not a number from 0 to 65535") from None
    return POSTGRES_DRIVER_SCHEME + storage[len(parts.scheme):]


@dataclass(frozen=True)
class Home:
    """Paths under one retention home; with `shard` set, the paths of that shard's store, backups, reports and audit.

    A home of one shard (the default) keeps today's paths. A home of N shards keeps shard k's DuckDB store in
    store/shard-k/, its backups in backups/shard-k/, its reports in reports/shard-k/ and its audit chain in
    audit/shard-k.jsonl; settings, rules, the inbox, the key and the Dagster instance stay shared.
    """

    root: Path
    shard: int | None = None

    @classmethod
    def resolve(cls, home: str | os.PathLike | None = None) -> "Home":
        """The home named, else env RETENTION_HOME, else ./retention_home.

        Args:
            home: an explicit folder, or None.

        Returns:
            The Home with an absolute root.
        """
        chosen = home or os.environ.get("RETENTION_HOME") or DEFAULT_HOME
        return cls(Path(chosen).expanduser().resolve())

    def for_shard(self, shard: int) -> "Home":
        """The same home seen as shard `shard` (its store, backups, reports and audit chain)."""
        return Home(self.root, shard)

    @property
    def whole(self) -> "Home":
        """The home itself, whichever shard this is."""
        return Home(self.root)

    @property
    def shard_name(self) -> str | None:
        """`shard-<k>` (the Dagster partition key and folder name), or None for a home of one shard."""
        return None if self.shard is None else shard_name(self.shard)

    def _sharded(self, folder: Path) -> Path:
        return folder if self.shard is None else folder / shard_name(self.shard)

    @property
    def settings_file(self) -> Path:
        return self.root / "settings.yaml"

    @property
    def rules_file(self) -> Path:
        return self.root / "rules.yaml"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def snapshots_inbox(self) -> Path:
        return self.inbox / "snapshots"

    @property
    def requests_inbox(self) -> Path:
        return self.inbox / "requests"

    @property
    def store_dir(self) -> Path:
        return self._sharded(self.root / "store")

    @property
    def store_file(self) -> Path:
        return self.store_dir / "retention.duckdb"

    @property
    def backups_dir(self) -> Path:
        return self._sharded(self.root / "backups")

    @property
    def reports_dir(self) -> Path:
        return self._sharded(self.root / "reports")

    @property
    def audit_file(self) -> Path:
        name = "audit.jsonl" if self.shard is None else f"{shard_name(self.shard)}.jsonl"
        return self.root / "audit" / name

    @property
    def request_receipts_dir(self) -> Path:
        """Where each shard notes the request files it has settled; a file moves once every shard has."""
        return self.root / "store" / "request-receipts"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def secret_file(self) -> Path:
        return self.root / ".secret"

    def exists(self) -> bool:
        return self.settings_file.exists()

    def relative(self, path: str | os.PathLike) -> str:
        """How a path inside the home is recorded in the store: relative to the root, so a copied or moved home
        keeps pointing at its own files.

        Args:
            path: a path inside the home.

        Returns:
            The POSIX path relative to the root.

        Raises:
            OutsideHome: the path is not inside the home.
        """
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(self.root):
            raise OutsideHome(f"{path} is not inside the home {self.root}")
        return resolved.relative_to(self.root).as_posix()

    def inside(self, recorded: str | os.PathLike) -> Path:
        """The file a recorded path names, which must lie inside this home (symlinks resolved).

        Args:
            recorded: a path as the store records it: relative to the root, or absolute as stores before schema
                step `relative_home_paths` recorded it.

        Returns:
            The absolute path.

        Raises:
            OutsideHome: the path leads outside the home (another home's file, `..`, a symlink out): an operation
                never touches a file outside its own home.
        """
        path = Path(recorded)
        resolved = (path if path.is_absolute() else self.root / path).resolve()
        if resolved == self.root or not resolved.is_relative_to(self.root):
            raise OutsideHome(f"{recorded} is outside the home {self.root}; it is left alone")
        return resolved

    def history(self, *, with_dagster_runs: bool = True) -> list[str]:
        """What shows this home has been used: audit entries, backups, handled request files, reports, Dagster runs.

        A home with history and no store lost its store file; starting a new one would ingest old snapshots
        again and bring erased people back, so the store refuses to start over (see compliance.store).

        Args:
            with_dagster_runs: count the Dagster instance's run history (off inside a run, which is history itself).

        Returns:
            One phrase per kind of history found; empty for a new home.
        """
        found = []
        if self.audit_file.is_file() and self.audit_file.stat().st_size:
            found.append(f"audit entries ({self.audit_file})")
        if self.backups_dir.is_dir() and any(self.backups_dir.iterdir()):
            found.append(f"backups ({self.backups_dir})")
        handled = [self.requests_inbox / folder for folder in ("processed", "quarantine")]
        if any(folder.is_dir() and any(folder.iterdir()) for folder in handled):
            found.append(f"handled request files ({self.requests_inbox}/processed, quarantine)")
        if self.reports_dir.is_dir() and any(path.name != "data_docs" for path in self.reports_dir.iterdir()):
            found.append(f"run reports ({self.reports_dir})")
        runs = self.dagster_home / "history"
        if with_dagster_runs and runs.is_dir() and any(runs.iterdir()):
            found.append(f"a Dagster run history ({runs})")
        return found

    def init(self, dagster_yaml: str | None = None) -> list[Path]:
        """Create the home's folders and default files; never overwrite what is there.

        Args:
            dagster_yaml: the instance's dagster.yaml (postgres_dagster_yaml), or None for the default SQLite
                instance. It replaces an existing dagster.yaml only when that is still the untouched default;
                any other existing file is kept, and a different one asked for is refused.

        Returns:
            The files and folders created.

        Raises:
            InputError: dagster_yaml differs from an existing, edited dagster.yaml.
        """
        instance_file = self.dagster_home / "dagster.yaml"
        if dagster_yaml is not None and instance_file.exists():
            existing = instance_file.read_text()
            if existing not in (DAGSTER_YAML, dagster_yaml):
                raise InputError(f"{instance_file}: exists and differs from the default; remove it or edit it "
                                 "yourself (init does not overwrite an instance's settings)")
        created: list[Path] = []
        for folder in (self.root, self.snapshots_inbox, self.requests_inbox, self.store_dir,
                       self.backups_dir, self.reports_dir, self.audit_file.parent, self.dagster_home):
            if not folder.exists():
                folder.mkdir(parents=True)
                created.append(folder)
        for folder in (self.inbox, self.snapshots_inbox, self.requests_inbox, self.store_dir, self.backups_dir,
                       self.reports_dir, self.audit_file.parent, self.dagster_home):
            folder.chmod(0o700)
        for path, text in ((self.settings_file, DEFAULT_SETTINGS_YAML),
                           (self.rules_file, DEFAULT_RULES_YAML)):
            if not path.exists():
                path.write_text(text)
                created.append(path)
        if dagster_yaml is None:
            if not instance_file.exists():
                instance_file.write_text(DAGSTER_YAML)
                created.append(instance_file)
        elif not instance_file.exists() or instance_file.read_text() != dagster_yaml:
            # Private: the URL may carry the database password.
            write_private(instance_file, dagster_yaml)
            created.append(instance_file)
        if not self.secret_file.exists():
            write_private(self.secret_file, secrets.token_hex(32))
            created.append(self.secret_file)
        return created

    def secret(self) -> bytes:
        """The home's key for keyed hashes of erased people's identifiers."""
        return bytes.fromhex(self.secret_file.read_text().strip())


SHARD_PREFIX = "shard-"
# A shard's folder (and Dagster partition key): shard-<k>.
SHARD_FOLDER = re.compile(rf"^{SHARD_PREFIX}(\d+)$")


def store_tags(home: Home) -> dict[str, str]:
    """The tags that put a run in its store's lane of the run queue: its home, its store and (if any) its shard."""
    tags = {HOME_TAG: str(home.root), STORE_TAG: str(home.store_file)}
    if home.shard is not None:
        tags[SHARD_TAG] = shard_name(home.shard)
    return tags


def shard_name(shard: int) -> str:
    """The name of shard k: its folders and its Dagster partition key."""
    return f"{SHARD_PREFIX}{shard}"


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only, created with that mode (no window where others can read it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(0o600)
