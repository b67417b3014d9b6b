"""`retention ui`: the Dagster webserver and daemon as supervised child processes, stopped together."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from compliance.home import Home

WORKSPACE_FILE = "workspace.yaml"
# The definitions every process loads; the workspace file names this module, not a path, so it works installed.
DEFINITIONS_MODULE = "pipelines.definitions"
STOP_GRACE_SECONDS = 6.0
KILL_WAIT_SECONDS = 3.0
POLL_SECONDS = 0.2
SUPERVISED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass
class Child:
    """One supervised process: the leader of its own process group, so its code servers stop with it."""

    name: str
    process: subprocess.Popen

    def exited(self) -> bool:
        return self.process.poll() is not None

    def group_alive(self) -> bool:
        """Whether any process of the group (the child or a code server it started) is still there."""
        self.process.poll()
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)


def write_workspace(home: Home) -> Path:
    """The workspace file both processes load: the one Definitions module, as a python_module location."""
    home.dagster_home.mkdir(parents=True, exist_ok=True)
    path = home.dagster_home / WORKSPACE_FILE
    path.write_text(f"load_from:\n  - python_module: {DEFINITIONS_MODULE}\n")
    return path


def commands(home: Home, *, host: str, port: int, webserver: bool = True, daemon: bool = True
             ) -> dict[str, list[str]]:
    """The command lines of the processes to start, by name.

    Args:
        home: the retention home (its Dagster instance and workspace file).
        host: the webserver's interface.
        port: the webserver's port.
        webserver: start the webserver.
        daemon: start the daemon (the schedule and the request sensor).

    Returns:
        {"webserver": [...], "daemon": [...]} with the selected entries.
    """
    workspace = str(write_workspace(home))
    selected = {}
    if webserver:
        selected["webserver"] = [sys.executable, "-m", "dagster_webserver", "-w", workspace, "-h", host,
                                 "-p", str(port)]
    if daemon:
        selected["daemon"] = [sys.executable, "-m", "dagster._daemon", "run", "-w", workspace]
    return selected


def environment(home: Home) -> dict[str, str]:
    """The children's environment: the home's Dagster instance and the home itself."""
    return {**os.environ, "DAGSTER_HOME": str(home.dagster_home), "RETENTION_HOME": str(home.root)}


def supervise(home: Home, *, host: str, port: int, webserver: bool = True, daemon: bool = True,
              say: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True)) -> int:
    """Start the webserver and/or the daemon and watch them until a signal or one of them ends.

    Each child leads its own process group (same session as this process), so stopping a group stops the code
    servers the child started: `dagster dev` left those running for half a minute after SIGTERM. On SIGTERM,
    SIGINT or SIGHUP every group gets SIGTERM, then SIGKILL after STOP_GRACE_SECONDS.

    Args:
        home: the retention home.
        host: the webserver's interface.
        port: the webserver's port.
        webserver: start the webserver.
        daemon: start the daemon.
        say: where status lines go (stderr).

    Returns:
        0 after a stop by signal, 1 when a child ended on its own (the other is stopped too).
    """
    stop_requested: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: stop_requested.append(signum))
                for signum in SUPERVISED_SIGNALS}
    children: list[Child] = []
    try:
        env = environment(home)
        for name, command in commands(home, host=host, port=port, webserver=webserver, daemon=daemon).items():
            children.append(Child(name, subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                                                         process_group=0)))
        ended = _watch(children, stop_requested)
        if ended is not None:
            say(f"retention ui: the {ended.name} exited with code {ended.process.returncode}; stopping "
                + (", ".join(c.name for c in children if c is not ended) or "nothing else"))
        stop(children)
        return 1 if ended is not None else 0
    finally:
        stop(children)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _watch(children: list[Child], stop_requested: list[int]) -> Child | None:
    """Wait for a stop signal (None) or for the first child to end (that child)."""
    while not stop_requested:
        for child in children:
            if child.exited():
                return child
        time.sleep(POLL_SECONDS)
    return None


def stop(children: list[Child], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM every child's process group, then SIGKILL what is left after `grace` seconds; reap the children."""
    live = [child for child in children if child.group_alive()]
    for child in live:
        child.signal_group(signal.SIGTERM)
    for limit, then in ((grace, signal.SIGKILL), (KILL_WAIT_SECONDS, None)):
        deadline = time.monotonic() + limit
        while live and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            live = [child for child in live if child.group_alive()]
        if then is not None:
            for child in live:
                child.signal_group(then)
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(timeout=1)
