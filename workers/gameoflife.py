"""The distributed Game of Life's cells: size × size WebSocket clients, in one asyncio process
or spread over several.

Each cell is its own socket to ``/ws/gameoflife/cell/<run>/<index>/`` and computes its own next
state from its neighbours' states, which the server relays (protocol:
webapp/gameoflife/protocol.py). Cells step independently: a cell is at most one generation
ahead of a neighbour, so two buffers (even and odd generations) hold what it has received.

    grid = play_game("ws://127.0.0.1:8000", random_grid(32, seed=1), steps=50)
    grid = play_game("ws://127.0.0.1:8000", random_grid(64, seed=1), steps=50, processes=2)

With several processes (:class:`SpreadGame`) this one resets the server and starts the cell
processes, each with a band of rows (:func:`shares`); they connect, subscribe and run their cells
as one process would (a cell still learns its neighbours' states from the server only, wherever
they run), report each generation their cells complete, and close their cells together once every
process is done, or when told to stop. The cell processes ignore SIGINT: a Ctrl-C reaches this
process only, which stops them.
"""
from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import queue
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import InvalidState

from webapp.gameoflife import protocol

from .cellframes import CellFrames
from .patterns import Grid
from .testecho import _sigint_ignored
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
REPORT_EVERY = 5.0           # seconds between progress lines
STALL_TIMEOUT = 30.0         # seconds without a completed generation before the run is abandoned
CLOSE_WAIT = 1.0             # seconds a closing cell waits for the server to drop the connection
FILES_SPARE = 64             # files the process needs besides the cells' sockets
# Cells per process by default: 64×64 in two processes, 128×128 in eight, each well under the
# ~20,000 files of one process and far from a core's worth of CPU.
CELLS_PER_PROCESS = 2_048
TICK = 0.02                  # seconds between a cell process's reports (and its looks for a stop)
STOP_GRACE = 10.0            # seconds the cell processes get to close their cells and report

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
    frames: int = 0  # frames of states the cells have received
    states: int = 0  # states those frames carried (a cell's neighbour each)

    def rate(self, last: int | None = None) -> float:
        """Generations per second over the last ``last`` generations (all by default)."""
        times = self.completed if last is None else self.completed[-(last + 1):]
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def running(self) -> str:
        """Returns the progress line of a run going on."""
        return f"Run {self.run}: generation {len(self.completed) - 1}, {self.rate(50):.1f} generations/s"

    def summary(self) -> str:
        """Returns the line that says how far the run went."""
        if not self.completed:
            return f"Run {self.run}: stopped before its first generation"
        return (f"Run {self.run}: {len(self.completed) - 1} generations in "
                f"{self.completed[-1] - self.completed[0]:.1f}s ({self.rate():.1f} generations/s)")


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
        tokens = text.split(" ")
        progress = self.game.progress
        progress.frames += 1
        progress.states += len(tokens)
        for token in tokens:
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
    """One run over size × size cells in this process, from the reset to the last generation.

    Given ``run`` and ``share``, only the cells at the indices of ``share``, in run ``run`` that
    another process has reset (a cell process of :class:`SpreadGame`): once they have finished,
    they stay connected until ``hold`` returns."""

    def __init__(self, url: str, grid: Grid, wrap: bool = True, steps: int | None = None,
                 speed: float | None = 1.0, log: Log | None = None, *, run: int | None = None,
                 share: range | None = None, hold: Callable[[], Awaitable[None]] | None = None) -> None:
        self.url, self.target = game_target(url)
        self.size = size = len(grid)
        self.wrap = wrap
        self.steps = steps if steps is not None else 2**62
        self.period = 1.0 / speed if speed else 0.0
        self.log = log or (lambda line: None)
        self.progress = Progress()
        share = range(size * size) if share is None else share
        check_files(len(share))
        self.cells = [Cell(self, i, grid[i // size][i % size], neighbours(size, i // size, i % size, wrap))
                      for i in share]
        self._run, self._hold = run, hold
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

    def pids(self) -> list[int]:
        """Returns the process ids of the cells: this process."""
        return [os.getpid()]

    async def play(self) -> Grid:
        """Resets the server, connects and subscribes every cell, runs ``steps`` generations (for
        ever when None) and returns the final grid. Raises GameError."""
        alive = await self.play_cells()
        return [alive[r * self.size:(r + 1) * self.size] for r in range(self.size)]

    async def play_cells(self) -> list[bool]:
        """Runs the game (see :meth:`play`); returns the final states of this process's cells."""
        loop = asyncio.get_running_loop()
        self._failure, self._finished = loop.create_future(), loop.create_future()
        # Read at once, so a failure nobody awaits any more is not logged as unhandled.
        self._failure.add_done_callback(lambda future: future.cancelled() or future.exception())
        self.progress.began_at = time.monotonic()
        cells = self.size * self.size
        # A share's cells also wait for the other processes' cells to connect.
        phase_timeout = PHASE_TIMEOUT + cells / 500 + (0 if self._run is None else connect_timeout(cells))
        try:
            if self._run is None:
                self.progress.run = await reset(self.url, self.target, self.size)
                self.log(f"Run {self.progress.run}: {self.size}×{self.size} grid, connecting {cells} cells")
            else:
                self.progress.run = self._run
            await self._connect_all()
            self.progress.connected_at = time.monotonic()
            self.log(f"Run {self.progress.run}: {len(self.cells)} cells connected")
            await self._until(self._started(), phase_timeout, "the server did not start the run")
            await self._until_finished()
            if self._hold is not None:
                await self._hold()
            return [cell.alive for cell in self.cells]
        finally:
            await self._close_all()

    async def _connect_all(self) -> None:
        sources = source_addresses(self.target, self.size * self.size)
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
                          connect_timeout(len(self.cells)), "the cells could not all connect")

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
            if now - reported >= REPORT_EVERY:
                reported = now
                self.log(progress.running())
        self.log(progress.summary())

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


def game_target(url: str) -> tuple[str, WsTarget]:
    """Returns the Game of Life endpoint's URL for ``url`` (a site, ws://host:port, gets
    GAME_PATH) and its target; raises GameError for a bad URL."""
    try:
        # As given, so that an error names what was typed.
        target = parse_ws_url(url, example=f"ws://127.0.0.1:8000 or ws://127.0.0.1:8000{GAME_PATH}")
    except ValueError as exc:
        raise GameError(str(exc)) from exc
    url = endpoint(url, GAME_PATH)
    return url, WsTarget(url, target.ip, target.port)


def connect_timeout(cells: int) -> float:
    """Returns the seconds ``cells`` cells get to connect."""
    return CONNECT_TIMEOUT + cells / 50


async def reset(url: str, target: WsTarget, size: int) -> int:
    """Starts a new run of ``size`` × ``size`` cells at the endpoint ``url``; returns its id."""
    try:
        client = await open_client(WsTarget(url + "reset/", target.ip, target.port), timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, HandshakeRejected) as exc:
        raise GameError(f"cannot reach {url}reset/: {failure(exc)}") from exc
    try:
        client.send(str(size))
        try:
            reply = await client.recv(CONNECT_TIMEOUT)
        except (ConnectionError, TimeoutError) as exc:
            raise GameError(f"the server refused the reset: {closed_because(client)}") from exc
    finally:
        try:
            await client.close()
        except InvalidState:
            pass  # the server, which closes the socket after its reply, dropped it first
    kind, _, run = reply.partition(" ")
    if kind != protocol.RUN or not run.isdigit():
        raise GameError(f"unexpected reply to the reset: {reply[:60]!r}")
    return int(run)


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


def default_processes(cells: int) -> int:
    """Returns how many processes run ``cells`` cells by default: one per CELLS_PER_PROCESS."""
    return max(1, math.ceil(cells / CELLS_PER_PROCESS))


def check_processes(processes: int, cells: int) -> int:
    """Returns ``processes`` if they can run ``cells`` cells; raises GameError saying why not."""
    if processes < 1:
        raise GameError(f"--processes must be at least 1, not {processes}")
    if processes > cells:
        raise GameError(f"--processes {processes}: more processes than cells ({cells})")
    most = math.ceil(cells / processes)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and most + FILES_SPARE > hard:
        least = math.ceil(cells / (hard - FILES_SPARE))
        raise GameError(f"--processes {processes}: {most} cells in one process need {most + FILES_SPARE} open "
                        f"files; a process may open {hard}: use --processes {least} or more")
    return processes


def shares(cells: int, processes: int) -> list[range]:
    """Returns the cell indices of each of ``processes`` processes: consecutive, sizes differing
    by one at most."""
    bounds = [i * cells // processes for i in range(processes + 1)]
    return [range(start, stop) for start, stop in zip(bounds, bounds[1:], strict=False)]


def merge_generations(times: list[list[float]], completed: list[float]) -> None:
    """Appends to ``completed`` the generations every process has completed since: ``times[p][g]``
    is when process p's cells completed generation g; the whole grid did at the latest of them."""
    while all(len(done) > len(completed) for done in times):
        completed.append(max(done[len(completed)] for done in times))


class SpreadGame:
    """One run over size × size cells spread over ``processes`` cell processes (see the module's
    docstring); used as :class:`Game`."""

    def __init__(self, url: str, grid: Grid, wrap: bool = True, steps: int | None = None,
                 speed: float | None = 1.0, log: Log | None = None, processes: int = 2) -> None:
        self.url, self.target = game_target(url)
        self.grid, self.size, self.wrap, self.steps, self.speed = grid, len(grid), wrap, steps, speed
        self.log = log or (lambda line: None)
        self.progress = Progress()
        self.shares = shares(self.size * self.size, check_processes(processes, self.size * self.size))
        self._workers: list[Any] = []

    def pids(self) -> list[int]:
        """Returns the process ids of the cells: the cell processes and this one, which leads them."""
        return [os.getpid(), *(worker.pid for worker in self._workers if worker.pid is not None)]

    async def play(self) -> Grid:
        """Resets the server, starts the cell processes, follows the run (for ever when ``steps``
        is None) and returns the final grid; stops the cell processes when cancelled. Raises
        GameError."""
        progress, cells = self.progress, self.size * self.size
        progress.began_at = time.monotonic()
        progress.run = await reset(self.url, self.target, self.size)
        self.log(f"Run {progress.run}: {self.size}×{self.size} grid, connecting {cells} cells "
                 f"from {len(self.shares)} processes")
        context = multiprocessing.get_context("spawn")
        inbox, close = context.Queue(), context.Event()
        try:
            with _sigint_ignored():
                for index, share in enumerate(self.shares):
                    worker = context.Process(
                        target=cells_process, daemon=True, name=f"gameoflife-{index}",
                        args=(index, self.url, self.grid, self.wrap, self.steps, self.speed, progress.run,
                              (share.start, share.stop), inbox, close))
                    worker.start()
                    self._workers.append(worker)
            alive = await self._follow(inbox, close)
        finally:
            close.set()
            await self._wind_down(inbox)
        self.log(progress.summary())
        return [alive[r * self.size:(r + 1) * self.size] for r in range(self.size)]

    async def _follow(self, inbox: Any, close: Any) -> list[bool]:
        """Handles the cell processes' reports until each has sent its cells' final states;
        returns them. Raises GameError for the first process that failed or died."""
        progress, processes, cells = self.progress, len(self.shares), self.size * self.size
        times: list[list[float]] = [[] for _ in self.shares]
        counts = [(0, 0)] * processes
        connected: dict[int, float] = {}
        finished: set[int] = set()
        results: dict[int, list[bool]] = {}
        gone: dict[int, float] = {}  # processes found dead without their result, since when
        reported = time.monotonic()
        while len(results) < processes:
            try:
                kind, index, *payload = inbox.get_nowait()
            except queue.Empty:
                self._check_alive(results, gone)
                if progress.completed and time.monotonic() - reported >= REPORT_EVERY:
                    reported = time.monotonic()
                    self.log(progress.running())
                await asyncio.sleep(TICK)
                continue
            if kind == "connected":
                connected[index] = payload[0]
                if len(connected) == processes:
                    progress.connected_at = max(connected.values())
                    self.log(f"Run {progress.run}: {cells} cells connected")
            elif kind == "running" and not progress.started_at:
                progress.started_at = payload[0]
                self.log(f"Run {progress.run}: all {cells} cells subscribed, running")
            elif kind == "steps":
                times[index].extend(payload[0])
                counts[index] = payload[1], payload[2]
                progress.frames, progress.states = (sum(column) for column in zip(*counts, strict=True))
                merge_generations(times, progress.completed)
            elif kind == "finished":
                finished.add(index)
                if len(finished) == processes:
                    close.set()  # every cell has its last generation: all close together
            elif kind == "done":
                alive, error = payload
                if error is not None:
                    raise GameError(error)
                if alive is None:
                    raise GameError(f"cell process {index} stopped before the end")
                results[index] = alive
        return [state for index in range(processes) for state in results[index]]

    def _check_alive(self, results: dict[int, list[bool]], gone: dict[int, float]) -> None:
        """Raises GameError for a cell process that has been dead a second without reporting
        its result (its last reports may still be on their way until then)."""
        for index, worker in enumerate(self._workers):
            if index in results or worker.exitcode is None:
                continue
            since = gone.setdefault(index, time.monotonic())
            if time.monotonic() - since > 1.0:
                raise GameError(f"cell process {index} exited with code {worker.exitcode} before the end")

    async def _wind_down(self, inbox: Any) -> None:
        """Waits up to STOP_GRACE seconds for the cell processes to close their cells and exit,
        reading what they still send; terminates those that did not."""
        deadline = time.monotonic() + STOP_GRACE
        while any(worker.is_alive() for worker in self._workers) and time.monotonic() < deadline:
            try:
                while True:
                    inbox.get_nowait()
            except queue.Empty:
                pass
            await asyncio.sleep(TICK)
        for worker in self._workers:
            if worker.is_alive():
                worker.terminate()
            worker.join(1)


def cells_process(index: int, url: str, grid: Grid, wrap: bool, steps: int | None, speed: float | None,
                  run: int, share: tuple[int, int], inbox: Any, close: Any) -> None:
    """A cell process of :class:`SpreadGame`: runs the cells ``range(*share)`` of run ``run``,
    sends ("connected", index, time), ("running", index, time), ("steps", index, [times],
    frames, states) as they come, ("finished", index) once its cells have run ``steps``
    generations, then, after ``close`` is set, ("done", index, states or None, error or None)."""
    try:
        alive = asyncio.run(_run_share(index, url, grid, wrap, steps, speed, run, range(*share), inbox, close))
        inbox.put(("done", index, alive, None))
    except GameError as exc:
        inbox.put(("done", index, None, str(exc)))
    except Exception as exc:  # reported to the leading process, which says it
        inbox.put(("done", index, None, f"cell process {index}: {type(exc).__name__}: {exc}"))


async def _run_share(index: int, url: str, grid: Grid, wrap: bool, steps: int | None, speed: float | None,
                     run: int, share: range, inbox: Any, close: Any) -> list[bool] | None:
    """Runs the cells of ``share`` (see :func:`cells_process`); returns their final states, or
    None if told to stop before their end."""
    holding = False

    async def hold() -> None:
        nonlocal holding
        holding = True
        report()
        inbox.put(("finished", index))
        while not close.is_set():
            await asyncio.sleep(TICK)

    game = Game(url, grid, wrap, steps, speed, run=run, share=share, hold=hold)
    progress, sent = game.progress, [False, False, 0]

    def report() -> None:
        if progress.connected_at and not sent[0]:
            sent[0] = True
            inbox.put(("connected", index, progress.connected_at))
        if progress.started_at and not sent[1]:
            sent[1] = True
            inbox.put(("running", index, progress.started_at))
        if len(progress.completed) > sent[2]:
            inbox.put(("steps", index, progress.completed[sent[2]:], progress.frames, progress.states))
            sent[2] = len(progress.completed)

    play = asyncio.ensure_future(game.play_cells())
    while not play.done():
        await asyncio.wait({play}, timeout=TICK)
        report()
        if close.is_set() and not holding:
            play.cancel()
            await asyncio.gather(play, return_exceptions=True)
            return None
    return play.result()


def new_game(url: str, grid: Grid, wrap: bool = True, steps: int | None = None, speed: float | None = 1.0,
             log: Log | None = None, processes: int | None = None) -> Game | SpreadGame:
    """Returns the game: in this process if ``processes`` is 1, else spread over them (by
    default one process per CELLS_PER_PROCESS cells). Raises GameError."""
    cells = len(grid) ** 2
    processes = default_processes(cells) if processes is None else check_processes(processes, cells)
    if processes == 1:
        return Game(url, grid, wrap, steps, speed, log)
    return SpreadGame(url, grid, wrap, steps, speed, log, processes)


def play_game(url: str, grid: Grid, wrap: bool = True, steps: int | None = None,
              speed: float | None = 1.0, log: Log | None = None, processes: int | None = 1) -> Grid:
    """Runs a game to its end (see :meth:`Game.play`) in a new event loop, on ``processes``
    processes (None: the default for the grid); returns the final grid. Raises GameError."""
    return asyncio.run(new_game(url, grid, wrap, steps, speed, log, processes).play())
