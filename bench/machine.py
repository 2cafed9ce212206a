"""What the benchmark ran on: CPU, memory, kernel, versions, and how busy the machine was."""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any


def _cpu_times() -> tuple[int, int]:
    """Returns (busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def busy_percent(seconds: float) -> float:
    """Returns how busy all CPUs were over the next ``seconds``, in percent of all cores."""
    busy0, total0 = _cpu_times()
    time.sleep(seconds)
    busy1, total1 = _cpu_times()
    return 100.0 * (busy1 - busy0) / max(1, total1 - total0)


def _server_version(command: list[str]) -> str:
    """Returns the first line a server prints for its version, or "unknown"."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except OSError:
        return "unknown"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr).strip() else "unknown"


def describe() -> dict[str, Any]:
    """Returns the machine and software the figures belong to."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), platform.processor())
    meminfo = meminfo_kib()
    packages = ("Django", "uWSGI", "gevent", "redis", "websockets", "channels", "channels-redis", "daphne")
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(meminfo["MemTotal"] / 1024 ** 2, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": {name: version(name) for name in packages},
        "nginx": _server_version([shutil.which("nginx") or "/usr/sbin/nginx", "-v"]).replace("nginx version: ", ""),
        "redis": " ".join(_server_version([shutil.which("redis-server") or "redis-server", "--version"]).split()[:3]),
        "loadavg_at_start": os.getloadavg(),
    }


# -- process CPU, kernel socket memory and available memory, from /proc ---------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def cpu_ticks(stat: str) -> int:
    """Returns utime + stime (clock ticks) from the text of a /proc/<pid>/stat file. The command
    name (field 2) may hold spaces and parentheses, so fields are counted after its last ``)``."""
    fields = stat.rsplit(")", 1)[1].split()  # fields[0] is field 3 (state); utime and stime are 14, 15
    return int(fields[11]) + int(fields[12])


def cpu_sample(pids: list[int]) -> dict[int, int]:
    """Returns pid → CPU clock ticks used so far, for the ``pids`` still running."""
    sample = {}
    for pid in pids:
        try:
            sample[pid] = cpu_ticks(Path(f"/proc/{pid}/stat").read_text())
        except (OSError, IndexError, ValueError):
            continue
    return sample


def cpu_seconds_between(before: dict[int, int], after: dict[int, int]) -> float:
    """Returns the CPU seconds the processes used from sample ``before`` to sample ``after``; a
    process that started in between counts from its start, one that ended in between not at all."""
    return sum(ticks - before.get(pid, 0) for pid, ticks in after.items()) / CLOCK_TICKS


def meminfo_kib(text: str | None = None) -> dict[str, int]:
    """Returns /proc/meminfo (or ``text`` in its format) as name → KiB."""
    text = Path("/proc/meminfo").read_text() if text is None else text
    return {line.split(":")[0]: int(line.split()[1]) for line in text.splitlines() if ":" in line}


def tcp_memory_kib(sockstat: str | None = None) -> int:
    """Returns the kernel memory held by TCP socket buffers, machine-wide (the ``mem`` pages of the
    ``TCP:`` line of /proc/net/sockstat, or of ``sockstat``), in KiB."""
    sockstat = Path("/proc/net/sockstat").read_text() if sockstat is None else sockstat
    for line in sockstat.splitlines():
        if line.startswith("TCP:"):
            fields = line.split()[1:]
            return int(dict(zip(fields[::2], fields[1::2], strict=True))["mem"]) * PAGE_KIB
    return 0


def kernel_memory_kib() -> dict[str, int]:
    """Returns what the kernel holds for sockets, machine-wide, in KiB: TCP buffers and unreclaimable
    slab (socket structures, among others), and what the machine has available."""
    meminfo = meminfo_kib()
    return {"tcp_buffers": tcp_memory_kib(), "slab_unreclaimable": meminfo.get("SUnreclaim", 0),
            "available": meminfo.get("MemAvailable", 0)}
