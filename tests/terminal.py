"""Commands run as from a terminal: in a process group of their own, Ctrl-C sent to the whole
group (as a terminal does), their output read line by line with deadlines."""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from deploy.stack import ROOT


def _default_sigint() -> None:
    # Tests may run as a background job, where SIGINT is ignored and children inherit that.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Terminal:
    """``command`` running in a process group of its own; use it as a context manager, which
    stops the group (SIGTERM, then SIGKILL) if it still runs at the end."""

    def __init__(self, *command: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
        self.process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                        preexec_fn=_default_sigint)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, wanted: str | Callable[[str], bool], timeout: float) -> str:
        """Returns the first line (from now on) containing ``wanted`` or for which it is true;
        fails the test with the output so far after ``timeout`` seconds or at the end of it."""
        match = wanted if callable(wanted) else (lambda line: wanted in line)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                self._queue.put(None)
                raise AssertionError(f"the output ended without {wanted!r}:\n{self.output}")
            self.lines.append(line)
            if match(line):
                return line
        raise AssertionError(f"no {wanted!r} within {timeout:g} s:\n{self.output}")

    def ctrl_c(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)

    def finish(self, timeout: float) -> int:
        """Waits for the command to exit and for the rest of its output; returns its status."""
        code = self.process.wait(timeout)
        self._reader.join(timeout)
        while (line := self._queue.get_nowait() if not self._queue.empty() else None) is not None:
            self.lines.append(line)
        return code

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
