"""``manage.py testecho``: the C10k echo test (see workers.testecho)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from deploy.running import default_ws_url
from workers.testecho import (
    CLIENTS_PER_PROCESS,
    ECHO_PATH,
    EchoReport,
    Interrupted,
    ServerUnavailable,
    run_testecho,
)

INTERRUPTED = 130  # the exit status of a program stopped by Ctrl-C (128 + SIGINT)


class Command(BaseCommand):
    help = ("Opens CLIENTS concurrent WebSockets to the echo handler; each runs the "
            "Hello! / Spam? / Eggs! / Python. / Goodbye! transcript. Exits 0 only if all of them did.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--clients", type=int, default=10_000, help="number of clients (default 10000)")
        parser.add_argument("--delay", type=float, default=60,
                            help="seconds between messages; clients connect within 2×DELAY (default 60)")
        parser.add_argument("--url",
                            help=f"the site, ws://host:port ({ECHO_PATH} is added), or the echo socket's URL "
                                 "(default: the site `make run` serves, else port $PORT or 8000 on 127.0.0.1)")
        parser.add_argument("--processes", type=int, default=None,
                            help=f"load processes (default: one per {CLIENTS_PER_PROCESS} clients)")
        parser.add_argument("--timeout", type=float, default=10,
                            help="seconds to wait for the handshake and for each reply (default 10)")
        parser.add_argument("--json", metavar="FILE", help="also write the summary to FILE as JSON")
        parser.add_argument("--no-progress", action="store_true",
                            help="print the count lines even on a terminal (no progress bar)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["timeout"] <= 0:
            raise CommandError(f"--timeout must be positive (got {options['timeout']})")
        json_path = Path(options["json"]) if options["json"] else None
        if json_path is not None:
            check_writable(json_path)
        url = options["url"]
        if url is None:
            url, source = default_ws_url()
            self.stdout.write(f"Site: {url}, {source}")
        # tqdm needs the raw stream: Django's wrapper would end every bar refresh with a newline.
        out = options.get("stdout") or sys.stdout
        try:
            report = run_testecho(
                url, options["clients"], options["delay"], processes=options["processes"],
                timeout=options["timeout"], out=out, progress=False if options["no_progress"] else None)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        except ServerUnavailable as exc:
            raise CommandError(f"The echo server is unavailable: {exc}") from None
        except Interrupted as stopped:
            if json_path is not None:
                write_report(json_path, stopped.report)
            raise CommandError(f"Interrupted: {stopped.report.completed} of {stopped.report.clients} clients had "
                               "finished the transcript.", returncode=INTERRUPTED) from None
        except KeyboardInterrupt:
            raise CommandError("Interrupted before the clients started.", returncode=INTERRUPTED) from None
        if json_path is not None:
            write_report(json_path, report)
        if not report.ok:
            raise CommandError(f"{report.clients - report.completed} of {report.clients} clients "
                               "did not see the exact transcript", returncode=1)


def check_writable(path: Path) -> None:
    """Raises CommandError at once if the report could not be written to ``path`` after the run."""
    if path.is_dir():
        raise CommandError(f"--json {path}: is a directory")
    if not path.parent.is_dir():
        raise CommandError(f"--json {path}: no such directory {path.parent}")
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        raise CommandError(f"--json {path}: not writable")


def write_report(path: Path, report: EchoReport) -> None:
    try:
        path.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    except OSError as exc:
        raise CommandError(f"--json {path}: {exc.strerror or exc}") from None
