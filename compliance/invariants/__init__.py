"""The retention invariants (PRODUCT.md section 4): a registry of invariants, judged by one Great Expectations suite.

Each invariant is one class registered by name (`registry.register`) that carries its description, its DuckDB
reduction, its expectation and its pass and fail messages; `builtin` registers the nine, and `suite` is the only
module that imports GX. Checks, summaries and reports list invariants in registry order.
"""

from compliance.invariants.builtin import (
                                           BACKUPS_WITHIN_RETENTION,
                                           BULK_ACTION_COUNTS_ADD_UP,
                                           DELETED_CONTACTS_BACKED_UP,
                                           DELETIONS_TRACE_TO_ADMIN,
                                           NO_MEMBERSHIPS_OF_DELETED,
                                           NO_ORPHANED_ASSOCIATED_DATA,
                                           PURGE_RAN,
                                           RESTORES_INSIDE_WINDOW,
                                           SUPPRESSED_STAY_ERASED,
)
from compliance.invariants.registry import MAX_SAMPLES, REGISTRY, Invariant, Row, Run, descriptions, register
from compliance.invariants.results import InvariantResult, InvariantSummary
from compliance.invariants.suite import DOCS_SITE, SUITE_NAME, check_invariants

# Snapshots of the registry once the nine are registered; check_invariants and the asset checks read it live.
INVARIANTS: tuple[str, ...] = tuple(REGISTRY)
DESCRIPTIONS: dict[str, str] = descriptions()

__all__ = [
    "BACKUPS_WITHIN_RETENTION", "BULK_ACTION_COUNTS_ADD_UP", "DELETED_CONTACTS_BACKED_UP", "DELETIONS_TRACE_TO_ADMIN",
    "DESCRIPTIONS", "DOCS_SITE", "INVARIANTS", "MAX_SAMPLES", "NO_MEMBERSHIPS_OF_DELETED",
    "NO_ORPHANED_ASSOCIATED_DATA", "PURGE_RAN", "REGISTRY", "RESTORES_INSIDE_WINDOW", "SUITE_NAME",
    "SUPPRESSED_STAY_ERASED", "Invariant", "InvariantResult", "InvariantSummary", "Row",
    "Run", "check_invariants", "descriptions", "register",
]
