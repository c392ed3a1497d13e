"""
The client side of each scenario: what is sent, how, and how many instances
the client saw acknowledged.
"""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.data import DataSet
from benchmarks.receivers import AET, Receiver

CLIENT_TIMEOUT = 900.0
_STORE_SUCCESS = re.compile(rb"Received Store Response \(Success\)")


@dataclass
class ClientResult:
    """
    What the client saw: acknowledged instances, failures, and the wall time
    from the first byte sent to the last answer.
    """

    acknowledged: int
    failures: int
    seconds: float
    detail: str = ""


def _storescu(
    receiver: Receiver, batches: list[tuple[str, ...]], nodelay: bool
) -> ClientResult:
    environment = dict(os.environ)
    environment.pop("TCP_NODELAY", None)
    if nodelay:
        environment["TCP_NODELAY"] = "1"
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            ["storescu", "-v", "-aec", AET, "127.0.0.1", str(receiver.dicom_port)]
            + list(batch),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=environment,
        )
        for batch in batches
    ]
    outputs = [process.communicate(timeout=CLIENT_TIMEOUT)[0] for process in processes]
    seconds = time.perf_counter() - started
    successes = sum(len(_STORE_SUCCESS.findall(output)) for output in outputs)
    sent = sum(len(batch) for batch in batches)
    detail = ""
    if successes != sent:
        codes = [process.returncode for process in processes]
        detail = f"exit {codes}: " + outputs[0][-600:].decode(errors="replace")
    return ClientResult(successes, sent - successes, seconds, detail)


def cstore_one(
    receiver: Receiver, data: DataSet, settings: dict[str, Any]
) -> ClientResult:
    """
    One C{storescu} call, one association, every file, C{TCP_NODELAY=1}.
    """
    return _storescu(receiver, [data.files], nodelay=True)


def cstore_four(
    receiver: Receiver, data: DataSet, settings: dict[str, Any]
) -> ClientResult:
    """
    Four C{storescu} calls in parallel, each with a quarter of the files.
    """
    return _storescu(receiver, data.split(4), nodelay=True)


def cstore_stock(
    receiver: Receiver, data: DataSet, settings: dict[str, Any]
) -> ClientResult:
    """
    One C{storescu} call without C{TCP_NODELAY} in its environment.
    """
    return _storescu(receiver, [data.files], nodelay=False)


def rest_keepalive(
    receiver: Receiver, data: DataSet, settings: dict[str, Any]
) -> ClientResult:
    """
    Sequential C{POST /instances} of every file over one keep-alive connection.
    """
    connection = http.client.HTTPConnection(
        "127.0.0.1", receiver.http_port, timeout=120
    )
    acknowledged = failures = 0
    detail = ""
    started = time.perf_counter()
    for path in data.files:
        with open(path, "rb") as stream:
            body = stream.read()
        connection.request(
            "POST",
            "/instances",
            body=body,
            headers={"Content-Type": "application/dicom"},
        )
        answer = connection.getresponse()
        text = answer.read()
        if answer.status == 200:
            acknowledged += 1
        else:
            failures += 1
            detail = f"{answer.status} {text[:200]!r}"
    seconds = time.perf_counter() - started
    connection.close()
    return ClientResult(acknowledged, failures, seconds, detail)


def _curl(
    receiver: Receiver, data: DataSet, expect: bool, settings: dict[str, Any]
) -> ClientResult:
    url = f"http://127.0.0.1:{receiver.http_port}/instances"
    command = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"]
    if not expect:
        command += ["-H", "Expect:"]
    acknowledged = failures = 0
    detail = ""
    started = time.perf_counter()
    for path in data.files:
        result = subprocess.run(
            command + ["--data-binary", f"@{path}", url],
            capture_output=True,
            timeout=CLIENT_TIMEOUT,
            check=False,
        )
        if result.stdout == b"200":
            acknowledged += 1
        else:
            failures += 1
            detail = f"curl {result.returncode} {result.stdout!r}"
    return ClientResult(acknowledged, failures, time.perf_counter() - started, detail)


def curl_default(
    receiver: Receiver, data: DataSet, settings: dict[str, Any]
) -> ClientResult:
    """
    One C{curl} per file with curl's default C{Expect: 100-continue} handling.
    """
    return _curl(receiver, data, True, settings)


def curl_no_expect(
    receiver: Receiver, data: DataSet, settings: dict[str, Any]
) -> ClientResult:
    """
    One C{curl} per file with C{-H "Expect:"}, so the body follows at once.
    """
    return _curl(receiver, data, False, settings)


def import_tool(
    receiver: Receiver, data: DataSet, settings: dict[str, Any]
) -> ClientResult:
    """
    C{twistedpacs-import --jobs 4} on the data set's folder.
    """
    folder = os.path.dirname(data.files[0])
    started = time.perf_counter()
    result = subprocess.run(
        [
            settings["import_tool"],
            "--url",
            f"http://127.0.0.1:{receiver.http_port}",
            "--jobs",
            "4",
            folder,
        ],
        capture_output=True,
        timeout=CLIENT_TIMEOUT,
        check=False,
    )
    seconds = time.perf_counter() - started
    # The tool prints its own summary; the server count is the check.
    detail = (
        "" if result.returncode == 0 else result.stdout[-600:].decode(errors="replace")
    )
    acknowledged = data.count if result.returncode == 0 else 0
    return ClientResult(
        acknowledged, 0 if acknowledged else data.count, seconds, detail
    )


@dataclass(frozen=True)
class Scenario:
    """
    One way of sending one data set.

    @ivar data: C{small}, C{sample} (a part of SMALL) or C{large}.
    @ivar door: C{dicom} or C{rest}: which receivers take part.
    """

    name: str
    title: str
    data: str
    door: str
    client: Callable[[Receiver, DataSet, dict[str, Any]], ClientResult]
    receivers: tuple[str, ...]
    nodelay: bool = True


_DICOM_ALL = (
    "twistedpacs",
    "orthanc",
    "storescp",
    "pynetdicom",
    "twistedpacs-null",
    "storescp-ignore",
    "pynetdicom-ignore",
)
_DICOM_MAIN = (
    "twistedpacs",
    "orthanc",
    "storescp",
    "twistedpacs-null",
    "storescp-ignore",
)
# storescp serves one association at a time unless it forks a process per
# association, whose memory and CPU the monitor would not see.
_DICOM_PARALLEL = ("twistedpacs", "orthanc", "twistedpacs-null")
_REST = ("twistedpacs", "orthanc")

SCENARIOS = [
    Scenario(
        "cstore-1",
        "C-STORE, 1 association, SMALL",
        "small",
        "dicom",
        cstore_one,
        _DICOM_ALL,
    ),
    Scenario(
        "cstore-4",
        "C-STORE, 4 associations, SMALL",
        "small",
        "dicom",
        cstore_four,
        _DICOM_PARALLEL,
    ),
    Scenario(
        "cstore-stock",
        "stock storescu (no TCP_NODELAY), SMALL sample",
        "sample",
        "dicom",
        cstore_stock,
        _DICOM_MAIN,
        nodelay=False,
    ),
    Scenario(
        "rest-keepalive",
        "REST, 1 keep-alive connection, SMALL",
        "small",
        "rest",
        rest_keepalive,
        _REST,
    ),
    Scenario(
        "import-4",
        "twistedpacs-import --jobs 4, SMALL",
        "small",
        "rest",
        import_tool,
        _REST,
    ),
    Scenario(
        "curl-small",
        "curl per file, default Expect, SMALL sample",
        "sample",
        "rest",
        curl_default,
        _REST,
    ),
    Scenario(
        "curl-small-noexpect",
        "curl per file, Expect:, SMALL sample",
        "sample",
        "rest",
        curl_no_expect,
        _REST,
    ),
    Scenario(
        "cstore-large",
        "C-STORE, 1 association, LARGE",
        "large",
        "dicom",
        cstore_one,
        _DICOM_ALL,
    ),
    Scenario(
        "curl-large",
        "curl per file, default Expect, LARGE",
        "large",
        "rest",
        curl_default,
        _REST,
    ),
    Scenario(
        "curl-large-noexpect",
        "curl per file, Expect:, LARGE",
        "large",
        "rest",
        curl_no_expect,
        _REST,
    ),
]
