"""What every command shares: printing one JSON document or text, progress lines, the home and store checks."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from compliance.deletion.selections import stage_selection
from compliance.errors import InputError
from compliance.home import Home
from compliance.operators import check_operator
from compliance.settings import load_rules, load_settings
from compliance.shards.placement import check_shard_layout, shard_homes
from compliance.store.connection import Store, refuse_missing_store
from resources.lanes import RunLane, run_lanes


def emit(args: argparse.Namespace, document: dict[str, Any], text: str) -> None:
    print(json.dumps(document, indent=2, default=str) if args.json else text)


def progress_printer(args: argparse.Namespace) -> Callable[[str], None]:
    return (lambda message: None) if args.json else (lambda message: print(f"  {message}", file=sys.stderr,
                                                                          flush=True))


def require_home(home: Home) -> None:
    if not home.exists():
        raise InputError(f"no retention home at {home.root} (create one with `retention init --home {home.root}`)")
    load_settings(home.settings_file)
    load_rules(home.rules_file)


def store_ready(home: Home) -> None:
    """Before a run starts: refuse a home whose stores do not match its shard count or that lost a store, and wait
    (saying so) while another run holds one."""
    check_shard_layout(home)
    for shard in shard_homes(home):
        refuse_missing_store(shard, with_dagster_runs=True)
        Store(shard).connect().close()


def chosen_lanes(args: argparse.Namespace, home: Home) -> list[RunLane]:
    """The lanes a run works on: every lane of the home (its one store, or each shard), or the one `--shard` names."""
    lanes = run_lanes(home)
    chosen = getattr(args, "shard", None)
    if chosen is None:
        return lanes
    if lanes[0].partition_key is None or not 0 <= chosen < len(lanes):
        raise InputError(f"--shard {chosen}: this home has {len(lanes)} shard(s)"
                         + ("" if lanes[0].partition_key is None else f", 0 to {len(lanes) - 1}"))
    return [lanes[chosen]]


def acting_as(home: Home, as_user: str) -> None:
    """Refuse --as-user when settings bind this OS user to other staff ids (`operators:`)."""
    check_operator(load_settings(home.settings_file), as_user)


def stage(home: Home, contact_ids: list[str]) -> str | None:
    """Hand the listed ids to the run by token: Dagster keeps run config forever, and ids must go with a purge."""
    if not contact_ids:
        return None
    with Store(home).connect() as con:
        return stage_selection(con, contact_ids)


def printable(text: str) -> str:
    """Text from a request file as one terminal line: control and format characters escaped, never interpreted."""
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")
                   for ch in str(text))
