"""The distributed Game of Life's cells: size × size WebSocket clients in one asyncio process.

Each cell is its own socket to ``/ws/gameoflife/cell/<run>/<index>/`` and computes its own next
state from its neighbours' states, which the server relays (protocol:
webapp/gameoflife/protocol.py). Cells step independently: a cell is at most one generation
ahead of a neighbour, so two buffers (even and odd generations) hold what it has received.

    grid = play_game("ws://127.0.0.1:8000", random_grid(32, seed=1), steps=50)
"""
from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from webapp.gameoflife import protocol

from .cellframes import CellFrames
from .patterns import Grid
from .wsload import (
    HandshakeRejected,
    WebSocketClient,
    WsTarget,
    endpoint,
    open_client,
    parse_ws_url,
    source_addresses,
)

GAME_PATH = "/ws/gameoflife/"  # the endpoint on a site given as ws://host:port
CONNECTING_AT_ONCE = 64      # handshakes in flight while the cells connect
CONNECT_TIMEOUT = 15.0       # seconds for one cell's handshake
PHASE_TIMEOUT = 60.0         # seconds for the server to say "sub" or "run" once all are connected
STALL_TIMEOUT = 30.0         # seconds without a completed generation before the run is abandoned
CLOSE_WAIT = 1.0             # seconds a closing cell waits for the server to drop the connection
FILES_SPARE = 64             # files the process needs besides the cells' sockets

Log = Callable[[str], None]


class GameError(RuntimeError):
    """The run could not start or could not go on; the message says why."""


def neighbours(size: int, row: int, column: int, wrap: bool) -> list[int]:
    """Returns the indices (row × size + column) of the 8 neighbours of a cell, fewer at the
    edges without ``wrap``; on a torus smaller than 3 × 3 a cell may be its own neighbour."""
    found = []
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if dr == dc == 0:
                continue
            r, c = row + dr, column + dc
            if wrap:
                r, c = r % size, c % size
            elif not (0 <= r < size and 0 <= c < size):
                continue
            found.append(r * size + c)
    return found


@dataclass
class Progress:
    """What a run went through: its id, when it began, when its cells were connected and started, and when
    each generation was complete (``completed[g]``: every cell had sent generation g), in
    ``time.monotonic()`` seconds."""

    run: int = 0
    began_at: float = 0.0
    connected_at: float = 0.0
    started_at: float = 0.0
    completed: list[float] = field(default_factory=list)

    def rate(self, last: int | None = None) -> float:
        """Generations per second over the last ``last`` generations (all by default)."""
        times = self.completed if last is None else self.completed[-(last + 1):]
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])


class Cell:
    """One cell: its socket, its state, and what it has received of the current and the next
    generation (slot ``step % 2``)."""

    __slots__ = ("game", "index", "alive", "listens", "step", "received", "alive_around", "client", "frames",
                 "_current", "_next", "_waiting")

    def __init__(self, game: Game, index: int, alive: bool, listens: list[int]) -> None:
        self.game = game
        self.index = index
        self.alive = alive
        self.listens = listens
        self.step = 0
        self.received = [0, 0]
        self.alive_around = [0, 0]
        self.client: WebSocketClient | None = None
        self.frames: CellFrames | None = None  # the client's frames, once open_client() has returned
        self._current, self._next = "0", "1"  # the steps as they appear on the wire
        self._waiting = False

    def on_message(self, text: str, arrival: float) -> None:
        if self.frames is None:
            # "sub" can arrive before open_client() has returned this cell's client.
            asyncio.get_running_loop().call_soon(self.on_message, text, arrival)
        elif text[0].isdigit():
            self._on_states(text)
        elif text == protocol.SUBSCRIBE:
            self.frames.send(protocol.subscription(self.listens))
        elif text == protocol.RUN:
            self.game.on_run()
            self.frames.send(protocol.state(0, self.alive))
            self.game.on_step(0)
            self._advance()
        else:
            self.game.fail(f"cell {self.index}: unexpected message {text[:40]!r}")

    def _on_states(self, text: str) -> None:
        received, alive_around = self.received, self.alive_around
        current, following = self._current, self._next
        slot = self.step & 1
        for token in text.split(" "):
            step = token[token.find(":") + 1:-2]
            if step == current:
                at = slot
            elif step == following:
                at = 1 - slot
            else:
                self.game.fail(f"cell {self.index} at generation {current} received {token!r}: "
                               "a neighbour is more than one generation away")
                return
            received[at] += 1
            if token[-1] == "1":
                alive_around[at] += 1
        self._advance()

    def _advance(self) -> None:
        """Computes the next generations for which every neighbour's state is in, if the clock
        allows; otherwise asks the clock to call back."""
        game, received, n = self.game, self.received, len(self.listens)
        while not self._waiting and self.step < game.steps and received[self.step & 1] == n:
            if not game.clock_allows(self):
                self._waiting = True
                return
            slot = self.step & 1
            around = self.alive_around[slot]
            received[slot] = self.alive_around[slot] = 0
            self.alive = around == 3 or (self.alive and around == 2)
            self.step += 1
            self._current, self._next = self._next, str(self.step + 1)
            self.frames.send(f"{self.step}:{1 if self.alive else 0}")  # type: ignore[union-attr]
            game.on_step(self.step)

    def resume(self) -> None:
        """Called by the clock when the cell's next generation is due."""
        self._waiting = False
        self._advance()


class Game:
    """One run over size × size cells, from the reset to the last generation."""

    def __init__(self, url: str, grid: Grid, wrap: bool = True, steps: int | None = None,
                 speed: float | None = 1.0, log: Log | None = None) -> None:
        try:
            # As given, so that an error names what was typed.
            target = parse_ws_url(url, example=f"ws://127.0.0.1:8000 or ws://127.0.0.1:8000{GAME_PATH}")
        except ValueError as exc:
            raise GameError(str(exc)) from exc
        self.url = endpoint(url, GAME_PATH)
        self.target = WsTarget(self.url, target.ip, target.port)
        self.size = len(grid)
        self.wrap = wrap
        self.steps = steps if steps is not None else 2**62
        self.period = 1.0 / speed if speed else 0.0
        self.log = log or (lambda line: None)
        self.progress = Progress()
        check_files(self.size * self.size)
        self.cells = [Cell(self, r * self.size + c, grid[r][c], neighbours(self.size, r, c, wrap))
                      for r in range(self.size) for c in range(self.size)]
        self._reached: dict[int, int] = {}
        self._due: dict[int, list[Cell]] = {}
        self._failure: asyncio.Future[None] | None = None
        self._finished: asyncio.Future[None] | None = None

    # -- called by the cells -----------------------------------------------------------------------

    def on_run(self) -> None:
        if not self.progress.started_at:
            self.progress.started_at = time.monotonic()
            self.log(f"Run {self.progress.run}: all {len(self.cells)} cells subscribed, running")

    def on_step(self, step: int) -> None:
        reached = self._reached.get(step, 0) + 1
        if reached < len(self.cells):
            self._reached[step] = reached
            return
        del self._reached[step]
        self.progress.completed.append(time.monotonic())
        if step >= self.steps and self._finished is not None and not self._finished.done():
            self._finished.set_result(None)

    def clock_allows(self, cell: Cell) -> bool:
        """True if ``cell`` may compute its next generation now; otherwise the clock resumes it
        when that generation is due (at most ``speed`` generations per second)."""
        if not self.period:
            return True
        step = cell.step + 1
        due = self.progress.started_at + step * self.period
        loop = asyncio.get_running_loop()
        if time.monotonic() >= due:
            return True
        waiting = self._due.get(step)
        if waiting is None:
            waiting = self._due[step] = []
            loop.call_later(due - time.monotonic(), self._release, step)
        waiting.append(cell)
        return False

    def _release(self, step: int) -> None:
        for cell in self._due.pop(step, ()):
            cell.resume()

    def fail(self, reason: str) -> None:
        if self._failure is not None and not self._failure.done():
            self._failure.set_exception(GameError(reason))

    # -- the run -----------------------------------------------------------------------------------

    async def play(self) -> Grid:
        """Resets the server, connects and subscribes every cell, runs ``steps`` generations (for
        ever when None) and returns the final grid. Raises GameError."""
        loop = asyncio.get_running_loop()
        self._failure, self._finished = loop.create_future(), loop.create_future()
        # Read at once, so a failure nobody awaits any more is not logged as unhandled.
        self._failure.add_done_callback(lambda future: future.cancelled() or future.exception())
        self.progress.began_at = time.monotonic()
        try:
            self.progress.run = await self._reset()
            self.log(f"Run {self.progress.run}: {self.size}×{self.size} grid, connecting {len(self.cells)} cells")
            await self._connect_all()
            self.progress.connected_at = time.monotonic()
            self.log(f"Run {self.progress.run}: {len(self.cells)} cells connected")
            await self._until(self._started(), PHASE_TIMEOUT + len(self.cells) / 500,
                              "the server did not start the run")
            await self._until_finished()
            return [[cell.alive for cell in self.cells[r * self.size:(r + 1) * self.size]]
                    for r in range(self.size)]
        finally:
            await self._close_all()

    async def _reset(self) -> int:
        try:
            client = await open_client(WsTarget(self.url + "reset/", self.target.ip, self.target.port),
                                       timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, HandshakeRejected) as exc:
            raise GameError(f"cannot reach {self.url}reset/: {failure(exc)}") from exc
        try:
            client.send(str(self.size))
            try:
                reply = await client.recv(CONNECT_TIMEOUT)
            except (ConnectionError, TimeoutError) as exc:
                raise GameError(f"the server refused the reset: {closed_because(client)}") from exc
        finally:
            await client.close()
        kind, _, run = reply.partition(" ")
        if kind != protocol.RUN or not run.isdigit():
            raise GameError(f"unexpected reply to the reset: {reply[:60]!r}")
        return int(run)

    async def _connect_all(self) -> None:
        sources = source_addresses(self.target, len(self.cells))
        gate = asyncio.Semaphore(CONNECTING_AT_ONCE)
        base = f"{self.url}cell/{self.progress.run}/"

        async def connect(cell: Cell) -> None:
            target = WsTarget(f"{base}{cell.index}/", self.target.ip, self.target.port)
            async with gate:
                try:
                    client = await open_client(target, sources[cell.index % len(sources)],
                                               CONNECT_TIMEOUT, cell.on_message)
                except (OSError, TimeoutError, HandshakeRejected) as exc:
                    raise GameError(f"cell {cell.index} could not connect: {failure(exc)}") from exc
            cell.client, cell.frames = client, CellFrames(client)
            client.closed.add_done_callback(lambda _: self._on_closed(cell))

        await self._until(asyncio.gather(*(connect(cell) for cell in self.cells)),
                          CONNECT_TIMEOUT + len(self.cells) / 50, "the cells could not all connect")

    def _on_closed(self, cell: Cell) -> None:
        if self._finished is not None and not self._finished.done():
            self.fail(f"cell {cell.index}: the server closed the socket ({closed_because(cell.client)})")

    async def _started(self) -> None:
        while not self.progress.completed:
            await asyncio.sleep(0.05)

    async def _until_finished(self) -> None:
        """Waits for the last generation, logging progress; raises GameError if a cell fails or
        no generation completes for STALL_TIMEOUT seconds."""
        assert self._finished is not None and self._failure is not None
        progress = self.progress
        reported = time.monotonic()
        while not self._finished.done():
            await asyncio.wait({self._finished, self._failure}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            if self._failure.done():
                self._failure.result()
            now = time.monotonic()
            if now - progress.completed[-1] > STALL_TIMEOUT:
                raise GameError(f"run {progress.run} stalled after generation {len(progress.completed) - 1}")
            if now - reported >= 5:
                reported = now
                self.log(f"Run {progress.run}: generation {len(progress.completed) - 1}, "
                         f"{progress.rate(50):.1f} generations/s")
        self.log(f"Run {progress.run}: {len(progress.completed) - 1} generations in "
                 f"{progress.completed[-1] - progress.completed[0]:.1f}s ({progress.rate():.1f} generations/s)")

    async def _until(self, awaitable: Awaitable[object], timeout: float, what: str) -> None:
        """Awaits ``awaitable``; raises GameError if a cell fails first, or (saying ``what``) if
        it takes more than ``timeout`` seconds."""
        assert self._failure is not None
        task: asyncio.Future[Any] = asyncio.ensure_future(awaitable)
        either: set[asyncio.Future[Any]] = {task, self._failure}
        done, _ = await asyncio.wait(either, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if task not in done:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if self._failure.done():
                self._failure.result()
            raise GameError(f"{what} within {timeout:.0f}s")
        task.result()

    async def _close_all(self) -> None:
        if self._finished is not None and not self._finished.done():
            self._finished.set_result(None)  # closing now is not a failure
        clients = [cell.client for cell in self.cells if cell.client is not None]
        # All at once, each waiting briefly for the server to drop the TCP connection: nginx
        # lingers a few seconds on connections the client closes.
        await asyncio.gather(*(client.close(timeout=CLOSE_WAIT) for client in clients))


def failure(exc: BaseException) -> str:
    """Returns why a connection attempt failed, in words."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the site running?)"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def closed_because(client: WebSocketClient | None) -> str:
    """Returns the close code and reason the server gave ``client``, as text."""
    if client is None:
        return "not connected"
    received = client.protocol.close_rcvd
    if received is None:
        return "connection lost"
    return f"{received.code} {received.reason}".strip()


def check_files(sockets: int) -> None:
    """Raises the soft limit on open files as far as needed and allowed; raises GameError if
    ``sockets`` sockets cannot fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = sockets + FILES_SPARE
    if soft < needed and (hard == resource.RLIM_INFINITY or hard > soft):
        soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft < needed:
        raise GameError(f"{sockets} cells need {needed} open files; this process may open {soft}: "
                        "use a smaller size")


def play_game(url: str, grid: Grid, wrap: bool = True, steps: int | None = None,
              speed: float | None = 1.0, log: Log | None = None) -> Grid:
    """Runs a game to its end (see :meth:`Game.play`) in a new event loop; returns the final
    grid. Raises GameError."""
    return asyncio.run(Game(url, grid, wrap, steps, speed, log).play())
