"""CRM snapshots: the formats they come in (native tables, HighLevel API exports) and their ingest into the store."""
