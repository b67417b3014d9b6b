"""The home folder: where the settings, inbox, store, backups, reports and Dagster instance live."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

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

# Each run rewrites Great Expectations' Data Docs site, reports/data_docs/index.html (static HTML of the validation).
# false skips it: the run's invariants.json and report still hold every verdict.
# data_docs: true
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
    def resolve(cls, home: str | os.PathLike | None = None) -> Home:
        """The home named, else env RETENTION_HOME, else ./retention_home.

        Args:
            home: an explicit folder, or None.

        Returns:
            The Home with an absolute root.
        """
        chosen = home or os.environ.get("RETENTION_HOME") or DEFAULT_HOME
        return cls(Path(chosen).expanduser().resolve())

    def for_shard(self, shard: int) -> Home:
        """The same home seen as shard `shard` (its store, backups, reports and audit chain)."""
        return Home(self.root, shard)

    @property
    def whole(self) -> Home:
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
        again and bring erased people back, so the store refuses to start over (see compliance.store.connection).

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

    def init(self) -> list[Path]:
        """Create the home's folders and default files; never overwrite what is there.

        The Dagster instance's dagster.yaml is written by the Dagster layer (pipelines/instance.py), not here.

        Returns:
            The files and folders created.
        """
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



def shard_name(shard: int) -> str:
    """The name of shard k: its folders and its Dagster partition key."""
    return f"{SHARD_PREFIX}{shard}"


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only, created with that mode (no window where others can read it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(0o600)
