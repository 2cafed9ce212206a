"""The benchmark harness works end to end on a tiny N: every target holds its sockets, every
broadcast reaches every socket, the files are written, and every process it started is gone when
it ends. No figure is judged: timings vary."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.__main__ import parse_args
from bench.fleet import SOCKETS_PER_PROCESS, processes_for
from bench.machine import CLOCK_TICKS, PAGE_KIB, cpu_seconds_between, cpu_ticks, tcp_memory_kib
from bench.memory import machine_kib_per_socket, memory_shortfall
from bench.report import ratios, table
from bench.targets import LAYER_MAX_CONNECTIONS, daphne_processes
from bench.workloads import cpu_per_delivery
from deploy.sizing import UWSGI_RESERVE_FILES, UWSGI_SPREAD_MARGIN, plan
from deploy.stack import ROOT

SOCKETS = 50
# The run's time limit; past it the benchmark gets SIGTERM and STOP_GRACE s to stop what it started.
RUN_LIMIT = 240
STOP_GRACE = 50


def _group_members(group: int) -> list[str]:
    """Returns "pid name" for every process left in process group ``group``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
        except OSError:
            continue
        name, fields = rest.rsplit(") ", 1)
        if int(fields.split()[2]) == group:
            members.append(f"{pid} {name}")
    return members


def _run_bench(argv: list[str]) -> tuple[int | None, str, list[str]]:
    """Runs ``python -m bench`` in a process group of its own; returns its exit status (None if
    it overran RUN_LIMIT), its output and the processes it left behind (killed here)."""
    process = subprocess.Popen([sys.executable, "-m", "bench", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=RUN_LIMIT)
        status: int | None = process.returncode
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        status = None
    deadline = time.monotonic() + 10  # servers' children may outlive their parent by a moment
    while (left := _group_members(process.pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    if left:
        os.killpg(process.pid, signal.SIGKILL)
    return status, output, left


@pytest.mark.bench
def test_one_small_run_of_every_target(stack, redis_server, tmp_path: Path) -> None:
    status, output, left = _run_bench(
        ["--sizes", str(SOCKETS), "--hold", "0", "--targets", "ws4redis,channels,channels-pubsub,external",
         "--url", stack.ws_url, "--redis-url", redis_server.url, "--out", str(tmp_path)])
    assert status is not None, f"still running after {RUN_LIMIT} s:\n{output}"
    assert status == 0, output
    assert not left, f"processes left running: {left}"

    (result_file,) = tmp_path.glob("bench-*.json")
    run = json.loads(result_file.read_text())
    assert run["machine"]["cores"] >= 1 and "nginx" in run["machine"]
    assert [row["target"] for row in run["results"]] == ["ws4redis", "channels", "channels-pubsub", "external"]
    for row in run["results"]:
        assert "error" not in row, row
        assert row["connect"]["opened"] == row["held"] == SOCKETS, row["connect"]
        assert [b["delivered"] for b in row["broadcasts"]] == [SOCKETS] * 3
        assert row["burst"]["delivered"] == row["burst"]["expected"] == 10 * SOCKETS
        assert row["burst"]["last_ms"] > 0 and row["burst"]["deliveries_per_s"] > 0
        assert row["echo"]["completed"] == row["echo"]["clients"] == 100
        assert row["connect"]["failures"] == {} and row["connect"]["closed_during_hold"] == 0
        assert row["memory"]["loaded_kib"]["clients"]["rss_kib"] > 0
        for broadcast in [*row["broadcasts"], row["burst"]]:
            assert "clients" in broadcast["cpu_us_per_delivery"] and broadcast["cpu_s"]["clients"] >= 0
    for row in run["results"][:3]:
        assert set(row["memory"]["kib_per_socket"]) == {"server", "nginx", "redis", "clients"}
        assert row["memory"]["loaded_kib"]["server"]["rss_kib"] > 0
        assert set(row["burst"]["cpu_us_per_delivery"]) == {"server", "nginx", "server+nginx", "clients"}
        assert row["kernel_kib"]["before"]["available"] > 0
    assert set(run["results"][3]["memory"]["kib_per_socket"]) == {"clients"}  # the external stack is not ours

    table = (tmp_path / "latest.md").read_text()
    assert "| ws4redis | 50 | 50 |" in table and "| channels | 50 | 50 |" in table
    assert "- N=50: ws4redis vs channels:" in table and "- N=50: ws4redis vs channels-pubsub:" in table
    assert (tmp_path / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, message", [
    (["--sizes", "0"], "socket counts must be between 1 and 200,000"),
    (["--sizes", "200001"], "socket counts must be between 1 and 200,000"),
    (["--sizes", "ten"], "expected socket counts like 1000,10000"),
    (["--targets", "tornado"], "unknown target(s) ['tornado']: choose among ws4redis, channels, channels-pubsub"),
    (["--targets", "external"], "--targets external needs --url"),
    (["--hold", "-1"], "--hold must be >= 0"),
    (["--peer-max", "0"], "--peer-max must be >= 1"),
])
def test_bad_arguments_exit_with_a_message(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_an_unknown_suite_exits_with_a_message() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "no_such_suite"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert "no suite named 'no_such_suite'" in done.stderr


# -- the harness's pure parts ---------------------------------------------------------------------

def test_cpu_ticks_are_utime_plus_stime_counted_after_the_command_name() -> None:
    # A command name may hold spaces and parentheses: fields are counted after its last ")".
    stat = "4242 (uWSGI (ws) worker 1) S 4200 4200 4200 0 -1 4194560 1200 0 0 0 731 269 5 7 20 0 1 0 99 0 0"
    assert cpu_ticks(stat) == 731 + 269


def test_cpu_between_samples_counts_new_processes_from_their_start_and_drops_ended_ones() -> None:
    ticks = CLOCK_TICKS
    before = {1: 10 * ticks, 2: 5 * ticks, 3: ticks}
    after = {1: 12 * ticks, 2: 5 * ticks, 4: 3 * ticks}  # 3 ended, 4 started in between
    assert cpu_seconds_between(before, after) == 2 + 0 + 3


def test_cpu_per_delivery_per_part_and_for_server_and_nginx_together() -> None:
    assert cpu_per_delivery({"server": 0.5, "nginx": 0.25, "clients": 1.0}, 100_000) == {
        "server": 5.0, "nginx": 2.5, "clients": 10.0, "server+nginx": 7.5}
    assert cpu_per_delivery({"server": 0.5, "nginx": 0.25}, 0) == {"server": None, "nginx": None,
                                                                   "server+nginx": None}


def test_tcp_buffer_memory_comes_from_the_tcp_line_of_sockstat() -> None:
    sockstat = ("sockets: used 4651\nTCP: inuse 2494 orphan 0 tw 10 alloc 2497 mem 1350\n"
                "UDP: inuse 0 mem 7\n")
    assert tcp_memory_kib(sockstat) == 1350 * PAGE_KIB


def test_a_run_fits_when_its_estimate_and_the_reserve_are_available() -> None:
    gib = 1024 ** 2
    # 100,000 sockets at 80 KiB: 7.6 GiB, x 1.25 = 9.5 GiB, plus 1.5 GiB kept free.
    assert memory_shortfall(100_000, 80.0, 12 * gib) is None
    reason = memory_shortfall(200_000, 80.0, 12 * gib)
    assert reason is not None and reason.startswith("needs ~19.1 GiB") and reason.endswith("12.0 GiB available")
    # Without a figure from a smaller run, the default per-socket cost is assumed.
    assert memory_shortfall(200_000, None, 12 * gib) == reason


def test_the_machine_cost_per_socket_is_the_fall_of_memavailable_over_the_sockets_held() -> None:
    row = {"held": 1_000, "kernel_kib": {"before": {"available": 500_000}, "loaded": {"available": 400_000}}}
    assert machine_kib_per_socket(row) == 100.0
    assert machine_kib_per_socket({"held": 0, "kernel_kib": row["kernel_kib"]}) is None
    assert machine_kib_per_socket({"target": "channels", "sockets": 10, "error": "boom"}) is None


def _row(target: str, sockets: int, held: int, **extra: object) -> dict:
    single = {"messages": 1, "expected": held, "delivered": held, "last_ms": 900.0, "deliveries_per_s": 33_333,
              "cpu_us_per_delivery": {"server": 6.0, "nginx": 4.0, "server+nginx": 10.0, "clients": 8.0}}
    burst = dict(single, messages=10, expected=10 * held, delivered=10 * held - 5, last_ms=2_500.0)
    return {"target": target, "sockets": sockets, "held": held,
            "connect": {"opened": held + 2, "failures": {"refused": 3}, "examples": {}, "seconds": 12.0,
                        "openings": 1, "closed_during_hold": 2},
            "memory": {"kib_per_socket": {"server": 28.0, "nginx": 21.0, "clients": 9.5}},
            "kernel_kib": {"per_socket": 3.25}, "broadcasts": [single] * 3, "burst": burst,
            "echo": {"rtt_ms": {"p50": 0.4, "p99": 5.0}}, **extra}


def test_the_table_shows_failures_cpu_per_delivery_and_runs_that_did_not_fit() -> None:
    header, rule, measured, skipped = table([
        _row("ws4redis", 30_000, 29_998),
        {"target": "channels", "sockets": 200_000, "skipped": "needs ~30.0 GiB (...), 12.0 GiB available"}])
    assert "failures" in header and "CPU µs/delivery (median of 3): server + nginx = both (clients)" in header
    assert rule.count("|") == header.count("|")
    cells = [cell.strip() for cell in measured.strip("|").split("|")]
    assert cells[:9] == ["ws4redis", "30,000", "29,998", "5 (refused 3, closed during the hold 2)", "12.0", "28.0",
                         "21.0", "9.5", "3.2"]
    assert cells[11] == "6.0 + 4.0 = 10.0 (8.0)"
    assert cells[12] == "2,500 (299,975 of 299,980 delivered)"
    assert skipped.startswith("| channels | 200,000 | not run: needs ~30.0 GiB")
    assert skipped.count("|") == header.count("|")


def test_the_cpu_cell_shows_the_parts_of_the_median_broadcast() -> None:
    row = _row("ws4redis", 1_000, 1_000)
    row["broadcasts"] = [dict(b, cpu_us_per_delivery=cpu) for b, cpu in zip(row["broadcasts"], [
        {"server": 9.0, "nginx": 9.0, "server+nginx": 18.0, "clients": 1.0},
        {"server": 1.0, "nginx": 2.0, "server+nginx": 3.0, "clients": 2.0},
        {"server": 2.0, "nginx": 10.0, "server+nginx": 12.0, "clients": 3.0}], strict=True)]
    cells = [cell.strip() for cell in table([row])[2].strip("|").split("|")]
    assert cells[11] == "2.0 + 10.0 = 12.0 (3.0)"


def test_ratios_compare_cpu_per_delivery_where_both_held_n() -> None:
    peer = _row("channels", 10_000, 10_000)
    peer["broadcasts"] = [dict(b, cpu_us_per_delivery={"server+nginx": 95.0}) for b in peer["broadcasts"]]
    (line,) = ratios([_row("ws4redis", 10_000, 10_000), peer, _row("channels", 30_000, 20_000)])
    assert line.startswith("- N=10,000: ws4redis vs channels:") and line.endswith("CPU per delivery ×9.5")


def test_load_processes_hold_at_most_18000_sockets_each() -> None:
    assert processes_for(50) == 1 and processes_for(18_000) == 1 and processes_for(18_001) == 2
    assert processes_for(200_000) == 12 and 200_000 / 12 <= SOCKETS_PER_PROCESS == 18_000


def test_daphne_processes_hold_one_file_per_socket_and_the_layers_connections_under_the_limit() -> None:
    assert daphne_processes(50, 20_000) == daphne_processes(30_000, 20_000) == 4  # never fewer
    for sockets in (10_000, 30_000, 100_000, 200_000):
        processes = daphne_processes(sockets, 20_000)
        per_process = sockets * UWSGI_SPREAD_MARGIN / processes
        assert per_process + LAYER_MAX_CONNECTIONS + UWSGI_RESERVE_FILES <= 20_000
        assert daphne_processes(sockets, 20_000) >= plan(sockets, 20_000).ws_workers  # no fewer than ours
    assert daphne_processes(100_000, 20_000) == 6 and daphne_processes(200_000, 20_000) == 11
