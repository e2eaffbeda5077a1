"""What a stage's execution used: its kernel's peak memory and CPU time, and how busy the machine was.

The pipeline runs each stage's notebook in a kernel process of its own (:mod:`agrec.run.pipeline`). The runner
samples that process just before the kernel is shut down, and the machine's CPU counters before and after the
stage, and records per stage (``results/pipeline.json``, key ``resources``):

- ``peak_rss_mib``: the kernel process's peak resident memory (Linux ``VmHWM``, the same high-water mark that
  ``/usr/bin/time -v`` reports as its maximum resident set size). Processes the kernel starts are not counted.
- ``cpu_s``: the kernel's CPU seconds, every thread of it (user + system). ``cpu_s / wall_s`` says how many
  cores the stage kept busy.
- ``others_cpu_s``: CPU seconds the whole machine spent on anything else while the stage ran: every process but
  the kernel and this runner. Processes the kernel itself starts (the stage notebooks start none), and the
  kernel's shutdown after the sample, count here too. Near 0: the stage ran alone, its wall time is a measurement
  of the stage; large: other work shared the cores, the wall time is an upper bound.
- ``steal_s``: CPU seconds the hypervisor gave to someone else while this machine's cores wanted to run (the
  ``steal`` column of ``/proc/stat``; 0 on bare metal). It is not work on this machine, so it is not in
  ``others_cpu_s``; but the stage waited for it, and on a shared virtual machine it explains wall time that no
  process here used.

Everything is read from ``/proc``. Where it is unreadable (not Linux, a process already gone) the values are
``None``: nothing here ever makes a run fail.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PROC = Path("/proc")


def _clock_ticks() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, OSError, ValueError):
        return 100  # Linux's USER_HZ on every mainstream architecture


@dataclass(frozen=True)
class ProcessUsage:
    """One process's high-water mark of resident memory and its CPU time so far."""

    peak_rss_mib: float | None
    cpu_s: float | None


def process_usage(pid: int, proc: Path = PROC) -> ProcessUsage:
    """Peak RSS (MiB) and CPU seconds (user + system, all threads, not its children) of a live process.

    Either is None where ``/proc/<pid>`` cannot be read or parsed.
    """
    peak: float | None = None
    cpu: float | None = None
    try:
        for line in (proc / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                value, unit = line.split()[1:3]
                if unit.lower() == "kb":
                    peak = int(value) / 1024
                break
    except (OSError, ValueError):
        peak = None
    try:
        stat = (proc / str(pid) / "stat").read_text()
        # the command name (field 2) is in parentheses and may hold spaces and ')': split after the last ')'
        fields = stat[stat.rindex(")") + 2 :].split()
        # fields[0] is field 3 (state); utime and stime are fields 14 and 15
        cpu = (int(fields[11]) + int(fields[12])) / _clock_ticks()
    except (OSError, ValueError, IndexError):
        cpu = None
    return ProcessUsage(peak_rss_mib=peak, cpu_s=cpu)


@dataclass(frozen=True)
class MachineCPU:
    """CPU seconds of all cores since boot: ``busy`` (work done on this machine) and ``steal``."""

    busy: float
    steal: float


def machine_cpu_s(proc: Path = PROC) -> MachineCPU | None:
    """CPU seconds all cores of the machine have spent busy, and lost to steal, since boot (None where unreadable).

    Busy is user + nice + system + irq + softirq of ``/proc/stat``'s ``cpu`` line; idle and iowait are not
    (guest time is already inside user). Steal is the time the hypervisor ran something else while a core of
    this machine was ready to run: it is not work done here, so it is kept apart.
    """
    try:
        with open(proc / "stat") as f:
            first = f.readline().split()
        if not first or first[0] != "cpu":
            return None
        v = [int(x) for x in first[1:9]] + [0] * max(0, 8 - len(first[1:9]))
        user, nice, system, _idle, _iowait, irq, softirq, steal = v[:8]
        ticks = _clock_ticks()
        return MachineCPU(busy=(user + nice + system + irq + softirq) / ticks, steal=steal / ticks)
    except (OSError, ValueError):
        return None


def own_cpu_s() -> float:
    """This process's CPU seconds (user + system), all threads."""
    t = os.times()
    return t.user + t.system


@dataclass(frozen=True)
class StageUsage:
    """What one stage's execution used (see the module docstring); ``None``: not measurable here."""

    peak_rss_mib: float | None
    cpu_s: float | None
    others_cpu_s: float | None
    steal_s: float | None = None  # None in records made before it was measured

    def to_dict(self) -> dict[str, float | None]:
        return {k: (None if v is None else round(v, 1)) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Any) -> "StageUsage | None":
        """The usage stamped into an executed notebook; None if absent or malformed (older reports)."""
        if not isinstance(d, dict):
            return None
        vals = {}
        for k in ("peak_rss_mib", "cpu_s", "others_cpu_s", "steal_s"):
            v = d.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                return None
            vals[k] = v
        return cls(**vals)


class StageMeter:
    """Measures one stage: call :meth:`start` before the kernel starts, :meth:`sample_kernel` just before the
    kernel is shut down (the kernel manager does, :func:`agrec.run.pipeline.execute_notebook`), and
    :meth:`usage` after.
    """

    def __init__(self, proc: Path = PROC) -> None:
        self.proc = proc
        self.kernel: ProcessUsage | None = None
        self._cpu0: MachineCPU | None = None
        self._own0 = 0.0

    def start(self) -> None:
        self._cpu0 = machine_cpu_s(self.proc)
        self._own0 = own_cpu_s()

    def sample_kernel(self, pid: int | None) -> None:
        if pid is not None:
            self.kernel = process_usage(pid, self.proc)

    def usage(self) -> StageUsage:
        cpu1 = machine_cpu_s(self.proc)
        kernel = self.kernel or ProcessUsage(None, None)
        others = steal = None
        if self._cpu0 is not None and cpu1 is not None:
            steal = max(0.0, cpu1.steal - self._cpu0.steal)
            if kernel.cpu_s is not None:
                # never below 0: the counters are sampled at slightly different moments
                busy = cpu1.busy - self._cpu0.busy
                others = max(0.0, busy - kernel.cpu_s - (own_cpu_s() - self._own0))
        return StageUsage(peak_rss_mib=kernel.peak_rss_mib, cpu_s=kernel.cpu_s, others_cpu_s=others, steal_s=steal)
