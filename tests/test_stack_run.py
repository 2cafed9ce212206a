"""``make run`` (``python -m deploy.stack run``): numbered steps, one stack per port and per run
directory, the record the demo commands find the site by, and Ctrl-C."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy import running
from deploy.stack import ROOT, Stack, free_port, private_dir, wait_for
from tests.terminal import Terminal

RUN_TIMEOUT = 60  # seconds a refused start may take (it starts nothing)


def stack_run(port: int, run_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deploy.stack", "run", "--port", str(port), "--run-dir", str(run_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT)


def test_a_port_something_listens_on_is_refused(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        done = stack_run(port, tmp_path / "run")
    assert done.returncode == 1
    assert f"Port {port} is taken: held by PID {os.getpid()} (" in done.stderr
    assert "make run" in done.stderr.splitlines()[-1]  # PORT=<a free one> make run
    assert done.stdout == ""  # not one step started
    assert not (tmp_path / "run").exists()


def test_a_port_another_stacks_nginx_holds_is_refused(stack: Stack, tmp_path: Path) -> None:
    # nginx listens with reuseport: a second nginx would bind the port without an error.
    done = stack_run(stack.port, tmp_path / "run")
    assert done.returncode == 1
    assert f"Port {stack.port} is taken: held by PID {stack.nginx.pid} (nginx: master process" in done.stderr
    assert done.stdout == ""


def test_the_run_directory_of_a_live_stack_is_refused(stack: Stack) -> None:
    done = stack_run(free_port(), stack.run_dir)
    assert done.returncode == 1
    assert f"{stack.run_dir}/ belongs to a stack that is still running: " in done.stderr
    assert f"uwsgi PID {stack.uwsgi.pid} (emperor.pid)" in done.stderr
    assert f"nginx PID {stack.nginx.pid} (nginx.pid)" in done.stderr
    assert done.stdout == ""
    assert stack.uwsgi.poll() is None and stack.nginx.poll() is None  # untouched


def test_pid_files_of_gone_or_other_processes_hold_nothing(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(30)
    (tmp_path / "nginx.pid").write_text(f"{gone.pid}\n")
    (tmp_path / "emperor.pid").write_text(f"{os.getpid()}\n")  # alive, but not uWSGI
    (tmp_path / "stack.json").write_text(json.dumps({"pid": os.getpid(), "port": 8000}))
    assert running.live_servers(tmp_path) is None
    assert running.refusal(free_port(), tmp_path) is None


def test_the_nodes_and_redis_servers_of_make_cluster_hold_their_run_directory(tmp_path: Path) -> None:
    # Stand-ins whose command lines name the programs: a WebSocket node (uWSGI) and a Redis
    # Cluster server left running by a `make cluster` whose other processes are gone.
    node = subprocess.Popen(["uwsgi", "60"], executable="/bin/sleep")
    server = subprocess.Popen(["redis-server", "60"], executable="/bin/sleep")
    try:
        # Popen returns once the child execs (vfork), possibly before the kernel has set up its
        # arguments: /proc/<pid>/cmdline reads empty for that moment.
        for process in (node, server):
            wait_for(lambda process=process: Path(f"/proc/{process.pid}/cmdline").read_bytes() != b"", 10,
                     f"the command line of PID {process.pid}")
        (tmp_path / "websocket-2.pid").write_text(f"{node.pid}\n")
        (tmp_path / "redis-cluster" / "7001").mkdir(parents=True)
        (tmp_path / "redis-cluster" / "7001" / "redis.pid").write_text(f"{server.pid}\n")
        assert running.live_servers(tmp_path) == (f"uwsgi PID {node.pid} (websocket-2.pid); "
                                                  f"redis-server PID {server.pid} (redis-cluster/7001/redis.pid)")
        done = stack_run(free_port(), tmp_path)
        assert done.returncode == 1 and done.stdout == ""
        assert f"{tmp_path}/ belongs to a stack that is still running: " in done.stderr
    finally:
        for process in (node, server):
            process.kill()
            process.wait(10)
    assert running.live_servers(tmp_path) is None


def test_the_commands_fall_back_to_port_or_8000(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WS4R_RUN_DIR", str(tmp_path))
    monkeypatch.delenv("PORT", raising=False)
    assert running.default_ws_url() == (
        "ws://127.0.0.1:8000", f"the default port: no running `make run` recorded in {tmp_path}/stack.json")
    monkeypatch.setenv("PORT", "8301")
    assert running.default_ws_url() == (
        "ws://127.0.0.1:8301", f"from PORT: no running `make run` recorded in {tmp_path}/stack.json")


def test_the_rendered_nginx_conf_has_no_placeholder_note(tmp_path: Path) -> None:
    text = Stack(free_port(), "redis://127.0.0.1:1/0", run_dir=tmp_path).render_nginx().read_text()
    assert text.startswith("# Rendered by deploy/stack.py from ")
    assert "${" not in text and "envsubst" not in text
    assert "# nginx in front of the two uWSGI instances" in text and "# Capacity:" in text


def get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.headers["Content-Type"], response.read()


def manage(*args: str, run_dir: Path) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=180, env={**os.environ, "WS4R_RUN_DIR": str(run_dir)})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def served_dir() -> Iterator[Path]:
    """A run directory that nginx's workers may reach (pytest's tmp_path is private to root)."""
    parent = private_dir("ws4r-stack-run-")
    yield parent / "run"
    shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.slow
def test_run_shows_its_steps_serves_the_demos_and_stops_on_ctrl_c(redis_server, served_dir: Path) -> None:
    port, run_dir = free_port(), served_dir
    with Terminal(sys.executable, "-m", "deploy.stack", "run", "--port", str(port), "--run-dir", str(run_dir),
                  env={**os.environ, "WS_WORKERS": "1", "DJANGO_WORKERS": "1"}) as served:
        served.wait_for_line("Demos from the checkout", 180)
        steps = [line for line in served.lines if line.startswith("[")]
        numbers = [re.fullmatch(r"\[(\d)/5\] .+ \.\.\. \d+\.\d s", line).group(1) for line in steps]
        assert numbers == list("12345"), steps
        assert f"Serving on http://127.0.0.1:{port}/  (logs in {run_dir}/; Ctrl-C stops everything)" in served.lines
        record = json.loads((run_dir / "stack.json").read_text())
        assert (record["pid"], record["port"]) == (served.process.pid, port)

        # The demo commands find this site by the record, and the pages show the command for it.
        pid = served.process.pid
        site = f"Site: ws://127.0.0.1:{port}, the one `make run` serves (PID {pid}, {run_dir}/stack.json)"
        echo = manage("testecho", "--clients", "5", "--delay", "0", run_dir=run_dir)
        assert echo.startswith(site + "\n") and "Summary: 5 of 5 clients saw the exact transcript" in echo
        game = manage("gameoflife", "-s", "4", "-n", "2", "-l", "0", run_dir=run_dir)
        assert game.startswith(site + "\n") and "2 generations in" in game
        page = get(f"http://127.0.0.1:{port}/gameoflife/")[2].decode()
        assert f".venv/bin/python manage.py gameoflife --url ws://127.0.0.1:{port} -s 32 -l 5" in page
        assert get(f"http://127.0.0.1:{port}/favicon.ico")[:2] == (200, "image/x-icon")
        assert (run_dir / "nginx.conf").read_text().startswith("# Rendered by deploy/stack.py")

        # A second one from the same directory names this one.
        again = stack_run(free_port(), run_dir)
        assert again.returncode == 1
        assert f"`python -m deploy.stack run` serving http://127.0.0.1:{port}/ (PID {pid})" in again.stderr

        served.ctrl_c()
        status = served.finish(90)
    assert status == 0, served.output
    assert re.search(r"^Stopping uWSGI, nginx \.\.\. \d+\.\d s$", served.output, re.MULTILINE), served.output
    assert "Traceback" not in served.output
    assert not (run_dir / "stack.json").exists()
    assert running.live_servers(run_dir) is None
    assert not running.port_taken(port)
