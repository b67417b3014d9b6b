"""The layer contract: which of the project's packages may import which (every import, at any depth of a module)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = ("compliance", "demo_crm", "resources", "assets", "sensors", "pipelines", "benchmarks")
THIRD_PARTY_DAGSTER = ("dagster", "dagster_postgres", "dagster_webserver", "dagster_graphql")

# package -> the project packages it may import (itself always). Read top to bottom: each layer sees only those below.
MAY_IMPORT: dict[str, set[str]] = {
    "compliance": set(),                                  # the domain: pure Python + DuckDB SQL
    "demo_crm": {"compliance"},                           # fixture data for `retention demo`
    "resources": {"compliance"},                          # the one Dagster resource, run tags and lanes
    "assets": {"compliance", "resources"},                # thin assets and checks
    "sensors": {"compliance", "resources"},               # sensors, built by factories that receive their job
    "pipelines": {"compliance", "resources", "assets", "sensors", "demo_crm"},   # Definitions, jobs, CLI, runner
    "benchmarks": {"compliance", "resources", "assets", "sensors", "pipelines", "demo_crm"},
}
# Packages that must not know Dagster exists.
DAGSTER_FREE = {"compliance", "demo_crm"}


def imported_modules(path: Path) -> list[str]:
    """Every module a file imports, at top level or inside functions (relative imports resolved to the package)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(path.relative_to(ROOT).parts[0] if node.level else node.module or "")
    return names


def files_of(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_a_package_imports_only_the_layers_below_it(package):
    files = files_of(package)
    offenders = [f"{path.relative_to(ROOT)} imports {name}" for path in files for name in imported_modules(path)
                 if name.split(".")[0] in PROJECT_PACKAGES and name.split(".")[0] != package
                 and name.split(".")[0] not in MAY_IMPORT[package]]

    assert files, f"no Python files under {package}/"
    assert offenders == []


@pytest.mark.parametrize("package", sorted(DAGSTER_FREE))
def test_the_domain_and_the_demo_never_import_dagster(package):
    offenders = [f"{path.relative_to(ROOT)} imports {name}" for path in files_of(package)
                 for name in imported_modules(path) if name.split(".")[0] in THIRD_PARTY_DAGSTER]

    assert offenders == []


def test_the_contract_covers_every_package_the_project_installs():
    installed = {path.name for path in ROOT.iterdir() if (path / "__init__.py").is_file()}

    assert installed == set(MAY_IMPORT)


def test_the_checker_sees_an_import_hidden_inside_a_function(tmp_path):
    package = tmp_path / "compliance"
    package.mkdir()
    (package / "sneaky.py").write_text("def later():\n    import dagster as dg\n    from pipelines import cli\n")

    assert imported_modules(package / "sneaky.py") == ["dagster", "pipelines"]
