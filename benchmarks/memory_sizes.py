"""
Peak anonymous memory of TwistedPACS as instances grow: SMALL (0.5 MB), LARGE
(50 MB) and HUGE (about 200 MB) instances over one association, each set on
empty storage, three times.

Run from the repository root: C{python -m benchmarks.memory_sizes}. It uses
the cached SMALL and LARGE sets of C{benchmarks/run.py} and builds the HUGE
set (three files, 600 MB) once into C{benchmarks/data}. The server runs from
C{--server-python}, as in C{run.py}, bound to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from benchmarks import data
from benchmarks.run import ROOT, run_one
from benchmarks.scenarios import SCENARIOS

SIZES = (
    ("SMALL (0.5 MB)", "small"),
    ("LARGE (50 MB)", "large"),
    ("HUGE (200 MB)", "huge"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "benchmarks" / "data")
    parser.add_argument("--server-python", default="/root/benchvenv/bin/python")
    arguments = parser.parse_args()

    sets = {
        "small": data.ensure(arguments.data_dir, "small", 25, 20).sample(200),
        "large": data.ensure(arguments.data_dir, "large", 25, 20).sample(10),
        "huge": data.ensure_huge(arguments.data_dir, 3, 384),
    }
    scenario = next(item for item in SCENARIOS if item.name == "cstore-1")
    work_dir = Path(tempfile.mkdtemp(prefix="twistedpacs-memory-"))
    settings = {"server_python": arguments.server_python, "work_dir": work_dir}
    peaks: dict[str, list[float]] = {name: [] for _, name in SIZES}

    try:
        for repetition in range(arguments.repetitions):
            for _, name in SIZES:
                entry = run_one(
                    scenario, "twistedpacs", sets[name], repetition, settings
                )
                if not entry["ok"]:
                    raise SystemExit(f"{name}: not every instance was stored: {entry}")
                peaks[name].append(entry["peak_rss_anon_mib"])
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    print("| instances | size each | peak RssAnon MiB, median [min-max] |")
    print("| --- | --- | --- |")
    for title, name in SIZES:
        values = peaks[name]
        size = sets[name].total_bytes / sets[name].count / 1e6
        print(
            f"| {title} | {size:.1f} MB | {statistics.median(values):.0f} "
            f"[{min(values):.0f}-{max(values):.0f}] |"
        )


if __name__ == "__main__":
    main()
