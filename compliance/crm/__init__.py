"""The CRM connector: pull a snapshot from the CRM's API, push the store's deletions back (no Dagster here)."""
