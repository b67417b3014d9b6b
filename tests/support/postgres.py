"""The session fixture of a throwaway PostgreSQL cluster (benchmarks.postgres starts and stops it), one per xdist
worker: its own folder (named after the worker) and a port from the worker's own block."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks.postgres import PostgresServer, start_cluster, stop_cluster
from support.ports import free_port, worker_name

__all__ = ["PostgresServer", "postgres_server"]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session; the tests using it skip, saying why, when none can be started."""
    server, reason = start_cluster(port=free_port(), label=worker_name())
    if server is None:
        pytest.skip(reason)
    try:
        yield server
    finally:
        stop_cluster(server)
