"""Resident memory of the processes under test, read from /proc (Linux)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Memory:
    """RSS and PSS of a group of processes, in KiB."""

    rss_kib: int
    pss_kib: int

    def __sub__(self, other: Memory) -> Memory:
        return Memory(self.rss_kib - other.rss_kib, self.pss_kib - other.pss_kib)


def with_children(pid: int) -> list[int]:
    """Returns ``pid`` and its direct children (a master and its workers)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [pid, *map(int, children)]


def memory_of(pids: list[int]) -> Memory:
    """Returns the summed RSS and PSS of ``pids``; processes that are gone count as zero."""
    rss = pss = 0
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        fields = {line.split(":")[0]: line.split()[1] for line in lines[1:] if ":" in line}
        rss += int(fields.get("Rss", 0))
        pss += int(fields.get("Pss", 0))
    return Memory(rss, pss)


def memory_by_part(pids: dict[str, list[int]]) -> dict[str, Memory]:
    """Returns the memory of each part of a target ("server", "nginx", ...) from its processes."""
    return {part: memory_of(members) for part, members in pids.items()}


# -- will a run fit in memory? --------------------------------------------------------------------

GIB = 1024 ** 2  # KiB
# What one socket is taken to cost the machine (server, nginx, load client, kernel) when no
# smaller run of the target has measured it: the ws4redis stack's figures at 30,000, rounded up.
DEFAULT_KIB_PER_SOCKET = 80.0
# The estimate is scaled by this much, and this much memory is left to the machine, at least.
SAFETY_FACTOR = 1.25
RESERVE_KIB = 1.5 * GIB


def machine_kib_per_socket(row: dict[str, Any]) -> float | None:
    """Returns what each socket held cost the whole machine in a measured ``row``: the fall of
    MemAvailable from before the target started to the end of the hold, over the sockets held."""
    kernel = row.get("kernel_kib") or {}
    if not row.get("held") or "before" not in kernel or "loaded" not in kernel:
        return None
    return max(0.0, (kernel["before"]["available"] - kernel["loaded"]["available"]) / row["held"])


def memory_shortfall(sockets: int, kib_per_socket: float | None, available_kib: int) -> str | None:
    """Returns why ``sockets`` sockets would not fit in ``available_kib`` (MemAvailable) at
    ``kib_per_socket`` (None: DEFAULT_KIB_PER_SOCKET), or None when they fit with the margins."""
    per_socket = DEFAULT_KIB_PER_SOCKET if kib_per_socket is None else kib_per_socket
    needed = per_socket * sockets * SAFETY_FACTOR
    if needed + RESERVE_KIB <= available_kib:
        return None
    return (f"needs ~{needed / GIB:.1f} GiB ({per_socket:.0f} KiB per socket x {sockets:,} x {SAFETY_FACTOR:g}, "
            f"plus {RESERVE_KIB / GIB:g} GiB kept free), {available_kib / GIB:.1f} GiB available")
