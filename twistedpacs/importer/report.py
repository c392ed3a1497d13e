"""
Show the progress of an import and its summary.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TextIO

from twistedpacs.importer.client import Outcome, OutcomeKind


def format_size(size: float) -> str:
    """
    Format a size in bytes as megabytes (10**6 bytes).
    """
    return f"{size / 1e6:.1f} MB"


def format_duration(seconds: float) -> str:
    """
    Format a duration as H:MM:SS.
    """
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class Reporter:
    """
    Count outcomes and show them, as a progress bar on a terminal and as one
    line per file otherwise.

    L{record} is called from the worker threads and takes a lock.
    """

    def __init__(
        self,
        stdout: TextIO,
        stderr: TextIO,
        total_files: int,
        total_bytes: int,
        progress: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stdout = stdout
        self._stderr = stderr
        self._progress = progress
        self._clock = clock
        self._lock = threading.Lock()
        self._start = clock()
        self._last_draw = -1.0
        self._bar_width = 0
        self.total_files = total_files
        self.total_bytes = total_bytes
        self.counts: Counter[OutcomeKind] = Counter()
        self.skip_reasons: Counter[str] = Counter()
        self.failures: list[Outcome] = []
        self.done_files = 0
        self.done_bytes = 0
        self.sent_bytes = 0

    def record(self, outcome: Outcome) -> None:
        """
        Count C{outcome} and show it.
        """
        with self._lock:
            self.counts[outcome.kind] += 1
            self.done_files += 1
            self.done_bytes += outcome.size
            self.sent_bytes += outcome.sent
            if outcome.kind is OutcomeKind.SKIPPED:
                self.skip_reasons[outcome.message] += 1
            elif outcome.kind is OutcomeKind.FAILED:
                self.failures.append(outcome)
            if not self._progress:
                self._stdout.write(outcome.describe() + "\n")
                self._stdout.flush()
                return
            if outcome.kind is OutcomeKind.FAILED:
                self._clear_bar()
                self._stderr.write(outcome.describe() + "\n")
            self._draw_bar(force=outcome.kind is OutcomeKind.FAILED)

    def progress_line(self, now: float) -> str:
        """
        Format the progress bar: files, bytes, rate and estimated time left.
        """
        elapsed = max(now - self._start, 1e-9)
        rate = self.done_bytes / elapsed
        remaining = max(self.total_bytes - self.done_bytes, 0)
        eta = format_duration(remaining / rate) if rate > 0 else "-:--:--"
        return (
            f"{self.done_files}/{self.total_files} files"
            f"  {self.done_bytes / 1e6:.1f}/{format_size(self.total_bytes)}"
            f"  {rate / 1e6:.1f} MB/s  ETA {eta}"
        )

    def _draw_bar(self, force: bool) -> None:
        now = self._clock()
        finished = self.done_files >= self.total_files
        if not (force or finished or now - self._last_draw >= 0.1):
            return
        self._last_draw = now
        line = self.progress_line(now)
        self._stderr.write("\r" + line.ljust(self._bar_width))
        self._bar_width = len(line)
        self._stderr.flush()

    def _clear_bar(self) -> None:
        if self._bar_width:
            self._stderr.write("\r" + " " * self._bar_width + "\r")
            self._bar_width = 0

    def write_summary(self, not_attempted: int) -> None:
        """
        Write the counts, the failures and the transfer rate to stdout.
        """
        with self._lock:
            if self._progress and self._bar_width:
                self._stderr.write("\n")
                self._stderr.flush()
                self._bar_width = 0
            elapsed = self._clock() - self._start
            rate = self.sent_bytes / elapsed if elapsed > 0 else 0.0
            lines = [
                f"Stored: {self.counts[OutcomeKind.STORED]}",
                f"Already stored: {self.counts[OutcomeKind.ALREADY_STORED]}",
                f"Skipped: {self.counts[OutcomeKind.SKIPPED]}",
            ]
            for reason, count in sorted(self.skip_reasons.items()):
                lines.append(f"  {reason}: {count}")
            lines.append(f"Failed: {len(self.failures)}")
            for failure in self.failures:
                lines.append(f"  {failure.name}: {failure.message}")
            if not_attempted:
                lines.append(f"Not attempted: {not_attempted}")
            lines.append(
                f"Sent {format_size(self.sent_bytes)} in {elapsed:.1f} s"
                f" ({rate / 1e6:.1f} MB/s)"
            )
            self._stdout.write("\n".join(lines) + "\n")
            self._stdout.flush()
