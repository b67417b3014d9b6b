"""The HighLevel API client: bearer token from the environment, API version header, rate limit and retries.

HighLevel's public reference (API version 2021-07-28) is what this follows: `Authorization: Bearer <token>` and
`Version: 2021-07-28` on every call, `GET /contacts/?locationId=&limit=&startAfter=&startAfterId=` paged by the
`meta` of each page, `GET /users/?locationId=`, `GET /workflows/?locationId=`, and `DELETE /contacts/{contactId}`
answering `{"succeded": true}`.
"""

from __future__ import annotations

import email.utils
import os
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import tenacity

from compliance.errors import InputError
from compliance.settings import Crm

API_VERSION = "2021-07-28"
WINDOW_SECONDS = 10.0
RETRYABLE = frozenset({429, 500, 502, 503, 504})


class CrmError(Exception):
    """The CRM could not be used; the message names the problem and never holds the token or a response body."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class CrmAuthError(CrmError):
    """The CRM refused the token (401/403): nothing more is sent in this run."""


class _Retryable(Exception):
    def __init__(self, response: httpx.Response):
        super().__init__(f"HTTP {response.status_code}")
        self.status = response.status_code
        self.retry_after = _retry_after_seconds(response.headers.get("Retry-After"))


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@dataclass
class Clock:
    """Where the client reads the time and how it waits: real by default, a fake one in tests."""

    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


@dataclass
class RateLimiter:
    """At most `limit` requests per location in any window of `window` seconds (a sliding log of send times)."""

    limit: int
    clock: Clock = field(default_factory=Clock)
    window: float = WINDOW_SECONDS
    _sent: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def acquire(self, key: str) -> None:
        """Wait until one more request for `key` keeps every window within the limit, and count it."""
        with self._lock:
            sent = self._sent[key]
            while True:
                now = self.clock.now()
                while sent and sent[0] <= now - self.window:
                    sent.popleft()
                if len(sent) < self.limit:
                    sent.append(now)
                    return
                self.clock.sleep(sent[0] + self.window - now)


def token_from_env(crm: Crm) -> str:
    """The API token, from the environment variable the settings name (never from a file or the run config).

    Args:
        crm: the `crm:` settings.

    Returns:
        The token.

    Raises:
        InputError: the variable is unset or empty (named, its value never shown).
    """
    token = os.environ.get(crm.token_env, "").strip()
    if not token:
        raise InputError(f"settings.yaml: crm.token_env: the environment variable {crm.token_env} is not set "
                         "(export the HighLevel Private Integration token in it)")
    return token


class HighLevelClient:
    """One HighLevel API session: every request rate-limited per location and retried on 429 and 5xx."""

    def __init__(self, crm: Crm, token: str, *, clock: Clock | None = None,
                 transport: httpx.BaseTransport | None = None):
        self.crm = crm
        self.clock = clock or Clock()
        self.limiter = RateLimiter(crm.requests_per_10s, self.clock)
        self._http = httpx.Client(base_url=crm.base_url, timeout=30.0, transport=transport,
                                  headers={"Authorization": f"Bearer {token}", "Version": API_VERSION,
                                           "Accept": "application/json"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HighLevelClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wait(self, state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _Retryable) and error.retry_after is not None:
            return error.retry_after
        return min(30.0, 0.5 * 2 ** (state.attempt_number - 1))

    def request(self, method: str, path: str, *, location_id: str, params: dict[str, Any] | None = None,
                ok_statuses: frozenset[int] = frozenset()) -> httpx.Response:
        """Send one request, retried on 429/5xx and network errors (honouring `Retry-After`), rate-limited.

        Args:
            method: HTTP method.
            path: the path under the base URL.
            location_id: the location whose rate limit the request counts against.
            params: query parameters.
            ok_statuses: non-2xx statuses returned to the caller rather than raised (e.g. 404 for a DELETE).

        Returns:
            The response (2xx or one of `ok_statuses`).

        Raises:
            CrmAuthError: 401 or 403.
            CrmError: any other failure after the retries, naming the method, path and HTTP status.
        """
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type((_Retryable, httpx.TransportError)),
            stop=tenacity.stop_after_attempt(self.crm.max_retries + 1), wait=self._wait, sleep=self.clock.sleep,
            reraise=True)
        try:
            for attempt in retrying:
                with attempt:
                    self.limiter.acquire(location_id)
                    response = self._http.request(method, path, params=params)
                    if response.status_code in RETRYABLE:
                        raise _Retryable(response)
        except _Retryable as exc:
            raise CrmError(f"HighLevel {method} {path}: HTTP {exc.status} after {self.crm.max_retries + 1} "
                           "attempts", exc.status) from None
        except httpx.TransportError as exc:
            raise CrmError(f"HighLevel {method} {path}: {type(exc).__name__} after {self.crm.max_retries + 1} "
                           "attempts") from None
        if response.status_code in (401, 403):
            raise CrmAuthError(
                f"HighLevel refused the token from ${self.crm.token_env} (HTTP {response.status_code} on {method} "
                f"{path}): check that it is a valid Private Integration token of the location with the contacts, "
                "users and workflows scopes", response.status_code)
        if response.is_success or response.status_code in ok_statuses:
            return response
        raise CrmError(f"HighLevel {method} {path}: HTTP {response.status_code}", response.status_code)

    def get_json(self, path: str, *, location_id: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET a JSON document (see `request`)."""
        response = self.request("GET", path, location_id=location_id, params=params)
        try:
            document = response.json()
        except ValueError:
            raise CrmError(f"HighLevel GET {path}: the answer is not JSON") from None
        if not isinstance(document, dict):
            raise CrmError(f"HighLevel GET {path}: expected a JSON object")
        return document

    def delete_contact(self, contact_id: str, *, location_id: str) -> int:
        """DELETE /contacts/{contactId}; returns the HTTP status (2xx, or 404 when already gone)."""
        return self.request("DELETE", f"/contacts/{quote(contact_id, safe='')}", location_id=location_id,
                            ok_statuses=frozenset({404})).status_code


def open_client(crm: Crm, *, clock: Clock | None = None,
                transport: httpx.BaseTransport | None = None) -> HighLevelClient:
    """A client for the configured CRM, with the token from its environment variable (see `token_env`)."""
    return HighLevelClient(crm, token_from_env(crm), clock=clock, transport=transport)
