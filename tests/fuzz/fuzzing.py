"""The fuzzing campaign's shared pieces: its profile (fast, or long with RETENTION_FUZZ=long) and strategies."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

LONG = os.environ.get("RETENTION_FUZZ") == "long"


def profile(fast_examples: int) -> settings:
    """Hypothesis settings: a few examples in the default suite, thousands when RETENTION_FUZZ=long."""
    return settings(max_examples=10 * fast_examples if LONG else fast_examples, deadline=None, derandomize=not LONG,
                    suppress_health_check=list(HealthCheck), database=None)


# Personal values a generator plants; no message may ever quote one.
EMAILS = st.builds(lambda local, n: f"{local}.{n}@victim.example", st.sampled_from(["ann", "bob", "zoë"]),
                   st.integers(100, 999))
PHONES = st.builds(lambda n: f"+1555{n:07d}", st.integers(1_000_000, 9_999_999))
HOSTILE = st.sampled_from([
    "'", '"', "''; DROP TABLE contacts; --", '"; COPY (SELECT 42) TO \'{sentinel}/pwned.csv\'; --',
    "x\" := 1)), (SELECT 1 AS \"y", "\\", "\x00", "\x1b[2J", "\r\n", "\u2028", "\ufeff", "=HYPERLINK(\"x\")",
    "%s%n", "${jndi:x}", "../../etc/passwd", "NaN", "-1", "9" * 30, "2026-13-45T99:99:99Z", "true", "maybe",
    "[1, 2]", "{\"a\": 1}", "é" * 50, "\udcff",
])
TEXT = st.one_of(HOSTILE, st.text(max_size=40), EMAILS, PHONES)


def planted(values: object) -> set[str]:
    """Every email and phone a generated structure holds (recursively), to look for in messages."""
    found: set[str] = set()
    if isinstance(values, str):
        if "@victim.example" in values or values.startswith("+1555"):
            found.add(values)
    elif isinstance(values, dict):
        for key, value in values.items():
            found |= planted(key) | planted(value)
    elif isinstance(values, (list, tuple)):
        for value in values:
            found |= planted(value)
    return found
