"""Who ran a command: the operating-system user and host, recorded beside the staff id it acted as (--as-user)."""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass

from compliance.errors import InputError
from compliance.settings import Settings


@dataclass(frozen=True)
class Operator:
    """The OS user and host of this process."""

    os_user: str
    host: str


def current_operator() -> Operator:
    """The OS user running this process (its uid when the system has no name for it) and the host's name."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return Operator(user, socket.gethostname())


def check_operator(settings: Settings, as_user: str, operator: Operator | None = None) -> None:
    """Refuse `--as-user` when settings bind OS users to staff ids (`operators:`) and this user is not bound to it.

    Args:
        settings: the home's settings; without `operators:` anyone may act as any staff member.
        as_user: the staff user_id or email given with --as-user.
        operator: who runs the command (default: this process's OS user).

    Raises:
        InputError: the OS user may not act as that staff member (nothing was done).
    """
    if settings.operators is None:
        return
    operator = operator or current_operator()
    allowed = {who.strip().casefold() for who in settings.operators.get(operator.os_user, ())}
    if as_user.strip().casefold() not in allowed:
        raise InputError(f"--as-user {as_user.strip()}: OS user {operator.os_user} may not act as this staff member "
                         f"(settings.yaml `operators:` binds {operator.os_user} to "
                         f"{', '.join(sorted(allowed)) or 'no one'}); nothing was done")
