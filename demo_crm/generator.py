"""Deterministic synthetic CRM snapshots, sample request files and rules for demos, generated set-based in DuckDB."""

from __future__ import annotations

import csv
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

TABLES: tuple[str, ...] = (
    "contacts", "conversations", "notes", "tasks", "activities", "campaigns", "campaign_enrollments",
    "workflows", "workflow_enrollments", "lists", "list_memberships", "staff",
)

FIRST_NAMES = (
    "Ann", "James", "Maria", "Wei", "Aisha", "Liam", "Sofia", "Mohammed", "Yuki", "Olivia",
    "Noah", "Fatima", "Lucas", "Priya", "Mateo", "Chloe", "Kwame", "Elena", "Hiroshi", "Amara",
    "Ethan", "Zoë", "Rahul", "Isabella", "Omar", "Ingrid", "Diego", "Mei", "Samuel", "Leila",
    "Jonas", "Ana", "Kofi", "Hannah", "Arjun", "Camille", "Tomasz", "Nia", "Sven", "Lucía",
    "Daniel", "Emma", "Ji-woo", "Chiara", "Ibrahim", "Grace", "Mikhail", "Siobhán", "David", "Aroha",
)
LAST_NAMES = (
    "Lee", "Smith", "García", "Chen", "Okafor", "Müller", "Nguyen", "Patel", "Kim", "Johnson",
    "Rossi", "Kowalski", "Hernández", "Tanaka", "O'Brien", "Silva", "Ivanov", "Dubois", "Andersson", "Mensah",
    "Khan", "Cohen", "Brown", "Wang", "Novak", "Schmidt", "Fernández", "Singh", "Yılmaz", "Haddad",
    "Jensen", "Murphy", "Santos", "Park", "Williams", "Nakamura", "Popescu", "van der Berg", "Ahmed", "Lopez",
    "Martin", "Taylor", "Costa", "Nowak", "Rahman", "Suzuki", "Wilson", "Moreau", "Eriksen", "Adeyemi",
)
COMPANIES = (
    "Northwind Traders", "Blue Harbor Dental", "Summit Fitness", "Greenleaf Landscaping", "Brightside Realty",
    "Cedar & Co. Law", "Lumen Photography", "Harbor View Auto", "Maple Street Bakery", "Atlas Plumbing",
    "Riverbend Chiropractic", "Nova Marketing", "Pinecrest HVAC", "Silverline Salon", "Keystone Roofing",
)
_LOCATIONS = (("loc-north", 0.34), ("loc-south", 0.25), ("loc-east", 0.18), ("loc-west", 0.14), ("loc-central", 0.09))
_SOURCES = (("web_form", 0.38), ("facebook_ads", 0.17), ("import", 0.15), ("referral", 0.12), ("manual", 0.10),
            ("api", 0.08))
_DOMAINS = (("example.com", 0.45), ("example.org", 0.25), ("mail.example.net", 0.20), ("inbox.example.com", 0.10))
# Templates carry their channel so a call never reads like a text message; repeats weight the channels.
_MESSAGES = (
    ("sms", "Hi {name}, just confirming your appointment tomorrow at 10am."),
    ("sms", "Thanks {name}! See you Thursday."),
    ("sms", "Can we move my booking to next week?"),
    ("sms", "Your quote is ready, reply YES to accept."),
    ("sms", "STOP"),
    ("sms", "Running 10 minutes late, sorry!"),
    ("sms", "Got it, thanks."),
    ("sms", "Hi {name}, we have a spot open on Friday if you still need it."),
    ("email", "Re: Your invoice #{num}"),
    ("email", "Welcome aboard, {name}! Here is how to get started."),
    ("email", "Following up on our call last week."),
    ("email", "Please find the signed contract attached."),
    ("email", "Can you send me the pricing for the premium plan?"),
    ("email", "Re: Webinar recording"),
    ("whatsapp", "Hello! Is the offer still available?"),
    ("whatsapp", "Sent you the photos of the damage."),
    ("whatsapp", "Perfect, thank you {name}"),
    ("facebook", "Hi, I saw your ad. What are your opening hours?"),
    ("facebook", "Do you deliver to my area?"),
    ("call", "Missed call"),
    ("call", "Call summary: discussed renewal, will decide by month end."),
)
_NOTES = (
    "Called {name}, interested in the premium plan.",
    "Prefers contact by email after 5pm.",
    "Met at the spring open house.",
    "Asked for a callback next quarter.",
    "Referred by an existing customer.",
    "Budget approved, waiting on signature.",
    "Complained about the last invoice; credit issued.",
    "{name} mentioned moving to a new office in the autumn.",
    "Left a voicemail.",
    "Not interested right now.",
    "Requested a product demo.",
    "Allergic to latex - note for appointments.",
)
_TASKS = (
    "Follow up with {name}", "Send quote", "Schedule a demo", "Call back about renewal", "Collect signed contract",
    "Send welcome pack", "Check in after first appointment", "Confirm billing address", "Book onboarding call",
)
_ACTIVITY_TYPES = (("email_opened", 0.40), ("page_view", 0.35), ("form_submitted", 0.10), ("call", 0.08),
                   ("appointment_booked", 0.07))
_CAMPAIGNS = (
    ("Spring Promo", "active"), ("Welcome Series", "active"), ("Webinar Invites", "active"),
    ("Win-back Offer", "active"), ("Referral Rewards", "active"), ("Holiday Sale", "paused"),
    ("VIP Early Access", "paused"), ("Survey Follow-up", "paused"), ("Black Friday 2024", "completed"),
    ("Summer Newsletter", "completed"), ("Product Launch", "completed"), ("Trial Nurture", "completed"),
)
# Drafts come last: only the published ones get enrollments, as a CRM would have it.
_WORKFLOWS = (
    ("New Lead Follow-up", "published"), ("Appointment Reminders", "published"), ("Review Request", "published"),
    ("Missed Call Text Back", "published"), ("Birthday Greeting", "published"), ("Invoice Reminder", "published"),
    ("Re-engagement (draft)", "draft"), ("Upsell Sequence v2", "draft"),
)
_PUBLISHED_WORKFLOWS = sum(status == "published" for _, status in _WORKFLOWS)
_LISTS = (
    "Newsletter Subscribers", "Hot Leads", "Past Customers", "Event Attendees", "Trial Users", "Partners",
    "North Region", "High Value", "Cold Leads", "Beta Testers",
)
_STAFF = (
    ("u-admin-1", "dana.admin@demo-crm.example", "Dana Whitfield", "admin", True),
    ("u-admin-2", "ravi.ops@demo-crm.example", "Ravi Menon", "admin", False),
    ("u-admin-3", "sam.lead@demo-crm.example", "Sam Osei", "admin", True),
    ("u-user-1", "lee.sales@demo-crm.example", "Lee Carter", "user", True),
    ("u-user-2", "mia.support@demo-crm.example", "Mia Kovac", "user", True),
    ("u-user-3", "jo.temp@demo-crm.example", "Jo Alvarez", "user", False),
)

SAMPLE_RULES_YAML = """\
# Tag rules for the demo home: published rules run on every `retention run`, drafts only show in `retention plan`.
rules:
  - name: remove-unsubscribed
    status: published
    owner: u-admin-1
    trigger: {tags_any: [Unsubscribed]}
    action: delete_contact
  - name: stale-leads-preview
    status: draft
    owner: u-admin-1
    trigger: {inactive_days: 730, tags_any: [Lead]}
    action: delete_contact
"""

FORMATS = ("parquet", "csv", "highlevel")
# A page of GET /contacts/ holds at most 100 records (the API's `limit`); the other collections are paged alike.
HIGHLEVEL_PAGE = 100
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# The HighLevel demo's account users: each sees one location only (agency users see them all).
_ACCOUNT_STAFF = {"u-admin-3": "loc-north", "u-user-2": "loc-south"}
# What the API does not export stays in native files beside highlevel/.
_NATIVE_BESIDE = ("activities", "campaign_enrollments", "workflow_enrollments", "lists", "list_memberships")

_DAY = 86_400
_YEAR = 365 * _DAY


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    """The value in the one row an aggregate or a COPY returns (a count, a min)."""
    row = con.execute(sql).fetchone()
    if row is None:
        raise LookupError(f"no row from {sql[:80]!r}")
    return row[0]


def _lit(value: object) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _list(values: tuple) -> str:
    return "[" + ", ".join(_lit(v) for v in values) + "]"


def _weighted(weights: tuple[tuple[object, float], ...], u: str) -> str:
    """A CASE picking a value by cumulative weight from the uniform draw `u`; the last takes the remainder."""
    total, cases = 0.0, []
    for value, weight in weights[:-1]:
        total += weight
        cases.append(f"WHEN {u} < {total!r} THEN {_lit(value)}")
    return f"(CASE {' '.join(cases)} ELSE {_lit(weights[-1][0])} END)"


def _fill(template: str) -> str:
    """SQL filling a template's {name} and {num} from the row's first_name and draw `v`."""
    number = "CAST(CAST(10000 + floor(v * 90000) AS INT) AS VARCHAR)"
    return f"replace(replace({template}, '{{name}}', first_name), '{{num}}', {number})"


def _multiplier(n: int, seed: int) -> int:
    """A step coprime with n, so (i * step + offset) % n permutes 0..n-1 and derived numbers stay unique."""
    step = 48_271 + 2 * (seed % 1000)
    while math.gcd(step, n) != 1:
        step += 1
    return step


def _setup(con: duckdb.DuckDBPyConnection, n: int, seed: int, as_of: datetime) -> None:
    """Create the generator's macros and reference tables (names, tags, messages) on the connection.

    Long because it is a list of SQL definitions, each a few lines, that the table generators share.
    """
    con.execute("SET TimeZone = 'UTC'")
    # The export's clock (epoch seconds) reaches the generator's SQL as a variable set through a parameter.
    con.execute("SET VARIABLE demo_now = ?", [int(as_of.timestamp())])
    # Every draw hashes (row, seed, salt), so the same inputs give the same data whatever the thread count.
    # DuckDB's multi-argument hash merely combines the per-argument hashes, which leaves draws with different
    # salts almost perfectly correlated; hashing the result again mixes them into independent ones.
    con.execute(f"CREATE MACRO u(i, salt) AS (hash(hash(CAST(i AS BIGINT), {seed}, salt)) >> 11) / 9007199254740992.0")
    con.execute(f"CREATE MACRO uk(i, k, salt) AS "
                f"(hash(hash(CAST(i AS BIGINT), CAST(k AS BIGINT), {seed}, salt)) >> 11) / 9007199254740992.0")
    con.execute("CREATE MACRO pick(values, x) AS values[1 + CAST(floor(x * len(values)) AS INT)]")
    # Turkish dotless i has no accent to strip, so strip_accents would leave it for the regex to drop.
    con.execute("CREATE MACRO ascii_name(s) AS "
                "regexp_replace(strip_accents(replace(s, 'ı', 'i')), '[^A-Za-z]', '', 'g')")
    con.execute(f"CREATE MACRO first_of(i) AS pick({_list(FIRST_NAMES)}, u(i, 'first'))")
    con.execute(f"CREATE MACRO last_of(i) AS pick({_list(LAST_NAMES)}, u(i, 'last'))")
    step, offset = _multiplier(n, seed), seed * 7919 % n
    # The trailing number is a permutation of the contact index, so every generated address is unique.
    con.execute(f"CREATE MACRO email_num(i) AS CAST((CAST(i AS BIGINT) * {step} + {offset}) % {n} + 1 AS VARCHAR)")
    con.execute("""CREATE MACRO email_local(f, l, num, form) AS
        CASE WHEN form < 0.45 THEN f || '.' || l || num WHEN form < 0.7 THEN f[1] || l || num
             WHEN form < 0.85 THEN f || '_' || l || num ELSE f || num END""")
    con.execute("CREATE MACRO cased(s, x) AS CASE WHEN x < 0.05 THEN upper(s) WHEN x < 0.2 THEN s ELSE lower(s) END")
    con.execute(f"""CREATE MACRO email_of(i) AS
        cased(email_local(ascii_name(first_of(i)), ascii_name(last_of(i)), email_num(i), u(i, 'email_form')),
              u(i, 'email_case')) || '@' || {_weighted(_DOMAINS, "u(i, 'domain')")}""")
    phone_step = _multiplier(n, seed + 1)
    con.execute(f"""CREATE MACRO phone_of(i) AS
        CASE WHEN u(i, 'country') < 0.85
             THEN '+1' || pick(['202', '212', '305', '312', '415', '512', '617', '646', '702', '718'], u(i, 'area'))
                  || CAST(2000000 + (CAST(i AS BIGINT) * {phone_step} + {seed}) % {n} AS VARCHAR)
             ELSE '+4477' || CAST(10000000 + (CAST(i AS BIGINT) * {phone_step} + {seed}) % {n} AS VARCHAR) END""")
    lifecycle = ("CASE WHEN u(i, 'stage') < 0.45 THEN 'Lead' WHEN u(i, 'stage') < 0.70 THEN 'Customer' "
                 "WHEN u(i, 'stage') < 0.76 THEN 'Churned' END")
    # Odd contacts may copy an earlier even one (never a copy itself): one person entered twice.
    con.execute(f"""
        CREATE TEMP TABLE b AS
        SELECT *, CASE WHEN activity_s IS NULL THEN 0 ELSE CAST(floor(u(i, 'n_act') * 9) AS INT) END AS n_act
        FROM (
            SELECT i, printf('c-%07d', i + 1) AS contact_id, dup, src,
                   first_of(src) AS first_name, last_of(src) AS last_name,
                   CASE WHEN dup AND u(i, 'dup_case') < 0.5 THEN lower(email_of(src)) ELSE email_of(src) END AS email,
                   CASE WHEN u(i, 'no_phone') < 0.05 THEN NULL
                        WHEN dup AND u(i, 'dup_phone') < 0.5 THEN phone_of(src) ELSE phone_of(i) END AS phone,
                   tags, dnd, created_s,
                   created_s + CAST(floor(u(i, 'updated') * (getvariable('demo_now') - 1 - created_s))
                                    AS BIGINT) AS updated_s,
                   CASE WHEN u(i, 'never_active') < 0.06 THEN NULL
                        ELSE getvariable('demo_now') - 1
                             - CAST(floor(u(i, 'activity')
                                          * least({3 * _YEAR}, getvariable('demo_now') - 1 - created_s))
                                    AS BIGINT) END AS activity_s
            FROM (
                SELECT i, dup, CASE WHEN dup THEN i - 1 - 2 * CAST(floor(u(i, 'dup_src') * least(500, i // 2))
                                                                   AS BIGINT) ELSE i END AS src,
                       tags, u(i, 'dnd') < 0.03 OR (list_contains(tags, 'Unsubscribed') AND u(i, 'dnd2') < 0.3) AS dnd,
                       getvariable('demo_now') - 1
                       - CAST(floor(pow(u(i, 'created'), 1.5) * {5 * _YEAR}) AS BIGINT) AS created_s
                FROM (
                    SELECT i, i % 2 = 1 AND u(i, 'dup') < 0.01 AS dup,
                           list_filter([{lifecycle},
                                        CASE WHEN u(i, 'unsub') < 0.03 THEN 'Unsubscribed' END,
                                        CASE WHEN u(i, 'stage') BETWEEN 0.45 AND 0.70 AND u(i, 'vip') < 0.15
                                             THEN 'VIP' END,
                                        CASE WHEN u(i, 'unsub') >= 0.03 AND u(i, 'news') < 0.25 THEN 'Newsletter' END,
                                        CASE WHEN u(i, 'webinar') < 0.08 THEN 'Webinar' END,
                                        CASE WHEN u(i, 'stage') < 0.45 AND u(i, 'trial') < 0.15 THEN 'Trial' END],
                                       lambda t: t IS NOT NULL)[1:3] AS tags
                    FROM range({n}) r(i))))""")


def _location_sql(locations: int | None) -> str:
    """A contact's location: one of the five named ones by weight, or one of `locations` (loc-0001 ...) evenly."""
    if locations is None:
        return _weighted(_LOCATIONS, "u(src, 'location')")
    return f"printf('loc-%04d', CAST(floor(u(src, 'location') * {int(locations)}) AS BIGINT) + 1)"


def _contacts_sql(fmt: str, keep: str = "", locations: int | None = None) -> str:
    """The contacts; `keep` adds columns of b (such as `, i`) for a writer that needs them."""
    tags = "nullif(array_to_string(tags, ','), '')" if fmt == "csv" else "tags"
    return f"""
        SELECT contact_id{keep}, {_location_sql(locations)} AS location_id,
               first_name, last_name, email, phone, {tags} AS tags, dnd,
               to_timestamp(created_s) AS created_at, to_timestamp(updated_s) AS updated_at,
               to_timestamp(activity_s) AS last_activity_at,
               {_weighted(_SOURCES, "u(i, 'source')")} AS source,
               CASE WHEN u(src, 'company') < 0.6 THEN pick({_list(COMPANIES)}, u(src, 'company_name')) END
                   AS company_name
        FROM b"""


def _children(count_sql: str, salt: str) -> str:
    """Rows of b repeated count_sql times, with k the child's number and v, w, x its own draws."""
    return f"""
        SELECT *, uk(i, k, '{salt}_v') AS v, uk(i, k, '{salt}_w') AS w, uk(i, k, '{salt}_x') AS x
        FROM (SELECT *, unnest(range({count_sql})) AS k FROM b)"""


def _between(low: str, high: str, draw: str) -> str:
    return f"to_timestamp({low} + CAST(floor({draw} * ({high} - {low})) AS BIGINT))"


def _table_sql(table: str, fmt: str, locations: int | None = None) -> str:
    """The SELECT that generates one snapshot table; long because it is one branch of SQL per table."""
    channels, bodies = _list(tuple(c for c, _ in _MESSAGES)), _list(tuple(m for _, m in _MESSAGES))
    if table == "contacts":
        return _contacts_sql(fmt, locations=locations)
    if table == "conversations":
        count = _weighted(((0, 0.2), (1, 0.35), (2, 0.25), (3, 0.2)), "u(i, 'n_conv')")
        return f"""
            SELECT printf('conv-%07d-%d', i + 1, k + 1) AS conversation_id, contact_id,
                   pick({channels}, w) AS channel,
                   {_between('created_s', "getvariable('demo_now') - 1", 'x')} AS last_message_at,
                   {_fill(f'pick({bodies}, w)')} AS last_message_body
            FROM ({_children(count, 'conv')})"""
    if table == "notes":
        return f"""
            SELECT printf('note-%07d-%d', i + 1, k + 1) AS note_id, contact_id,
                   {_fill(f'pick({_list(_NOTES)}, w)')} AS body,
                   {_between('created_s', "getvariable('demo_now') - 1", 'x')} AS created_at
            FROM ({_children("CAST(floor(u(i, 'n_notes') * 3) AS INT)", 'note')})"""
    if table == "tasks":
        count = _weighted(((0, 0.6), (1, 0.3), (2, 0.1)), "u(i, 'n_tasks')")
        due = f"created_s + CAST(floor(x * (getvariable('demo_now') + {30 * _DAY} - created_s)) AS BIGINT)"
        return f"""
            SELECT printf('task-%07d-%d', i + 1, k + 1) AS task_id, contact_id,
                   {_fill(f'pick({_list(_TASKS)}, w)')} AS title,
                   CASE WHEN due_s < getvariable('demo_now') AND v < 0.8 THEN 'completed' ELSE 'open' END AS status,
                   to_timestamp(due_s) AS due_at
            FROM (SELECT *, {due} AS due_s FROM ({_children(count, 'task')}))"""
    if table == "activities":
        # The newest activity is the contact's last_activity_at; the rest fall between creation and it.
        return f"""
            SELECT printf('act-%07d-%d', i + 1, k + 1) AS activity_id, contact_id,
                   {_weighted(_ACTIVITY_TYPES, 'w')} AS activity_type,
                   CASE WHEN k = 0 THEN to_timestamp(activity_s) ELSE {_between('created_s', 'activity_s', 'x')} END
                       AS occurred_at
            FROM ({_children('n_act', 'act')})"""
    if table == "campaigns":
        return _reference("campaign_id", "camp", _CAMPAIGNS, ("name", "status"))
    if table == "campaign_enrollments":
        count = _weighted(((0, 0.4), (1, 0.4), (2, 0.2)), "u(i, 'n_camp')")
        # Stepping by 5 (coprime with 12) from a start skewed to the first campaigns keeps pairs unique.
        index = f"(CAST(floor(pow(u(i, 'camp'), 2) * {len(_CAMPAIGNS)}) AS INT) + 5 * k) % {len(_CAMPAIGNS)}"
        return f"""
            SELECT printf('camp-%02d', {index} + 1) AS campaign_id, contact_id,
                   {_between('created_s', "getvariable('demo_now') - 1", 'x')} AS enrolled_at
            FROM ({_children(count, 'camp')})"""
    if table == "workflows":
        return _reference("workflow_id", "wf", _WORKFLOWS, ("name", "status"))
    if table == "workflow_enrollments":
        count = _weighted(((0, 0.5), (1, 0.4), (2, 0.1)), "u(i, 'n_wf')")
        index = f"(CAST(floor(u(i, 'wf') * {_PUBLISHED_WORKFLOWS}) AS INT) + k) % {_PUBLISHED_WORKFLOWS}"
        return f"""
            SELECT printf('wf-%02d', {index} + 1) AS workflow_id, contact_id,
                   CASE WHEN v < 0.35 THEN 'active' ELSE 'finished' END AS status
            FROM ({_children(count, 'wf')})"""
    if table == "lists":
        return _reference("list_id", "list", tuple((name,) for name in _LISTS), ("name",))
    if table == "list_memberships":
        index = f"(CAST(floor(u(i, 'list') * {len(_LISTS)}) AS INT) + 3 * k) % {len(_LISTS)}"
        return f"""
            SELECT printf('list-%02d', {index} + 1) AS list_id, contact_id
            FROM ({_children("CAST(floor(u(i, 'n_lists') * 3) AS INT)", 'list')})"""
    if table == "staff":
        rows = ", ".join("(" + ", ".join(_lit(v) for v in row) + ")" for row in _STAFF)
        return f"SELECT * FROM (VALUES {rows}) s(user_id, email, name, role, active)"
    raise ValueError(f"unknown table {table!r}")


def _reference(id_column: str, prefix: str, rows: tuple[tuple, ...], columns: tuple[str, ...]) -> str:
    values = ", ".join("(" + ", ".join(_lit(v) for v in (f"{prefix}-{n:02d}", *row)) + ")"
                       for n, row in enumerate(rows, 1))
    return f"SELECT * FROM (VALUES {values}) t({id_column}, {', '.join(columns)})"


def generate_snapshot(snapshot_dir: Path, *, contacts: int = 10_000, seed: int = 7, as_of: datetime,
                      fmt: str = "parquet", locations: int | None = None) -> dict[str, int]:
    """Write a synthetic CRM export: one <table>.parquet (or .csv) per table, all timestamps before as_of.

    As "highlevel", the same CRM is written as a HighLevel API export instead (see `_generate_highlevel`).

    Args:
        snapshot_dir: the folder to write into; created if missing. Same-format files are overwritten.
        contacts: how many contacts; the associated tables scale with it (about 10 rows per contact).
        seed: the same (contacts, seed, as_of) always gives the same data.
        as_of: the export's clock; a naive datetime is taken as UTC.
        fmt: "parquet" (tags as a list), "csv" (tags comma-separated, timestamps ISO 8601 with offset) or
            "highlevel" (API response pages, with the API's ids, additional identifiers and location-scoped staff).
        locations: spread the contacts evenly over this many locations (loc-0001 ...) instead of the five named
            ones (parquet and csv; a HighLevel export keeps its own locations).

    Returns:
        The row count of each table, in TABLES order.

    Raises:
        ValueError: for a non-positive contact count or an unknown format.
    """
    if contacts < 1:
        raise ValueError(f"contacts must be at least 1, got {contacts}")
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if locations is not None and locations < 1:
        raise ValueError(f"locations must be at least 1, got {locations}")
    as_of = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    snapshot_dir = Path(snapshot_dir)
    snapshot_dir.mkdir(parents=True, exist_ok=True)
    if fmt == "highlevel":
        return _generate_highlevel(snapshot_dir, int(contacts), int(seed), as_of)
    options = "FORMAT parquet" if fmt == "parquet" else "FORMAT csv, HEADER"
    con = duckdb.connect()
    try:
        _setup(con, int(contacts), int(seed), as_of)
        counts = {}
        for table in TABLES:
            target = str(snapshot_dir / f"{table}.{fmt}").replace("'", "''")
            sql = _table_sql(table, fmt, locations)
            counts[table] = _scalar(con, f"COPY ({sql}) TO '{target}' ({options})")
        return counts
    finally:
        con.close()


def _generate_highlevel(snapshot_dir: Path, n: int, seed: int, as_of: datetime) -> dict[str, int]:
    """The demo CRM as a HighLevel API export: highlevel/<collection>/page-NNNNN.json, native Parquet beside it.

    The data are generate_snapshot's, with the API's kind of ids: 20 alphanumeric characters, a seeded function of
    the demo id, so that every reference between tables still holds. About one contact in ten has an additional
    email (as a string or as an {"email": ...} object) and one in twenty an additional phone written in national
    form; the staff of _ACCOUNT_STAFF are account users of one location, the others agency users. Pages are built
    in DuckDB (one JSON document per page) and only written out here, a page at a time.

    Args:
        snapshot_dir: the snapshot folder (created by the caller).
        n: how many contacts.
        seed: the seed of the data and of the ids.
        as_of: the export's clock (timezone-aware).

    Returns:
        The row count of each table, in TABLES order.
    """
    con = duckdb.connect()
    try:
        _setup(con, n, seed, as_of)
        con.execute(f"""CREATE MACRO hl_id(s) AS CASE WHEN s IS NOT NULL THEN array_to_string(list_transform(range(20),
            lambda p: substr('{_ID_ALPHABET}', 1 + CAST(hash(hash(s, {seed}, p)) % 62 AS INTEGER), 1)), '') END""")
        con.execute("CREATE MACRO iso(t) AS strftime(t, '%Y-%m-%dT%H:%M:%S.000Z')")
        counts = {}
        for table in TABLES:
            sql = _contacts_sql("parquet", keep=", i") if table == "contacts" else _table_sql(table, "parquet")
            con.execute(f"CREATE TEMP TABLE t_{table} AS {sql}")
            counts[table] = _scalar(con, f"SELECT count(*) FROM t_{table}")
        for table in _NATIVE_BESIDE:
            ids = [row[0] for row in con.execute(f"DESCRIBE t_{table}").fetchall() if row[0].endswith("_id")]
            target = str(snapshot_dir / f"{table}.parquet").replace("'", "''")
            con.execute(f"COPY (SELECT * REPLACE ({', '.join(f'hl_id({c}) AS {c}' for c in ids)}) FROM t_{table}) "
                        f"TO '{target}' (FORMAT parquet)")
        for collection, (table, order, record) in _highlevel_records(n, seed).items():
            _write_pages(con, snapshot_dir / "highlevel" / collection, collection,
                         f"SELECT {record} AS rec, {order} AS ord FROM t_{table}", counts[table])
        return counts
    finally:
        con.close()


def _highlevel_records(n: int, seed: int) -> dict[str, tuple[str, str, str]]:
    """collection -> (demo table, the column that orders its pages, SQL of one record as the API gives it)."""
    work_email = ("lower(ascii_name(first_name)) || '.' || lower(ascii_name(last_name)) || email_num(i) "
                  "|| '@work.example.com'")
    digits = f"CAST(3000000 + (CAST(i AS BIGINT) * {_multiplier(n, seed + 2)} + {seed}) % {n} AS VARCHAR)"
    national = f"'(628) ' || {digits}[1:3] || '-' || {digits}[4:]"
    accounts = ", ".join(f"'{user}'" for user in _ACCOUNT_STAFF)
    locations = " ".join(f"WHEN '{user}' THEN [hl_id('{location}')]" for user, location in _ACCOUNT_STAFF.items())
    return {
        "contacts": ("contacts", "i", f"""struct_pack(
            id := hl_id(contact_id), locationId := hl_id(location_id), firstName := first_name,
            lastName := last_name, email := email, phone := phone, tags := tags, dnd := dnd, source := source,
            companyName := company_name, "type" := CASE WHEN list_contains(tags, 'Customer') THEN 'customer'
                                                       ELSE 'lead' END,
            dateAdded := iso(created_at), dateUpdated := iso(updated_at), lastActivity := epoch_ms(last_activity_at),
            additionalEmails := CASE WHEN u(i, 'add_email') < 0.05 THEN to_json([{work_email}])
                                     WHEN u(i, 'add_email') < 0.10 THEN to_json([struct_pack(email := {work_email})])
                                     ELSE to_json([]) END,
            additionalPhones := CASE WHEN u(i, 'add_phone') < 0.05 THEN to_json([struct_pack(phone := {national})])
                                     ELSE to_json([]) END,
            customFields := to_json([]))"""),
        "users": ("staff", "user_id", f"""struct_pack(
            id := hl_id(user_id), name := name, firstName := split_part(name, ' ', 1),
            lastName := split_part(name, ' ', 2), email := email, deleted := NOT active,
            roles := struct_pack("type" := CASE WHEN user_id IN ({accounts}) THEN 'account' ELSE 'agency' END,
                                 role := role,
                                 locationIds := CASE user_id {locations} ELSE CAST([] AS VARCHAR[]) END))"""),
        "notes": ("notes", "note_id", """struct_pack(
            id := hl_id(note_id), contactId := hl_id(contact_id), body := body, dateAdded := iso(created_at))"""),
        "tasks": ("tasks", "task_id", """struct_pack(
            id := hl_id(task_id), contactId := hl_id(contact_id), title := title, completed := status = 'completed',
            dueDate := iso(due_at))"""),
        "conversations": ("conversations", "conversation_id", """struct_pack(
            id := hl_id(conversation_id), contactId := hl_id(contact_id), "type" := channel,
            lastMessageBody := last_message_body, lastMessageDate := epoch_ms(last_message_at))"""),
        "workflows": ("workflows", "workflow_id",
                      "struct_pack(id := hl_id(workflow_id), name := name, status := status)"),
        "campaigns": ("campaigns", "campaign_id",
                      "struct_pack(id := hl_id(campaign_id), name := name, status := status)"),
    }


def _write_pages(con: duckdb.DuckDBPyConnection, folder: Path, collection: str, records_sql: str, total: int) -> None:
    """One JSON file per page of HIGHLEVEL_PAGE records, as `{"<collection>": [...], "meta": {...}}`."""
    folder.mkdir(parents=True, exist_ok=True)
    pages = max(1, -(-total // HIGHLEVEL_PAGE))
    cursor = con.execute(f"""
        SELECT page, to_json(struct_pack(
            "{collection}" := list(rec ORDER BY ord),
            meta := struct_pack(total := {total}, currentPage := page + 1,
                                nextPage := CASE WHEN page + 1 < {pages} THEN page + 2 END)))
        FROM (SELECT rec, ord, (row_number() OVER (ORDER BY ord) - 1) // {HIGHLEVEL_PAGE} AS page FROM ({records_sql}))
        GROUP BY page ORDER BY page""")
    written = 0
    while rows := cursor.fetchmany(256):
        for page, document in rows:
            (folder / f"page-{page + 1:05d}.json").write_text(document, encoding="utf-8")
            written += 1
    if not written:
        (folder / "page-00001.json").write_text(json.dumps({collection: [], "meta": {"total": 0}}), encoding="utf-8")


# What the sample requests read of a HighLevel export: collection, its schema, and our columns.
_HIGHLEVEL_READ = {
    "contacts": ("contacts", "STRUCT(id VARCHAR, email VARCHAR, phone VARCHAR, tags VARCHAR[])[]",
                 "r.id AS contact_id, r.email, r.phone, r.tags"),
    "campaigns": ("campaigns", "STRUCT(id VARCHAR, status VARCHAR)[]", "r.id AS campaign_id, r.status"),
    "staff": ("users", "STRUCT(id VARCHAR, email VARCHAR)[]", "r.id AS user_id, r.email"),
}


def staff_ids(snapshot_dir: Path) -> dict[str, str]:
    """The demo staff's ids in a generated snapshot: the demo ids themselves, or the HighLevel export's.

    Args:
        snapshot_dir: a snapshot written by generate_snapshot.

    Returns:
        demo user id (such as u-admin-1) -> the user id the snapshot gives that staff member.
    """
    with duckdb.connect() as con:
        by_email = dict(con.execute(f"SELECT email, user_id FROM {_relation(Path(snapshot_dir), 'staff')}").fetchall())
    return {user: by_email.get(email, user) for user, email, *_ in _STAFF}


def sample_rules_yaml(snapshot_dir: Path) -> str:
    """SAMPLE_RULES_YAML with the owner's id as the generated snapshot gives it."""
    return SAMPLE_RULES_YAML.replace("owner: u-admin-1", f"owner: {staff_ids(snapshot_dir)['u-admin-1']}")


def example_contact_id(snapshot_dir: Path) -> str:
    """The id of the first contact of a generated snapshot (c-0000001 in the native formats)."""
    with duckdb.connect() as con:
        return _scalar(con, f"SELECT min(contact_id) FROM {_relation(Path(snapshot_dir), 'contacts')}")


def _relation(snapshot_dir: Path, table: str) -> str:
    if table in _HIGHLEVEL_READ and (snapshot_dir / "highlevel").is_dir():
        collection, schema, columns = _HIGHLEVEL_READ[table]
        pages = str(snapshot_dir / "highlevel" / collection / "*.json").replace("'", "''")
        return (f"(SELECT {columns} FROM (SELECT unnest({collection}) AS r FROM "
                f"read_json('{pages}', columns = {{'{collection}': '{schema}'}})))")
    for fmt in ("parquet", "csv"):
        path = snapshot_dir / f"{table}.{fmt}"
        if path.exists():
            quoted = str(path).replace("'", "''")
            return (f"read_parquet('{quoted}')" if fmt == "parquet"
                    else f"read_csv('{quoted}', header = true, all_varchar = true)")
    raise FileNotFoundError(f"{snapshot_dir}: no {table}.parquet or {table}.csv")


def _candidates(con: duckdb.DuckDBPyConnection, snapshot_dir: Path, seed: int) -> None:
    """Temp table cand: every contact in a seeded order, with what makes it a safe request subject."""
    contacts = _relation(snapshot_dir, "contacts")
    tag_type = con.execute(f"SELECT typeof(tags) FROM {contacts} LIMIT 1").fetchone()
    tags = "tags" if tag_type and tag_type[0].endswith("[]") else "string_split(coalesce(tags, ''), ',')"
    con.execute(f"""
        CREATE TEMP TABLE cand AS
        WITH c AS (
            SELECT contact_id, email, phone, lower(trim(email)) AS email_key,
                   nullif(regexp_replace(phone, '[^0-9]', '', 'g'), '') AS phone_key,
                   list_contains(list_transform({tags}, lambda t: lower(trim(t))), 'unsubscribed') AS unsub
            FROM {contacts}),
        active AS (
            SELECT DISTINCT e.contact_id FROM {_relation(snapshot_dir, "campaign_enrollments")} e
            JOIN {_relation(snapshot_dir, "campaigns")} m USING (campaign_id) WHERE lower(m.status) = 'active')
        SELECT c.*, count(*) OVER (PARTITION BY email_key) AS email_n,
               bool_or(unsub) OVER (PARTITION BY email_key) AS email_unsub,
               CASE WHEN phone_key IS NULL THEN 0 ELSE count(*) OVER (PARTITION BY phone_key) END AS phone_n,
               contact_id IN (SELECT contact_id FROM active) AS in_active_campaign,
               hash(hash(contact_id, {seed}, 'requests')) AS r
        FROM c""")


def _take(con: duckdb.DuckDBPyConnection, taken: set[str], condition: str) -> tuple[str, str, str]:
    """The first not-yet-taken contact meeting condition, in seeded order; it and its email twins become taken."""
    excluded = ", ".join(_lit(c) for c in sorted(taken)) or "''"
    row = con.execute(f"SELECT contact_id, email, phone, email_key FROM cand WHERE NOT email_unsub "
                      f"AND contact_id NOT IN ({excluded}) AND {condition} ORDER BY r, contact_id LIMIT 1").fetchone()
    if row is None:
        raise ValueError(f"the snapshot has no contact left for a sample request ({condition}); use more contacts")
    taken.update(c for (c,) in con.execute("SELECT contact_id FROM cand WHERE email_key = ?", [row[3]]).fetchall())
    return row[0], row[1], row[2]


def _spoken_phone(phone: str) -> str:
    """'+15551234567' as people type it: '+1 (555) 123-4567'."""
    digits = phone.lstrip("+")
    if digits.startswith("1") and len(digits) == 11:
        return f"+1 ({digits[1:4]}) {digits[4:7]}-{digits[7:]}"
    return f"+{digits[:2]} {digits[2:6]} {digits[6:]}"


def write_sample_requests(requests_dir: Path, snapshot_dir: Path, *, as_of: datetime, seed: int = 7) -> list[Path]:
    """Write four sample request files whose subjects are picked from a generated snapshot.

    Long because it spells out the four sample requests, field by field, as a privacy officer would write them.

    The files: a GDPR erasure by u-admin-1 (subjects by contact_id, by an upper-cased padded email,
    by a phone typed with punctuation, and an email that matches nobody); a CCPA erasure requested by
    u-admin-1's staff email for a contact enrolled in an active campaign; an internal erasure CSV with
    two rows of one request; and an erasure by the non-admin u-user-1, which the pipeline must reject (each
    requester by the id the snapshot gives them).
    Subjects are distinct contacts, none tagged Unsubscribed, so request and rule effects stay apart.

    Args:
        requests_dir: the folder to write into (e.g. <home>/inbox/requests); created if missing.
        snapshot_dir: a snapshot written by generate_snapshot, in any format.
        as_of: the run's clock; every request is received one to five days before it.
        seed: picks the subjects and numbers the requests.

    Returns:
        The paths written, in the order above.

    Raises:
        ValueError: when the snapshot is too small to supply distinct subjects.
    """
    as_of = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    snapshot_dir, requests_dir = Path(snapshot_dir), Path(requests_dir)
    con = duckdb.connect()
    try:
        _candidates(con, snapshot_dir, int(seed))
        taken: set[str] = set()
        solo = "email_n = 1 AND phone_n <= 1"
        by_id = _take(con, taken, solo)
        # Prefer an email two contacts share: one person entered twice is erased as a whole.
        has_twins = _scalar(con, "SELECT count(*) FROM cand WHERE email_n = 2 AND NOT email_unsub")
        by_email = _take(con, taken, "email_n = 2" if has_twins else solo)
        by_phone = _take(con, taken, f"{solo} AND phone LIKE '+1%'")
        ccpa = _take(con, taken, f"{solo} AND in_active_campaign")
        internal = [_take(con, taken, solo), _take(con, taken, solo)]
        non_admin = _take(con, taken, solo)
    finally:
        con.close()

    year, base = as_of.year, 40 + seed % 50
    staff = staff_ids(snapshot_dir)

    def received(days: int, hour: int, minute: int) -> str:
        moment = (as_of - timedelta(days=days)).replace(hour=hour, minute=minute, second=0, microsecond=0)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def request(request_id: str, regulation: str, requested_by: str, at: str, subjects: list[dict]) -> dict:
        return {"request_id": request_id, "kind": "erasure", "regulation": regulation, "requested_by": requested_by,
                "received_at": at, "confirm": "DELETE", "subjects": subjects}

    documents = {
        f"gdpr-{year}-{base:04d}.json": request(
            f"GDPR-{year}-{base:04d}", "gdpr", staff["u-admin-1"], received(5, 9, 30),
            [{"contact_id": by_id[0]}, {"email": f"  {by_email[1].upper()} "},
             {"phone": _spoken_phone(by_phone[2])}, {"email": "former.customer@example.org"}]),
        f"ccpa-{year}-{base + 1:04d}.json": request(
            f"CCPA-{year}-{base + 1:04d}", "ccpa", "dana.admin@demo-crm.example", received(3, 14, 5),
            [{"email": ccpa[1]}]),
        f"internal-{year}-{base + 3:04d}-by-non-admin.json": request(
            f"INT-{year}-{base + 3:04d}", "internal", staff["u-user-1"], received(1, 16, 45),
            [{"contact_id": non_admin[0]}]),
    }
    requests_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, document in documents.items():
        path = requests_dir / name
        path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        paths.append(path)
    csv_path = requests_dir / f"internal-{year}-{base + 2:04d}.csv"
    at = received(2, 11, 0)
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["request_id", "kind", "regulation", "requested_by", "received_at", "confirm",
                         "contact_id", "email", "phone"])
        head = [f"INT-{year}-{base + 2:04d}", "erasure", "internal", staff["u-admin-1"], at, "DELETE"]
        writer.writerow(head + [internal[0][0], "", ""])
        writer.writerow(head + ["", internal[1][1], ""])
    paths.insert(2, csv_path)
    return paths
