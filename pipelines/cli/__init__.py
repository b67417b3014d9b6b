"""The `retention` command line (PRODUCT.md section 3): `main` dispatches to the reading and writing commands."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Callable
from datetime import UTC, datetime

from compliance.clock import parse_as_of
from compliance.errors import InputError
from compliance.evidence.anchor import AuditLogBroken
from compliance.evidence.verdict import EXIT_BAD_INPUT, EXIT_REFUSED
from compliance.home import Home
from compliance.store.connection import StoreBusy
from pipelines.cli import reading, writing
from pipelines.cli.parser import build_parser

COMMANDS: dict[str, Callable[[argparse.Namespace, Home, datetime], int]] = {
    "init": writing.cmd_init, "demo": writing.cmd_demo, "run": writing.cmd_run, "delete": writing.cmd_delete,
    "restore": writing.cmd_restore, "pull": writing.cmd_pull,
    "plan": reading.cmd_plan, "status": reading.cmd_status, "requests": reading.cmd_requests,
    "show": reading.cmd_show, "audit": reading.cmd_audit, "ui": reading.cmd_ui, "metrics": reading.cmd_metrics,
}


def main(argv: list[str] | None = None) -> int:
    """Run `retention ARGV` and return its exit code (0 done, 1 refused/blocked/failed, 2 bad usage or input)."""
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.getLogger("dagster").setLevel(logging.CRITICAL)
    handler = COMMANDS[args.command]
    try:
        as_of = parse_as_of(args.as_of) if args.as_of else datetime.now(UTC)
        return handler(args, Home.resolve(args.home), as_of)
    except InputError as exc:
        print(f"retention: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except AuditLogBroken as exc:
        print(f"retention: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except StoreBusy as exc:
        print(f"retention: busy: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except Exception as exc:
        if os.environ.get("RETENTION_DEBUG"):
            raise
        print(f"retention: failed: {type(exc).__name__}: {exc} (RETENTION_DEBUG=1 shows the traceback; "
              "the run, if one started, is in `retention ui`)", file=sys.stderr)
        return EXIT_REFUSED
