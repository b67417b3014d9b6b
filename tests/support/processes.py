"""Child processes killed at a chosen moment: the child touches a marker file there and waits to be killed."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def sigkill_once_marked(child: subprocess.Popen, marker: Path, *, timeout: float, moment: str,
                        poll_seconds: float = 0.02) -> None:
    """Wait until the child has touched `marker`, then SIGKILL it; fail if it ends or takes too long first.

    Args:
        child: the child process (stdout and stderr piped, text).
        marker: the file the child touches at the moment to kill it.
        timeout: seconds to wait for the marker.
        moment: what the marker stands for, for the failure messages ("its delete").
        poll_seconds: how often to look for the marker.
    """
    try:
        deadline = time.monotonic() + timeout
        while not marker.exists():
            if child.poll() is not None:
                raise AssertionError(f"the child ended before {moment} (exit {child.returncode}): "
                                     f"{child.communicate()[1][-2000:]}")
            assert time.monotonic() < deadline, f"the child never reached {moment}"
            time.sleep(poll_seconds)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
