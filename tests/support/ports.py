"""Free TCP ports on 127.0.0.1, each pytest-xdist worker drawing from a block of its own so no two workers collide."""

from __future__ import annotations

import itertools
import os
import socket

# Below Linux's ephemeral range (32768-60999), where bind(("", 0)) and outgoing connections take their ports.
FIRST_PORT = 20_000
BLOCK = 500
_turn = itertools.count()


def worker_index() -> int:
    """This process's pytest-xdist worker number (gw0 is 0); 0 when the tests run in one process."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else 0


def worker_name() -> str:
    """gw0, gw1 ... under pytest-xdist; "main" when the tests run in one process."""
    return os.environ.get("PYTEST_XDIST_WORKER") or "main"


def free_port() -> int:
    """A port nobody listens on now, from this worker's block (the next one each call, wrapping round).

    Raises:
        RuntimeError: every port of the block is taken.
    """
    first = FIRST_PORT + (worker_index() % ((32_768 - FIRST_PORT) // BLOCK)) * BLOCK
    for _ in range(BLOCK):
        port = first + next(_turn) % BLOCK
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in {first}-{first + BLOCK - 1}")
