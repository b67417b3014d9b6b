"""A throwaway PostgreSQL cluster, initdb and pg_ctl in a temporary folder: for the tests and the shard benchmark."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "postgres"
START_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class PostgresServer:
    """A running cluster on 127.0.0.1 that trusts local connections of SUPERUSER."""

    port: int
    data_dir: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database (name: letters, digits, underscores) and its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)


def _binary(name: str) -> str | None:
    """A PostgreSQL program on PATH, else in Debian's versioned folder (which the package leaves off PATH)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_cluster_owner(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root, so under root the cluster belongs to the postgres user.
    if os.geteuid() == 0:
        return ["runuser", "-u", SUPERUSER, "--", *command]
    return command


def start_cluster(port: int | None = None, label: str = "") -> tuple[PostgresServer | None, str]:
    """Start a cluster, or say why not.

    Args:
        port: the port to listen on (default: a free one).
        label: a word in the cluster folder's name (the tests put their xdist worker's name there).

    Returns:
        (the server, "") or (None, the reason the tests that need it are skipped).
    """
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not (initdb and pg_ctl):
        return None, "PostgreSQL is not installed (initdb/pg_ctl not found; scripts/test.sh installs it as root)"
    if os.geteuid() == 0 and (shutil.which("runuser") is None or _uid(SUPERUSER) is None):
        return None, "running as root without a postgres user (or runuser) to own the cluster"
    # Not under pytest's tmp folder: that is private to this user and the postgres user must reach its cluster.
    root = Path(tempfile.mkdtemp(prefix=f"retention-pg-{label}-" if label else "retention-pg-"))
    data_dir = root / "data"
    if os.geteuid() == 0:
        os.chown(root, _uid(SUPERUSER), -1)
    port = port or _free_port()
    steps = [
        [initdb, "-D", str(data_dir), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-sync"],
        [pg_ctl, "-D", str(data_dir), "-l", str(root / "server.log"), "-w", "-t", str(START_TIMEOUT_SECONDS),
         "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
    ]
    for step in steps:
        done = subprocess.run(_as_cluster_owner(step), capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return None, f"PostgreSQL could not be started ({Path(step[0]).name}: {tail[0]})"
    return PostgresServer(port=port, data_dir=data_dir), ""


def stop_cluster(server: PostgresServer) -> None:
    """Stop the cluster (fast shutdown) and remove its folder."""
    pg_ctl = _binary("pg_ctl")
    if pg_ctl:
        subprocess.run(_as_cluster_owner([pg_ctl, "-D", str(server.data_dir), "-m", "fast", "-w", "stop"]),
                       capture_output=True, stdin=subprocess.DEVNULL)
    shutil.rmtree(server.data_dir.parent, ignore_errors=True)


def _uid(user: str) -> int | None:
    import pwd

    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None
