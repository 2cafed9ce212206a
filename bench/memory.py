"""Resident memory of the processes under test, read from /proc (Linux)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
