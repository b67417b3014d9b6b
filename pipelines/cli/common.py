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


def shard_names(homes: list[Home]) -> list[str]:
    """The names (`shard-0` ...) of shard homes, in order; a home of one shard has no shard name."""
    names = []
    for home in homes:
        if home.shard_name is None:
            raise ValueError(f"{home.root} is a home of one shard, not a shard")
        names.append(home.shard_name)
    return names


def run_homes(args: argparse.Namespace, home: Home) -> list[Home]:
    """The stores a run works on: every shard (or the home's one store), or the one shard `--shard` names."""
    homes = shard_homes(home)
    chosen = getattr(args, "shard", None)
    if chosen is None:
        return homes
    if homes[0].shard is None or not 0 <= chosen < len(homes):
        raise InputError(f"--shard {chosen}: this home has {len(homes)} shard(s)"
                         + ("" if homes[0].shard is None else f", 0 to {len(homes) - 1}"))
    return [homes[chosen]]


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
