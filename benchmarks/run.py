"""
Run the benchmark suite: every scenario against every receiver, repeated, on
empty storage each time, inside a private network namespace.

    python benchmarks/run.py --repetitions 3 --scenarios all

The harness re-executes itself under C{unshare -n} with only the loopback
interface up, so Orthanc (which cannot bind to loopback only) and every other
server are reachable from nothing but this run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)

from benchmarks import ceiling, churn, data, hotspots, report
from benchmarks.procstat import Monitor
from benchmarks.receivers import RECEIVERS
from benchmarks.scenarios import SCENARIOS, Scenario

INSIDE = "TWISTEDPACS_BENCH_NETNS"
MIB = 1024 * 1024


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """
    Parse the command line of the suite.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument(
        "--scenarios", default="all", help="all, none, or names joined by commas"
    )
    parser.add_argument(
        "--receivers", default="all", help="all, or names joined by commas"
    )
    parser.add_argument(
        "--quick", action="store_true", help="240 SMALL, 4 LARGE, 1 repetition"
    )
    parser.add_argument("--curl-sample", type=int, default=200)
    parser.add_argument("--no-ceiling", action="store_true")
    parser.add_argument("--no-churn", action="store_true")
    parser.add_argument(
        "--profile", action="store_true", help="also record py-spy profiles"
    )
    parser.add_argument("--data-dir", type=Path, default=ROOT / "benchmarks" / "data")
    parser.add_argument(
        "--results-dir", type=Path, default=ROOT / "benchmarks" / "results"
    )
    parser.add_argument("--plot", type=Path, default=None, help="PNG path for the plot")
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="parent of the temporary stores"
    )
    parser.add_argument("--server-python", default="/root/benchvenv/bin/python")
    parser.add_argument(
        "--import-tool", default="/root/benchvenv/bin/twistedpacs-import"
    )
    parser.add_argument("--orthanc", default="/usr/sbin/Orthanc")
    parser.add_argument(
        "--report-from",
        type=Path,
        default=None,
        help="print the tables and draw the plot of an earlier results file, and exit",
    )
    parser.add_argument(
        "--install",
        action="store_true",
        help="pip install this checkout into the server's venv first",
    )
    parser.add_argument(
        "--no-unshare", action="store_true", help="run in the current namespace"
    )
    return parser.parse_args(argv)


def enter_namespace(argv: list[str]) -> None:
    """
    Re-execute this script in a new network namespace with loopback up.
    """
    environment = dict(os.environ, **{INSIDE: "1"})
    command = [
        "unshare",
        "-n",
        "sh",
        "-c",
        'ip link set lo up && exec "$0" "$@"',
        sys.executable,
        str(Path(__file__).resolve()),
        *argv,
    ]
    os.execvpe("unshare", command, environment)


def _output(command: list[str]) -> str:
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unavailable ({error})"
    return (result.stdout or result.stderr).strip()


def machine(settings: dict[str, Any]) -> dict[str, Any]:
    """
    Describe the machine and the software versions of this run.
    """
    model = ""
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as stream:
        for line in stream:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="ascii") as stream:
        memory_kib = int(stream.readline().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(memory_kib / MIB, 1),
        "kernel": platform.release(),
        "disk": _output(["df", "-hT", str(settings["work_dir"])]).splitlines()[-1],
        "python": platform.python_version(),
        "orthanc": _output([settings["orthanc"], "--version"]).splitlines()[0],
        "dcmtk": _output(["storescp", "--version"]).splitlines()[0],
        "pynetdicom": _output(
            [sys.executable, "-c", "import pynetdicom; print(pynetdicom.__version__)"]
        ),
        "twistedpacs_commit": _output(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty", "--abbrev=12"]
        ),
        "curl": _output(["curl", "--version"]).splitlines()[0],
    }


def run_one(
    scenario: Scenario,
    receiver_name: str,
    dataset: data.DataSet,
    repetition: int,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """
    Start one receiver on empty storage, run one scenario, check the count.
    """
    workdir = Path(
        tempfile.mkdtemp(
            prefix=f"{scenario.name}-{receiver_name}-", dir=settings["work_dir"]
        )
    )
    receiver = RECEIVERS[receiver_name](workdir, settings)
    entry: dict[str, Any] = {
        "repetition": repetition,
        "scenario": scenario.name,
        "receiver": receiver_name,
        "instances": dataset.count,
        "bytes": dataset.total_bytes,
        "durable": receiver.durable,
        "ok": False,
        "load_average": os.getloadavg()[0],
    }
    # Flush what earlier runs left dirty (storescp never syncs), so no run
    # pays for another's writeback.
    os.sync()
    try:
        receiver.start(scenario.nodelay)
        monitor = Monitor(receiver.pid)
        monitor.start()
        result = scenario.client(receiver, dataset, settings)
        usage = monitor.stop()
        stored = receiver.count()
        entry.update(
            seconds=result.seconds,
            acknowledged=result.acknowledged,
            failures=result.failures,
            stored=stored,
            instances_per_second=dataset.count / result.seconds,
            mb_per_second=dataset.total_bytes / result.seconds / 1e6,
            cpu_ms_per_instance=usage.cpu_seconds * 1000 / dataset.count,
            system_ms_per_instance=usage.system_seconds * 1000 / dataset.count,
            peak_rss_anon_mib=usage.peak_rss_anon_kib / 1024,
            vm_hwm_mib=usage.vm_hwm_kib / 1024,
            memory_samples=usage.samples,
        )
        complete = result.acknowledged == dataset.count and result.failures == 0
        entry["ok"] = complete and stored in (None, dataset.count)
        if not entry["ok"]:
            entry["error"] = (
                f"acknowledged {result.acknowledged}, stored {stored}: {result.detail}"
            )
    except Exception as error:  # noqa: BLE001 (one failed run must not end the suite)
        entry["error"] = (
            f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=3)}"
        )
        entry["log"] = receiver.log_tail()
    finally:
        receiver.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return entry


def _selected(option: str, names: list[str]) -> list[str]:
    if option == "all":
        return names
    if option == "none":
        return []
    chosen = [name.strip() for name in option.split(",") if name.strip()]
    unknown = set(chosen) - set(names)
    if unknown:
        raise SystemExit(f"unknown names: {', '.join(sorted(unknown))}")
    return chosen


def _print_run(entry: dict[str, Any]) -> None:
    if entry["ok"]:
        text = (
            f"{entry['instances_per_second']:8.1f} inst/s {entry['mb_per_second']:7.1f} MB/s "
            f"cpu {entry['cpu_ms_per_instance']:6.2f} ms/inst "
            f"rss_anon {entry['peak_rss_anon_mib']:6.0f} MiB"
        )
    else:
        text = "FAILED " + entry.get("error", "")[:300]
    print(
        f"  rep {entry['repetition']} {entry['scenario']:20} {entry['receiver']:18} {text}",
        flush=True,
    )


def run_suite(
    arguments: argparse.Namespace, settings: dict[str, Any]
) -> dict[str, Any]:
    """
    Build the data, run every selected scenario and the extras, and return the
    results document.
    """
    per_series = 3 if arguments.quick else 25
    large_count = 4 if arguments.quick else 20
    repetitions = 1 if arguments.quick else arguments.repetitions
    sample_size = 40 if arguments.quick else arguments.curl_sample
    small = data.ensure(arguments.data_dir, "small", per_series, large_count)
    large = data.ensure(arguments.data_dir, "large", per_series, large_count)
    sets = {"small": small, "sample": small.sample(sample_size), "large": large}
    scenarios = [
        s
        for s in SCENARIOS
        if s.name in _selected(arguments.scenarios, [s.name for s in SCENARIOS])
    ]
    receivers = _selected(arguments.receivers, list(RECEIVERS))
    document: dict[str, Any] = {
        "command": " ".join(["python", "benchmarks/run.py", *sys.argv[1:]]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(settings),
        "data": {
            name: {"count": s.count, "bytes": s.total_bytes} for name, s in sets.items()
        },
        "runs": [],
        "ceilings": [],
    }
    for repetition in range(repetitions):
        print(f"repetition {repetition + 1} of {repetitions}", flush=True)
        if not arguments.no_ceiling:
            document["ceilings"].append(measure_ceilings(small, large, settings))
        for scenario in scenarios:
            names = [name for name in scenario.receivers if name in receivers]
            # Take turns: rotate the order so no receiver always runs first.
            shift = repetition % max(1, len(names))
            for name in names[shift:] + names[:shift]:
                entry = run_one(
                    scenario, name, sets[scenario.data], repetition, settings
                )
                document["runs"].append(entry)
                _print_run(entry)
    if not arguments.no_churn and "twistedpacs" in receivers:
        document["churn"] = _extra(
            lambda w: churn.run_churn(
                small,
                data.ensure(arguments.data_dir, "churn", per_series, large_count),
                w,
                settings,
            ),
            settings,
        )
    if arguments.profile:
        document["profiles"] = record_profiles(small, large, settings)
    return document


def measure_ceilings(
    small: data.DataSet, large: data.DataSet, settings: dict[str, Any]
) -> dict[str, Any]:
    """
    Measure the machine's ceilings for the bytes of SMALL and of LARGE.
    """
    measured = {
        f"{name}, SMALL": method(small, settings["work_dir"])
        for name, method in ceiling.CEILINGS.items()
    }
    for name, method in ceiling.LARGE_CEILINGS.items():
        measured[f"{name}, LARGE"] = method(large, settings["work_dir"])
    for name, found in measured.items():
        rate = found["instances_per_second"]
        print(f"  ceiling {name:36} {rate:8.0f} inst/s", flush=True)
    return measured


def record_profiles(
    small: data.DataSet, large: data.DataSet, settings: dict[str, Any]
) -> dict[str, Any]:
    """
    Record py-spy profiles of SMALL over DICOM and REST and of LARGE over DICOM.
    """
    profiles = {}
    for label, door, dataset in (
        ("dicom, SMALL", "dicom", small),
        ("rest, SMALL", "rest", small),
        ("dicom, LARGE", "dicom", large),
    ):
        profiles[label] = _extra(
            lambda w, d=dataset, o=door: hotspots.profile(d, w, settings, o),
            settings,
        )
    return profiles


def _extra(action: Any, settings: dict[str, Any]) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="extra-", dir=settings["work_dir"]))
    try:
        return action(workdir)
    except Exception as error:  # noqa: BLE001 (reported with the results)
        return {"error": f"{type(error).__name__}: {error}"}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def install(server_python: str) -> None:
    """
    Install this checkout, not editable, into the venv of C{server_python}, so
    the server runs the code of the commit recorded with the results. The venv
    is created first if it does not exist.
    """
    if not Path(server_python).exists():
        venv = Path(server_python).parent.parent
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [server_python, "-m", "pip", "install", "-q"]
    # The first call installs the pinned dependencies; the second replaces
    # the package even when its version number did not change.
    subprocess.run([*pip, str(ROOT)], check=True, timeout=600)
    subprocess.run(
        [*pip, "--force-reinstall", "--no-deps", str(ROOT)],
        check=True,
        timeout=600,
    )


def main(argv: list[str]) -> int:
    """
    Run the suite and write the JSON results, the Markdown tables and the plot.
    """
    arguments = parse_arguments(argv)
    if arguments.report_from is not None:
        document = json.loads(arguments.report_from.read_text())
        print(report.markdown(document))
        report.plot(document["runs"], arguments.plot or Path("benchmarks.png"))
        return 0
    inside = os.environ.get(INSIDE) == "1"
    # pip may need the network to build the package, so install first.
    if arguments.install and not inside:
        install(arguments.server_python)
    if not arguments.no_unshare and not inside:
        enter_namespace(argv)
    work_parent = arguments.work_dir or Path(tempfile.gettempdir())
    work_dir = Path(tempfile.mkdtemp(prefix="twistedpacs-bench-", dir=work_parent))
    settings = {
        "server_python": arguments.server_python,
        "pynetdicom_python": sys.executable,
        "import_tool": arguments.import_tool,
        "orthanc": arguments.orthanc,
        "work_dir": work_dir,
    }
    try:
        document = run_suite(arguments, settings)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    arguments.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = arguments.results_dir / f"results-{stamp}.json"
    path.write_text(json.dumps(document, indent=1, default=str))
    text = report.markdown(document)
    (arguments.results_dir / f"results-{stamp}.md").write_text(text)
    plot_path = arguments.plot or arguments.results_dir / f"results-{stamp}.png"
    report.plot(document["runs"], plot_path)
    print(text)
    print(f"results: {path}\nplot: {plot_path}")
    return 0 if all(run["ok"] for run in document["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
