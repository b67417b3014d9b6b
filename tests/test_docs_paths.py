"""Every project path that the README and docs/ name exists (a moved module must take its mentions with it)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP_FOLDERS = ("compliance", "pipelines", "assets", "sensors", "resources", "tests", "benchmarks", "scripts", "docs",
               "demo_crm")
_PATH = re.compile(r"(?<![\w/.<-])((?:" + "|".join(TOP_FOLDERS) + r")/[\w./*-]*)")


def named_paths(text: str) -> set[str]:
    """The repository paths a document names: words starting with a top folder, trailing punctuation dropped."""
    return {match.rstrip(".,:;)") for match in _PATH.findall(text)}


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_every_path_named_in_the_docs_exists():
    missing = []
    for document in documents():
        for path in named_paths(document.read_text(encoding="utf-8")):
            if not (any(ROOT.glob(path)) if "*" in path else (ROOT / path).exists()):
                missing.append(f"{document.relative_to(ROOT)}: {path}")

    assert len(documents()) >= 3
    assert missing == []


def test_the_path_finder_sees_a_moved_module_and_ignores_home_paths():
    text = "see `compliance/store.py`, <home>/store/tmp and compliance/evidence/report.py."

    assert named_paths(text) == {"compliance/store.py", "compliance/evidence/report.py"}
