"""The one resource: the retention home, its settings, its DuckDB store and the run's clock.

It lives below the assets, the sensor and the jobs, which all import it; it imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import dagster as dg
import duckdb
from pydantic import PrivateAttr

from compliance.clock import parse_as_of
from compliance.home import Home
from compliance.purge import compact_store
from compliance.settings import Rules, Settings, load_rules, load_settings
from compliance.shards.placement import shard_home
from compliance.steps import RunContext
from compliance.store.connection import Store

# The run tag Dagster gives a run of one partition (here: one shard).
PARTITION_TAG = "dagster/partition"


class RetentionResource(dg.ConfigurableResource):
    """Owns the home folder and the DuckDB connection; `as_of` fixes the run's clock (default: when it starts)."""

    home: str = ""
    as_of: str = ""
    echo_progress: bool = False
    # `retention run --accept-shrink`: this run's ingest may load a snapshot with far fewer contacts.
    accept_shrink: bool = False

    _clock: datetime = PrivateAttr()
    _con: duckdb.DuckDBPyConnection | None = PrivateAttr(default=None)
    _home: Home | None = PrivateAttr(default=None)
    _settings: Settings | None = PrivateAttr(default=None)
    _rules: Rules | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._clock = parse_as_of(self.as_of) if self.as_of else datetime.now(UTC)
        # A run of a home of N shards is a run of one shard: its partition key names the store it writes.
        run = context.run
        self._home = shard_home(self.paths, run.tags.get(PARTITION_TAG) if run is not None else None)
        # Read once: every step of the run decides with the same settings and rules, even if the files change.
        self._settings = load_settings(self.paths.settings_file)
        self._rules = load_rules(self.paths.rules_file)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    @property
    def paths(self) -> Home:
        """The whole home (every shard): what the sensor and the schedule look at."""
        return Home.resolve(self.home or None)

    @property
    def run_home(self) -> Home:
        """The home this run works on: its shard's store, backups, reports and audit chain (or the whole home)."""
        return self._home if self._home is not None else self.paths

    @property
    def clock(self) -> datetime:
        return self._clock

    def settings(self) -> Settings:
        """The run's settings, read once when the run started (the sensor and schedule read the file each tick)."""
        return self._settings if self._settings is not None else load_settings(self.paths.settings_file)

    def connect(self) -> duckdb.DuckDBPyConnection:
        """The run's store connection, opened once and shared by its assets (the job runs in one process)."""
        if self._con is None:
            self._con = Store(self.run_home, memory_limit=self.settings().memory_limit).connect()
        return self._con

    def compact(self) -> int:
        """Close the run's connection and rewrite the store file without free pages (after a purge)."""
        if self._con is not None:
            self._con.close()
            self._con = None
        return compact_store(Store(self.run_home, memory_limit=self.settings().memory_limit))

    def progress(self, context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> Callable[[str], None]:
        """A progress callback: to the run's log, and to the terminal (counts and rates) when the command line asked."""
        from compliance.progress import StepProgress

        return StepProgress(context.log.info, echo=self.echo_progress)

    def run_context(self, context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> RunContext:
        """What the domain's steps need from this run: the store, the home, settings, clock, run id, progress."""
        return RunContext(connect=self.connect, home=self.run_home, settings=self.settings(), as_of=self.clock,
                          run_id=context.op_execution_context.run_id, progress=self.progress(context),
                          compact=self.compact, accept_shrink=self.accept_shrink, loaded_rules=self._rules)
