"""SQL kept in `.sql` files beside its module, run with named parameters, and small helpers every module shares.

A SQL file takes every value (as_of, windows, policies, the vocabulary of compliance.vocabulary) as a `$name`
parameter, never as a pasted literal; it calls the keyed hash by its macro name `retention_keyed_hash(kind, value)`
(compliance.store.keys), which the connection must have registered (Store.connect does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from typing import Any

import duckdb

from compliance.vocabulary import SQL_VOCABULARY

_PARAMETER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


@cache
def load_sql(package: str, name: str) -> str:
    """The text of a SQL file shipped in a package (package-data `**/*.sql` in pyproject.toml).

    Args:
        package: the dotted package that holds the file, e.g. "compliance.deletion".
        name: the file name, e.g. "decide.sql".

    Returns:
        The SQL text.
    """
    return files(package).joinpath(name).read_text(encoding="utf-8")


def parameters(sql: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The named parameters the SQL uses, taken from `values` and then from the vocabulary.

    DuckDB refuses a parameter the statement does not use, so only those named in the text are passed.

    Args:
        sql: a statement with `$name` parameters.
        values: the run's values (as_of, windows, policies, ids).

    Returns:
        name -> value for every parameter in the statement.

    Raises:
        KeyError: a parameter has no value (a bug in the caller, named in the message).
    """
    known = {**SQL_VOCABULARY, **values}
    names = dict.fromkeys(_PARAMETER.findall(sql))
    missing = [name for name in names if name not in known]
    if missing:
        raise KeyError(f"no value for SQL parameter(s) {', '.join('$' + name for name in missing)}")
    return {name: known[name] for name in names}


def run_sql_file(con: duckdb.DuckDBPyConnection, package: str, name: str,
                 **values: Any) -> duckdb.DuckDBPyConnection:
    """Run a packaged SQL file with its named parameters.

    Args:
        con: the store connection.
        package: the package holding the file.
        name: the file name.
        **values: the parameters other than the vocabulary.

    Returns:
        The connection, to fetch results from.
    """
    sql = load_sql(package, name)
    return con.execute(sql, parameters(sql, values))


def one_row(con: duckdb.DuckDBPyConnection, sql: str, params: object = None) -> tuple[Any, ...]:
    """The first row a statement returns, for statements that always return one (an aggregate, a DML count).

    Args:
        con: the connection to run it on.
        sql: the statement.
        params: its parameters (a list for `?`, a mapping for `$name`), or None.

    Returns:
        The row.

    Raises:
        LookupError: the statement returned no row (a bug in the statement, quoted in the message).
    """
    row = con.execute(sql, params).fetchone()
    if row is None:
        statement = " ".join(sql.split())
        raise LookupError(f"the statement returned no row: {statement[:200]}")
    return row


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: object = None) -> Any:
    """The first column of the first row a statement returns (a count, a min, the rows a DELETE removed).

    Args:
        con: the connection to run it on.
        sql: the statement.
        params: its parameters (a list for `?`, a mapping for `$name`), or None.

    Returns:
        The value (None when the statement returns a SQL NULL).

    Raises:
        LookupError: the statement returned no row.
    """
    return one_row(con, sql, params)[0]


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the store has a (base, not temporary) table of that name, e.g. a plan's working table."""
    return scalar(con, "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_type = "
                       "'BASE TABLE'", [name]) > 0


def quote_identifier(name: str) -> str:
    """A column or table name as a quoted SQL identifier, whatever characters it holds.

    Inside double quotes DuckDB knows one escape, the doubled quote, so doubling every quote leaves no way out.

    Args:
        name: the name as the input gave it (a CSV header cell, a Parquet field name).

    Returns:
        The quoted identifier.

    Raises:
        ValueError: when the name holds a NUL character, which no identifier may hold.
    """
    if "\0" in name:
        raise ValueError("an identifier cannot hold a NUL character")
    return '"' + name.replace('"', '""') + '"'


def sql_string(text: str) -> str:
    """A string literal for the places DuckDB takes no parameter (a table function's file name, ATTACH).

    Args:
        text: any text without a NUL character (a path).

    Returns:
        The quoted literal; a quote inside is doubled, the only escape DuckDB reads in a string literal.
    """
    if "\0" in text:
        raise ValueError("a string literal cannot hold a NUL character")
    return "'" + text.replace("'", "''") + "'"
