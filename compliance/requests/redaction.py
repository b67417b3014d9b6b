"""Redaction of free text and requester ids before they are stored or audited, so no record can poison the trail."""

from __future__ import annotations

import re

from compliance.evidence.audit import personal_data_kind

# What a parse or refusal message quotes (repr of a value, or a value in double quotes).
_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")
# An email written anywhere in a sentence: the audit refuses the whole text for it.
_EMAIL = re.compile(r"[^\s'\"<>(),;:]*@[^\s'\"<>(),;:]*\.[^\s'\"<>(),;:]*")
# A phone in a sentence written with its country code; bare digit runs (dates, counts) are left alone.
_PHONE = re.compile(r"(?<![\w-])\+\d[\d\s\-().]{5,}\d")
WITHHELD_TEXT = "[withheld: it looked like an email or phone]"
STAFF_ID_PREFIX = "user_id:"


def _placeholder(kind: str) -> str:
    return f"[redacted {kind}]"


def redact_text(text: str | None) -> str | None:
    """A message or reason with every quoted value, email or phone number that looks like personal data replaced.

    Args:
        text: a one-line reason (a parse error, a refusal), possibly quoting what a request file held.

    Returns:
        The text with `[redacted email]` / `[redacted phone]` in place of such values; WITHHELD_TEXT when what
        remains would still look like an email or phone as a whole; None for None.
    """
    if text is None:
        return None

    def quoted(match: re.Match) -> str:
        value = match.group(1) if match.group(1) is not None else match.group(2)
        kind = personal_data_kind(value)
        return _placeholder(kind) if kind else match.group(0)

    def phone(match: re.Match) -> str:
        return _placeholder("phone") if personal_data_kind(match.group(0)) == "phone" else match.group(0)

    redacted = _EMAIL.sub(_placeholder("email"), _QUOTED.sub(quoted, text))
    redacted = _PHONE.sub(phone, redacted)
    return WITHHELD_TEXT if personal_data_kind(redacted) else redacted


def audited_requester(requester: str | None, staff_ids: set[str]) -> str | None:
    """How a requester is written in the audit trail: a staff user_id as it is, prefixed with STAFF_ID_PREFIX when
    it would look like a phone (a CRM's numeric owner id); anything else that looks like personal data withheld.

    Args:
        requester: the recorded requester (a staff user_id, or a placeholder for an unknown one).
        staff_ids: the user_ids the staff table knows.

    Returns:
        A value the audit trail accepts.
    """
    if requester is None or not personal_data_kind(requester):
        return requester
    if requester.strip() in staff_ids:
        return STAFF_ID_PREFIX + requester.strip()
    return WITHHELD_TEXT
