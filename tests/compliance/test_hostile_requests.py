"""Hostile request files: symlinks and odd files in the inbox, byte offsets after a BOM, control characters shown."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from compliance.requests.parsing import parse_request_file, pending_request_files

REQUEST = {"request_id": "R-1", "kind": "erasure", "regulation": "gdpr", "requested_by": "u-admin-1",
           "received_at": "2026-11-01T09:30:00Z", "confirm": "DELETE", "subjects": [{"contact_id": "c-1"}]}


def parse_within(path: Path, seconds: float = 10.0):
    """parse_request_file, failing the test instead of hanging when it blocks (a FIFO read would)."""
    found = []
    worker = threading.Thread(target=lambda: found.append(parse_request_file(path)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert found, f"parse_request_file({path.name}) blocked"
    return found[0]


def test_the_offset_of_a_bad_byte_counts_the_byte_order_mark(tmp_path):
    data = b"\xef\xbb\xbf" + b'{"request_id": "R-\xff"}'
    path = tmp_path / "r.json"
    path.write_bytes(data)
    bad = data.index(b"\xff")

    error = parse_request_file(path).error

    assert error == f"r.json: not UTF-8 text (byte 0xff at offset {bad})"


def test_a_symlinked_request_file_is_listed_and_refused_without_reading_its_target(tmp_path):
    inbox, outside = tmp_path / "requests", tmp_path / "outside.json"
    inbox.mkdir()
    outside.write_text(json.dumps(REQUEST))
    (inbox / "r.json").symlink_to(outside)

    assert [path.name for path in pending_request_files(inbox)] == ["r.json"]
    result = parse_request_file(inbox / "r.json")

    assert result.requests == ()
    assert result.error.startswith("r.json: ") and "symbolic link" in result.error


def test_a_dangling_symlink_is_listed_and_refused(tmp_path):
    (tmp_path / "gone.csv").symlink_to(tmp_path / "nowhere.csv")

    assert [path.name for path in pending_request_files(tmp_path)] == ["gone.csv"]
    assert "symbolic link" in parse_request_file(tmp_path / "gone.csv").error


def test_a_fifo_is_listed_and_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.json")

    assert [path.name for path in pending_request_files(tmp_path)] == ["pipe.json"]
    result = parse_within(tmp_path / "pipe.json")

    assert result.requests == () and "not a regular file" in result.error


def test_a_symlink_to_a_folder_named_like_a_request_file_is_refused_too(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "dir.json").symlink_to(tmp_path / "real", target_is_directory=True)

    assert [path.name for path in pending_request_files(tmp_path)] == ["dir.json"]
    assert "symbolic link" in parse_request_file(tmp_path / "dir.json").error
