"""Keyed hashes (HMAC-SHA256) of erased people's identifiers, computed set-based in DuckDB SQL."""

from __future__ import annotations

import hashlib
import hmac

import duckdb

_BLOCK = 64
SQL_FUNCTION = "retention_keyed_hash"


class KeyedHasher:
    """HMAC-SHA256 under the home's secret, as Python and as a DuckDB SQL function (same result).

    The key's pads reach DuckDB as session variables set through query parameters, and the SQL function is a macro
    that reads them: no query text ever carries key material, so no binder error, log line or Dagster event can
    echo it.
    """

    def __init__(self, secret: bytes):
        if len(secret) > _BLOCK:
            secret = hashlib.sha256(secret).digest()
        padded = secret.ljust(_BLOCK, b"\0")
        self._secret = secret
        self._inner = bytes(b ^ 0x36 for b in padded)
        self._outer = bytes(b ^ 0x5C for b in padded)

    def hash(self, kind: str, value: str) -> str:
        """The keyed hash of one identifier of the given kind (contact_id, email or phone), already normalised."""
        return hmac.new(self._secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    def register(self, con: duckdb.DuckDBPyConnection) -> KeyedHasher:
        """Make `retention_keyed_hash(kind, value)` available on this connection under this hasher's key.

        Args:
            con: the store connection the hashing queries will run on.

        Returns:
            This hasher, so that `KeyedHasher(secret).register(con)` reads as one step.
        """
        con.execute("SET VARIABLE retention_hmac_inner = ?", [self._inner])
        con.execute("SET VARIABLE retention_hmac_outer = ?", [self._outer])
        con.execute(
            f"CREATE OR REPLACE TEMP MACRO {SQL_FUNCTION}(kind, v) AS CASE WHEN v IS NULL THEN NULL ELSE "
            "sha256(getvariable('retention_hmac_outer') || "
            "unhex(sha256(getvariable('retention_hmac_inner') || encode(kind || ':' || v)))) END")
        return self

    def sql(self, kind: str, expression: str) -> str:
        """A SQL expression giving hash(kind, expression) for every row, NULL where the value is NULL.

        The connection that runs it must have been through `register` (the functions that hash do so themselves).
        """
        if kind not in ("contact_id", "email", "phone"):
            raise ValueError(f"unknown identifier kind {kind!r} (allowed: contact_id, email, phone)")
        return f"{SQL_FUNCTION}('{kind}', {expression})"
