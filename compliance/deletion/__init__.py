"""Deletion: one set-based plan per run (requests, rules, manual selections), verified backups, atomic apply.

By responsibility: `planning` (sources, candidates, the decision in decide.sql), `backups` (the backup hand-off,
each table read once for the run, and the blocking verification before delete), `apply` (the run's bulk actions in
one transaction: one cascade with tombstones and enrollment metrics, then each bulk action recorded),
`suppression` (keyed hashes of legal erasures) and `recording` (the bulk action and the request it answers).
The names below are the package's interface.
"""

from compliance.bulk_actions import new_bulk_action_id
from compliance.deletion.apply import AppliedAction, Progress, apply_deletions, cascade
from compliance.deletion.backups import PlannedBackup, back_up, planned_backups, removed_tables, verify_planned_backups
from compliance.deletion.planning import (
                                          OUTCOMES,
                                          ManualSelection,
                                          Plan,
                                          PlannedAction,
                                          PlanSource,
                                          build_plan,
                                          plan_items,
                                          read_plan,
                                          subject_matches_sql,
)
from compliance.vocabulary import LEGAL_REGULATIONS

__all__ = ["LEGAL_REGULATIONS", "OUTCOMES", "AppliedAction", "ManualSelection", "Plan", "PlanSource", "PlannedAction",
           "PlannedBackup", "Progress", "apply_deletions", "back_up", "build_plan", "cascade", "new_bulk_action_id",
           "plan_items", "planned_backups", "read_plan", "removed_tables", "subject_matches_sql",
           "verify_planned_backups"]
