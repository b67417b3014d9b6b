"""Evidence for an auditor: the hash-chained audit log and its anchor, history, metrics, the report and verdicts."""
