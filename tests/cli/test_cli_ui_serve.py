"""`retention ui` as a service manager runs it: webserver and daemon supervised, and nothing left after SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from support.cli import run_retention
from support.ports import free_port

# The supervisor as a process: its signals, its children and its exit code.
pytestmark = pytest.mark.e2e

START_TIMEOUT = 120
STOP_LIMIT = 10


def _session_members(session_id: int) -> dict[int, str]:
    """Every live (not zombie) process of a session, by pid, with its command line: the supervisor's whole tree."""
    members = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        state, session = fields[0], int(fields[3])
        if session == session_id and state != "Z":
            members[int(entry.name)] = cmdline
    return members


def _retention(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", *args]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    done = run_retention("init", home=home)
    assert done.returncode == 0, done.stderr
    return home


def _start(home: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    log = home.parent / "ui.log"
    env = {k: v for k, v in os.environ.items() if k not in ("RETENTION_HOME", "DAGSTER_HOME")}
    with log.open("w") as output:
        process = subprocess.Popen(_retention("ui", "--home", str(home), *extra), env=env, stdin=subprocess.DEVNULL,
                                   stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    return process, log


def _wait_for_webserver(process: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, f"retention ui exited with {process.returncode}:\n{log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"the webserver did not answer within {START_TIMEOUT}s:\n{log.read_text()[-3000:]}")


def _kill_session(session_id: int) -> None:
    for pid in _session_members(session_id):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_sigterm_stops_the_webserver_the_daemon_and_their_code_servers_within_ten_seconds(home):
    port = free_port()
    process, log = _start(home, "--port", str(port))
    try:
        _wait_for_webserver(process, port, log)
        running = _session_members(process.pid)
        commands = "\n".join(running.values())
        assert "dagster_webserver" in commands and "dagster._daemon" in commands, commands
        assert "dagster dev" not in commands

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=STOP_LIMIT) == 0
        left = _session_members(process.pid)
    finally:
        _kill_session(process.pid)
        if process.poll() is None:
            process.kill()
    assert left == {}, f"still running after SIGTERM: {left}"
    assert len(running) >= 3, f"expected the supervisor, webserver, daemon and code servers: {running}"


def test_a_child_that_dies_stops_the_other_and_the_command_exits_1(home):
    port = free_port()
    process, log = _start(home, "--port", str(port))
    try:
        _wait_for_webserver(process, port, log)
        [daemon] = [pid for pid, command in _session_members(process.pid).items()
                    if "dagster._daemon" in command and "run" in command.split()]
        os.kill(daemon, signal.SIGKILL)
        assert process.wait(timeout=STOP_LIMIT + 5) == 1
        left = _session_members(process.pid)
    finally:
        _kill_session(process.pid)
        if process.poll() is None:
            process.kill()
    assert left == {}
    assert "the daemon exited with code -9; stopping webserver" in log.read_text()


def test_webserver_only_starts_no_daemon(home):
    port = free_port()
    process, log = _start(home, "--port", str(port), "--webserver-only")
    try:
        _wait_for_webserver(process, port, log)
        commands = "\n".join(_session_members(process.pid).values())
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=STOP_LIMIT) == 0
    finally:
        _kill_session(process.pid)
        if process.poll() is None:
            process.kill()
    assert "dagster_webserver" in commands
    assert "dagster._daemon" not in commands


def test_webserver_only_and_daemon_only_together_are_bad_usage(home):
    result = subprocess.run(_retention("ui", "--home", str(home), "--webserver-only", "--daemon-only"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr
