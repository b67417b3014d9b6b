"""Identifier normalisation: every whitespace, case and NFKC variant matches alike at ingest (SQL) and intake."""

from __future__ import annotations

import sys
import unicodedata

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compliance import identifiers
from compliance.requests.parsing import Subject
from support.crm import base_tables, run_deletion, write_request, write_snapshot

EDGE_CHARACTERS = sorted({chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}
                         | {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"})
EDGES = st.lists(st.sampled_from(EDGE_CHARACTERS), max_size=4).map("".join)
LOCAL = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789._+-"), min_size=1, max_size=12)
DOMAIN = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-"), min_size=1, max_size=10)


def fullwidth(text: str, flips: list[bool]) -> str:
    """Some ASCII characters as their fullwidth forms, which NFKC folds back."""
    return "".join(chr(ord(c) + 0xFEE0) if flip and "!" <= c <= "~" else c
                   for c, flip in zip(text, flips + [False] * len(text), strict=False))


@pytest.fixture(scope="module")
def sql():
    with identifiers.register(duckdb.connect()) as con:
        yield con


@settings(max_examples=300, deadline=None)
@given(local=LOCAL, domain=DOMAIN, before=EDGES, after=EDGES, cases=st.lists(st.booleans(), max_size=30),
       widths=st.lists(st.booleans(), max_size=30))
def test_any_variant_of_an_email_has_the_clean_emails_key_at_ingest_and_at_intake(sql, local, domain, before, after,
                                                                                  cases, widths):
    clean = f"{local}@{domain}.example"
    cased = "".join(c.upper() if flip else c for c, flip in zip(clean, cases + [False] * len(clean), strict=False))
    written = before + fullwidth(cased, widths) + after

    at_ingest = sql.execute(f"SELECT {identifiers.email_key_sql('$1')}", [written]).fetchone()[0]
    at_intake = Subject(None, written, None).email_key()

    assert at_ingest == at_intake == clean


@settings(max_examples=300, deadline=None)
@given(digits=st.text(st.sampled_from("0123456789"), min_size=10, max_size=10), before=EDGES, after=EDGES,
       widths=st.lists(st.booleans(), max_size=16), separator=st.sampled_from(["", " ", "-", ".", "\u00a0"]))
def test_any_variant_of_a_phone_has_the_clean_phones_key_at_ingest_and_at_intake(sql, digits, before, after, widths,
                                                                                  separator):
    clean = f"+1{digits}"
    written = before + fullwidth(f"+1{separator}{digits[:3]}{separator}{digits[3:]}", widths) + after

    at_ingest = sql.execute(f"SELECT {identifiers.phone_key_sql('$1')}", [written]).fetchone()[0]
    at_intake = Subject(None, None, written).phone_key()

    assert at_ingest == at_intake == identifiers.phone_key(clean)


def test_the_edge_characters_cover_every_unicode_whitespace_class():
    categories = {unicodedata.category(c) for c in EDGE_CHARACTERS}

    assert {"Zs", "Zl", "Zp", "Cc", "Cf"} <= categories
    assert "\x1c" in EDGE_CHARACTERS and "\x85" in EDGE_CHARACTERS and "\u3000" in EDGE_CHARACTERS


def test_a_stored_email_with_a_trailing_tab_is_erased_by_a_request_for_the_clean_email(home, con):
    tables = base_tables()
    tables["contacts"][3]["email"] = "\u3000cy@example.org\t"
    write_snapshot(home.snapshots_inbox / "s1", tables)
    write_request(home, "r1", subjects=[{"email": "CY@Example.org"}])

    run = run_deletion(con, home)

    assert run.action("request r1.json").status == "completed"
    assert con.execute("SELECT state FROM contact_lifecycle WHERE contact_id = 'c-4'").fetchone() == ("deleted",)
