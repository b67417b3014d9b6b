"""The home folder: where the settings, inbox, store, backups, reports and Dagster instance live."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = "retention_home"

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

# DuckDB memory limit; above it DuckDB spills to <home>/store/tmp.
memory_limit: 2GB

# Seconds between two looks of the request-drop sensor at inbox/requests (at least 1).
# Read when the Dagster UI and daemon start (`retention ui`): restart them after a change.
request_sensor_interval_seconds: 30
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


@dataclass(frozen=True)
class Home:
    """Paths under one retention home."""

    root: Path

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
        return self.root / "store"

    @property
    def store_file(self) -> Path:
        return self.store_dir / "retention.duckdb"

    @property
    def backups_dir(self) -> Path:
        return self.root / "backups"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def audit_file(self) -> Path:
        return self.root / "audit" / "audit.jsonl"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def secret_file(self) -> Path:
        return self.root / ".secret"

    def exists(self) -> bool:
        return self.settings_file.exists()

    def init(self) -> list[Path]:
        """Create the home's folders and default files; never overwrite what is there.

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
                           (self.rules_file, DEFAULT_RULES_YAML),
                           (self.dagster_home / "dagster.yaml", DAGSTER_YAML)):
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


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only, created with that mode (no window where others can read it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(0o600)
