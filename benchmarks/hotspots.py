"""
Sample TwistedPACS with py-spy while it ingests, and rank the functions by
the share of samples in which they were running (self) or on the stack
(inclusive).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.data import DataSet
from benchmarks.receivers import TwistedPACS
from benchmarks.scenarios import cstore_one, rest_keepalive

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^():]*)(?::\d+)?\)$")
TOP = 15


def _frame_name(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match.group("file")
    for marker in ("site-packages/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match.group('function')} ({path})"


def rank(raw: str) -> dict[str, Any]:
    """
    Compute self and inclusive sample shares from py-spy's C{raw} (collapsed)
    output.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(frame) for frame in stack.split(";") if frame]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    if not total:
        return {"samples": 0, "self": [], "inclusive": []}
    return {
        "samples": total,
        "self": [(name, count / total) for name, count in own.most_common(TOP)],
        "inclusive": [
            (name, count / total)
            for name, count in inclusive.most_common(TOP * 3)
            if "twistedpacs" in name
        ][:TOP],
    }


def profile(
    dataset: DataSet, workdir: Path, settings: dict[str, Any], door: str
) -> dict[str, Any]:
    """
    Start TwistedPACS, record it with py-spy while C{dataset} arrives through
    C{door} (C{dicom} or C{rest}), and rank the samples.

    @raise RuntimeError: if py-spy is missing or the ingest fails.
    """
    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
    spy = shutil.which("py-spy") or (beside if os.path.exists(beside) else None)
    if not spy:
        raise RuntimeError("py-spy is not installed")
    receiver = TwistedPACS(workdir, settings)
    receiver.start()
    output = workdir / f"profile-{door}.txt"
    recorder = subprocess.Popen(
        [
            spy,
            "record",
            "--format",
            "raw",
            "--rate",
            "250",
            "--threads",
            "--output",
            str(output),
            "--pid",
            str(receiver.pid),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        client = cstore_one if door == "dicom" else rest_keepalive
        result = client(receiver, dataset, settings)
        if result.acknowledged != dataset.count:
            raise RuntimeError(f"profiled ingest stored {result.acknowledged}")
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=60)
        receiver.stop()
    ranked = rank(output.read_text(errors="replace"))
    ranked["seconds"] = result.seconds
    ranked["instances_per_second"] = dataset.count / result.seconds
    return ranked
