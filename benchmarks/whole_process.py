"""Timing commands the way a user times them: each run is a whole child process (interpreter start,
imports, file reads included), wall clock and CPU (user + system of the child and its children,
from `wait4`). Candidates run in interleaved rounds (A B A B ...) so that the load of other jobs on a
shared machine hits them alike; medians and per-round ratios are reported."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence


@dataclass
class Timing:
    """One child process: wall seconds, CPU seconds (user + sys), peak RSS in MB, exit code."""

    wall: float
    cpu: float
    rss_mb: float
    returncode: int


@dataclass
class Series:
    name: str
    runs: list[Timing] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(t.wall for t in self.runs)

    @property
    def cpu(self) -> float:
        return statistics.median(t.cpu for t in self.runs)


def run_timed(argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | None = None,
              quiet: bool = True) -> Timing:
    """Run argv to completion; wall from fork to reap, CPU and peak RSS from `os.wait4`."""
    out = subprocess.DEVNULL if quiet else None
    t0 = time.perf_counter()
    proc = subprocess.Popen(list(argv), env=dict(env) if env is not None else None, cwd=cwd, stdout=out, stderr=out)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Timing(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode)


def interleaved(candidates: Mapping[str, Sequence[str]], rounds: int, env: Mapping[str, Mapping[str, str]] | None = None,
                before_each=None, check: bool = True, cwd: Mapping[str, str] | None = None) -> dict[str, Series]:
    """`rounds` rounds of every candidate in turn (the order alternates each round); `before_each(name)`
    runs untimed before each run (e.g. to remove the previous output)."""
    series = {name: Series(name) for name in candidates}
    names = list(candidates)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            if before_each is not None:
                before_each(name)
            t = run_timed(candidates[name], env=(env or {}).get(name), cwd=(cwd or {}).get(name))
            if check and t.returncode != 0:
                raise RuntimeError(f"{name} exited with {t.returncode}: {' '.join(candidates[name])}")
            series[name].runs.append(t)
    return series


def ratio_lines(series: Mapping[str, Series], fast: str, slow: str) -> list[str]:
    """Median wall/CPU of both and the slow/fast ratios, per round and of the medians."""
    a, b = series[fast], series[slow]
    per_round = [s.wall / f.wall for f, s in zip(a.runs, b.runs)]
    lines = []
    for s in (a, b):
        lines.append(f"  {s.name:<34} wall {s.wall:7.3f} s (runs {', '.join(f'{t.wall:.2f}' for t in s.runs)})"
                     f"   CPU {s.cpu:7.3f} s   peak RSS {max(t.rss_mb for t in s.runs):.0f} MB")
    lines.append(f"  ratio {slow} / {fast}: wall {b.wall / a.wall:.2f}x (per round {', '.join(f'{x:.2f}' for x in per_round)}),"
                 f" CPU {b.cpu / max(a.cpu, 1e-9):.2f}x")
    return lines


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"
