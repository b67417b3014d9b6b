"""Errors the command line turns into exit codes."""


class InputError(Exception):
    """Bad usage or bad input: a one-line message naming the file, row or field; nothing was changed (exit 2)."""
