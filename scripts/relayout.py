"""Rewrite imports of modules that moved in the issue-21 layout (compliance/ into subpackages, the demo CRM out).

Usage: python scripts/relayout.py [ROOT]   (idempotent; rewrites *.py and *.md files under ROOT in place)

Kept for branches that were started before the move: merge main, then run this over the tree.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# old dotted module -> new dotted module
MOVES: dict[str, str] = {
    "compliance.store": "compliance.store.connection",
    "compliance.schema": "compliance.store.schema",
    "compliance.sql": "compliance.store.sql",
    "compliance.keys": "compliance.store.keys",
    "compliance.files": "compliance.store.files",
    "compliance.backup": "compliance.store.backup",
    "compliance.ingest": "compliance.snapshots.ingest",
    "compliance.snapshot_formats": "compliance.snapshots.formats",
    "compliance.highlevel": "compliance.snapshots.highlevel",
    "compliance.requests": "compliance.requests.parsing",
    "compliance.intake": "compliance.requests.intake",
    "compliance.records": "compliance.requests.records",
    "compliance.redaction": "compliance.requests.redaction",
    "compliance.selections": "compliance.deletion.selections",
    "compliance.audit": "compliance.evidence.audit",
    "compliance.audit_anchor": "compliance.evidence.anchor",
    "compliance.history": "compliance.evidence.history",
    "compliance.metrics": "compliance.evidence.metrics",
    "compliance.report": "compliance.evidence.report",
    "compliance.verdict": "compliance.evidence.verdict",
    "compliance.shards": "compliance.shards.placement",
    "compliance.shard_views": "compliance.shards.views",
    "compliance.shard_invariants": "compliance.shards.invariants",
    "compliance.demo_data": "demo_crm.generator",
}

# Packages that took the name of the module they replace: "compliance.store.X" is new when X is one of these.
SUBMODULES: dict[str, set[str]] = {
    "compliance.store": {"connection", "schema", "sql", "keys", "files", "backup", "migrations", "memory"},
    "compliance.requests": {"parsing", "intake", "records", "redaction", "formats", "settle", "opendsr"},
    "compliance.shards": {"placement", "views", "invariants", "suppression", "split", "lanes", "reshard"},
}

# Names that left a module that stays: (module, name) -> new module
NAME_MOVES: dict[tuple[str, str], str] = {
    **{("compliance.home", name): "pipelines.instance" for name in (
        "DAGSTER_YAML", "DAGSTER_STORAGE_ENV", "DEFAULT_MAX_CONCURRENT_RUNS", "postgres_dagster_yaml",
        "POSTGRES_DRIVER_SCHEME")},
    **{("compliance.home", name): "resources.tags" for name in ("HOME_TAG", "STORE_TAG", "SHARD_TAG", "store_tags")},
}
_NAMED_IMPORT = re.compile(r"^([ \t]*)from (compliance\.home) import ([^\n()#]+?)([ \t]*(#.*)?)$", re.M)

_DOTTED = re.compile(r"\b(compliance\.[a-z_]+)(\.[A-Za-z_][\w]*)?")
_FROM_IMPORT = re.compile(r"^([ \t]*)from (compliance\.[a-z_]+) import (\(?)([^\n()#]+?)(\)?)([ \t]*(#.*)?)$", re.M)
_FROM_PACKAGE = re.compile(r"^([ \t]*)from compliance import ([^\n#(]+?)([ \t]*(#.*)?)$", re.M)


def _is_new(module: str, attribute: str | None) -> bool:
    """Whether `module.attribute` already names the new layout (a submodule of a same-named new package)."""
    return module in SUBMODULES and attribute is not None and attribute in SUBMODULES[module]


def _rewrite_from_import(match: re.Match[str]) -> str:
    indent, module, open_paren, names, close_paren, tail = match.group(1, 2, 3, 4, 5, 6)
    if module not in MOVES:
        return match.group(0)
    imported = [name.strip().split(" as ")[0].strip() for name in names.split(",") if name.strip()]
    if module in SUBMODULES and imported and all(name in SUBMODULES[module] for name in imported):
        return match.group(0)
    return f"{indent}from {MOVES[module]} import {open_paren}{names}{close_paren}{tail}"


def _rewrite_from_package(match: re.Match[str]) -> str:
    indent, names, tail = match.group(1), match.group(2), match.group(3) or ""
    kept, moved = [], []
    for part in (p.strip() for p in names.split(",") if p.strip()):
        name, _, alias = part.partition(" as ")
        name, alias = name.strip(), alias.strip()
        full = f"compliance.{name}"
        if full in MOVES and not (full in SUBMODULES and name in SUBMODULES[full]):
            target = MOVES[full]
            package, _, leaf = target.rpartition(".")
            moved.append(f"{indent}from {package} import {leaf} as {alias or name}" if (alias or name) != leaf
                         else f"{indent}from {package} import {leaf}")
        else:
            kept.append(part)
    if not moved:
        return match.group(0)
    lines = ([f"{indent}from compliance import {', '.join(kept)}"] if kept else []) + moved
    lines[-1] += tail
    return "\n".join(lines)


def _rewrite_dotted(match: re.Match[str]) -> str:
    module, attribute = match.group(1), match.group(2)
    if module not in MOVES:
        return match.group(0)
    if _is_new(module, attribute[1:] if attribute else None):
        return match.group(0)
    return MOVES[module] + (attribute or "")


def _rewrite_named(match: re.Match[str]) -> str:
    indent, module, names, tail = match.group(1), match.group(2), match.group(3), match.group(4) or ""
    by_target: dict[str, list[str]] = {}
    for part in (p.strip() for p in names.split(",") if p.strip()):
        by_target.setdefault(NAME_MOVES.get((module, part.split(" as ")[0].strip()), module), []).append(part)
    if list(by_target) == [module]:
        return match.group(0)
    lines = [f"{indent}from {target} import {', '.join(parts)}" for target, parts in by_target.items()]
    lines[-1] += tail
    return "\n".join(lines)


def rewrite(text: str) -> str:
    """The text with every reference to a moved module pointing at its new place."""
    text = _NAMED_IMPORT.sub(_rewrite_named, text)
    text = _FROM_PACKAGE.sub(_rewrite_from_package, text)
    text = _FROM_IMPORT.sub(_rewrite_from_import, text)
    out = []
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        opening = re.match(r"(\s*from )(compliance\.[a-z_]+)( import \(\s*)$", line)
        if opening and opening.group(2) in MOVES:
            module = opening.group(2)
            following = "".join(lines[index + 1:]).split(")", 1)[0]
            names = [n.strip().split(" as ")[0].strip() for n in following.split(",") if n.strip()]
            if module in SUBMODULES and names and all(name in SUBMODULES[module] for name in names):
                out.append(line)
            else:
                out.append(opening.group(1) + MOVES[module] + opening.group(3))
        elif re.match(r"\s*from compliance\.[a-z_.]+ import ", line):
            out.append(line)
        else:
            out.append(_DOTTED.sub(_rewrite_dotted, line))
    return "".join(out)


def main(root: Path) -> int:
    changed = 0
    for path in list(root.rglob("*.py")) + list(root.rglob("*.md")):
        if any(part in {".venv", ".git", "node_modules"} for part in path.parts) or path.name == "relayout.py":
            continue
        text = path.read_text(encoding="utf-8")
        new = rewrite(text) if path.suffix == ".py" else text
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed += 1
            print(f"rewrote {path}")
    print(f"{changed} files rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
