"""The `retention` command on a given home: in this process by default, or as the installed script in a subprocess.

`run_retention` calls `pipelines.cli.main` here, with stdout and stderr captured, the user's RETENTION_HOME,
DAGSTER_HOME and RETENTION_DEBUG cleared, the working folder set, and all of it restored afterwards: it skips the
seconds a new process spends importing Great Expectations and Dagster. `run_retention_process` runs the installed
script; use it only where the process itself is under test (exit codes end to end, signals, SIGKILL, the UI) and mark
the test `e2e`.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import traceback
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from compliance.home import Home

RETENTION = Path(sys.executable).with_name("retention")
# A user's environment may name another home or Dagster instance; the tests' homes are always given explicitly.
_CLEARED = ("RETENTION_HOME", "DAGSTER_HOME", "RETENTION_DEBUG")
# Loggers whose level `main` sets for the whole process; restored after each call.
_LOGGERS = ("dagster", "great_expectations")


def run_retention(*args: str, home: Path | Home, cwd: Path | None = None, timeout: float = 180,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `retention ARGS --home HOME` in this process, as the installed script would in its own.

    Args:
        *args: the command and its options.
        home: the home (a path or a Home).
        cwd: the working folder (default: the home's parent).
        timeout: unused in this process (kept so that a call reads the same as run_retention_process's).
        env: extra environment variables, set for the call only.

    Returns:
        A completed process: its return code is the command's exit code (argparse's usage errors included),
        stdout and stderr what the command printed. An exception escaping `main` gives exit 1 and its traceback on
        stderr, as Python's own handler would.
    """
    del timeout
    root = _root(home)
    return run_main([*args, "--home", str(root)], cwd=cwd or root.parent, env=env)


def run_main(argv: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`pipelines.cli.main(argv)` in this process with captured output, the environment and cwd restored after."""
    from pipelines.cli import main

    saved_environ, saved_cwd = dict(os.environ), os.getcwd()
    saved_levels = {name: logging.getLogger(name).level for name in _LOGGERS}
    out, err = io.StringIO(), io.StringIO()
    try:
        for key in _CLEARED:
            os.environ.pop(key, None)
        os.environ.update(env or {})
        os.chdir(cwd)
        with warnings.catch_warnings(), redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as stop:
                code = _exit_status(stop.code)
            except Exception:  # what `sys.exit(main())` would let escape: Python prints it and exits 1
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_environ)
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)
    return subprocess.CompletedProcess([str(RETENTION), *argv], code, out.getvalue(), err.getvalue())


def run_retention_process(*args: str, home: Path | Home, cwd: Path | None = None, timeout: float = 180,
                          env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `retention ARGS --home HOME` as the installed script in a subprocess (text stdout and stderr).

    Args:
        *args: the command and its options.
        home: the home (a path or a Home).
        cwd: the working folder (default: the home's parent).
        timeout: seconds before the test fails.
        env: extra environment variables.

    Returns:
        The completed process; its return code is the command's exit code.
    """
    root = _root(home)
    environment = {key: value for key, value in os.environ.items() if key not in _CLEARED}
    environment.update(env or {})
    return subprocess.run([str(RETENTION), *args, "--home", str(root)], cwd=cwd or root.parent, env=environment,
                          capture_output=True, text=True, timeout=timeout)


def _root(home: Path | Home) -> Path:
    return home.root if isinstance(home, Home) else Path(home)


def _exit_status(code: object) -> int:
    """The exit status of `sys.exit(code)`: None is 0, an int itself, anything else printed on stderr and 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
