"""The store: the DuckDB file and its connection, migrations, schema, SQL files, keyed hashes and file protocols."""
