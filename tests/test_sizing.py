"""deploy/sizing.py: the workers and file limits derived from the expected peak hold it on paper
for several peaks and limits; nonsense is refused with a clear message; and a stack sized with a
tiny file limit spreads real sockets through nginx over every one of its WebSocket workers."""
from __future__ import annotations

import asyncio
import itertools
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploy import sizing
from deploy.sizing import Sizing, plan
from deploy.stack import ROOT, RUN_SOCKETS, Stack, free_port, private_dir, wait_for

PEAKS = [1, 1000, 20_000, 200_000, 1_000_000]
LIMITS = [1024, 20_000, 65_536, 1_048_576]


def holds_on_paper(s: Sizing) -> None:
    """Asserts that ``s`` holds its peak within its file limit, worker by worker."""
    # uWSGI: every worker's share of the peak fits, with its reserve, within the limit.
    assert s.ws_workers >= 1 and s.ws_workers * s.sockets_per_ws_worker >= s.sockets
    assert s.sockets_per_ws_worker >= math.ceil(s.sockets / s.ws_workers * sizing.UWSGI_SPREAD_MARGIN)
    assert s.sockets_per_ws_worker + sizing.UWSGI_RESERVE_FILES <= s.nofile
    # Slots bound handshakes in flight (an open socket gives its core back): enough for a burst.
    assert s.ws_slots == min(s.sockets_per_ws_worker, sizing.HANDSHAKE_SLOTS) >= 1
    # nginx: two connections per socket, within worker_connections, within worker_rlimit_nofile.
    per_nginx_worker = math.ceil(s.sockets / s.nginx_workers * sizing.NGINX_SPREAD_MARGIN)
    assert s.nginx_workers * per_nginx_worker >= s.sockets
    assert s.nginx_connections >= 2 * per_nginx_worker + sizing.NGINX_SPARE_CONNECTIONS
    assert s.nginx_rlimit_nofile >= s.nginx_connections + sizing.NGINX_RESERVE_FILES + 2 * s.nginx_workers
    assert s.nginx_rlimit_nofile <= s.nofile
    assert 1 <= s.nginx_workers <= sizing.NGINX_MAX_WORKERS


@pytest.mark.parametrize(("peak", "nofile"), list(itertools.product(PEAKS, LIMITS)))
def test_the_plan_holds_the_peak_on_paper(peak: int, nofile: int) -> None:
    if peak >= 200_000 and nofile == 1024:
        # Two files per socket in nginx, and two more per nginx worker in each worker (reuseport's
        # listening sockets, channels): beyond what nginx may start.
        with pytest.raises(ValueError, match=fr"^{peak:,} WebSockets need more than 1000 nginx workers with "
                                             r"1,024 files per process \(two per socket\); raise the file limit"):
            plan(peak, nofile)
        return
    s = plan(peak, nofile)
    assert (s.sockets, s.nofile) == (peak, nofile)
    holds_on_paper(s)


def test_this_machine_s_200000_in_figures() -> None:
    s = plan(200_000, 20_000)
    assert (s.ws_workers, s.sockets_per_ws_worker, s.ws_slots) == (11, 19_091, 1000)
    assert (s.nginx_workers, s.nginx_connections, s.nginx_rlimit_nofile) == (23, 19_388, 19_498)
    assert s.env() == {"WS_MAX_SOCKETS": "200000", "WS_WORKERS": "11", "WS_GEVENT": "1000"}
    assert s.nginx() == {"NGINX_WORKERS": "23", "NGINX_CONNECTIONS": "19388", "NGINX_RLIMIT_NOFILE": "19498"}


def test_a_higher_file_limit_means_fewer_larger_workers() -> None:
    counts = [(plan(200_000, n).ws_workers, plan(200_000, n).nginx_workers) for n in (20_000, 65_536, 1_048_576)]
    assert counts == sorted(counts, reverse=True) and counts[-1] == (1, 1)


@pytest.mark.parametrize(("sockets", "nofile", "message"), [
    (0, 20_000, "the peak of WebSockets must be a whole number >= 1, not 0"),
    (-5, 20_000, "the peak of WebSockets must be a whole number >= 1, not -5"),
    (1.5, 20_000, "the peak of WebSockets must be a whole number >= 1, not 1.5"),
    (True, 20_000, "the peak of WebSockets must be a whole number >= 1, not True"),
    (1000, "many", "the file limit must be a whole number, not 'many'"),
    (1000, 100, "a file limit of 100 leaves no room for sockets"),
    (1000, 0, "a file limit of 0 leaves no room for sockets"),
])
def test_nonsense_is_refused_with_a_clear_message(sockets: object, nofile: object, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        plan(sockets, nofile)  # type: ignore[arg-type]


def test_file_limit_is_the_raised_soft_limit() -> None:
    import resource

    limit = sizing.file_limit()
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == limit
    assert limit == resource.getrlimit(resource.RLIMIT_NOFILE)[1] or resource.RLIM_INFINITY in (
        resource.getrlimit(resource.RLIMIT_NOFILE))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deploy.sizing", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_the_cli_prints_the_values_the_environment_and_the_directives() -> None:
    done = cli("--sockets", "200000", "--nofile", "20000")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "uWSGI WebSocket workers: 11, each for up to 19,091 sockets" in out
    assert "  WS_WORKERS=11\n  WS_GEVENT=1000\n" in out
    assert "  worker_processes 23;\n  worker_rlimit_nofile 19498;\n" in out
    assert "worker_connections 19388;" in out and "least_conn;" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--sockets", "0"], "the peak of WebSockets must be a whole number >= 1, not 0"),
    (["--sockets", "lots"], "argument --sockets: invalid int value: 'lots'"),
    (["--sockets", "1000", "--nofile", "10"], "a file limit of 10 leaves no room for sockets"),
    ([], "the following arguments are required: --sockets"),
])
def test_the_cli_refuses_bad_options(args: list[str], message: str) -> None:
    done = cli(*args)
    assert done.returncode == 2 and done.stdout == ""
    assert message in done.stderr


def test_a_stack_is_small_unless_asked_and_make_run_is_sized_for_200000() -> None:
    assert RUN_SOCKETS == 200_000
    small = Stack(free_port(), "redis://127.0.0.1:1/0", run_dir=private_dir("ws4r-sizing-"), nofile=20_000)
    assert small.ws_workers == 1 and small.nginx_workers == 1
    given = Stack(free_port(), "redis://127.0.0.1:1/0", run_dir=private_dir("ws4r-sizing-"),
                  env={"WS_WORKERS": "3"}, max_sockets=200_000, nofile=20_000)
    assert given.ws_workers == 3 and given.extra_env["WS_GEVENT"] == "1000" and given.nginx_workers == 23
    assert "(WS_WORKERS=3 set by hand)" in given.banner()
    text = given.render_nginx().read_text()
    assert "worker_processes 23;" in text and "worker_rlimit_nofile 19498;" in text
    assert "worker_connections 19388;" in text
    assert [f"server unix:{given.run_dir}/ws-{w}.sock max_fails=0;" for w in (1, 2, 3)] == [
        line.strip() for line in text.splitlines() if ".sock max_fails" in line]
    # nginx workers given by hand: as many connections each as the file limit allows.
    by_hand = Stack(free_port(), "redis://127.0.0.1:1/0", run_dir=private_dir("ws4r-sizing-"), nginx_workers=2,
                    nofile=20_000).render_nginx().read_text()
    assert "worker_processes 2;" in by_hand and "worker_rlimit_nofile 20000;" in by_hand
    assert f"worker_connections {20_000 - sizing.NGINX_RESERVE_FILES - 2 * 2};" in by_hand


def sockets_open(workers: list[int]) -> dict[int, int]:
    """The sockets each of ``workers`` reports open (ws4redis_server.metrics, every 2 s)."""
    from ws4redis_server import metrics

    figures = {int(name.rsplit(":", 1)[1]): values for name, values in metrics.snapshot().items()}
    return {pid: figures.get(pid, {}).get("sockets_open", 0) for pid in workers}


@pytest.mark.slow
def test_sockets_are_spread_over_every_worker_through_nginx(redis_server) -> None:
    from tests.clients import all_workers, close_clients, open_clients

    # A tiny file limit, so a few thousand sockets need several WebSocket workers.
    sized = plan(2000, nofile=1024)
    assert sized.ws_workers == 3
    with Stack(free_port(), redis_server.url, run_dir=private_dir("ws4r-sizing-run-"),
               static_root=Path(os.environ["STATIC_ROOT"]), max_sockets=2000, nofile=1024,
               env={"DJANGO_WORKERS": "1"}) as stack:
        workers = sorted(all_workers(stack, "websocket"))
        assert len(workers) == 3

        async def scenario() -> dict[int, int]:
            clients = await open_clients([f"{stack.ws_url}/ws/echo/"] * sized.sockets)
            try:
                assert all(message == "Hello!" for message in [await c.recv(30) for c in clients])
                held: dict[int, int] = {}

                def counted() -> bool:
                    held.update(sockets_open(workers))
                    return sum(held.values()) >= sized.sockets

                wait_for(counted, 60, f"{sized.sockets} sockets held by the WebSocket workers")
                return held
            finally:
                await close_clients(clients)

        held = asyncio.run(scenario())
    share = sized.sockets / sized.ws_workers
    # Every worker holds about its share, none more than the plan gave it room for.
    assert all(share / 2 <= count <= sized.sockets_per_ws_worker for count in held.values()), held


def test_nodes_share_the_peak_and_list_every_worker_socket() -> None:
    from deploy.nodes import NodesStack

    nodes = NodesStack(free_port(), "redis://127.0.0.1:1/0", 3, run_dir=private_dir("ws4r-sizing-"),
                       max_sockets=200_000, nofile=20_000)
    assert nodes.ws_workers == plan(66_667, 20_000).ws_workers == 4
    text = nodes.render_nginx().read_text()
    servers = [line.strip() for line in text.splitlines() if line.strip().startswith("server unix:")]
    assert servers == [f"server unix:{nodes.run_dir}/django.sock;"] + [
        f"server unix:{nodes.run_dir}/ws-{n}-{w}.sock max_fails=1 fail_timeout=5s;"
        for n in (1, 2, 3) for w in (1, 2, 3, 4)]


@pytest.mark.parametrize(("args", "env", "status", "message"), [
    (["--max-sockets", "0"], {}, 1, "Cannot size the site for 0 WebSockets: the peak of WebSockets must be"),
    ([], {"WS_MAX_SOCKETS": "many"}, 2, "WS_MAX_SOCKETS must be a whole number, not 'many'"),
])
def test_run_refuses_a_nonsense_peak_before_starting_anything(args: list[str], env: dict[str, str], status: int,
                                                              message: str) -> None:
    run_dir = private_dir("ws4r-sizing-") / "run"
    done = subprocess.run([sys.executable, "-m", "deploy.stack", "run", "--port", str(free_port()),
                           "--run-dir", str(run_dir), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, **env})
    assert done.returncode == status and done.stdout == ""
    assert message in done.stderr
