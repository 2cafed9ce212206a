"""``manage.py testecho``: the C10k echo test (see workers.testecho)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from workers.testecho import CLIENTS_PER_PROCESS, DEFAULT_URL, ServerUnavailable, run_testecho


class Command(BaseCommand):
    help = ("Opens CLIENTS concurrent WebSockets to the echo handler; each runs the "
            "Hello! / Spam? / Eggs! / Python. / Goodbye! transcript. Exits 0 only if all of them did.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--clients", type=int, default=10_000, help="number of clients (default 10000)")
        parser.add_argument("--delay", type=float, default=60,
                            help="seconds between messages; clients connect within 2×DELAY (default 60)")
        parser.add_argument("--url", default=DEFAULT_URL, help=f"echo socket URL (default {DEFAULT_URL})")
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
        # tqdm needs the raw stream: Django's wrapper would end every bar refresh with a newline.
        out = options.get("stdout") or sys.stdout
        try:
            report = run_testecho(
                options["url"], options["clients"], options["delay"], processes=options["processes"],
                timeout=options["timeout"], out=out, progress=False if options["no_progress"] else None)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        except ServerUnavailable as exc:
            raise CommandError(f"The echo server is unavailable: {exc}") from None
        if options["json"]:
            Path(options["json"]).write_text(json.dumps(report.as_dict(), indent=2) + "\n")
        if not report.ok:
            raise CommandError(f"{report.clients - report.completed} of {report.clients} clients "
                               "did not see the exact transcript", returncode=1)
