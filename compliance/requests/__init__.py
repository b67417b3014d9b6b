"""Request files: parsing, intake into the store, the request records and the redaction of what they keep."""
