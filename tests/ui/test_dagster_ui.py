"""The Dagster UI as an auditor sees it in headless Chromium: backup upstream of delete, and every check passed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compliance.invariants import INVARIANTS
from support.cli import RETENTION, run_retention
from support.ports import free_port

pytestmark = [pytest.mark.ui, pytest.mark.e2e]

AS_OF = "2026-11-28T00:00:00Z"
START_TIMEOUT = 90
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
BACKUP_CHECK = "planned_backups_verify"
# The upstream lineage of the delete, two levels deep: plan, then backups, then the delete.
LINEAGE_PATH = "/assets/applied_deletions?view=lineage&lineageScope=upstream&lineageDepth=2"
CHECKS_PATH = "/assets/retention_invariants?view=checks"
BACKUP_CHECKS_PATH = "/assets/contact_backups?view=checks"
LEAD_COPIES = {"lineage": Path("/tmp/ui-lineage.png"), "checks": Path("/tmp/ui-checks.png")}


def _unavailable(reason: str) -> None:
    """Skip on a developer's machine without a browser; in CI, which installs one, that is a failure."""
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{reason}; CI installs it (scripts/test.sh), so its absence is a broken setup")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        _unavailable("Debian's chromium is not installed (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    return path


def _get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


class Ui:
    """A running `retention ui` on a demo home."""

    def __init__(self, home: Path, base: str, run_id: str, log: Path):
        self.home, self.base, self.run_id, self.log = home, base, run_id, log

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        request = urllib.request.Request(f"{self.base}/graphql", method="POST",
                                         data=json.dumps({"query": query, "variables": variables}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            document = json.loads(response.read())
        assert "errors" not in document, document["errors"]
        return document["data"]


def _session_alive(session_id: int) -> list[int]:
    """The live processes of the UI's session: the supervisor, the webserver, the daemon and their code servers."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split() if stat else []
        if fields and fields[0] != "Z" and int(fields[3]) == session_id:
            pids.append(int(entry.name))
    return pids


def _stop(process: subprocess.Popen) -> None:
    """Stop `retention ui` as a service manager does (SIGTERM); kill whatever of its session is left after 10 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    for pid in _session_alive(process.pid):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def ui(chromium, tmp_path_factory) -> Iterator[Ui]:
    """`retention demo` on 2,000 contacts, then `retention ui` on that home, as a user starts it."""
    folder = tmp_path_factory.mktemp("ui")
    home = folder / "home"
    retention = str(RETENTION)
    env = {key: value for key, value in os.environ.items() if key not in ("RETENTION_HOME", "DAGSTER_HOME")}
    demo = run_retention("demo", "--contacts", "2000", "--as-of", AS_OF, "--json", home=home, cwd=folder)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    run_id = json.loads(demo.stdout)["run_id"]

    port = free_port()
    log = folder / "ui.log"
    with log.open("w") as output:
        process = subprocess.Popen([retention, "ui", "--home", str(home), "--port", str(port)], cwd=folder, env=env,
                                   stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    ui = Ui(home, f"http://127.0.0.1:{port}", run_id, log)
    try:
        _wait_until_loaded(ui, process)
        yield ui
    finally:
        _stop(process)


def _wait_until_loaded(ui: Ui, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"`retention ui` exited with {process.returncode}:\n{ui.log.read_text()[-3000:]}")
        try:
            json.loads(_get(f"{ui.base}/server_info"))
            entries = ui.graphql("{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }")
            statuses = [entry["loadStatus"] for entry in entries["workspaceOrError"]["locationEntries"]]
            if statuses and all(status == "LOADED" for status in statuses):
                return
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the Dagster UI did not answer within {START_TIMEOUT}s:\n{ui.log.read_text()[-3000:]}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def browser(chromium, ui):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def outside_requests() -> list[str]:
    """Every address a page asked for that is not the local webserver (a compliance tool calls out to no one)."""
    return []


@pytest.fixture
def page(browser, ui, outside_requests):
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    opened = context.new_page()
    opened.set_default_timeout(30_000)
    opened.on("request", lambda request: None if request.url.startswith((ui.base, "data:", "blob:"))
              else outside_requests.append(request.url))
    yield opened
    context.close()


def _open(page, ui: Ui, path: str) -> None:
    """Open a page of the UI; the first visit on a home shows the community dialog, which a user skips."""
    first_visit = ui.graphql("{ shouldShowNux }")["shouldShowNux"]
    page.goto(ui.base + path, wait_until="domcontentloaded")
    if first_visit:
        skip = page.get_by_role("button", name="Skip", exact=True)
        skip.click()
        skip.wait_for(state="detached")
        assert ui.graphql("{ shouldShowNux }")["shouldShowNux"] is False


def _keep(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"ui-{name}.png"
    page.screenshot(path=str(path), full_page=False)
    assert path.is_file() and path.stat().st_size > 20_000, f"{path} is empty or blank"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if name in LEAD_COPIES:
        shutil.copyfile(path, LEAD_COPIES[name])
    print(f"screenshot {name}: {path}")
    return path


_LAYOUT = """() => {
  const nodes = {};
  for (const box of document.querySelectorAll('svg foreignObject')) {
    const label = box.querySelector('[class*="assetName"] [data-tooltip]') || box.querySelector('[data-tooltip]');
    if (!label) continue;
    nodes[label.getAttribute('data-tooltip')] = {x: +box.getAttribute('x'), y: +box.getAttribute('y'),
      width: +box.getAttribute('width'), height: +box.getAttribute('height'),
      text: (box.querySelector('div') || box).innerText};
  }
  const edges = [];
  for (const path of document.querySelectorAll('svg path[marker-end]')) {
    const numbers = (path.getAttribute('d').match(/-?[0-9]+(?:[.][0-9]+)?/g) || []).map(Number);
    if (numbers.length >= 4) edges.push({x1: numbers[0], y1: numbers[1],
                                         x2: numbers[numbers.length - 2], y2: numbers[numbers.length - 1]});
  }
  return {nodes, edges};
}"""


def _edges_between(layout: dict[str, Any]) -> set[tuple[str, str]]:
    """Name each drawn edge by the nodes it leaves (right side) and enters (left side)."""
    def node_at(x: float, y: float, side: str) -> str | None:
        for name, box in layout["nodes"].items():
            edge_x = box["x"] + box["width"] if side == "right" else box["x"]
            if abs(edge_x - x) <= 12 and box["y"] <= y <= box["y"] + box["height"]:
                return name
        return None

    found = set()
    for edge in layout["edges"]:
        source, target = node_at(edge["x1"], edge["y1"], "right"), node_at(edge["x2"], edge["y2"], "left")
        if source and target:
            found.add((source, target))
    return found


def test_the_lineage_shows_the_backup_upstream_of_the_delete(page, ui, outside_requests, tmp_path):
    _open(page, ui, LINEAGE_PATH)
    graph = page.locator("svg foreignObject")
    for name in ("deletion_plan", "contact_backups", "applied_deletions"):
        node = graph.filter(has=page.locator(f'[data-tooltip="{name}"]'))
        node.get_by_text("Materialized", exact=True).wait_for()
    page.get_by_text("Loading...").first.wait_for(state="detached")

    layout = page.evaluate(_LAYOUT)
    backups = page.locator('svg foreignObject [data-tooltip="contact_backups"]').bounding_box()
    deletions = page.locator('svg foreignObject [data-tooltip="applied_deletions"]').bounding_box()
    _keep(page, tmp_path, "lineage")

    assert {"deletion_plan", "contact_backups", "applied_deletions"} <= set(layout["nodes"])
    edges = _edges_between(layout)
    assert ("contact_backups", "applied_deletions") in edges, edges
    assert ("deletion_plan", "contact_backups") in edges, edges
    assert ("applied_deletions", "contact_backups") not in edges
    assert backups["x"] + backups["width"] < deletions["x"], "the backup is drawn before (left of) the delete"
    assert "1 / 1 Passed" in layout["nodes"]["contact_backups"]["text"]
    assert outside_requests == []


def test_the_graphql_api_says_the_same_about_the_lineage(ui):
    data = ui.graphql("""{ assetNodes { assetKey { path } dependencyKeys { path } dependedByKeys { path } } }""")
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}

    def names(node: str, field: str) -> set[str]:
        return {"/".join(key["path"]) for key in nodes[node][field]}

    assert names("applied_deletions", "dependencyKeys") == {"contact_backups"}
    assert "applied_deletions" in names("contact_backups", "dependedByKeys")
    assert names("contact_backups", "dependencyKeys") == {"deletion_plan"}
    assert names("purged_contacts", "dependencyKeys") >= {"applied_deletions"}


def _check_rows(page, names: list[str]) -> dict[str, dict[str, Any]]:
    return page.evaluate("""(names) => Object.fromEntries(names.map((name) => {
        const label = [...document.querySelectorAll('[title]')].find((el) => el.getAttribute('title') === name);
        if (!label) return [name, null];
        const row = label.closest('[class*="checkRow"]') || label.parentElement.parentElement;
        return [name, {text: row.innerText,
                       icons: [...row.querySelectorAll('[aria-label]')].map((el) => el.getAttribute('aria-label'))}];
    }))""", names)


def test_the_nine_invariant_checks_show_as_succeeded(page, ui, outside_requests, tmp_path):
    _open(page, ui, CHECKS_PATH)
    page.get_by_text(f"Checks ({len(INVARIANTS)})").wait_for()
    for name in INVARIANTS:
        page.locator(f'[title="{name}"]').first.wait_for()
    page.locator('[title="purge_ran"]').first.click()
    page.get_by_text("no deleted contact is past the 60-day restore window").first.wait_for()
    page.get_by_text("Passed", exact=True).first.wait_for()

    rows = _check_rows(page, list(INVARIANTS))
    _keep(page, tmp_path, "checks")

    assert {name: row is not None for name, row in rows.items()} == {name: True for name in INVARIANTS}
    for name, row in rows.items():
        assert "Succeeded" in row["text"], (name, row["text"])
        assert "check_circle" in row["icons"], (name, row["icons"])
    assert outside_requests == []


def test_the_blocking_backup_check_shows_as_succeeded(page, ui, tmp_path):
    _open(page, ui, BACKUP_CHECKS_PATH)
    page.locator(f'[title="{BACKUP_CHECK}"]').first.wait_for()
    page.get_by_text("blocking", exact=True).first.wait_for()

    [row] = _check_rows(page, [BACKUP_CHECK]).values()
    _keep(page, tmp_path, "backup-check")

    assert row and "Succeeded" in row["text"] and "check_circle" in row["icons"]
    assert "This is a blocking asset check." in page.inner_text("body")


def test_the_graphql_api_has_the_passed_evaluations_of_the_demo_run(ui):
    query = """query ($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) { assetKey { path }
        assetChecksOrError { ... on AssetChecks { checks { name blocking
            executionForLatestMaterialization { runId status evaluation { success } } } } } } }"""
    data = ui.graphql(query, keys=[{"path": ["retention_invariants"]}, {"path": ["contact_backups"]}])
    checks = {check["name"]: (node["assetKey"]["path"], check) for node in data["assetNodes"]
              for check in node["assetChecksOrError"]["checks"]}

    assert set(checks) == {*INVARIANTS, BACKUP_CHECK}
    for name, (asset, check) in checks.items():
        assert asset == (["contact_backups"] if name == BACKUP_CHECK else ["retention_invariants"])
        assert check["blocking"] is (name == BACKUP_CHECK)
        execution = check["executionForLatestMaterialization"]
        assert execution == {"runId": ui.run_id, "status": "SUCCEEDED", "evaluation": {"success": True}}, name
    history = ui.graphql("""{ assetCheckExecutions(assetKey: {path: ["retention_invariants"]}, checkName: "purge_ran",
        limit: 10) { runId status evaluation { success description } } }""")["assetCheckExecutions"]
    assert history == [{"runId": ui.run_id, "status": "SUCCEEDED", "evaluation": {
        "success": True, "description": "no deleted contact is past the 60-day restore window"}}]
    runs = ui.graphql("""{ runsOrError { ... on Runs { results { runId jobName status } } } }""")
    assert {"runId": ui.run_id, "jobName": "compliance_job", "status": "SUCCESS"} in runs["runsOrError"]["results"]
