"""
A system-call trace showing that a store is acknowledged only after its
commit reached the disk.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.strace import completed_calls

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Stores one instance and writes "ACK" to stdout from the finish callback,
# the moment a C-STORE response or an HTTP 200 would be sent.
_CHILD = """
import os, sys
sys.path.insert(0, sys.argv[2])
from dataclasses import replace
from twisted.internet import reactor
from twistedpacs.config import Settings
from twistedpacs.storage.store import Store
from tests.test_storage import make_entry

store = Store(replace(Settings(), storage_directory=sys.argv[1]), reactor)

def run():
    store.open()
    transfer = store.begin_transfer(lambda: None, lambda: None)
    transfer.write(b"x" * 100000)
    finished = transfer.finish(make_entry())
    finished.addCallback(lambda result: os.write(1, b"ACK\\n"))
    finished.addBoth(lambda _: store.close())
    finished.addBoth(lambda _: reactor.stop())

reactor.callWhenRunning(run)
reactor.run()
"""

_OPEN = re.compile(
    r'^(\d+) openat\(.*"(?P<path>[^"]+)", (?P<flags>[A-Z_|]+).*= (?P<fd>\d+)$'
)
_CALL = re.compile(
    r"^(\d+) (?P<call>fdatasync|fsync|pwrite64|write)\((?P<fd>\d+)(?P<rest>.*)"
)


class AcknowledgeTraceTests(SynchronousTestCase):
    """
    The order of system calls between a commit and its acknowledgement.
    """

    def trace(self) -> list[str]:
        strace = shutil.which("strace")
        if strace is None:
            raise SkipTest("strace is not installed")
        directory = self.mktemp()
        os.makedirs(directory)
        trace_path = os.path.join(directory, "trace.txt")
        store_path = os.path.join(directory, "store")
        command = [
            strace,
            "-f",
            "-e",
            "trace=openat,fdatasync,fsync,pwrite64,write",
            "-o",
            trace_path,
            sys.executable,
            "-c",
            _CHILD,
            store_path,
            _ROOT,
        ]
        completed = subprocess.run(
            command, capture_output=True, timeout=120, check=False
        )
        if completed.returncode != 0 and b"ptrace" in completed.stderr:
            raise SkipTest("ptrace is not permitted here")
        self.assertEqual(completed.returncode, 0, completed.stderr.decode())
        self.assertEqual(completed.stdout, b"ACK\n")
        with open(trace_path) as stream:
            return stream.read().splitlines()

    def test_ack_after_both_flushes(self) -> None:
        """
        The acknowledgement is written after the commit flushed the data
        pages (fdatasync) and then wrote the meta page through the
        synchronous descriptor LMDB opens for C{metasync}.
        """
        data_fds: set[str] = set()
        meta_fds: set[str] = set()
        events: list[str] = []
        for call in completed_calls(self.trace()):
            name, fd = call.name, call.first_argument
            if name == "openat" and '/data.mdb"' in call.text and call.result.isdigit():
                target = meta_fds if "O_DSYNC" in call.text else data_fds
                target.add(call.result)
            elif name in ("fdatasync", "fsync") and fd in data_fds:
                events.append("sync-data")
            elif name == "pwrite64" and fd in meta_fds:
                events.append("write-meta")
            elif name == "write" and fd == "1" and "ACK" in call.text:
                events.append("ack")
        self.assertTrue(data_fds, "data.mdb was not opened for writing")
        self.assertTrue(meta_fds, "data.mdb was not opened with O_DSYNC")
        self.assertIn("ack", events)
        before = events[: events.index("ack")]
        self.assertGreaterEqual(before.count("sync-data"), 2)
        self.assertEqual(before[-2:], ["sync-data", "write-meta"])
