"""The demo CRM: a realistic synthetic snapshot, request files and rules (fixture data, not the domain)."""
