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
    meminfo = {line.split(":")[0]: line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()}
    packages = ("Django", "uWSGI", "gevent", "redis", "websockets", "channels", "channels-redis", "daphne")
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(int(meminfo["MemTotal"]) / 1024 ** 2, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": {name: version(name) for name in packages},
        "nginx": _server_version([shutil.which("nginx") or "/usr/sbin/nginx", "-v"]).replace("nginx version: ", ""),
        "redis": " ".join(_server_version([shutil.which("redis-server") or "redis-server", "--version"]).split()[:3]),
        "loadavg_at_start": os.getloadavg(),
    }
