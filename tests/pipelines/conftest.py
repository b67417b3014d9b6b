"""Fixtures the pipelines tests share: the throwaway PostgreSQL server."""

from support.postgres import postgres_server  # noqa: F401 (a session fixture: pytest finds it in this conftest)
