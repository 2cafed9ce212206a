"""``manage.py gameoflife``: size × size cell clients, each its own WebSocket, against a running site."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from deploy.running import default_ws_url
from webapp.gameoflife.protocol import MAX_SIZE
from workers.gameoflife import CELLS_PER_PROCESS, GAME_PATH, Game, GameError, SpreadGame, new_game
from workers.patterns import PatternError, load_placed, random_grid, shipped_patterns, to_plaintext

INTERRUPTED = 130  # the exit status of a program stopped by Ctrl-C (128 + SIGINT)


class Command(BaseCommand):
    help = ("Runs the distributed Game of Life: every cell is a WebSocket client of the site that "
            "computes its own state from its neighbours' states, which the server relays. Watch "
            "it at /gameoflife/.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("-s", "--size", type=int, default=32, help="the grid's side (default 32)")
        parser.add_argument("-p", "--pattern", metavar="FILE",
                            help="initial pattern, a .cells or .rle file or a shipped pattern: "
                                 f"{', '.join(shipped_patterns())} (default: random, one cell in four alive)")
        parser.add_argument("-C", "--no-center", dest="center", action="store_false",
                            help="put the pattern at the top left instead of the centre")
        parser.add_argument("-W", "--no-wrap", dest="wrap", action="store_false",
                            help="the grid has edges instead of being a torus")
        parser.add_argument("-n", "--steps", type=int, help="generations to run (default: for ever)")
        parser.add_argument("-l", "--speed", type=float, default=1.0,
                            help="at most this many generations per second (default 1; 0: no limit)")
        parser.add_argument("--seed", type=int, help="seed of the random start, for a reproducible run")
        parser.add_argument("--output", metavar="FILE",
                            help="write the final grid there in plaintext (O alive, . dead); needs --steps")
        parser.add_argument("--processes", type=int, metavar="N",
                            help=f"cell processes, each running its share of the cells (default: one per "
                                 f"{CELLS_PER_PROCESS:,} cells; 1: all in this process)")
        parser.add_argument("--url",
                            help=f"the site, ws://host:port ({GAME_PATH} is added), or the Game of Life endpoint's "
                                 "URL (default: the site `make run` serves, else port $PORT or 8000 on 127.0.0.1)")

    def handle(self, *args: Any, **options: Any) -> None:
        size, steps, speed, output = options["size"], options["steps"], options["speed"], options["output"]
        if not 1 <= size <= MAX_SIZE:
            raise CommandError(f"--size must be from 1 to {MAX_SIZE}, not {size}")
        if steps is not None and steps < 0:
            raise CommandError(f"--steps must be 0 or more, not {steps}")
        if not speed >= 0:
            raise CommandError(f"--speed must be 0 (no limit) or more, not {speed}")
        if output is not None:
            if steps is None:
                raise CommandError("--output needs --steps: a run without an end has no final grid")
            if not Path(output).parent.is_dir():
                raise CommandError(f"--output {output}: no such directory {Path(output).parent}")
        try:
            if options["pattern"]:
                grid = load_placed(options["pattern"], size, options["center"])
            else:
                grid = random_grid(size, options["seed"])
        except PatternError as exc:
            raise CommandError(str(exc)) from exc
        url = options["url"]
        if url is None:
            url, source = default_ws_url()
            self._log(f"Site: {url}, {source}")
        game: Game | SpreadGame | None = None
        try:
            game = new_game(url, grid, options["wrap"], steps, speed or None, self._log, options["processes"])
            final = asyncio.run(game.play())
        except GameError as exc:
            raise CommandError(str(exc)) from exc
        except KeyboardInterrupt:
            if game is not None and game.progress.run:
                self.stdout.write(game.progress.summary())
            raise CommandError("Stopped: the cells are disconnected.", returncode=INTERRUPTED) from None
        if output is not None:
            try:
                Path(output).write_text(to_plaintext(final), encoding="utf-8")
            except OSError as exc:
                raise CommandError(f"--output {output}: {exc.strerror or exc}") from exc
            self.stdout.write(f"Final grid written to {output}")

    def _log(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()
