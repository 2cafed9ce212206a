"""The Game of Life page in Chromium, opened while a run goes on."""
from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from deploy.stack import ROOT, stop_pid

pytestmark = [pytest.mark.browser, pytest.mark.slow]

GENERATION = "+document.getElementById('gol-generation').textContent"
ALIVE = """() => {
  const canvas = document.getElementById('gol-grid');
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const alive = [];
  for (let i = 0; i < pixels.length; i += 4) if (pixels[i] + pixels[i + 1] + pixels[i + 2] < 3 * 128) alive.push(i / 4);
  return alive;
}"""


@contextmanager
def running(stack, *options: str) -> Iterator[subprocess.Popen]:
    """``manage.py gameoflife`` in the background until the block ends (stopped with Ctrl-C)."""
    command = [sys.executable, str(ROOT / "manage.py"), "gameoflife", "--url", stack.ws_url, *options]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    try:
        for line in process.stdout:  # bounded: the run ends after its steps if nothing else
            if "running" in line:
                break
        yield process
    finally:
        stop_pid(process, signal.SIGINT, 15)


def test_the_page_draws_a_run_live_and_resets_for_the_next(stack, new_page, artifacts_dir):
    with running(stack, "-s", "24", "--seed", "5", "-l", "4", "-n", "400"):
        page = new_page()
        page.goto("/gameoflife/")
        page.wait_for_function(f"() => {GENERATION} >= 2", timeout=30_000)
        assert page.title() == "Game of Life (24×24)"
        assert page.locator("#gol-connected").text_content() == "576"
        assert page.locator("#gol-subscribed").text_content() == "576"
        seen = page.evaluate(ALIVE)
        generation = int(page.locator("#gol-generation").text_content())
        page.wait_for_function(f"() => {GENERATION} >= {generation + 3}", timeout=30_000)
        later = page.evaluate(ALIVE)
        assert seen and later and later != seen  # cells changed state
        page.wait_for_function("() => +document.getElementById('gol-rate').textContent > 0", timeout=30_000)
        assert float(page.locator("#gol-rate").text_content()) <= 4 * 2  # the run goes at 4 generations/s at most
        page.screenshot(path=str(artifacts_dir / "gameoflife.png"), full_page=True)

    with running(stack, "-s", "8", "-p", "blinker", "-l", "4", "-n", "400"):
        page.wait_for_function("() => document.title === 'Game of Life (8×8)'", timeout=30_000)
        page.wait_for_function(f"() => {GENERATION} >= 1", timeout=30_000)
        assert page.locator("#gol-connected").text_content() == "64"
        # The blinker, horizontal (row 3, columns 2 to 4) or vertical (column 3, rows 2 to 4),
        # once every cell has drawn the same generation.
        page.wait_for_function(f"() => ['26,27,28', '19,27,35'].includes(({ALIVE})().join())", timeout=30_000)


PHASE = "document.getElementById('gol-status').dataset.phase"
# Every part of the status line on a single line of text: it wraps between parts, never inside one.
PARTS_UNBROKEN = """() => [...document.querySelectorAll('.gol-part')].every(
  (part) => part.getBoundingClientRect().height < 1.5 * parseFloat(getComputedStyle(part).lineHeight))"""


def test_the_page_says_when_a_run_has_finished(stack, new_page, artifacts_dir):
    page = new_page()
    page.set_viewport_size({"width": 560, "height": 900})  # narrow: the status line must wrap
    page.goto("/gameoflife/")
    # The command on the page drives this very server.
    assert page.locator("#gol-command").text_content() == (
        f".venv/bin/python manage.py gameoflife --url {stack.ws_url} -s 32 -l 5")
    with running(stack, "-s", "8", "-p", "blinker", "-l", "4", "-n", "12") as game:
        page.wait_for_function(f"() => {PHASE} === 'running'", timeout=30_000)
        page.wait_for_function("() => +document.getElementById('gol-rate').textContent > 0", timeout=30_000)
        assert page.locator("#gol-phase").text_content() == "running"
        game.wait(60)  # 12 generations at 4 a second, then the cells leave
        assert game.returncode == 0
    page.wait_for_function(f"() => {PHASE} === 'finished'", timeout=30_000)
    assert page.locator("#gol-phase").text_content() == "finished"
    assert page.locator("#gol-rate").text_content() == "–"  # no rate once the cells have gone
    assert page.locator("#gol-generation").text_content() == "12"
    status = page.locator("#gol-status").inner_text()
    assert "64 cells connected" in status and "64 cells subscribed" in status and "worker" not in status
    assert page.evaluate(PARTS_UNBROKEN)
    page.screenshot(path=str(artifacts_dir / "gameoflife-finished.png"), full_page=True)

    later = new_page()  # opened after the end: the run's state says so at once
    later.goto("/gameoflife/")
    later.wait_for_function(f"() => {PHASE} === 'finished'", timeout=30_000)
