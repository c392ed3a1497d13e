"""
What a server process costs while it receives: CPU time and anonymous memory,
read from C{/proc}.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_INTERVAL = 0.05


def cpu_times(pid: int) -> tuple[float, float]:
    """
    User and system CPU time of every thread of C{pid}, in seconds.
    """
    with open(f"/proc/{pid}/stat", encoding="ascii") as stream:
        text = stream.read()
    # The command name may contain spaces, so count fields after its ")".
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def memory_kib(pid: int) -> dict[str, int]:
    """
    The C{Vm*} and C{Rss*} lines of C{/proc/PID/status}, in KiB.
    """
    values = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as stream:
        for line in stream:
            key, _, rest = line.partition(":")
            if key.startswith(("Vm", "Rss")):
                values[key] = int(rest.split()[0])
    return values


@dataclass
class Usage:
    """
    What one run cost the server.

    @ivar cpu_seconds: CPU time used between start and stop.
    @ivar system_seconds: The part of C{cpu_seconds} spent in the kernel.
    @ivar peak_rss_anon_kib: The largest C{RssAnon} sampled.
    @ivar vm_hwm_kib: C{VmHWM} at stop: the peak resident set over the whole
        life of the process, file-backed pages included.
    @ivar samples: How many memory samples were taken.
    """

    cpu_seconds: float
    system_seconds: float
    peak_rss_anon_kib: int
    vm_hwm_kib: int
    samples: int


class Monitor:
    """
    Sample a process's C{RssAnon} every 50 ms in a thread and measure its CPU
    time between L{start} and L{stop}.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._peak = 0
        self._samples = 0
        self._cpu_start = (0.0, 0.0)

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                anon = memory_kib(self.pid).get("RssAnon", 0)
            except OSError:
                return
            self._peak = max(self._peak, anon)
            self._samples += 1
            self._stop.wait(SAMPLE_INTERVAL)

    def start(self) -> None:
        """
        Read the starting CPU time and begin sampling memory.
        """
        self._cpu_start = cpu_times(self.pid)
        self._thread.start()

    def stop(self) -> Usage:
        """
        Stop sampling and return what the process used since L{start}.
        """
        self._stop.set()
        self._thread.join(timeout=5)
        memory = memory_kib(self.pid)
        self._peak = max(self._peak, memory.get("RssAnon", 0))
        user, system = cpu_times(self.pid)
        user -= self._cpu_start[0]
        system -= self._cpu_start[1]
        return Usage(
            cpu_seconds=user + system,
            system_seconds=system,
            peak_rss_anon_kib=self._peak,
            vm_hwm_kib=memory.get("VmHWM", 0),
            samples=self._samples,
        )
