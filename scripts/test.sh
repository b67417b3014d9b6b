#!/usr/bin/env bash
# Sets up the project in .venv and runs the whole test suite (the README's second command; CI runs it too).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e '.[dev]'
# The Dagster UI browser test drives Debian's Chromium; install it when missing and we may.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "chromium could not be installed: the browser test will be skipped" >&2
fi
# The production-instance tests start a throwaway PostgreSQL cluster; Debian's server is installed when missing.
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
    || echo "postgresql could not be installed: the PostgreSQL instance tests will be skipped" >&2
fi
# Static checks first (ruff, mypy; configured in pyproject.toml): a finding fails the command before any test runs.
.venv/bin/ruff check .
.venv/bin/python -m mypy
# The whole suite on every core (pytest-xdist): a module's tests stay on one worker, so its module-scoped fixtures
# are built once; each worker has its own session fixtures (temporary folders, PostgreSQL cluster, ports, browser).
# Arguments are passed on to pytest (a later -n or -m wins). The 15 slowest tests are listed at the end.
exec .venv/bin/python -m pytest -n auto --dist loadscope --durations=15 "$@"
