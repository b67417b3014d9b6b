"""A store held by another process: a busy store said at once with a countdown, given up on after the setting's wait,
and one line from the command line naming the holder."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

import compliance.store.connection as store_module
from compliance.store.connection import LOCK_INFO, Store, StoreBusy
from support.cli import run_retention

pytestmark = pytest.mark.e2e


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from compliance.home import Home
    from compliance.store.connection import Store

    con = Store(Home(Path(sys.argv[1]))).connect()
    Path(sys.argv[2]).write_text("holding")
    time.sleep(120)
""")


@pytest.fixture
def held_store(home, tmp_path):
    """A child process holding the home's store open for writing."""
    marker, script = tmp_path / "holding", tmp_path / "holder.py"
    script.write_text(HOLDER)
    child = subprocess.Popen([sys.executable, str(script), str(home.root), str(marker)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert child.poll() is None, child.communicate()[1]
        assert time.monotonic() < deadline, "the holder never opened the store"
        time.sleep(0.05)
    yield child
    child.kill()
    child.wait(timeout=30)


def test_a_busy_store_is_said_at_once_with_a_countdown_then_gives_up_naming_the_holder(home, held_store,
                                                                                      monkeypatch):
    monkeypatch.setattr(store_module, "COUNTDOWN_EVERY_SECONDS", 0.2)
    said: list[str] = []

    with pytest.raises(StoreBusy, match=rf"another run holds the store \(pid {held_store.pid}, command holder\.py"):
        Store(home, lock_timeout=1.0, notify=said.append).connect()

    assert said[0].startswith(f"another run holds the store (pid {held_store.pid}, command holder.py")
    assert "waiting up to 1s" in said[0]
    assert any("s left" in line for line in said[1:])
    info = json.loads((home.store_dir / LOCK_INFO).read_text())
    assert info["pid"] == held_store.pid and (home.store_dir / LOCK_INFO).stat().st_mode & 0o077 == 0


def test_the_wait_for_a_busy_store_is_the_store_wait_seconds_setting(home, held_store):
    home.settings_file.write_text("store_wait_seconds: 0\n")
    said: list[str] = []

    with pytest.raises(StoreBusy, match="after 0s"):
        Store(home, notify=said.append).connect()

    assert said == [said[0]] and "waiting up to 0s" in said[0]


def test_a_command_that_finds_the_store_busy_exits_1_with_one_line_naming_the_holder(home, held_store):
    home.settings_file.write_text("store_wait_seconds: 0\n")

    done = run_retention("status", home=home)

    error = done.stderr.splitlines()
    assert done.returncode == 1
    assert error[0].startswith(f"another run holds the store (pid {held_store.pid}")
    assert error[-1].startswith("retention: busy: another run holds the store") and len(error) == 2
