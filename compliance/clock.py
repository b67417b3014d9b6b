"""The run's clock: every date rule takes `as_of` instead of reading the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime

from compliance.errors import InputError


def parse_as_of(text: str) -> datetime:
    """Parse an ISO 8601 timestamp; a naive one is taken as UTC.

    Args:
        text: e.g. 2026-01-01T12:00:00Z or 2026-01-01.

    Returns:
        An aware datetime in UTC.

    Raises:
        InputError: when the text is not ISO 8601.
    """
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InputError(f"--as-of: {text!r} is not an ISO 8601 timestamp (e.g. 2026-01-01T12:00:00Z)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def utc_iso(value: datetime | None, *, zulu: bool = True) -> str | None:
    """The time as ISO 8601 text in UTC, ending in `Z` (or `+00:00` with zulu=False); a naive one is taken as UTC.

    Args:
        value: the time, or None.
        zulu: write the zone as `Z` (the JSON outputs) rather than `+00:00` (backup manifests).

    Returns:
        The text, or None for None.
    """
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    text = value.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z") if zulu else text
