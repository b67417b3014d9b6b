"""A home's run lanes: one per store (the home's one store, or each shard's), with its partition key and run tags.

A home of one shard is the one-lane case: its lane has no partition key. The schedule, the request sensor, the
command line and `plan` all go through `run_lanes`, so none of them branches on the shard count.
"""

from __future__ import annotations

from dataclasses import dataclass

from compliance.home import Home
from compliance.shards.placement import shard_homes
from resources.tags import store_tags


@dataclass(frozen=True)
class RunLane:
    """One store's lane of the run queue: the Dagster partition it runs as (None: unpartitioned) and its home."""

    partition_key: str | None
    home: Home

    @property
    def tags(self) -> dict[str, str]:
        """The run tags that put a run in this lane: its home, its store and (if any) its shard."""
        return store_tags(self.home)

    def run_key(self, key: str, separator: str = "-") -> str:
        """A run key unique to this lane: `key` itself in a one-lane home, else `key<separator><partition>`."""
        return key if self.partition_key is None else f"{key}{separator}{self.partition_key}"

    def label(self, document: dict) -> dict:
        """`document` marked with its shard (`"shard": "shard-<k>"`) when the home has several lanes."""
        return document if self.partition_key is None else {**document, "shard": self.partition_key}


def run_lanes(home: Home) -> list[RunLane]:
    """The lanes of a home, in shard order: one for a home of one shard, one per shard otherwise."""
    return [RunLane(shard.shard_name, shard) for shard in shard_homes(home)]
