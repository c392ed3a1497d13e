"""
Medians, ranges and ratios of the runs, the Markdown tables, the targets and
the plot.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from benchmarks.scenarios import SCENARIOS

Run = dict[str, Any]
METRICS = (
    ("instances_per_second", "inst/s", "{:.0f}"),
    ("mb_per_second", "MB/s", "{:.0f}"),
    ("cpu_ms_per_instance", "CPU ms/inst", "{:.2f}"),
    ("system_ms_per_instance", "of it kernel", "{:.2f}"),
    ("peak_rss_anon_mib", "peak RssAnon MiB", "{:.0f}"),
    ("vm_hwm_mib", "VmHWM MiB", "{:.0f}"),
)


def _good(runs: Iterable[Run]) -> list[Run]:
    return [run for run in runs if run.get("ok")]


def spread(values: list[float], form: str) -> str:
    """
    Format the median of C{values} with their range, as C{median [low-high]}.
    """
    if not values:
        return "-"
    middle = form.format(statistics.median(values))
    if len(values) == 1:
        return middle
    return f"{middle} [{form.format(min(values))}-{form.format(max(values))}]"


def values(runs: list[Run], scenario: str, receiver: str, metric: str) -> list[float]:
    """
    Collect one metric of every good run of C{receiver} in C{scenario}.
    """
    return [
        run[metric]
        for run in _good(runs)
        if run["scenario"] == scenario and run["receiver"] == receiver and metric in run
    ]


def ratios(
    runs: list[Run],
    scenario: str,
    receiver: str,
    anchor: str,
    anchor_scenario: str = "",
) -> list[float]:
    """
    Divide C{receiver}'s rate by C{anchor}'s within each repetition.
    """
    anchor_scenario = anchor_scenario or scenario
    result = []
    repetitions = sorted({run["repetition"] for run in runs})
    for repetition in repetitions:
        mine = [
            run["instances_per_second"]
            for run in _good(runs)
            if (run["repetition"], run["scenario"], run["receiver"])
            == (repetition, scenario, receiver)
        ]
        theirs = [
            run["instances_per_second"]
            for run in _good(runs)
            if (run["repetition"], run["scenario"], run["receiver"])
            == (repetition, anchor_scenario, anchor)
        ]
        if mine and theirs:
            result.append(mine[0] / theirs[0])
    return result


def results_table(runs: list[Run]) -> str:
    """
    Tabulate every metric as median [range], one row per scenario and receiver.
    """
    lines = [
        "| scenario | receiver | runs | " + " | ".join(m[1] for m in METRICS) + " |",
        "| --- | --- | --- |" + " --- |" * len(METRICS),
    ]
    for scenario in SCENARIOS:
        for receiver in scenario.receivers:
            present = [
                run
                for run in runs
                if run["scenario"] == scenario.name and run["receiver"] == receiver
            ]
            if not present:
                continue
            good = len(_good(present))
            cells = [
                spread(values(runs, scenario.name, receiver, key), form)
                for key, _, form in METRICS
            ]
            lines.append(
                f"| {scenario.title} | {receiver} | {good}/{len(present)} | "
                + " | ".join(cells)
                + " |"
            )
    return "\n".join(lines)


def ceiling_table(ceilings: list[dict[str, Any]]) -> str:
    """
    Tabulate the machine's ceilings as median [range], one row per method.
    """
    lines = ["| method | inst/s | MB/s |", "| --- | --- | --- |"]
    names = list(dict.fromkeys(name for entry in ceilings for name in entry))
    for name in names:
        measured = [entry[name] for entry in ceilings if name in entry]
        rate = spread([m["instances_per_second"] for m in measured], "{:.0f}")
        throughput = spread([m["mb_per_second"] for m in measured], "{:.0f}")
        lines.append(f"| {name} | {rate} | {throughput} |")
    return "\n".join(lines)


def _ratio_target(
    scenario: str, anchor: str, minimum: float, anchor_scenario: str = ""
) -> Callable[[list[Run]], tuple[str, bool | None]]:
    def check(runs: list[Run]) -> tuple[str, bool | None]:
        found = ratios(runs, scenario, "twistedpacs", anchor, anchor_scenario)
        if not found:
            return "not measured", None
        return f"{spread(found, '{:.2f}')}x", statistics.median(found) >= minimum

    return check


def _large_memory(runs: list[Run]) -> tuple[str, bool | None]:
    large = values(runs, "cstore-large", "twistedpacs", "peak_rss_anon_mib")
    small = values(runs, "cstore-1", "twistedpacs", "peak_rss_anon_mib")
    if not large:
        return "not measured", None
    orthanc = values(runs, "cstore-large", "orthanc", "peak_rss_anon_mib")
    text = f"{spread(large, '{:.0f}')} MiB (SMALL {spread(small, '{:.0f}')} MiB"
    text += f", Orthanc {spread(orthanc, '{:.0f}')} MiB)"
    flat = not small or statistics.median(large) <= statistics.median(small) * 1.25 + 8
    return text, statistics.median(large) < 150 and flat


def _cpu(runs: list[Run]) -> tuple[str, bool | None]:
    found = values(runs, "cstore-1", "twistedpacs", "cpu_ms_per_instance")
    orthanc = values(runs, "cstore-1", "orthanc", "cpu_ms_per_instance")
    if not found:
        return "not measured", None
    text = f"{spread(found, '{:.2f}')} ms (Orthanc {spread(orthanc, '{:.2f}')} ms)"
    return text, statistics.median(found) <= 1.0


def _null(runs: list[Run]) -> tuple[str, bool | None]:
    found = values(runs, "cstore-1", "twistedpacs-null", "instances_per_second")
    anchor = values(runs, "cstore-1", "storescp-ignore", "instances_per_second")
    if not found:
        return "not measured", None
    text = (
        f"{spread(found, '{:.0f}')}/s (storescp --ignore {spread(anchor, '{:.0f}')}/s)"
    )
    return text, statistics.median(found) >= 1500


def _expect(runs: list[Run]) -> tuple[str, bool | None]:
    found = ratios(
        runs, "curl-large", "twistedpacs", "twistedpacs", "curl-large-noexpect"
    )
    if not found:
        return "not measured", None
    return f"{spread(found, '{:.3f}')}x", statistics.median(found) >= 0.95


def _large(runs: list[Run]) -> tuple[str, bool | None]:
    orthanc = ratios(runs, "cstore-large", "twistedpacs", "orthanc")
    storescp = ratios(runs, "cstore-large", "twistedpacs", "storescp")
    if not orthanc or not storescp:
        return "not measured", None
    text = (
        f"{spread(orthanc, '{:.2f}')}x Orthanc, {spread(storescp, '{:.2f}')}x storescp"
    )
    met = statistics.median(orthanc) >= 1.3 and statistics.median(storescp) >= 0.8
    return text, met


TARGETS: list[tuple[str, str, Callable[[list[Run]], tuple[str, bool | None]]]] = [
    (
        "C-STORE, 1 association, SMALL, durable",
        ">= 2x Orthanc",
        _ratio_target("cstore-1", "orthanc", 2.0),
    ),
    (
        "C-STORE, 4 associations, SMALL",
        ">= 1.5x Orthanc",
        _ratio_target("cstore-4", "orthanc", 1.5),
    ),
    (
        "stock storescu, SMALL",
        ">= 5x Orthanc",
        _ratio_target("cstore-stock", "orthanc", 5.0),
    ),
    (
        "REST, 1 keep-alive connection, SMALL",
        ">= 2x Orthanc",
        _ratio_target("rest-keepalive", "orthanc", 2.0),
    ),
    ("REST, curl default Expect, LARGE", "within 5% of no-Expect", _expect),
    ("C-STORE LARGE", ">= 1.3x Orthanc, >= 0.8x storescp", _large),
    ("server RssAnon during LARGE", "< 150 MiB, flat", _large_memory),
    ("server CPU per SMALL instance", "<= 1 ms", _cpu),
    ("null store C-STORE, 1 association", ">= 1,500/s", _null),
]


def targets_table(runs: list[Run]) -> str:
    """
    Tabulate each target with the measured value and whether it was met.
    """
    lines = ["| scenario | target | measured | met |", "| --- | --- | --- | --- |"]
    for title, target, check in TARGETS:
        text, met = check(runs)
        verdict = {True: "yes", False: "**no**", None: "-"}[met]
        lines.append(f"| {title} | {target} | {text} | {verdict} |")
    return "\n".join(lines)


def ratio_table(runs: list[Run]) -> str:
    """
    Tabulate TwistedPACS's rate over each anchor's in every scenario.
    """
    anchors = ("orthanc", "storescp", "pynetdicom", "storescp-ignore")
    lines = [
        "| scenario | " + " | ".join(f"vs {a}" for a in anchors) + " |",
        "| --- |" + " --- |" * len(anchors),
    ]
    for scenario in SCENARIOS:
        mine = "twistedpacs"
        cells = []
        for anchor in anchors:
            subject = "twistedpacs-null" if anchor == "storescp-ignore" else mine
            found = ratios(runs, scenario.name, subject, anchor)
            cells.append(f"{spread(found, '{:.2f}')}x" if found else "-")
        if any(cell != "-" for cell in cells):
            lines.append(f"| {scenario.title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(runs: list[Run], path: Path) -> None:
    """
    Draw median instances/s per scenario and receiver as horizontal bars.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    receivers = list(dict.fromkeys(run["receiver"] for run in _good(runs)))
    scenarios = [s for s in SCENARIOS if any(r["scenario"] == s.name for r in runs)]
    figure, axes = pyplot.subplots(figsize=(8, 0.5 * len(scenarios) + 1.2))
    height = 0.8 / max(1, len(receivers))
    for index, receiver in enumerate(receivers):
        positions, rates = [], []
        for row, scenario in enumerate(scenarios):
            found = values(runs, scenario.name, receiver, "instances_per_second")
            if found:
                positions.append(row + index * height)
                rates.append(statistics.median(found))
        axes.barh(positions, rates, height=height, label=receiver)
    axes.set_yticks([row + 0.4 - height / 2 for row in range(len(scenarios))])
    axes.set_yticklabels([s.title for s in scenarios], fontsize=7)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlabel("instances/s (median, log scale)")
    axes.legend(fontsize=7, loc="lower right")
    axes.grid(axis="x", which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    pyplot.close(figure)


def markdown(document: dict[str, Any]) -> str:
    """
    Render every table of one results document as Markdown.
    """
    runs = document["runs"]
    parts = [
        "## Targets",
        targets_table(runs),
        "## Results (median [min-max])",
        results_table(runs),
        "## TwistedPACS over the anchors (ratios within a repetition)",
        ratio_table(runs),
    ]
    if document.get("ceilings"):
        parts += [
            "## Ceiling of the machine, same bytes",
            ceiling_table(document["ceilings"]),
        ]
    if document.get("churn"):
        parts += ["## Churn", churn_text(document["churn"])]
    for door, ranked in document.get("profiles", {}).items():
        parts += [f"## Hot spots: {door} ingest (py-spy)", hotspot_table(ranked)]
    return "\n\n".join(parts) + "\n"


def churn_text(churn: dict[str, Any]) -> str:
    """
    Describe the churn run: what was deleted and how the file grew.
    """
    if "error" in churn:
        return f"The churn run failed: {churn['error']}"
    return (
        f"Stored {churn['expected_count']} instances, deleted {churn['deleted']}, "
        f"stored {churn['deleted']} new ones ({churn['new_bytes'] / 1e6:.0f} MB). "
        f"data.mdb was {churn['filled']['file_bytes'] / 1e6:.0f} MB after the first "
        f"fill and {churn['refilled']['file_bytes'] / 1e6:.0f} MB after the refill: "
        f"it grew by {churn['growth_bytes'] / 1e6:.1f} MB, "
        f"{churn['growth_per_new_byte'] * 100:.1f} % of the new bytes. "
        f"{churn['final_count']} instances were stored at the end."
    )


def hotspot_table(ranked: dict[str, Any]) -> str:
    """
    Tabulate the functions running in the most samples, then TwistedPACS's
    own functions by their share of samples on the stack.
    """
    if "error" in ranked:
        return f"The profile failed: {ranked['error']}"
    lines = [
        f"{ranked['samples']} samples at {ranked['instances_per_second']:.0f} inst/s.",
        "",
        "| share | running (self) |",
        "| --- | --- |",
    ]
    lines += [f"| {share * 100:.1f} % | `{name}` |" for name, share in ranked["self"]]
    lines += ["", "| share | on the stack (TwistedPACS) |", "| --- | --- |"]
    lines += [
        f"| {share * 100:.1f} % | `{name}` |" for name, share in ranked["inclusive"]
    ]
    return "\n".join(lines)
