"""A local stand-in for HighLevel's API (version 2021-07-28), for tests only: what the connector calls, nothing more.

Bearer-token and `Version` header checks; paged `GET /contacts/` per `locationId` with `startAfter`/`startAfterId`
and `meta`; `GET /users/`; `GET /workflows/`; the per-contact notes, tasks and conversations; `DELETE
/contacts/{id}` answering 200 `{"succeded": true}` or 404. Fault switches: 429 with `Retry-After`, one 500, 401,
and a gate that holds DELETEs after a given count. Every request is logged with a timestamp from `clock`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

API_VERSION = "2021-07-28"


@dataclass
class Logged:
    at: float
    method: str
    path: str
    location_id: str | None
    status: int
    contact_id: str | None = None


@dataclass
class Faults:
    """Switches: the next `too_many` requests get 429 with Retry-After; `server_error_once` one 500; 401s."""

    too_many: int = 0
    retry_after: str = "2"
    server_error_once: bool = False
    unauthorized: bool = False
    unauthorized_after: int | None = None
    hold_deletes_after: int | None = None


@dataclass
class StandIn:
    """The stand-in's data and state; `base_url` once started."""

    token: str
    contacts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    users: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    workflows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    notes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    tasks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    conversations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    faults: Faults = field(default_factory=Faults)
    log: list[Logged] = field(default_factory=list)
    deleted: set[str] = field(default_factory=set)
    released: threading.Event = field(default_factory=threading.Event)
    base_url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def location_of(self, contact_id: str) -> str | None:
        return next((loc for loc, rows in self.contacts.items() if any(c["id"] == contact_id for c in rows)), None)

    def live_contacts(self, location_id: str) -> list[dict[str, Any]]:
        rows = [c for c in self.contacts.get(location_id, []) if c["id"] not in self.deleted]
        return sorted(rows, key=lambda c: (_millis(c), c["id"]))

    def deletes(self, status: int | None = None) -> list[Logged]:
        return [e for e in self.log if e.method == "DELETE" and (status is None or e.status == status)]


def _millis(contact: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(contact["dateAdded"].replace("Z", "+00:00")).timestamp() * 1000)


class _Handler(BaseHTTPRequestHandler):
    server_version = "HighLevelStandIn/1"
    state: StandIn

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        self._serve("GET")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        state = self.state
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        contact_id = parts[1] if parts[0] == "contacts" and len(parts) > 1 and parts[1] else None
        location_id = query.get("locationId") or (state.location_of(contact_id) if contact_id else None)
        if method == "DELETE" and state.faults.hold_deletes_after is not None and \
                len(state.deletes()) >= state.faults.hold_deletes_after:
            state.released.wait(30)
        with state._lock:
            status, body, headers = self._answer(method, parts, query, contact_id)
            state.log.append(Logged(state.clock(), method, url.path, location_id, status, contact_id))
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _answer(self, method: str, parts: list[str], query: dict[str, str],
                contact_id: str | None) -> tuple[int, Any, dict[str, str]]:
        state, faults = self.state, self.state.faults
        if faults.unauthorized or (faults.unauthorized_after is not None
                                   and len(state.log) >= faults.unauthorized_after) or \
                self.headers.get("Authorization") != f"Bearer {state.token}":
            return 401, {"statusCode": 401, "message": "Invalid JWT"}, {}
        if self.headers.get("Version") != API_VERSION:
            return 400, {"statusCode": 400, "message": "Version header is missing or wrong"}, {}
        if faults.too_many:
            faults.too_many -= 1
            return 429, {"statusCode": 429, "message": "Too many requests"}, {"Retry-After": faults.retry_after}
        if faults.server_error_once:
            faults.server_error_once = False
            return 500, {"statusCode": 500, "message": "Internal server error"}, {}
        if method == "DELETE" and parts[0] == "contacts" and contact_id and len(parts) == 2:
            if state.location_of(contact_id) is None or contact_id in state.deleted:
                return 404, {"statusCode": 404, "message": "Contact not found"}, {}
            state.deleted.add(contact_id)
            return 200, {"succeded": True}, {}
        if method == "GET" and parts == ["contacts"]:
            return 200, self._contacts_page(query), {}
        if method == "GET" and len(parts) == 3 and parts[0] == "contacts" and parts[2] in ("notes", "tasks"):
            return 200, {parts[2]: getattr(state, parts[2]).get(contact_id, [])}, {}
        if method == "GET" and parts[:2] == ["conversations", "search"]:
            rows = state.conversations.get(query.get("contactId", ""), [])
            return 200, {"conversations": rows, "total": len(rows)}, {}
        if method == "GET" and parts[0] in ("users", "workflows") and "locationId" in query:
            return 200, {parts[0]: getattr(state, parts[0]).get(query["locationId"], [])}, {}
        return 404, {"statusCode": 404, "message": "Not found"}, {}

    def _contacts_page(self, query: dict[str, str]) -> dict[str, Any]:
        location_id = query["locationId"]
        limit = min(100, int(query.get("limit", 20)))
        rows = self.state.live_contacts(location_id)
        if "startAfterId" in query:
            after = (int(float(query.get("startAfter", 0))), query["startAfterId"])
            rows = [c for c in rows if (_millis(c), c["id"]) > after]
        page, more = rows[:limit], len(rows) > limit
        last = page[-1] if page else None
        return {"contacts": page, "meta": {
            "total": len(self.state.live_contacts(location_id)),
            "startAfterId": last["id"] if more else None, "startAfter": _millis(last) if more else None,
            "nextPageUrl": None, "currentPage": None, "nextPage": None, "prevPage": None}}


def start(state: StandIn) -> tuple[ThreadingHTTPServer, StandIn]:
    """Serve `state` on 127.0.0.1 on a free port, in a daemon thread; stop with `server.shutdown()`."""
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, state


def make_contact(contact_id: str, location_id: str, n: int, **extra: Any) -> dict[str, Any]:
    """One contact as HighLevel returns it."""
    return {"id": contact_id, "locationId": location_id, "firstName": f"First{n}", "lastName": f"Last{n}",
            "email": f"person{n}@example.com", "phone": f"+1555100{n:04d}", "tags": ["lead"], "dnd": False,
            "dateAdded": f"2025-01-01T00:{n // 60 % 60:02d}:{n % 60:02d}.000Z",
            "dateUpdated": "2025-06-01T00:00:00.000Z", "customFields": [], **extra}


class FakeClock:
    """Time that passes only when someone sleeps: the client's waits and the stand-in's log share it."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += max(0.0, seconds)
