"""Keyed hashes (HMAC-SHA256) of erased people's identifiers, computed set-based in DuckDB SQL."""

from __future__ import annotations

import hashlib
import hmac

_BLOCK = 64


class KeyedHasher:
    """HMAC-SHA256 under the home's secret, as Python and as a DuckDB SQL expression (same result)."""

    def __init__(self, secret: bytes):
        if len(secret) > _BLOCK:
            secret = hashlib.sha256(secret).digest()
        padded = secret.ljust(_BLOCK, b"\0")
        self._secret = secret
        self._inner = bytes(b ^ 0x36 for b in padded).hex()
        self._outer = bytes(b ^ 0x5C for b in padded).hex()

    def hash(self, kind: str, value: str) -> str:
        """The keyed hash of one identifier of the given kind (contact_id, email or phone), already normalised."""
        return hmac.new(self._secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    def sql(self, kind: str, expression: str) -> str:
        """A SQL expression giving hash(kind, expression) for every row, NULL where the value is NULL."""
        message = f"encode('{kind}:' || {expression})"
        inner = f"unhex(sha256(unhex('{self._inner}') || {message}))"
        return f"CASE WHEN {expression} IS NULL THEN NULL ELSE sha256(unhex('{self._outer}') || {inner}) END"
