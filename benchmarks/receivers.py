"""
The receivers under test: each one starts a server process on free loopback
ports with empty storage, reports how many instances it holds, and stops.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

AET = "ORTHANC"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def free_port() -> int:
    """
    A TCP port on 127.0.0.1 that nothing listens on right now.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_json(port: int, method: str, path: str, timeout: float = 30.0) -> Any:
    """
    Send one request to C{127.0.0.1:port} and decode the JSON answer.

    @raise RuntimeError: if the answer is not 200.
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path)
        answer = connection.getresponse()
        body = answer.read()
    finally:
        connection.close()
    if answer.status != 200:
        raise RuntimeError(f"{method} {path} answered {answer.status}: {body[:200]!r}")
    return json.loads(body) if body else None


def _echo(port: int) -> bool:
    result = subprocess.run(
        ["echoscu", "-to", "2", "-aec", AET, "127.0.0.1", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=10,
        check=False,
    )
    return result.returncode == 0


def _http_ready(port: int) -> bool:
    try:
        http_json(port, "GET", "/system", timeout=2)
    except (OSError, RuntimeError, http.client.HTTPException):
        return False
    return True


class Receiver:
    """
    One server under test.

    @cvar name: The name shown in tables.
    @cvar dicom: Whether it receives C-STORE.
    @cvar rest: Whether it receives C{POST /instances}.
    @cvar stores: Whether it keeps what it receives (so its count is checked).
    @cvar durable: Whether an acknowledged instance has been flushed to disk.
    """

    name = ""
    dicom = True
    rest = False
    stores = True
    durable = False

    def __init__(self, workdir: Path, settings: dict[str, Any]) -> None:
        self.workdir = workdir
        self.settings = settings
        self.process: subprocess.Popen[bytes] | None = None
        self.dicom_port = 0
        self.http_port = 0
        self.storage = workdir / "storage"

    @property
    def pid(self) -> int:
        """
        The process id of the running server.
        """
        assert self.process is not None
        return self.process.pid

    def command(self) -> list[str]:
        """
        The command line that starts the server.
        """
        raise NotImplementedError

    def start(self, nodelay: bool = True) -> None:
        """
        Start the server on empty storage and wait until it answers.

        @param nodelay: Whether to set C{TCP_NODELAY=1} in the server's
            environment, which turns off Nagle's algorithm in DCMTK's network
            layer (storescp and Orthanc); without it each DCMTK answer can wait
            for the peer's delayed acknowledgement.
        @raise RuntimeError: if it exits or does not answer in time.
        """
        environment = dict(os.environ)
        environment.pop("TCP_NODELAY", None)
        if nodelay:
            environment["TCP_NODELAY"] = "1"
        self.storage.mkdir(parents=True)
        self.dicom_port = free_port()
        self.http_port = free_port()
        with open(self.workdir / "server.log", "wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=environment,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not start: {self.log_tail()}")

    def ready(self) -> bool:
        """
        Whether every port the receiver serves answers.
        """
        if self.dicom and not _echo(self.dicom_port):
            return False
        return not self.rest or _http_ready(self.http_port)

    def count(self) -> int | None:
        """
        How many instances the receiver holds, or L{None} when it keeps none.
        """
        if not self.stores:
            return None
        return sum(
            1
            for _, _, names in os.walk(self.storage)
            for name in names
            if not name.startswith(".")
        )

    def log_tail(self) -> str:
        """
        The last lines the server logged.
        """
        try:
            text = (self.workdir / "server.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-15:])

    def stop(self) -> None:
        """
        Stop the server (SIGTERM, then SIGKILL) and delete its storage.
        """
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        shutil.rmtree(self.storage, ignore_errors=True)


class TwistedPACS(Receiver):
    """
    TwistedPACS, durable: every acknowledged instance is committed and synced.
    """

    name = "twistedpacs"
    rest = True
    durable = True
    null_store = False

    def command(self) -> list[str]:
        command = [
            self.settings["server_python"],
            "-m",
            "twisted",
            "--log-file",
            str(self.workdir / "twistd.log"),
            "twistedpacs",
            "--http-port",
            str(self.http_port),
            "--http-bind",
            "127.0.0.1",
            "--dicom-port",
            str(self.dicom_port),
            "--dicom-bind",
            "127.0.0.1",
            "--aet",
            AET,
            "--storage",
            str(self.storage),
        ]
        if self.null_store:
            command.append("--null-store")
        return command

    def count(self) -> int | None:
        if self.null_store:
            return None
        return int(http_json(self.http_port, "GET", "/statistics")["CountInstances"])

    def log_tail(self) -> str:
        path = self.workdir / "twistd.log"
        try:
            text = path.read_text(errors="replace")
        except OSError:
            text = ""
        return super().log_tail() + "\n" + "\n".join(text.splitlines()[-15:])


class TwistedPACSNull(TwistedPACS):
    """
    TwistedPACS with C{--null-store}: it parses and answers, and keeps nothing.
    """

    name = "twistedpacs-null"
    stores = False
    durable = False
    null_store = True


class Orthanc(Receiver):
    """
    Orthanc with its filesystem storage and SQLite index (synchronous), no
    plugins and no compression.
    """

    name = "orthanc"
    rest = True
    durable = True

    def command(self) -> list[str]:
        config = {
            "Name": "bench",
            "StorageDirectory": str(self.storage / "files"),
            "IndexDirectory": str(self.storage / "index"),
            "StorageCompression": False,
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": AET,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "Plugins": [],
        }
        path = self.workdir / "orthanc.json"
        path.write_text(json.dumps(config, indent=2))
        return [
            self.settings["orthanc"],
            f"--logfile={self.workdir / 'orthanc.log'}",
            str(path),
        ]

    def count(self) -> int | None:
        return int(http_json(self.http_port, "GET", "/statistics")["CountInstances"])


class StoreSCP(Receiver):
    """
    DCMTK storescp writing each instance bit-preserving to a file (no fsync).
    """

    name = "storescp"
    ignore = False

    def command(self) -> list[str]:
        command = ["storescp", "-aet", AET, "-od", str(self.storage)]
        command += ["--ignore"] if self.ignore else ["+B"]
        return command + [str(self.dicom_port)]


class StoreSCPIgnore(StoreSCP):
    """
    DCMTK storescp C{--ignore}: receive and store nothing.
    """

    name = "storescp-ignore"
    stores = False
    ignore = True


class PynetdicomSCP(Receiver):
    """
    pynetdicom's C{storescp} application, writing each instance to a file.
    """

    name = "pynetdicom"
    ignore = False

    def command(self) -> list[str]:
        command = [
            self.settings.get("pynetdicom_python", sys.executable),
            "-m",
            "pynetdicom",
            "storescp",
            "-aet",
            AET,
            "-od",
            str(self.storage),
        ]
        if self.ignore:
            command.append("--ignore")
        return command + [str(self.dicom_port)]


class PynetdicomSCPIgnore(PynetdicomSCP):
    """
    pynetdicom's C{storescp --ignore}: receive and store nothing.
    """

    name = "pynetdicom-ignore"
    stores = False
    ignore = True


RECEIVERS: dict[str, type[Receiver]] = {
    kind.name: kind
    for kind in (
        TwistedPACS,
        Orthanc,
        StoreSCP,
        PynetdicomSCP,
        TwistedPACSNull,
        StoreSCPIgnore,
        PynetdicomSCPIgnore,
    )
}
