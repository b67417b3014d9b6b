"""The session fixture of a throwaway PostgreSQL cluster (benchmarks.postgres starts and stops it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks.postgres import PostgresServer, start_cluster, stop_cluster

__all__ = ["PostgresServer", "postgres_server"]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session; the tests using it skip, saying why, when none can be started."""
    server, reason = start_cluster()
    if server is None:
        pytest.skip(reason)
    try:
        yield server
    finally:
        stop_cluster(server)
