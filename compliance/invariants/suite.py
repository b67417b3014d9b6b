"""One Great Expectations suite over the registered invariants: the only module that imports GX.

DuckDB reduces each invariant to a few rows (a violation count with sample ids, or one row per bulk action or
backup, which are few); one GX suite over that small frame decides pass or fail, and the result is a summary that
a Dagster asset check turns into metadata. GX is imported on the first check, never at module import.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from compliance.errors import first_line
from compliance.invariants.registry import Invariant, Row, Run, select
from compliance.invariants.results import InvariantSummary, Verdict, summarize
from compliance.settings import Settings
from compliance.store.keys import KeyedHasher

SUITE_NAME = "retention_invariants"
DOCS_SITE = "retention_invariants"
_FRAME_COLUMNS = ("invariant", "check", "subject", "observed", "expected", "age_days")
_FRAME_TYPES = {"invariant": "str", "check": "str", "subject": "str", "observed": "int64", "expected": "int64",
                "age_days": "float64"}


def check_invariants(con: duckdb.DuckDBPyConnection, *, secret: bytes, settings: Settings, as_of: datetime,
                     docs_dir: Path | None = None, only: Sequence[str] | None = None) -> InvariantSummary:
    """Measure the invariants in the store and have one Great Expectations validation judge them.

    Args:
        con: a store connection (read-only is enough).
        secret: the home's key for keyed hashes (suppression, purged contacts).
        settings: restore window, backup retention and cascade policy.
        as_of: the run's clock; a naive datetime is taken as UTC.
        docs_dir: when given, GX writes its Data Docs (static HTML) there.
        only: check these invariants only (names from INVARIANTS); default every registered one.

    Returns:
        One result per invariant checked, in registry order, and the Data Docs index when written.

    Raises:
        ValueError: `only` names an unknown invariant.
    """
    invariants = select(only)
    run = Run(con, KeyedHasher(secret).register(con), settings, as_of)
    rows = [row for invariant in invariants for row in invariant.measure(run)]
    verdicts, index = _judge(rows, invariants, settings, docs_dir)
    return InvariantSummary(tuple(summarize(invariant, verdicts[invariant.name], rows, run.words())
                                  for invariant in invariants), index)


def _judge(rows: list[Row], invariants: list[Invariant], settings: Settings,
           docs_dir: Path | None) -> tuple[dict[str, Verdict], Path | None]:
    """Run the one suite over the frame in one validation; which frame rows failed, per invariant."""
    gx = _import_gx()
    frame = pd.DataFrame([{column: getattr(row, column) for column in _FRAME_COLUMNS} for row in rows],
                         columns=list(_FRAME_COLUMNS)).astype(_FRAME_TYPES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outcome = _checkpoint(gx, invariants, settings, docs_dir).run(batch_parameters={"dataframe": frame})
    verdicts = {invariant.name: Verdict() for invariant in invariants}
    positions = {(row.invariant, row.check, row.subject): index for index, row in enumerate(rows)}
    for suite_result in outcome.run_results.values():
        for result in suite_result.results:
            name = result.expectation_config.meta["invariant"]
            verdict = verdicts[name]
            verdict.success = verdict.success and bool(result.success)
            for failed in (result.result or {}).get("unexpected_index_list") or ():
                verdict.failed_rows.add(positions[(name, failed["check"], failed["subject"])])
            info = result.exception_info or {}
            if info.get("raised_exception"):
                verdict.errors.append(first_line(info.get("exception_message") or "GX raised an exception"))
    index = Path(docs_dir) / "index.html" if docs_dir else None
    return verdicts, index if index and index.is_file() else None


def _checkpoint(gx: Any, invariants: list[Invariant], settings: Settings, docs_dir: Path | None) -> Any:
    """The suite of every invariant's expectations over the frame, in a checkpoint that writes Data Docs if asked."""
    context = _context(gx, docs_dir)
    batch = (context.data_sources.add_pandas("retention_store").add_dataframe_asset("invariant_measures")
             .add_batch_definition_whole_dataframe("this_run"))
    # Built whole, then stored once: add_expectation would re-save the suite after each expectation.
    suite = context.suites.add(gx.ExpectationSuite(
        name=SUITE_NAME, expectations=[e for invariant in invariants for e in _expectations(gx, invariant, settings)]))
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name="retention_invariants_run", data=batch, suite=suite))
    actions = [gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=[DOCS_SITE])] if docs_dir else []
    return context.checkpoints.add(gx.Checkpoint(
        name="retention_invariants", validation_definitions=[validation], actions=actions,
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["check", "subject"],
                       "return_unexpected_index_query": False}))


def _expectations(gx: Any, invariant: Invariant, settings: Settings) -> list[Any]:
    """The GX expectations that judge one invariant's rows of the frame, tagged with its name."""
    from great_expectations.expectations.row_conditions import Column

    return invariant.expectations(gx.expectations, settings, row_condition=Column("invariant") == invariant.name,
                                  meta={"invariant": invariant.name}, notes=invariant.description)


def _context(gx: Any, docs_dir: Path | None) -> Any:
    """An in-memory GX context: no project folder, no analytics, no progress bars; Data Docs only when asked."""
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(), analytics_enabled=False,
                               progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False))
    if docs_dir:
        config.data_docs_sites = {DOCS_SITE: {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }}
    return gx.get_context(mode="ephemeral", project_config=config)


def _import_gx() -> Any:
    # A compliance tool makes no outbound calls; set before GX is first imported.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import great_expectations as gx
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    return gx
