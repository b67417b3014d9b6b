"""The store's schema as named migration steps, append only: a store records how many it has taken."""

from __future__ import annotations

from dataclasses import dataclass

from compliance.identifiers import CONTACT_KEYS_SELECT
from compliance.store.schema import CONTACTS, TABLES, TableSpec


def _crm_table_ddl(spec: TableSpec) -> str:
    columns = [f"{name} {sql_type}" for name, sql_type in spec.columns.items()]
    if spec is CONTACTS:
        columns += ["email_key VARCHAR", "phone_key VARCHAR"]
    columns += ["extra JSON", "snapshot_id VARCHAR"]
    return f"CREATE TABLE {spec.name} ({', '.join(columns)})"


@dataclass(frozen=True)
class Migration:
    """One named schema step; its place in MIGRATIONS is the schema version it brings the store to."""

    name: str
    statements: tuple[str, ...]


# Append only: a store records the number of steps it has taken, so a step is never edited, moved or removed.
MIGRATIONS: tuple[Migration, ...] = (
    Migration("crm_tables_lifecycle_tombstones_suppression", (
        "CREATE TABLE snapshots (snapshot_id VARCHAR PRIMARY KEY, content_hash VARCHAR NOT NULL,"
        " ingested_at TIMESTAMPTZ NOT NULL, row_counts JSON NOT NULL,"
        " skipped_deleted BIGINT NOT NULL DEFAULT 0, skipped_suppressed BIGINT NOT NULL DEFAULT 0)",
        *(_crm_table_ddl(spec) for spec in TABLES),
        # A contact's life in the store, apart from its CRM attributes so a new snapshot cannot reset it.
        "CREATE TABLE contact_lifecycle (contact_id VARCHAR PRIMARY KEY, state VARCHAR NOT NULL,"
        " deleted_at TIMESTAMPTZ, deleted_by VARCHAR, restored_at TIMESTAMPTZ, restored_by VARCHAR)",
        # Rows removed by a delete, by key only, so a later snapshot cannot bring them back (R4).
        "CREATE TABLE tombstones (table_name VARCHAR NOT NULL, row_key VARCHAR NOT NULL,"
        " bulk_action_id VARCHAR NOT NULL)",
        # Erased people, as keyed hashes only: later snapshots must not bring them back.
        "CREATE TABLE suppression (key_kind VARCHAR NOT NULL, key_hash VARCHAR NOT NULL,"
        " bulk_action_id VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL)",
    )),
    Migration("bulk_actions_backups_requests_records", (
        # The Bulk Actions page (R8): one record per delete, restore or purge, with per-contact items.
        "CREATE TABLE bulk_actions (bulk_action_id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL,"
        " source VARCHAR NOT NULL, source_ref VARCHAR, requested_by VARCHAR, regulation VARCHAR,"
        " requester_authorized BOOLEAN NOT NULL DEFAULT false, created_at TIMESTAMPTZ NOT NULL,"
        " applied_at TIMESTAMPTZ, status VARCHAR NOT NULL, reason VARCHAR, run_id VARCHAR,"
        " total BIGINT NOT NULL DEFAULT 0, done BIGINT NOT NULL DEFAULT 0, blocked BIGINT NOT NULL DEFAULT 0,"
        " rejected BIGINT NOT NULL DEFAULT 0, not_found BIGINT NOT NULL DEFAULT 0,"
        " already_done BIGINT NOT NULL DEFAULT 0, failed BIGINT NOT NULL DEFAULT 0,"
        " audited BOOLEAN NOT NULL DEFAULT false)",
        "CREATE TABLE bulk_action_items (bulk_action_id VARCHAR NOT NULL, contact_id VARCHAR,"
        " outcome VARCHAR NOT NULL, reason VARCHAR)",
        # Verified backups written before a delete; expired_at is set when their files are removed.
        "CREATE TABLE backups (bulk_action_id VARCHAR PRIMARY KEY, path VARCHAR NOT NULL,"
        " written_at TIMESTAMPTZ NOT NULL, verified_at TIMESTAMPTZ NOT NULL, created_as_of TIMESTAMPTZ NOT NULL,"
        " manifest_sha256 VARCHAR NOT NULL, contacts BIGINT NOT NULL, total_rows BIGINT NOT NULL,"
        " expired_at TIMESTAMPTZ)",
        # Every request file seen (CCPA regs 7101); erased people's identifiers only as keyed hashes.
        "CREATE TABLE requests (file VARCHAR NOT NULL, file_hash VARCHAR NOT NULL, request_id VARCHAR,"
        " kind VARCHAR, regulation VARCHAR, requested_by VARCHAR, status VARCHAR NOT NULL, reason VARCHAR,"
        " received_at TIMESTAMPTZ, due_at TIMESTAMPTZ, bulk_action_id VARCHAR, seen_at TIMESTAMPTZ NOT NULL,"
        " subjects BIGINT NOT NULL DEFAULT 0, audited BOOLEAN NOT NULL DEFAULT false)",
        # Subjects of requests not yet applied; removed (kept only as hashes) once applied.
        "CREATE TABLE pending_subjects (request_id VARCHAR NOT NULL, subject_no INTEGER NOT NULL,"
        " contact_id VARCHAR, email_key VARCHAR, phone_key VARCHAR)",
        # Aggregate, non-personal campaign/workflow/list counts kept when deletes remove enrollments (R12).
        "CREATE TABLE enrollment_metrics (object_kind VARCHAR NOT NULL, object_id VARCHAR NOT NULL,"
        " removed_by_deletion BIGINT NOT NULL, removed_active BIGINT NOT NULL, PRIMARY KEY (object_kind, object_id))",
        # Contacts permanently removed after the restore window: a keyed hash of the id, no personal data.
        "CREATE TABLE purged_contacts (contact_hash VARCHAR PRIMARY KEY, deleted_at TIMESTAMPTZ NOT NULL,"
        " purged_at TIMESTAMPTZ NOT NULL, bulk_action_id VARCHAR NOT NULL)",
    )),
    Migration("request_deadline_extensions", (
        # A deadline extended with notice (GDPR Art. 12(3), CCPA regs 7021(b)): why, and when it was recorded.
        "ALTER TABLE requests ADD COLUMN extended_reason VARCHAR",
        "ALTER TABLE requests ADD COLUMN extended_at TIMESTAMPTZ",
    )),
    Migration("manual_selections", (
        # Contact ids of a manual delete or restore, handed to its run by token so that Dagster's run storage
        # (kept forever) never holds them; the run takes and removes them.
        "CREATE TABLE manual_selections (token VARCHAR PRIMARY KEY, contact_ids VARCHAR[] NOT NULL,"
        " created_at TIMESTAMPTZ NOT NULL)",
    )),
    Migration("audit_anchor", (
        # The audit log's head after each append: a chain rewritten or cut short no longer passes it.
        "CREATE TABLE audit_anchor (log VARCHAR PRIMARY KEY, entries BIGINT NOT NULL, head_hash VARCHAR NOT NULL,"
        " anchored_at TIMESTAMPTZ NOT NULL)",
    )),
    Migration("additional_identifiers_staff_locations", (
        # The CRM's additional emails and phones, as written and as match keys normalised once at ingest.
        *(f"ALTER TABLE contacts ADD COLUMN {name} {sql_type}" for name, sql_type in CONTACTS.optional.items()),
        "ALTER TABLE contacts ADD COLUMN additional_email_keys VARCHAR[]",
        "ALTER TABLE contacts ADD COLUMN additional_phone_keys VARCHAR[]",
        # The locations a staff member may act on (HighLevel's account users); empty: every location.
        "ALTER TABLE staff ADD COLUMN location_ids VARCHAR[]",
        "ALTER TABLE snapshots ADD COLUMN unparsed_phones BIGINT NOT NULL DEFAULT 0",
        "ALTER TABLE snapshots ADD COLUMN not_provided VARCHAR[]",
        # Every normalised identifier of every contact, one row each, for matching request subjects by join. A
        # view over the contacts' key columns, so a purge that removes the contact removes its identifiers too.
        "CREATE VIEW contact_identifiers AS"
        " SELECT contact_id, 'email' AS kind, email_key AS key, true AS is_primary FROM contacts"
        " WHERE email_key IS NOT NULL"
        " UNION ALL SELECT contact_id, 'phone', phone_key, true FROM contacts WHERE phone_key IS NOT NULL"
        " UNION ALL SELECT contact_id, 'email', unnest(additional_email_keys), false FROM contacts"
        " UNION ALL SELECT contact_id, 'phone', unnest(additional_phone_keys), false FROM contacts",
    )),
    Migration("crm_outbox", (
        # Deletes owed to the CRM, one row per deleted contact and bulk action: a row is written before its DELETE
        # is sent and settled after, so a killed push resends only what it had not settled (a 404 is a success).
        "CREATE TABLE crm_outbox (contact_id VARCHAR NOT NULL, location_id VARCHAR, bulk_action_id VARCHAR NOT NULL,"
        " state VARCHAR NOT NULL, http_status INTEGER, attempts INTEGER NOT NULL DEFAULT 0,"
        " updated_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (contact_id, bulk_action_id))",
    )),
    Migration("snapshot_removed_contacts", (
        # Contacts a snapshot no longer listed, which its ingest therefore removed: never a silent drop.
        "ALTER TABLE snapshots ADD COLUMN removed_contacts BIGINT NOT NULL DEFAULT 0",
    )),
    Migration("relative_home_paths_operators", (
        # Backups were recorded by absolute path, so a copied home's purge removed the original's backups. A backup
        # folder is always backups/<bulk_action_id>: recorded relative to the home from now on.
        "UPDATE backups SET path = 'backups/' || bulk_action_id WHERE path LIKE '/%'",
        # Who ran the command that made a bulk action: the OS user and host, beside the staff id it acted as.
        "ALTER TABLE bulk_actions ADD COLUMN os_user VARCHAR",
        "ALTER TABLE bulk_actions ADD COLUMN host VARCHAR",
    )),
    Migration("backup_bytes", (
        # The bytes a backup held on disk, so the history shows backups held in bytes over time, not only today.
        "ALTER TABLE backups ADD COLUMN bytes BIGINT",
    )),
    Migration("contact_keys", (
        # The view contact_identifiers materialised, ordered by (kind, key): a request subject's email or phone then
        # reads the one row group holding its key instead of every contact (the view unnests list columns, which
        # have no zone maps). Rebuilt by every ingest, trimmed by the purge: the only writers of contacts.
        "CREATE TABLE contact_keys (kind VARCHAR NOT NULL, key VARCHAR NOT NULL, contact_id VARCHAR NOT NULL,"
        " is_primary BOOLEAN NOT NULL)",
        f"INSERT INTO contact_keys {CONTACT_KEYS_SELECT}",
    )),
)
SCHEMA_VERSION = len(MIGRATIONS)
