"""The `retention` command as a user runs it: the installed script, in a subprocess, on a given home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from compliance.home import Home

RETENTION = Path(sys.executable).with_name("retention")
# A user's environment may name another home or Dagster instance; the tests' homes are always given explicitly.
_CLEARED = ("RETENTION_HOME", "DAGSTER_HOME", "RETENTION_DEBUG")


def run_retention(*args: str, home: Path | Home, cwd: Path | None = None, timeout: float = 180,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `retention ARGS --home HOME` and return the finished process (text stdout and stderr).

    Args:
        *args: the command and its options.
        home: the home (a path or a Home).
        cwd: the working folder (default: the home's parent).
        timeout: seconds before the test fails.
        env: extra environment variables.

    Returns:
        The completed process; its return code is the command's exit code.
    """
    root = home.root if isinstance(home, Home) else Path(home)
    environment = {key: value for key, value in os.environ.items() if key not in _CLEARED}
    environment.update(env or {})
    return subprocess.run([str(RETENTION), *args, "--home", str(root)], cwd=cwd or root.parent, env=environment,
                          capture_output=True, text=True, timeout=timeout)
