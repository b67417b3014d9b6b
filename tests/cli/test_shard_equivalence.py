"""A home of one shard and a home of four, fed the same generated CRM, requests, rule, restore and clock, agree."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import shutil
import tempfile
from contextlib import redirect_stdout
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from compliance.clock import parse_as_of
from compliance.home import Home
from compliance.shards.placement import shard_of
from compliance.shards.views import whole_home
from demo_crm import generator as demo_data
from pipelines.runner import OVERALL_CHECK_PREFIX

FIRST_RUN = parse_as_of("2026-01-05T09:00:00Z")
MANUAL_RESTORE = FIRST_RUN + timedelta(days=1)
# Past the 60-day restore window of everything the first run deleted: the second run purges it.
PAST_THE_WINDOW = FIRST_RUN + timedelta(days=61)
SHARDS = 4
# A bulk action's id is random, and the four-shard home makes one per shard: reasons that name one are compared
# without it.
BULK_ACTION_ID = re.compile(r"ba-\d{8}-[0-9a-f]{10}")
ADMIN, NON_ADMIN = "u-admin-1", "u-user-1"
RULE_TAG = "Churned"
RULES_YAML = f"""\
rules:
  - name: remove-churned
    status: published
    owner: {ADMIN}
    trigger: {{tags_any: [{RULE_TAG}]}}
    action: delete_contact
  - name: stale-leads-preview
    status: draft
    owner: {ADMIN}
    trigger: {{inactive_days: 30, tags_any: [Lead]}}
    action: delete_contact
"""
# An example runs two homes through the commands (two runs and a restore each, the four-shard home's a Dagster run
# per shard): about three minutes on a loaded two-core machine, so the suite runs one example, the same every time;
# RETENTION_EQUIVALENCE=long draws ten new ones, RETENTION_EQUIVALENCE=N draws N.
_CHOSEN = os.environ.get("RETENTION_EQUIVALENCE", "")
LONG = _CHOSEN == "long" or _CHOSEN.isdigit()
# No shrinking: an example takes minutes, and the failing one is printed as drawn.
PROFILE = settings(max_examples=int(_CHOSEN) if _CHOSEN.isdigit() else 10 if LONG else 1, deadline=None,
                   derandomize=not LONG, database=None, suppress_health_check=list(HealthCheck),
                   phases=[Phase.explicit, Phase.reuse, Phase.generate])


@dataclass(frozen=True)
class Inputs:
    """What both homes are given: a snapshot, two batches of request files, and who the picks are."""

    snapshot: Path
    first_requests: Path
    later_requests: Path
    contact_ids: tuple[str, ...]
    shards_holding_contacts: frozenset[int]
    shared_email_shards: frozenset[int]
    manually_restored: str
    purged: str


def build_inputs(folder: Path, seed: int, locations: int, contacts: int, picks: random.Random) -> Inputs:
    """A generated CRM in which one email is carried by contacts of two shards, and the request files naming it.

    The first batch: a GDPR erasure naming that email (in another case) and a contact id, the same request id again
    in another file (a duplicate), an internal erasure by contact id, a restore of a contact nobody deleted, an
    erasure by a non-admin, and a file that is not JSON. The later batch: a restore of the contact the GDPR erasure
    named by id, which comes after the window (the run that takes it purges the contact). Between the two runs the
    carrier of the email is restored by hand.
    """
    snapshot = folder / "snapshot"
    demo_data.generate_snapshot(snapshot, contacts=contacts, seed=seed, as_of=FIRST_RUN, fmt="csv",
                                locations=locations)
    with (snapshot / "contacts.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen = picks.sample(range(len(rows)), 6)
    carrier, twin, by_id, internal, never_deleted, non_admins = (rows[k] for k in chosen)
    # The twin moves to a location of another shard (loc-0001 and loc-0002 are in shards 1 and 3 of 4), and takes
    # the carrier's email, in another case.
    home_shard = shard_of(carrier["location_id"], SHARDS)
    twin["location_id"] = picks.choice([f"loc-{k:04d}" for k in range(1, locations + 1)
                                        if shard_of(f"loc-{k:04d}", SHARDS) != home_shard])
    twin["email"] = carrier["email"].upper()
    tagged = picks.choice([row for row in rows if row not in (carrier, twin, by_id, internal)])
    tagged["tags"] = ",".join(filter(None, [tagged["tags"], RULE_TAG]))
    with (snapshot / "contacts.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    def request(request_id: str, subjects: list[dict], **fields) -> str:
        return json.dumps({"request_id": request_id, "kind": "erasure", "regulation": "gdpr", "requested_by": ADMIN,
                           "received_at": "2026-01-02T10:00:00Z", "confirm": "DELETE", "subjects": subjects,
                           **fields})

    first, later = folder / "first", folder / "later"
    first.mkdir()
    later.mkdir()
    gdpr = request("GDPR-1", [{"email": f" {carrier['email'].title()} "}, {"contact_id": by_id["contact_id"]}])
    (first / "gdpr-1.json").write_text(gdpr)
    (first / "gdpr-1.resent.json").write_text(gdpr.replace("10:00:00Z", "11:00:00Z"))
    (first / "internal-2.json").write_text(request("INT-2", [{"contact_id": internal["contact_id"]}],
                                                   regulation="internal"))
    (first / "restore-3.json").write_text(request("RESTORE-3", [{"contact_id": never_deleted["contact_id"]}],
                                                  kind="restore", confirm=None))
    (first / "non-admin-4.json").write_text(request("INT-4", [{"contact_id": non_admins["contact_id"]}],
                                                    regulation="internal", requested_by=NON_ADMIN))
    (first / "broken-5.json").write_text('{"request_id": "BROKEN-5", "kind": ')
    (later / "restore-6.json").write_text(request("RESTORE-6", [{"contact_id": by_id["contact_id"]}],
                                                  kind="restore", confirm=None,
                                                  received_at="2026-03-01T10:00:00Z"))
    return Inputs(snapshot, first, later, tuple(row["contact_id"] for row in rows),
                  frozenset(shard_of(row["location_id"], SHARDS) for row in rows),
                  frozenset({shard_of(carrier["location_id"], SHARDS), shard_of(twin["location_id"], SHARDS)}),
                  manually_restored=carrier["contact_id"], purged=by_id["contact_id"])


def retention(*args: str) -> tuple[int, dict]:
    """One `retention ... --json` command, in this process (the command line's own entry point); exit code and JSON."""
    from pipelines.cli import main

    out = io.StringIO()
    with redirect_stdout(out):
        code = main([*args, "--json"])
    return code, json.loads(out.getvalue()) if out.getvalue().strip() else {}


def outcomes_by_contact(home: Home) -> list[tuple]:
    """Every bulk action item naming a contact, with its action's kind and source: ids and counts set aside."""
    with whole_home(home) as con:
        return sorted((kind, source, contact_id, outcome, without_ids(reason)) for kind, source, contact_id, outcome,
                      reason in con.execute(
                          "SELECT a.kind, a.source, i.contact_id, i.outcome, i.reason FROM bulk_action_items i "
                          "JOIN bulk_actions a USING (bulk_action_id) WHERE i.contact_id IS NOT NULL").fetchall())


def without_ids(text: str | None) -> str | None:
    return None if text is None else BULK_ACTION_ID.sub("ba-<id>", text)


def inbox_layout(home: Home) -> list[str]:
    return sorted(str(path.relative_to(home.requests_inbox)) for path in home.requests_inbox.rglob("*")
                  if path.is_file())


def drop(folder: Path, into: Path) -> None:
    for path in sorted(folder.iterdir()):
        shutil.copy2(path, into / path.name)


def run_home(root: Path, shards: int, inputs: Inputs, *, key_of: Home | None = None) -> dict:
    """The whole story on a new home of `shards` shards; what every command said, ids and timings set aside.

    With `key_of`, the home takes that home's key, so that both keep the same keyed hashes (a purged contact's id).
    """
    home = Home(root)
    seen: dict = {}
    code, _ = retention("init", "--shards", str(shards), "--home", str(root))
    assert code == 0
    if key_of is not None:
        shutil.copy2(key_of.secret_file, home.secret_file)
    shutil.copytree(inputs.snapshot, home.snapshots_inbox / "s1")
    home.rules_file.write_text(RULES_YAML)
    drop(inputs.first_requests, home.requests_inbox)
    for label, as_of, batch in (("first", FIRST_RUN, None), ("past_window", PAST_THE_WINDOW, inputs.later_requests)):
        if batch is not None:
            drop(batch, home.requests_inbox)
        code, summary = retention("run", "--home", str(root), "--as-of", as_of.isoformat())
        # The home of shards also proves itself whole (overall_<name>): those checks have no one-shard twin.
        seen[f"{label}_run"] = (code, summary["success"],
                                {name: check["passed"] for name, check in summary["checks"].items()
                                 if not name.startswith(OVERALL_CHECK_PREFIX)})
        seen[f"{label}_overall"] = sorted(name for name, check in summary["checks"].items()
                                          if name.startswith(OVERALL_CHECK_PREFIX) and not check["passed"])
        seen[f"{label}_outcomes"] = outcomes_by_contact(home)
        seen[f"{label}_inbox"] = inbox_layout(home)
        code, document = retention("requests", "--home", str(root), "--as-of", as_of.isoformat())
        seen[f"{label}_requests"] = (code, sorted(
            ({key: without_ids(value) if key == "reason" else value for key, value in record.items()
              if key not in ("bulk_action_id", "bulk_action_ids")}
             for record in document["requests"]), key=lambda record: (record["file"], record["request_id"] or "")))
        if label == "first":
            code, restored = retention("restore", "--home", str(root), "--contact", inputs.manually_restored,
                                       "--as-user", ADMIN, "--as-of", MANUAL_RESTORE.isoformat())
            seen["manual_restore"] = (code, restored["success"])
    seen["show"] = {contact: retention("show", contact, "--home", str(root)) for contact in inputs.contact_ids}
    seen["audit_ok"] = retention("audit", "verify", "--home", str(root))[1]["ok"]
    return seen


@pytest.mark.slow
@PROFILE
@given(seed=st.integers(0, 10_000), locations=st.integers(2, 9), contacts=st.integers(16, 40),
       picks=st.randoms(use_true_random=False))
def test_a_home_of_four_shards_gives_the_same_outcomes_show_results_request_statuses_and_checks_as_one_shard(
        tmp_path_factory, seed, locations, contacts, picks):
    folder = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    inputs = build_inputs(folder / "inputs", seed, locations, contacts, picks)
    assert len(inputs.shared_email_shards) == 2
    with pytest.MonkeyPatch.context() as patch:
        # The runs set DAGSTER_HOME to each home's instance; it is put back after the example.
        patch.setenv("DAGSTER_HOME", str(folder))
        patch.delenv("RETENTION_HOME", raising=False)
        one = run_home(folder / "one", 1, inputs)
        four = run_home(folder / "four", SHARDS, inputs, key_of=Home(folder / "one"))
    assert len(inputs.shards_holding_contacts) >= 2

    assert four == one
    assert one["audit_ok"] is True
    assert one["first_overall"] == four["first_overall"] == [], "no overall check failed in the home of shards"
    assert all(one["first_run"][2].values()) and all(one["past_window_run"][2].values())
    states = {contact: show[1]["state"] for contact, show in one["show"].items()}
    assert one["manual_restore"] == (0, True)
    assert states[inputs.purged] == "purged"
    assert states[inputs.manually_restored] == "active"
    statuses = {record["file"]: record["status"] for record in one["first_requests"][1]}
    assert {name: statuses[name] for name in ("gdpr-1.json", "gdpr-1.resent.json", "non-admin-4.json",
                                              "broken-5.json")} == {
        "gdpr-1.json": "applied", "gdpr-1.resent.json": "duplicate", "non-admin-4.json": "rejected",
        "broken-5.json": "quarantined"}
