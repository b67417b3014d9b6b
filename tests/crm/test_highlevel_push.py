"""HighLevel push: the outbox sends each deleted contact's DELETE once, rate-limited, retried, crash-safe."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
import yaml

from compliance.crm.client import CrmAuthError, open_client
from compliance.crm.push import RESTORE_IN_CRM, crm_outcomes, push_deletions
from compliance.deletion import ManualSelection
from compliance.settings import Crm
from compliance.store.backup import verify_backup
from support.cli import run_retention
from support.crm import base_tables, run_deletion, write_snapshot
from support.highlevel_standin import FakeClock, StandIn, make_contact, start

TOKEN = "hl-test-token-9d2f4a71"
AS_OF = datetime(2026, 1, 1, 12, tzinfo=UTC)


def crm_tables(contacts: int) -> dict[str, list[dict]]:
    """The conftest CRM with `contacts` plain contacts (half in loc-a, half in loc-b) and no associated data."""
    tables = {name: [] for name in base_tables()}
    for kept in ("campaigns", "workflows", "lists", "staff"):
        tables[kept] = base_tables()[kept]
    tables["contacts"] = [dict(contact_id=f"hl-{n:04d}", location_id="loc-a" if n % 2 else "loc-b",
                               first_name="F", last_name="L", email=f"p{n}@example.com", phone="", tags="",
                               dnd="false", created_at="2024-01-01T00:00:00Z", updated_at="2025-01-01T00:00:00Z",
                               last_activity_at="", source="web") for n in range(contacts)]
    return tables


def delete_all(home, con, contacts: int) -> None:
    write_snapshot(home.snapshots_inbox / "s1", crm_tables(contacts))
    run = run_deletion(con, home, manual=ManualSelection(requested_by="u-admin-1", select_all=True),
                       include_requests=False)
    assert sum(a.counts["deleted"] for a in run.applied) == contacts


def standin_for(contacts: int, **faults) -> StandIn:
    state = StandIn(token=TOKEN)
    for n in range(contacts):
        loc = "loc-a" if n % 2 else "loc-b"
        state.contacts.setdefault(loc, []).append(make_contact(f"hl-{n:04d}", loc, n))
    for name, value in faults.items():
        setattr(state.faults, name, value)
    return state


@pytest.fixture
def serve(monkeypatch):
    monkeypatch.setenv("HIGHLEVEL_TOKEN", TOKEN)
    servers = []

    def serve_(state: StandIn) -> StandIn:
        server, state = start(state)
        servers.append(server)
        return state
    yield serve_
    for server in servers:
        server.shutdown()


def crm_for(state: StandIn, **overrides) -> Crm:
    return Crm(**{"kind": "highlevel", "base_url": state.base_url, "location_ids": ("loc-a", "loc-b"),
                  "push": "on", **overrides})


def push(con, crm: Crm, clock: FakeClock | None = None):
    clock = clock or FakeClock()
    return push_deletions(con, crm, lambda: open_client(crm, clock=clock), as_of=AS_OF)


def outbox(con) -> dict[str, str]:
    return dict(con.execute("SELECT contact_id, state FROM crm_outbox").fetchall())


def test_a_push_after_fifty_deletes_sends_exactly_fifty_deletes_and_a_second_push_none(home, con, serve):
    delete_all(home, con, 50)
    state = serve(standin_for(50))

    first = push(con, crm_for(state))
    second = push(con, crm_for(state))

    assert Counter(e.contact_id for e in state.deletes()) == {f"hl-{n:04d}": 1 for n in range(50)}
    assert first.counts == {"pushed": 50} and first.enqueued == 50
    assert second.counts == {} and second.enqueued == 0
    assert len(state.deletes()) == 50
    assert set(outbox(con).values()) == {"pushed"}


def test_with_429s_injected_the_push_completes_and_no_ten_second_window_exceeds_the_limit(home, con, serve):
    delete_all(home, con, 30)
    state = serve(standin_for(30, too_many=3, retry_after="4"))
    clock = FakeClock()
    state.clock = clock.now

    result = push(con, crm_for(state, requests_per_10s=5), clock)

    assert result.counts == {"pushed": 30}
    assert 4 in clock.slept
    for location in ("loc-a", "loc-b"):
        times = [e.at for e in state.log if e.location_id == location]
        assert max(sum(1 for t in times if start <= t < start + 10) for start in times) <= 5
    assert len([e for e in state.log if e.status == 429]) == 3


def test_a_429_is_followed_by_a_wait_of_at_least_its_retry_after(home, con, serve):
    delete_all(home, con, 2)
    state = serve(standin_for(2, too_many=1, retry_after="7"))
    clock = FakeClock()
    state.clock = clock.now

    push(con, crm_for(state), clock)

    refused, retried = state.log[0], state.log[1]
    assert (refused.status, retried.status) == (429, 200)
    assert retried.at - refused.at >= 7


def test_one_server_error_is_retried_and_the_contact_is_pushed(home, con, serve):
    delete_all(home, con, 3)
    state = serve(standin_for(3, server_error_once=True))

    result = push(con, crm_for(state))

    assert result.counts == {"pushed": 3}
    assert [e.status for e in state.deletes()] == [500, 200, 200, 200]


def test_a_contact_already_deleted_in_the_crm_is_already_gone(home, con, serve):
    delete_all(home, con, 4)
    state = serve(standin_for(4))
    state.deleted.add("hl-0002")

    result = push(con, crm_for(state))

    assert result.counts == {"pushed": 3, "already_gone": 1}
    assert outbox(con)["hl-0002"] == "already_gone"
    assert con.execute("SELECT http_status FROM crm_outbox WHERE contact_id = 'hl-0002'").fetchone()[0] == 404


def test_a_delete_that_keeps_failing_is_failed_with_its_status_and_tried_again_next_run(home, con, serve):
    delete_all(home, con, 1)
    state = serve(standin_for(1, too_many=100))

    first = push(con, crm_for(state, max_retries=2))
    state.faults.too_many = 0
    second = push(con, crm_for(state, max_retries=2))

    assert first.counts == {"failed": 1} and second.counts == {"pushed": 1}
    assert con.execute("SELECT state, http_status, attempts FROM crm_outbox").fetchall() == [("pushed", 200, 2)]


def test_a_401_stops_the_push_naming_the_token_variable_and_nothing_is_marked_pushed(home, con, serve):
    delete_all(home, con, 5)
    state = serve(standin_for(5, unauthorized=True))

    with pytest.raises(CrmAuthError, match=r"refused the token from \$HIGHLEVEL_TOKEN \(HTTP 401") as raised:
        push(con, crm_for(state))

    assert TOKEN not in str(raised.value)
    assert len(state.log) == 1
    assert set(outbox(con).values()) == {"pending"}


def test_a_dry_run_records_what_it_would_send_and_sends_nothing(home, con, serve):
    delete_all(home, con, 6)
    state = serve(standin_for(6))

    result = push(con, crm_for(state, push="dry_run"))

    assert (result.mode, result.enqueued, result.would_send) == ("dry_run", 6, 6)
    assert state.log == []
    assert set(outbox(con).values()) == {"pending"}


def test_push_off_enqueues_nothing_and_sends_nothing(home, con, serve):
    delete_all(home, con, 2)
    state = serve(standin_for(2))

    result = push(con, crm_for(state, push="off"))

    assert result.mode == "off" and state.log == [] and outbox(con) == {}


def test_a_deleted_contact_without_a_verified_backup_record_is_never_enqueued(home, con, serve):
    delete_all(home, con, 3)
    con.execute("DELETE FROM backups")
    state = serve(standin_for(3))

    result = push(con, crm_for(state))

    assert result.enqueued == 0 and state.log == []


def test_contacts_of_other_locations_than_the_crm_s_are_not_pushed(home, con, serve):
    delete_all(home, con, 4)
    state = serve(standin_for(4))

    result = push(con, crm_for(state, location_ids=("loc-a",)))

    assert sorted(e.contact_id for e in state.deletes()) == ["hl-0001", "hl-0003"]
    assert result.counts == {"pushed": 2}


def test_status_shows_each_push_outcome_and_a_restored_pushed_contact_needs_a_crm_restore(home, con, serve):
    from compliance.restore import ManualRestore, apply_restores, plan_restores
    from compliance.settings import load_settings
    from compliance.store.keys import KeyedHasher

    delete_all(home, con, 2)
    state = serve(standin_for(2))
    state.deleted.add("hl-0000")
    push(con, crm_for(state))
    [delete_action] = con.execute("SELECT DISTINCT bulk_action_id FROM crm_outbox").fetchone()
    hasher = KeyedHasher(home.secret()).register(con)
    plan_restores(con, hasher=hasher, settings=load_settings(home.settings_file), as_of=AS_OF,
                  include_requests=False, manual=ManualRestore(requested_by="u-admin-1", contact_ids=("hl-0001",)))
    [restore] = apply_restores(con, hasher=hasher, as_of=AS_OF, run_id="r")

    assert crm_outcomes(con, delete_action) == {"hl-0000": "already_gone", "hl-0001": "pushed"}
    assert crm_outcomes(con, restore.bulk_action_id) == {"hl-0001": RESTORE_IN_CRM}
    con.close()
    shown = run_retention("status", restore.bulk_action_id, home=home)
    assert shown.returncode == 0, shown.stderr
    assert f"hl-0001  restored  CRM: {RESTORE_IN_CRM}" in shown.stdout


PUSH_SCRIPT = """
import sys
from datetime import datetime, timezone
from pathlib import Path
from compliance.crm.client import open_client
from compliance.crm.push import push_deletions
from compliance.home import Home
from compliance.settings import load_settings
from compliance.store.connection import Store
home = Home(Path(sys.argv[1]))
crm = load_settings(home.settings_file).crm
push_deletions(Store(home).connect(), crm, lambda: open_client(crm), as_of=datetime.now(timezone.utc))
"""


@pytest.mark.e2e
def test_a_push_killed_mid_way_then_run_again_deletes_each_contact_once_and_only_after_its_backup(home, con,
                                                                                                     serve):
    delete_all(home, con, 500)
    con.close()
    state = serve(standin_for(500, hold_deletes_after=200))
    home.settings_file.write_text(yaml.safe_dump({"crm": {
        "kind": "highlevel", "base_url": state.base_url, "location_ids": ["loc-a", "loc-b"], "push": "on",
        "requests_per_10s": 10_000}}))
    pusher = subprocess.Popen([sys.executable, "-c", PUSH_SCRIPT, str(home.root)], env=os.environ.copy())
    deadline = time.monotonic() + 120
    while len(state.deletes()) < 200 and pusher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    assert pusher.poll() is None, "the push finished or died before it could be killed"
    os.kill(pusher.pid, signal.SIGKILL)
    pusher.wait()
    state.faults.hold_deletes_after = None
    state.released.set()
    time.sleep(0.2)

    from compliance.store.connection import Store
    with Store(home).connect() as again:
        killed_at = dict(again.execute("SELECT state, count(*) FROM crm_outbox GROUP BY 1").fetchall())
        result = push(again, crm_for(state, requests_per_10s=10_000))
        states = Counter(outbox(again).values())
        backups = again.execute("SELECT DISTINCT b.path, b.manifest_sha256, b.verified_at FROM crm_outbox o "
                                "JOIN backups b USING (bulk_action_id)").fetchall()

    assert killed_at.get("pending", 0) >= 300
    assert sum(states.values()) == 500 and set(states) <= {"pushed", "already_gone"}
    assert states["already_gone"] >= 1 and result.counts.get("already_gone", 0) >= 1
    assert Counter(e.contact_id for e in state.deletes(200)) == {f"hl-{n:04d}": 1 for n in range(500)}
    assert backups and all(verified_at is not None for _, _, verified_at in backups)
    for path, sha256, _ in backups:
        verify_backup(home.inside(path), sha256)
