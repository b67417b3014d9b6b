"""The Dagster run tags of a retention run: which home, store and shard it works on (the run queue's lanes)."""

from __future__ import annotations

from compliance.home import Home, shard_name

# The run tags naming a run's home, its store and its shard. The queue runs one run per store at a time (a DuckDB
# store has one writer), so the shards of a home run side by side and a home of one shard runs one run at a time.
HOME_TAG = "retention/home"
STORE_TAG = "retention/store"
SHARD_TAG = "retention/shard"

def store_tags(home: Home) -> dict[str, str]:
    """The tags that put a run in its store's lane of the run queue: its home, its store and (if any) its shard."""
    tags = {HOME_TAG: str(home.root), STORE_TAG: str(home.store_file)}
    if home.shard is not None:
        tags[SHARD_TAG] = shard_name(home.shard)
    return tags
