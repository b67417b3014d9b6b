"""Restore (R2, R4): a deleted contact comes back inside the window, as the contact record only.

By responsibility: `planning` (sources and the decision in restore_decide.sql, changing nothing) and `apply` (the
record back, suppression lifted, the bulk action recorded through compliance.bulk_actions).
"""

from compliance.restore.apply import apply_restores
from compliance.restore.planning import ManualRestore, RestoreAction, plan_restores, read_restore_plan
from compliance.vocabulary import RESTORE_OUTCOMES

__all__ = ["RESTORE_OUTCOMES", "ManualRestore", "RestoreAction", "apply_restores", "plan_restores",
           "read_restore_plan"]
