"""
A real TwistedPACS server in a subprocess, for end-to-end tests.

The server runs as users run it, C{twistd -n twistedpacs}, from a
temporary working directory, so the installed package and its twistd plugin are
what is tested, and it binds to 127.0.0.1 on free ports.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def twistd_path() -> str:
    """
    Find the C{twistd} script installed beside the running interpreter.
    """
    candidate = os.path.join(os.path.dirname(sys.executable), "twistd")
    if os.path.exists(candidate):
        return candidate
    found = shutil.which("twistd")
    if found is None:
        raise RuntimeError("twistd is not installed beside " + sys.executable)
    return found


class ServerProcess:
    """
    One C{twistd -n twistedpacs} process with its own store directory.

    @ivar url: the base URL of its REST API.
    """

    def __init__(
        self,
        *extra: str,
        config: dict[str, Any] | None = None,
        aet: str = "ORTHANC",
        wrapper: tuple[str, ...] = (),
    ) -> None:
        """
        @param extra: more C{twistd twistedpacs} options.
        @param config: a configuration document, written to a file for
            C{--config}.
        @param wrapper: a command that runs twistd, such as C{strace -f}.
        """
        self.directory = tempfile.mkdtemp(prefix="twistedpacs-test-")
        self.storage = os.path.join(self.directory, "db")
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.aet = aet
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.log_path = os.path.join(self.directory, "twistd.log")
        arguments = [
            *wrapper,
            twistd_path(),
            "-n",
            "--logfile",
            self.log_path,
            "--pidfile",
            "",
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
            aet,
            "--storage",
            self.storage,
        ]
        if config is not None:
            config_path = os.path.join(self.directory, "config.json")
            with open(config_path, "w") as stream:
                json.dump(config, stream)
            arguments += ["--config", config_path]
        arguments += list(extra)
        environment = dict(os.environ)
        environment.pop("PYTHONPATH", None)
        self.process = subprocess.Popen(
            arguments,
            cwd=self.directory,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait_until_ready()

    def _wait_until_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.process.returncode}: {self.log()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/system", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not answer within {timeout} s: {self.log()}")

    @property
    def pid(self) -> int:
        """
        The server's process id (twistd's, also under a wrapper, which runs
        it as a child).
        """
        if not hasattr(self, "_server_pid"):
            self._server_pid = self.process.pid
            children = f"/proc/{self.process.pid}/task/{self.process.pid}/children"
            if os.path.exists(children):
                with open(children) as stream:
                    found = stream.read().split()
                if found:
                    self._server_pid = int(found[0])
        return self._server_pid

    def rss_anon(self) -> int:
        """
        Return the server's anonymous resident memory in bytes.
        """
        with open(f"/proc/{self.pid}/status") as stream:
            for line in stream:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("RssAnon missing from /proc status")

    def log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as stream:
                return stream.read()
        except FileNotFoundError:
            return self.process.stderr.read().decode() if self.process.stderr else ""

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.load(response)

    def get_bytes(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return bytes(response.read())

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """
        Send one request; return the status and the decoded JSON body.
        """
        request = urllib.request.Request(
            self.url + path, data=body, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            payload = error.read()
            try:
                return error.code, json.loads(payload)
            except ValueError:
                return error.code, payload

    def stop(self) -> int:
        """
        Stop the server with SIGTERM (a clean twistd shutdown) and wait.

        @return: the exit status; twistd stopped by SIGTERM exits by that
            signal once shut down, so a clean stop returns C{-SIGTERM}.
        """
        if self.process.poll() is None:
            if self.pid != self.process.pid:
                # Under a wrapper, stop twistd itself, not only the wrapper.
                os.kill(self.pid, signal.SIGTERM)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        return self.process.returncode

    def kill(self) -> None:
        """
        Stop the server with SIGKILL, as a crash or power loss would.
        """
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
