"""The invariants of a home of shards taken whole: what no single shard's retention_invariants can see.

Each shard proves its own store (its partition's retention_invariants). What only the whole home shows is checked
here, over every shard's store attached read-only (compliance.shards.views.whole_home) and the shards' saved results:

- every contact sits in the store of its location's shard (a contact in a wrong shard escapes that location's
  rules and requests there);
- no contact id is held by two shards (`show` and an erasure would find two people);
- a request file that some shard has settled and that has left inbox/requests was recorded by every shard (a shard
  that never saw it can never apply it);
- each shard's last retention_invariants result passed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb

from compliance.evidence.report import load_invariants
from compliance.home import Home
from compliance.invariants import MAX_SAMPLES, InvariantResult
from compliance.requests.intake import recorded_name
from compliance.requests.parsing import odd_file, pending_request_files
from compliance.shards.placement import shard_homes, shard_of_sql
from compliance.shards.views import shard_catalog, whole_home
from compliance.store.sql import quote_identifier
from compliance.vocabulary import FINAL_STATUSES

CONTACTS_IN_THEIR_SHARD = "contacts_in_their_shard"
CONTACTS_IN_ONE_SHARD = "contacts_in_one_shard"
REQUEST_FILES_IN_EVERY_SHARD = "request_files_in_every_shard"
SHARDS_PROVEN = "shards_proven"

DESCRIPTIONS: dict[str, str] = {
    CONTACTS_IN_THEIR_SHARD: "Every contact sits in the store of its location's shard.",
    CONTACTS_IN_ONE_SHARD: "No contact id is held by two shards.",
    REQUEST_FILES_IN_EVERY_SHARD: "A request file settled in some shard and gone from inbox/requests was recorded "
                                  "by every shard.",
    SHARDS_PROVEN: "Each shard's last retention_invariants result passed.",
}
# Where a shard's run keeps its invariant results (compliance.evidence.report.save_invariants), one folder per run.
_RESULTS_FILE = "invariants.json"


def check_shard_invariants(home: Home, *, memory_limit: str | None = None) -> tuple[InvariantResult, ...]:
    """Judge the overall invariants of a home over every shard's store and saved results, read-only.

    Args:
        home: the home (any shard of it: the whole is judged). A home of one shard passes the first three trivially.
        memory_limit: settings' memory_limit, passed to the stores.

    Returns:
        One result per invariant of DESCRIPTIONS, in its order; sample ids are contact ids, recorded request file
        names (never a raw name that held an email or phone) or shard names.
    """
    homes = shard_homes(home)
    with whole_home(home, memory_limit=memory_limit) as con:
        placed = _contacts_out_of_their_shard(con, len(homes))
        doubled = _contacts_in_several_shards(con, len(homes))
        unrecorded = _files_missing_from_a_shard(con, home, len(homes))
    unproven = _shards_not_proven(homes)
    return (
        _result(CONTACTS_IN_THEIR_SHARD, placed, "contact{s} held by a shard other than their location's",
                "every contact sits in its location's shard"),
        _result(CONTACTS_IN_ONE_SHARD, doubled, "contact id{s} held by more than one shard",
                "no contact id is held by two shards"),
        _result(REQUEST_FILES_IN_EVERY_SHARD, unrecorded,
                "request file{s} settled and gone from the inbox but not recorded by every shard",
                "every settled request file was recorded by every shard"),
        _result(SHARDS_PROVEN, unproven, "shard{s} whose last retention_invariants did not pass",
                f"the last retention_invariants of all {len(homes)} shard(s) passed"),
    )


def _by_shard(table: str, columns: str, shards: int) -> str:
    """SQL over `table` of every shard, with each row's shard; a home of one shard reads its own store."""
    table = quote_identifier(table)
    if shards == 1:
        return f"SELECT {columns}, 0 AS shard FROM {table}"
    return " UNION ALL ".join(f"SELECT {columns}, {k} AS shard FROM {shard_catalog(k)}.main.{table}"
                              for k in range(shards))


def _contacts_out_of_their_shard(con: duckdb.DuckDBPyConnection, shards: int) -> list[tuple[str, str]]:
    return [(contact_id, f"{contact_id} in shard-{shard}") for contact_id, shard in con.execute(
        f"SELECT contact_id, shard FROM ({_by_shard('contacts', 'contact_id, location_id', shards)}) "
        f"WHERE {shard_of_sql('location_id', shards)} <> shard ORDER BY contact_id, shard").fetchall()]


def _contacts_in_several_shards(con: duckdb.DuckDBPyConnection, shards: int) -> list[tuple[str, str]]:
    # A deleted contact has left `contacts` but is still its shard's (contact_lifecycle): it counts too, since a
    # copy of it elsewhere would be restored or purged apart from it.
    held = (f"SELECT DISTINCT contact_id, shard FROM ({_by_shard('contacts', 'contact_id', shards)} UNION ALL "
            f"{_by_shard('contact_lifecycle', 'contact_id', shards)})")
    doubled = con.execute(f"SELECT contact_id, list_sort(list(shard)) FROM ({held}) GROUP BY contact_id "
                          "HAVING count(*) > 1 ORDER BY contact_id").fetchall()
    return [(contact_id, f"{contact_id} in {', '.join(f'shard-{k}' for k in held_by)}")
            for contact_id, held_by in doubled]


def _files_missing_from_a_shard(con: duckdb.DuckDBPyConnection, home: Home,
                                shards: int) -> list[tuple[str, str]]:
    if shards == 1:
        return []
    final = list(FINAL_STATUSES)
    # A file still waiting in the inbox is fine: the shards that have not recorded it yet will take it.
    waiting = [_inbox_key(path) for path in pending_request_files(home.requests_inbox)]
    return [(file, f"{file} recorded by {recorded} of {shards} shards") for file, recorded in con.execute(
        "SELECT file, count(DISTINCT shard) FROM requests_by_shard GROUP BY file, file_hash "
        "HAVING count(DISTINCT shard) < ? AND bool_or(list_contains(?, status)) "
        "AND NOT list_contains(?, file || chr(0) || file_hash) ORDER BY file",
        [shards, final, waiting]).fetchall()]


def _inbox_key(path: Path) -> str:
    """A waiting file as `<recorded name>\\0<sha256>`, the key its request records carry."""
    try:
        if odd_file(path):
            # Never opened (a FIFO would block); intake quarantines it by name, under its own fingerprint.
            return ""
        file_hash = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""
    return f"{recorded_name(path, file_hash)}\0{file_hash}"


def _shards_not_proven(homes: list[Home]) -> list[tuple[str, str]]:
    unproven = []
    for shard in homes:
        name = shard.shard_name or "store"
        results = sorted(shard.reports_dir.glob(f"*/{_RESULTS_FILE}"), key=lambda path: (path.stat().st_mtime_ns,
                                                                                           path.parent.name))
        if not results:
            unproven.append((name, f"{name} never proven"))
            continue
        failed = load_invariants(results[-1].parent).failed
        if failed:
            unproven.append((name, f"{name}: {', '.join(failed)} failed in run {results[-1].parent.name}"))
    return unproven


def _result(name: str, violations: list[tuple[str, str]], failing: str, passing: str) -> InvariantResult:
    """The invariant's result from its violations, each (sample id, detail); the message shows MAX_SAMPLES."""
    count = len(violations)
    shown = violations[:MAX_SAMPLES]
    message = passing if not count else (
        f"{count} {failing.format(s='' if count == 1 else 's')}: {'; '.join(detail for _, detail in shown)}"
        + ("; …" if count > len(shown) else ""))
    return InvariantResult(name, DESCRIPTIONS[name], not count, count, tuple(sample for sample, _ in shown), message)
