"""Location shards: which shard holds a location, the shard count a home is fixed to, and each shard's home.

A home of N shards keeps N DuckDB stores. A contact lives in the shard of its location_id, so a location's contacts,
their associated rows and memberships stay together and a cascade never crosses shards. Each shard is a complete
store (its own request records, suppression list, bulk actions, backups and audit chain), written by one process at
a time; no file is shared between shards, so N shards are N writers with no lock between them (docs/design/shards.md).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import duckdb

from compliance.errors import InputError
from compliance.home import SHARD_FOLDER, Home, shard_name
from compliance.settings import MAX_SHARDS, load_settings
from compliance.store.sql import scalar

# The first 8 bytes of the sha256 of the location id, big-endian, modulo the shard count: the same in Python and in
# DuckDB (SHARD_OF_SQL), in every process and version (never Python's salted hash()). A missing location is ''.
SHARD_OF_SQL = "CAST('0x' || left(sha256(coalesce({column}, '')), 16) AS UBIGINT) % {shards}"
_SHARDS_LINE = re.compile(r"^shards:.*$", re.MULTILINE)


def shard_of(location_id: str | None, shards: int) -> int:
    """The shard holding a location's contacts (0 when the home has one shard)."""
    digest = hashlib.sha256((location_id or "").encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


def shard_of_sql(column: str, shards: int) -> str:
    """SQL giving the shard of the location in `column` (shard_of in DuckDB)."""
    return SHARD_OF_SQL.format(column=column, shards=int(shards))


def shard_count(home: Home) -> int:
    """The number of shards settings.yaml fixes for this home (1 without a settings file)."""
    if not home.settings_file.exists():
        return 1
    return load_settings(home.settings_file).shards


def shard_homes(home: Home) -> list[Home]:
    """The homes of every shard: [home] itself for a home of one shard, else one per shard, in order."""
    shards = shard_count(home)
    whole = home.whole
    return [whole] if shards == 1 else [whole.for_shard(k) for k in range(shards)]


def shard_home(home: Home, partition_key: str | None) -> Home:
    """The home a run works on: the shard its partition key names, or the home itself for an unpartitioned run.

    Raises:
        InputError: the key names no shard of this home.
    """
    if partition_key is None:
        return home.whole
    match = SHARD_FOLDER.match(partition_key)
    shards = shard_count(home)
    if match is None or int(match.group(1)) >= shards:
        raise InputError(f"partition {partition_key!r}: this home has {shards} shard(s), shard-0 to "
                         f"{shard_name(shards - 1)}")
    return home.whole.for_shard(int(match.group(1)))


def stores_found(home: Home) -> dict[str, Path]:
    """The store files the home holds now: {"single": path} and/or {"shard-k": path}."""
    found = {}
    single = home.whole.store_file
    if single.exists():
        found["single"] = single
    store_root = home.root / "store"
    if store_root.is_dir():
        for folder in sorted(store_root.iterdir()):
            if SHARD_FOLDER.match(folder.name) and (folder / "retention.duckdb").exists():
                found[folder.name] = folder / "retention.duckdb"
    return found


def _has_data(store: Path) -> bool:
    """Whether a store holds anything a run wrote: a snapshot, a request, a bulk action."""
    with duckdb.connect(str(store), read_only=True) as con:
        tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        return any(scalar(con, f"SELECT count(*) FROM {table}")
                   for table in ("snapshots", "requests", "bulk_actions") if table in tables)


def check_shard_layout(home: Home) -> int:
    """Refuse a home whose stores were made for another shard count than settings.yaml says (bad input).

    Changing the count on a live home would move locations between stores while runs read them; resharding is an
    offline step (docs/design/shards.md, section 4).

    Returns:
        The shard count.

    Raises:
        InputError: naming the settings file, the count it gives and the stores found.
    """
    shards = shard_count(home)
    expected = {"single"} if shards == 1 else {shard_name(k) for k in range(shards)}
    stray = {name: path for name, path in stores_found(home).items() if name not in expected}
    if stray:
        raise InputError(
            f"{home.settings_file}: shards: {shards}, but the home holds stores made for another shard count: "
            f"{', '.join(str(path) for path in stray.values())}. The shard count is fixed once data exists; put "
            f"back the count the stores were made with (resharding is not supported yet); nothing was run")
    return shards


def set_shard_count(home: Home, shards: int) -> None:
    """Write `shards: N` into a home's settings.yaml, before the home holds any data (`retention init --shards N`).

    Raises:
        InputError: the count is out of range, or the home already holds data under another count.
    """
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
        raise InputError(f"--shards: must be a whole number from 1 to {MAX_SHARDS}, not {shards!r}")
    current = shard_count(home)
    if current == shards:
        return
    with_data = [path for path in stores_found(home).values() if _has_data(path)]
    if with_data:
        raise InputError(f"--shards {shards}: {home.settings_file} says shards: {current} and the home holds data "
                         f"({', '.join(map(str, with_data))}); the shard count is fixed once data exists")
    for path in stores_found(home).values():
        for stale in (path, path.with_name(path.name + ".wal")):
            stale.unlink(missing_ok=True)
    text = home.settings_file.read_text()
    line = f"shards: {shards}"
    text = _SHARDS_LINE.sub(line, text, count=1) if _SHARDS_LINE.search(text) else text.rstrip("\n") + f"\n{line}\n"
    home.settings_file.write_text(text)
    load_settings(home.settings_file)
