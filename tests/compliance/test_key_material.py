"""The HMAC key never reaches SQL text, so no SQL error of a run can carry it into logs, events or reports."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb

from compliance import steps
from compliance.clock import parse_as_of
from compliance.home import Home
from compliance.settings import load_settings
from compliance.store.connection import Store
from pipelines import cli
from support.crm import AS_OF, write_request, write_snapshot


def key_material(home: Home) -> list[str]:
    """The secret and the HMAC pads derived from it, as the hex a pasted SQL literal would carry."""
    secret = home.secret()
    if len(secret) > 64:
        secret = hashlib.sha256(secret).digest()
    padded = secret.ljust(64, b"\0")
    return [secret.hex(), bytes(b ^ 0x36 for b in padded).hex(), bytes(b ^ 0x5C for b in padded).hex()]


class RecordingConnection:
    """A store connection that keeps the text of every statement it is asked to run."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self._con, self.statements = con, []

    def execute(self, query, *args, **kwargs):
        self.statements.append(str(query))
        return self._con.execute(query, *args, **kwargs)

    def executemany(self, query, *args, **kwargs):
        self.statements.append(str(query))
        return self._con.executemany(query, *args, **kwargs)

    def sql(self, query, *args, **kwargs):
        self.statements.append(str(query))
        return self._con.sql(query, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._con, name)


def test_no_statement_of_a_daily_run_with_an_erasure_and_a_purge_carries_key_material(home):
    write_snapshot(home.snapshots_inbox / "s1")
    write_request(home, "GDPR-1", subjects=[{"email": "bob@example.com"}, {"contact_id": "c-4"}])
    recording = RecordingConnection(Store(home).connect())
    settings = load_settings(home.settings_file)
    for as_of in (parse_as_of(AS_OF), parse_as_of("2026-03-15T12:00:00Z")):
        ctx = steps.RunContext(connect=lambda: recording, home=home, settings=settings, as_of=as_of, run_id="r")
        for step in steps.DAILY_RUN:
            step.run(ctx)
    recording.close()

    hashed = [text for text in recording.statements if "retention_keyed_hash" in text]
    assert len(hashed) >= 3, "the run hashed nothing: the test would prove nothing"
    leaked = [text for text in recording.statements for hex_text in key_material(home) if hex_text in text.lower()]
    assert leaked == []
    with Store(home).connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM suppression").fetchone()[0] > 0


def test_a_sql_error_in_a_hashing_query_during_an_erasure_leaves_no_key_material_anywhere(home, monkeypatch,
                                                                                       capsys):
    write_snapshot(home.snapshots_inbox / "s1")
    write_request(home, "GDPR-2", subjects=[{"email": "ann.lee@example.com"}])
    real_apply = steps.apply_deletions

    def apply_then_fail_while_hashing(con, **kwargs):
        actions = real_apply(con, **kwargs)
        # DuckDB echoes the failing query's text in a binder error: here, a hashing expression of the erasure.
        con.execute(f"SELECT {kwargs['hasher'].sql('email', 'no_such_column')} FROM contacts")
        return actions

    monkeypatch.setattr(steps, "apply_deletions", apply_then_fail_while_hashing)

    code = cli.main(["run", "--home", str(home.root), "--as-of", AS_OF])

    out = capsys.readouterr()
    assert code == 1 and "retention_keyed_hash('email', no_such_column)" in out.err, out.err
    secrets_hex = key_material(home)
    assert not [h for h in secrets_hex if h in (out.out + out.err).lower()]
    files = [path for path in Path(home.root).rglob("*") if path.is_file() and path != home.secret_file]
    assert any(path.suffix == ".db" for path in files), "the run's Dagster event storage is missing"
    for path in files:
        data = path.read_bytes().lower()
        assert not [h for h in secrets_hex if h.encode() in data], path
