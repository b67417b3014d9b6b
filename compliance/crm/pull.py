"""Pull: the CRM's contacts, users and workflows (and, on request, each contact's notes, tasks and conversations)
written as a new snapshot folder in the HighLevel layout of PRODUCT.md section 5, which the normal ingest reads.

The folder is written under a dot-name (ingest skips those) and renamed when complete, so an interrupted pull
leaves no snapshot behind.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from compliance.crm.client import HighLevelClient
from compliance.home import Home
from compliance.settings import Crm
from compliance.store.files import fsync_path, fsync_tree

PARTIAL_PREFIX = ".pull-"
ASSOCIATED = {"notes": "/contacts/{id}/notes", "tasks": "/contacts/{id}/tasks"}


@dataclass
class PullResult:
    """The snapshot a pull wrote: its id and folder, and how many pages and records of each collection."""

    snapshot_id: str
    folder: Path
    pages: dict[str, int] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)


def snapshot_id_for(as_of: datetime) -> str:
    """A snapshot id that sorts by time after earlier pulls (ingest takes snapshot folders in name order)."""
    return f"{as_of:%Y%m%dT%H%M%SZ}-highlevel"


def pull_snapshot(client: HighLevelClient, home: Home, crm: Crm, *, as_of: datetime, with_associated: bool = False,
                  progress: Callable[[int, int], None] | None = None) -> PullResult:
    """Write one complete snapshot of the CRM's locations into inbox/snapshots, or nothing at all.

    Args:
        client: an open HighLevel client.
        home: the retention home.
        crm: the `crm:` settings (the locations to pull).
        as_of: the run's clock, which names the snapshot.
        with_associated: also pull each contact's notes, tasks and conversations (one request each).
        progress: called with (contacts done, contacts in all) while the associated data is pulled.

    Returns:
        What was written.

    Raises:
        CrmError: the API failed; no snapshot folder is left behind.
        FileExistsError: a snapshot of that id exists already.
    """
    snapshot_id = snapshot_id_for(as_of)
    inbox = home.snapshots_inbox
    inbox.mkdir(parents=True, exist_ok=True)
    final = inbox / snapshot_id
    if final.exists():
        raise FileExistsError(f"snapshot folder {final} exists already: pull again with a later --as-of")
    for stale in inbox.glob(f"{PARTIAL_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    partial = inbox / f"{PARTIAL_PREFIX}{snapshot_id}"
    partial.mkdir()
    result = PullResult(snapshot_id, final)
    try:
        writer = _PageWriter(partial / "highlevel", result)
        contacts = []
        for location_id in crm.location_ids:
            contacts += [(location_id, c["id"]) for c in _pull_contacts(client, crm, location_id, writer)]
            writer.write("users", location_id, client.get_json("/users/", location_id=location_id,
                                                               params={"locationId": location_id}))
            writer.write("workflows", location_id, client.get_json("/workflows/", location_id=location_id,
                                                                   params={"locationId": location_id}))
        if with_associated:
            _pull_associated(client, contacts, writer, progress)
        fsync_tree(partial)
        os.rename(partial, final)
        fsync_path(inbox)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return result


class _PageWriter:
    def __init__(self, root: Path, result: PullResult):
        self.root = root
        self.result = result

    def write(self, collection: str, name: str, page: dict[str, Any]) -> None:
        folder = self.root / collection
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.json").write_text(json.dumps(page))
        self.result.pages[collection] = self.result.pages.get(collection, 0) + 1
        self.result.records[collection] = self.result.records.get(collection, 0) + len(page.get(collection) or [])


def _pull_contacts(client: HighLevelClient, crm: Crm, location_id: str, writer: _PageWriter) -> list[dict]:
    """Every contact of one location, page by page, following `meta.startAfter`/`meta.startAfterId`."""
    contacts: list[dict] = []
    params: dict[str, Any] = {"locationId": location_id, "limit": crm.page_size}
    page_no = 0
    while True:
        page = client.get_json("/contacts/", location_id=location_id, params=params)
        rows = page.get("contacts") or []
        if not rows and page_no:
            return contacts
        page_no += 1
        writer.write("contacts", f"{location_id}-{page_no:05d}", page)
        contacts += rows
        meta = page.get("meta") or {}
        if len(rows) < crm.page_size or not meta.get("startAfterId"):
            return contacts
        params = {**params, "startAfterId": meta["startAfterId"], "startAfter": meta.get("startAfter")}


def _pull_associated(client: HighLevelClient, contacts: list[tuple[str, str]], writer: _PageWriter,
                     progress: Callable[[int, int], None] | None) -> None:
    """Notes, tasks and conversations are per-contact endpoints: one request each, under the rate limit."""
    for done, (location_id, contact_id) in enumerate(contacts, start=1):
        quoted = quote(contact_id, safe="")
        for collection, path in ASSOCIATED.items():
            page = client.get_json(path.format(id=quoted), location_id=location_id)
            writer.write(collection, _file_name(contact_id, done), page)
        page = client.get_json("/conversations/search", location_id=location_id,
                               params={"locationId": location_id, "contactId": contact_id})
        writer.write("conversations", _file_name(contact_id, done), page)
        if progress:
            progress(done, len(contacts))


def _file_name(contact_id: str, number: int) -> str:
    # Contact ids come from the API; a file name is built from them only when they are plain.
    return contact_id if contact_id.replace("-", "").replace("_", "").isalnum() else f"contact-{number:07d}"
