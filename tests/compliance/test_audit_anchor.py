"""The audit chain anchored in the store: rewritten, cut or truncated logs are caught, and runs refuse to write."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from compliance.evidence.anchor import StoreAuditAnchor, anchored_log, verify_before_writing
from compliance.evidence.audit import GENESIS, AuditError, canonical, entry_hash
from compliance.store.connection import Store
from pipelines import cli
from support.crm import AS_OF, store_contents, write_request, write_snapshot

AT = datetime(2026, 1, 1, 12, tzinfo=UTC)


def write_entries(con, home, n: int = 4):
    log = anchored_log(con, home)
    for i in range(n):
        log.append("bulk_action.applied", AT + timedelta(minutes=i), bulk_action_id=f"ba-{i}")
    return log


def rechain(lines: list[dict]) -> str:
    """The entries renumbered and re-hashed as a forger would, so the chain alone looks intact."""
    prev, out = GENESIS, []
    for seq, entry in enumerate(lines, start=1):
        entry = {**entry, "seq": seq, "prev": prev}
        entry["hash"] = entry_hash(entry)
        prev = entry["hash"]
        out.append(canonical(entry) + "\n")
    return "".join(out)


def test_each_append_moves_the_anchor_to_the_new_head(home, con):
    log = write_entries(con, home)

    assert StoreAuditAnchor(con).read() == log.head() and log.head()[0] == 4
    assert log.verify().ok and log.verify().anchored_entries == 4


@pytest.mark.parametrize("forged_tail, reason", [
    (False, "entries 4 to 4 are missing: the store anchored 4 entries"),
    (True, "the chain was rewritten: entry 4's hash is not the one the store anchored after it was written"),
])
def test_a_dropped_entry_with_the_hashes_recomputed_no_longer_verifies_against_the_anchor(home, con, forged_tail,
                                                                                         reason):
    log = write_entries(con, home)
    entries = log.entries()
    kept = entries[:1] + entries[2:] + ([{**entries[3], "at": "2026-01-01T13:00:00Z"}] if forged_tail else [])
    home.audit_file.write_text(rechain(kept))
    assert anchored_log(con, home).verify().ok is False

    verification = log.verify()

    assert (verification.ok, verification.first_bad_entry, verification.reason) == (False, 4, reason)
    with pytest.raises(AuditError):
        log.append("x", AT)


def test_a_log_cut_short_reports_the_missing_entries(home, con):
    log = write_entries(con, home)
    home.audit_file.write_text("".join(canonical(e) + "\n" for e in log.entries()[:2]))

    verification = log.verify()

    assert not verification.ok and verification.first_bad_entry == 3
    assert verification.reason == "entries 3 to 4 are missing: the store anchored 4 entries"


def test_a_last_line_without_its_newline_is_reported_at_that_line(home, con):
    log = write_entries(con, home)
    home.audit_file.write_text(home.audit_file.read_text().rstrip("\n"))

    verification = log.verify()

    assert not verification.ok and verification.first_bad_entry == 4
    assert "no newline" in verification.reason


def test_entries_written_after_the_last_anchor_by_a_crashed_run_are_accepted_and_anchored(home, con):
    log = write_entries(con, home)
    unanchored = anchored_log(con, home)
    unanchored.anchor = None
    unanchored.append("bulk_action.applied", AT, bulk_action_id="ba-crash")

    verification = verify_before_writing(con, home)

    assert verification.ok and verification.entries == 5
    assert StoreAuditAnchor(con).read() == log.head()


def test_an_intact_log_from_before_anchors_existed_is_adopted(home, con):
    log = write_entries(con, home)
    con.execute("DELETE FROM audit_anchor")

    assert verify_before_writing(con, home).ok
    assert StoreAuditAnchor(con).read() == log.head()


@pytest.mark.parametrize("damage", ["rewritten", "truncated_line"])
def test_a_run_on_a_damaged_log_exits_1_with_one_clear_line_and_changes_nothing(home, capsys, damage):
    write_snapshot(home.snapshots_inbox / "s1")
    write_request(home, "GDPR-1", subjects=[{"contact_id": "c-4"}])
    assert cli.main(["run", "--home", str(home.root), "--as-of", AS_OF]) in (0, 1)
    lines = home.audit_file.read_text().splitlines()
    assert len(lines) >= 2
    if damage == "rewritten":
        entries = [json.loads(line) for line in lines]
        home.audit_file.write_text(rechain(entries[1:]))
    else:
        home.audit_file.write_text("\n".join(lines))
    write_request(home, "GDPR-2", subjects=[{"contact_id": "c-1"}])
    with Store(home).connect(read_only=True) as con:
        before = store_contents(con)
    capsys.readouterr()

    code = cli.main(["run", "--home", str(home.root), "--as-of", "2026-01-02T12:00:00Z"])

    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("retention: refused: the audit log"), err
    assert "retention audit verify" in err[0]
    with Store(home).connect(read_only=True) as con:
        assert store_contents(con) == before
    assert cli.main(["audit", "verify", "--home", str(home.root), "--json"]) == 1
