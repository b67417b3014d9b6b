"""A made-up tenth invariant, to show that adding one touches one place: the registry (and the checks it makes)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from compliance.invariants import MAX_SAMPLES, REGISTRY, Invariant, register

TENTH = "no_contact_in_do_not_disturb"


class NoContactInDoNotDisturb(Invariant):
    """A made-up tenth invariant: the hand-made snapshot's c-3 breaks it."""

    description = "No contact has asked not to be disturbed."
    pass_message = "no contact is in do-not-disturb"
    fail_message = "{n} contact{s} in do-not-disturb: {details}"

    def measure(self, run):
        count, samples = run.con.execute(
            "SELECT count(*), list(contact_id ORDER BY contact_id)[1:$samples] FROM contacts WHERE dnd = $dnd",
            {"samples": MAX_SAMPLES, "dnd": True}).fetchone()
        return [self.count_row("dnd", count, samples, detail=f"{count} in contacts")]


@contextmanager
def tenth_invariant() -> Iterator[str]:
    """The tenth invariant registered for the block and unregistered after it, whatever happens."""
    register(TENTH)(NoContactInDoNotDisturb)
    try:
        yield TENTH
    finally:
        REGISTRY.pop(TENTH, None)
