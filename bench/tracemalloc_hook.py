"""Where a uWSGI WebSocket worker's Python allocations are, on request: imported into each worker by
``python -m bench socket_memory`` through uWSGI's ``import`` option (``UWSGI_IMPORT`` in the
environment of deploy/uwsgi.ini's emperor, which its vassals inherit), the application untouched.

Only in a uWSGI worker of a gevent instance (``uwsgi.opt`` has ``gevent``: the WebSocket vassal),
and only when BENCH_TRACEMALLOC_DIR names a directory, it starts ``tracemalloc`` at import (with
deploy/uwsgi.ini's ``lazy-apps``, imports run in each worker after the fork) and runs a greenlet
that polls the directory. When ``<pid>.req`` appears there (its text: a label), the greenlet runs
``gc.collect()``, takes a snapshot, and writes ``<pid>-<label>.json``: the traced total, the
memory tracemalloc itself uses, and every line that allocated (file, line, bytes, blocks, from
``statistics("lineno")``), then removes the request. Anywhere else (the emperor, the Django
vassal, a master) importing it does nothing.

Allocations made with no Python frame on the stack (uWSGI building a request's environ in C) are
under the file ``<unknown>``; a greenlet's saved C stack is under the line that switched away.
"""
from __future__ import annotations

import gc
import json
import os
import tracemalloc
from pathlib import Path
from typing import Any

DIRECTORY_VARIABLE = "BENCH_TRACEMALLOC_DIR"
POLL_SECONDS = 0.2


def _uwsgi_gevent_worker() -> bool:
    """True in a worker of a uWSGI instance that runs gevent."""
    try:
        import uwsgi  # only inside uWSGI
    except ImportError:
        return False
    options = {key.decode() if isinstance(key, bytes) else key for key in getattr(uwsgi, "opt", {})}
    return "gevent" in options and uwsgi.worker_id() > 0


def snapshot(label: str) -> dict[str, Any]:
    """Returns what is traced now, line by line (after a full collection)."""
    gc.collect()
    taken = tracemalloc.take_snapshot()
    traced, peak = tracemalloc.get_traced_memory()
    lines = [[stat.traceback[0].filename, stat.traceback[0].lineno, stat.size, stat.count]
             for stat in taken.statistics("lineno")]
    del taken
    return {"pid": os.getpid(), "label": label, "traced_bytes": traced, "peak_bytes": peak,
            "tracemalloc_bytes": tracemalloc.get_tracemalloc_memory(), "lines": lines}


def serve_requests(directory: Path) -> None:
    """Answers ``<pid>.req`` files in ``directory``, forever (a greenlet)."""
    import gevent

    request = directory / f"{os.getpid()}.req"
    while True:
        gevent.sleep(POLL_SECONDS)
        try:
            label = request.read_text().strip() or "snapshot"
        except OSError:
            continue
        answer = directory / f"{os.getpid()}-{label}.json"
        partial = answer.with_suffix(".part")
        partial.write_text(json.dumps(snapshot(label)))
        partial.rename(answer)  # the reader never sees half a file
        request.unlink()


def install() -> bool:
    """Starts tracing and the request greenlet where this applies; returns whether it did."""
    directory = os.environ.get(DIRECTORY_VARIABLE)
    if not directory or not _uwsgi_gevent_worker():
        return False
    import gevent

    tracemalloc.start()
    gevent.spawn(serve_requests, Path(directory))
    Path(directory, f"{os.getpid()}.ready").write_text("tracing\n")
    return True


INSTALLED = install()
