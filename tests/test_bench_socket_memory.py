"""``python -m bench socket_memory`` end to end on a tiny N (no figure is judged: the suite prints
the table, with a per-socket RSS and a traced heap, and stops every process it started), and its
grouping of traced lines into the README's rows."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.socket_memory import (
    BOOKKEEPING,
    GREENLETS,
    GROUPS,
    HANDSHAKE,
    OTHER,
    OWN,
    REDIS,
    UNKNOWN,
    by_group,
    group_of,
    growth,
    parse_args,
)
from webapp.echo.tests.test_bench import RUN_LIMIT, _run_bench

SOCKETS = 200
SITE = "/work/venv/lib/python3.11/site-packages"


@pytest.mark.bench
def test_a_small_run_prints_the_table_with_the_worker_rss_and_the_traced_heap(tmp_path: Path) -> None:
    status, output, left = _run_bench(["socket_memory", "--sockets", str(SOCKETS), "--hold", "0",
                                       "--out", str(tmp_path)])
    assert status is not None, f"still running after {RUN_LIMIT} s:\n{output}"
    assert status == 0, output
    assert not left, f"processes left running: {left}"

    untraced_rss = re.search(r"\| \*\*RSS per idle socket\*\*, no tracing \| \| \*\*(-?[\d.]+)\*\* \|", output)
    traced_heap = re.search(r"\| Python's heap, traced \| \| (-?[\d.]+) \|", output)
    assert untraced_rss and traced_heap, output
    assert float(untraced_rss.group(1)) > 0 and float(traced_heap.group(1)) > 0
    assert "Top 15 lines by growth" in output and "tracemalloc inflates" in output

    (result_file,) = tmp_path.glob("socket-memory-*.json")
    result = json.loads(result_file.read_text())
    traced, untraced = result["runs"]
    assert traced["traced"] and not untraced["traced"]
    assert traced["held"] == untraced["held"] == SOCKETS
    assert traced["traced_kib_per_socket"] > 0 and set(traced["groups_kib_per_socket"]) == set(GROUPS)
    assert len(traced["top_lines"]) == 15
    assert (tmp_path / "socket-memory-latest.md").read_text() == result_file.with_suffix(".md").read_text()


@pytest.mark.parametrize("argv, message", [
    (["--sockets", "0"], "--sockets must be between 1 and 20,000"),
    (["--sockets", "20001"], "--sockets must be between 1 and 20,000"),
    (["--hold", "-1"], "--hold must be >= 0"),
    (["--no-trace", "--trace-only"], "not allowed with argument"),
])
def test_bad_arguments_exit_with_a_message(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("path, group", [
    ("<unknown>", UNKNOWN),
    (f"{SITE}/ws4redis_server/connection.py", OWN),
    ("/work/main/ws4redis_server/transports/uwsgi.py", OWN),
    (f"{SITE}/ws4redis_server/protocol.py", OWN),
    (f"{SITE}/ws4redis_server/server.py", BOOKKEEPING),
    (f"{SITE}/ws4redis_server/hub.py", BOOKKEEPING),
    (f"{SITE}/ws4redis_server/handshake.py", HANDSHAKE),
    (f"{SITE}/django/http/request.py", HANDSHAKE),
    (f"{SITE}/asgiref/local.py", HANDSHAKE),
    (f"{SITE}/redis/_parsers/resp2.py", REDIS),
    (f"{SITE}/gevent/hub.py", GREENLETS),
    (f"{SITE}/ws4redis_server/wsgi.py", OTHER),
    ("<frozen importlib._bootstrap>", OTHER),
])
def test_each_allocating_file_has_its_row(path: str, group: str) -> None:
    assert group_of(path) == group


def test_growth_counts_new_grown_shrunk_and_freed_lines_largest_first() -> None:
    before = [["a.py", 1, 100, 1], ["b.py", 2, 50, 1], ["gone.py", 3, 30, 2], ["same.py", 4, 8, 1]]
    after = [["a.py", 1, 400, 4], ["b.py", 2, 20, 1], ["new.py", 5, 200, 2], ["same.py", 4, 8, 1]]
    assert growth(before, after) == [("a.py", 1, 300, 3), ("new.py", 5, 200, 2), ("b.py", 2, -30, 0),
                                     ("gone.py", 3, -30, -2)]


def test_by_group_sums_every_row_even_the_empty_ones() -> None:
    sums = by_group([("<unknown>", 0, 64, 1), (f"{SITE}/ws4redis_server/hub.py", 9, 32, 1),
                     (f"{SITE}/ws4redis_server/server.py", 3, -8, 0)])
    assert sums == {**dict.fromkeys(GROUPS, 0), UNKNOWN: 64, BOOKKEEPING: 24}
