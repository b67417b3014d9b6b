"""The one normaliser of emails and phones, used at ingest (as SQL over a whole table) and at request intake.

Emails: Unicode NFKC, every kind of whitespace trimmed from both ends, case-folded. Phones: E.164 through the
`phonenumbers` library with a default region for national numbers; a phone it cannot read falls back to its digits.

A phone's match key is the digits of its normalised form: E.164 always starts with `+`, so dropping it loses
nothing, and keys (and the keyed hashes of the suppression list made from them) written before phones were parsed
still match.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import duckdb
import phonenumbers
import pyarrow as pa
from duckdb.func import ARROW, SPECIAL

DEFAULT_REGION = "US"
EMAIL_UDF = "retention_email_key"
PHONE_UDF = "retention_phone"

_NAMES = {"email": EMAIL_UDF, "phone": PHONE_UDF}
_GENERATION = itertools.count(1)
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
# NFKC turns NBSP and the other compatibility spaces into a plain space, but leaves the zero-width characters and
# the byte-order mark, which str.strip() does not treat as whitespace.
_EDGES = re.compile("^[\\s\u200b\u200c\u200d\u2060\ufeff]+|[\\s\u200b\u200c\u200d\u2060\ufeff]+$")
# The SQL fast paths must agree with the Python functions: ASCII text (with ASCII whitespace) needs no NFKC and
# lower() is casefold() on it; a value already in E.164 form is returned as it is by both.
_ASCII_SQL = r"'[\x09-\x0d\x20-\x7e]*'"
_E164_SQL = r"'\+[1-9][0-9]{6,14}'"
_ASCII_SPACE_SQL = "' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)"


def email_key(value: str | None) -> str | None:
    """An email's match key.

    Args:
        value: the email as written (any case, any surrounding whitespace, any Unicode form).

    Returns:
        The NFKC-normalised, trimmed, case-folded email, or None when nothing is left.
    """
    if value is None:
        return None
    key = _EDGES.sub("", unicodedata.normalize("NFKC", value)).casefold()
    return key or None


@lru_cache(maxsize=65_536)
def normalize_phone(value: str | None, region: str = DEFAULT_REGION) -> str | None:
    """A phone in E.164 form, or its digits when it cannot be read as a phone number.

    Args:
        value: the phone as written: international (`+44 20 7946 0018`) or national (`(555) 010-9999`).
        region: the ISO country code for national numbers (settings `default_region`).

    Returns:
        `+<digits>` when parsed, the bare digits when not, None when it holds no digit.
    """
    if value is None:
        return None
    if _E164.fullmatch(value):
        return value
    try:
        number = phonenumbers.parse(value, region)
        if phonenumbers.is_possible_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        pass
    digits = re.sub(r"[^0-9]", "", unicodedata.normalize("NFKC", value))
    return digits or None


def phone_key(value: str | None, region: str = DEFAULT_REGION) -> str | None:
    """A phone's match key: the digits of its normalised form.

    Args:
        value: the phone as written.
        region: the ISO country code for national numbers.

    Returns:
        The digits, or None when the phone holds no digit.
    """
    normalized = normalize_phone(value, region)
    return normalized.lstrip("+") if normalized else None


def is_parsed(normalized: str | None) -> bool:
    """Whether a normalised phone is in E.164 form (True) or fell back to its digits (False)."""
    return normalized is not None and normalized.startswith("+")


def valid_region(region: str) -> bool:
    """Whether `region` is a region code that `phonenumbers` knows (such as US, GB, DE)."""
    return region in phonenumbers.SUPPORTED_REGIONS


def register(con: duckdb.DuckDBPyConnection, region: str = DEFAULT_REGION) -> duckdb.DuckDBPyConnection:
    """Define the SQL functions behind email_key_sql and phone_sql on a connection.

    Both are Arrow UDFs: DuckDB hands them a whole vector, and only the values the SQL fast path did not take.

    Args:
        con: the connection.
        region: the default region for national phone numbers.

    Returns:
        The same connection.
    """
    def emails(values: pa.Array) -> pa.Array:
        return pa.array([email_key(v) for v in values.to_pylist()], type=pa.string())

    def phones(values: pa.Array) -> pa.Array:
        return pa.array([normalize_phone(v, region) for v in values.to_pylist()], type=pa.string())

    # DuckDB refuses to define a function while an earlier statement's result is still open on the connection.
    con.execute("SELECT 1").fetchall()
    for kind, function in (("email", emails), ("phone", phones)):
        with contextlib.suppress(duckdb.InvalidInputException, duckdb.CatalogException):
            con.remove_function(_NAMES[kind])
        try:
            _define(con, _NAMES[kind], function)
        except duckdb.NotImplementedException:
            # A definition made in a transaction that was rolled back (a dry run) is gone from the database but
            # still known to the connection, which then refuses the name: take a new one.
            _NAMES[kind] = f"{_NAMES[kind].rsplit('__', 1)[0]}__{next(_GENERATION)}"
            _define(con, _NAMES[kind], function)
    return con


def _define(con: duckdb.DuckDBPyConnection, name: str, function: Callable[[Any], Any]) -> None:
    con.create_function(name, function, ["VARCHAR"], "VARCHAR", type=ARROW,
                        null_handling=SPECIAL, side_effects=False)


def email_key_sql(expr: str) -> str:
    """SQL for the email_key of `expr` (needs `register` on the connection for non-ASCII values)."""
    return (f"CASE WHEN {expr} IS NULL THEN NULL "
            f"WHEN regexp_full_match({expr}, {_ASCII_SQL}) THEN nullif(lower(trim({expr}, {_ASCII_SPACE_SQL})), '') "
            f"ELSE {_NAMES['email']}({expr}) END")


def phone_sql(expr: str) -> str:
    """SQL for normalize_phone of `expr` (needs `register` on the connection for values not in E.164 form)."""
    return (f"CASE WHEN {expr} IS NULL THEN NULL WHEN regexp_full_match({expr}, {_E164_SQL}) THEN {expr} "
            f"ELSE {_NAMES['phone']}({expr}) END")


def phone_key_sql(expr: str) -> str:
    """SQL for the phone_key of `expr` (needs `register` on the connection)."""
    return f"ltrim({phone_sql(expr)}, '+')"


# The rows of the table contact_keys: the view contact_identifiers (every identifier of every contact, read off the
# contacts table) in the order that lets DuckDB's zone maps find one key's row group.
CONTACT_KEYS_SELECT = "SELECT kind, key, contact_id, is_primary FROM contact_identifiers ORDER BY kind, key"


def rebuild_contact_keys(con: duckdb.DuckDBPyConnection) -> None:
    """Rewrite the table contact_keys from the contacts table, in (kind, key) order (inside the caller's transaction).

    Args:
        con: a writable store connection.
    """
    con.execute("DELETE FROM contact_keys")
    con.execute(f"INSERT INTO contact_keys {CONTACT_KEYS_SELECT}")


_ISO_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}([T ][0-9:.]+)?(Z|[+-]\d{2}:?\d{2})?", re.ASCII)


def could_identify(text: str) -> bool:
    """Whether a bad value may be an email or a phone, so that a message must not quote it.

    Messages about bad input name the file, row and field, and show the value only when it plainly is not an
    identifier (`'maybe' is not a boolean`): no '@', and fewer than seven digits unless it is an ISO date.

    Args:
        text: the value as read.

    Returns:
        True when the value must not be shown.
    """
    if "@" in text or "\uff20" in text:
        return True
    digits = sum(ch.isdigit() for ch in text)
    return digits >= 7 and not _ISO_MOMENT.fullmatch(text.strip())
