"""Errors the command line turns into exit codes."""


class InputError(Exception):
    """Bad usage or bad input: a one-line message naming the file, row or field; nothing was changed (exit 2)."""


def first_line(error: BaseException | str) -> str:
    """The first line of an error's text (its class name when it has none): engine errors run to many lines."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
