"""
What a live server leaves behind when uploads are cut off, how much memory a
large upload costs it, and the order of its flushes and responses.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import tempfile
import subprocess
import threading
import time

import lmdb
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests import fixtures
from tests.server import ServerProcess
from tests.strace import completed_calls

MIB = 1024 * 1024


def store_entries(storage: str) -> dict[str, int]:
    """
    Count the entries of each sub-database of a closed store.
    """
    env = lmdb.open(storage, readonly=True, lock=False, max_dbs=32)
    counts = {}
    try:
        with env.begin() as txn:
            names = [key for key, _ in txn.cursor()]
        for name in names:
            db = env.open_db(name, create=False)
            with env.begin(db=db) as txn:
                counts[name.decode()] = txn.stat(db)["entries"]
    finally:
        env.close()
    return counts


def send_partial(port: int, content_length: int, body: bytes) -> None:
    """
    Send the head of an upload and part of its body, then close.
    """
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(
            b"POST /instances HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/dicom\r\n"
            + f"Content-Length: {content_length}\r\n\r\n".encode()
        )
        connection.sendall(body)


class CutOffUploadTests(SynchronousTestCase):
    """
    An upload that stops mid-body leaves no chunk, record or pending mark.
    """

    def test_cut_off_uploads_leave_nothing(self) -> None:
        """
        A small and a streamed (over the in-memory threshold) upload cut off
        mid-body store nothing, the server keeps serving, and after a clean
        stop the store holds only the one complete instance.
        """
        server = ServerProcess(config={"InMemoryThreshold": 1})
        self.addCleanup(server.stop)
        small = fixtures.part10_bytes(fixtures.make_dataset(rows=200, columns=200))
        send_partial(server.http_port, len(small), small[: len(small) // 2])
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        large_path = os.path.join(directory, "large.dcm")
        fixtures.large_native_file(large_path, 12 * MIB)
        with open(large_path, "rb") as stream:
            large = stream.read()
        send_partial(server.http_port, len(large), large[: 7 * MIB])
        time.sleep(0.5)
        statistics = server.get_json("/statistics")
        self.assertEqual(statistics["CountInstances"], 0)
        self.assertEqual(int(statistics["TotalDiskSize"]), 0)

        complete = fixtures.part10_bytes(fixtures.make_dataset())
        status, answer = server.request("POST", "/instances", complete)
        self.assertEqual(status, 200, answer)
        server.stop()
        self.assertIn("Store closed", server.log())

        counts = store_entries(server.storage)
        self.assertEqual(counts.get("pending", 0), 0)
        self.assertEqual(counts["instances"], 1)
        # One instance under the threshold is stored as one chunk.
        self.assertEqual(counts["chunks"], 1)


class ShutdownTests(SynchronousTestCase):
    """
    Stopping the server while an upload streams in.
    """

    def test_shutdown_mid_upload_is_clean(self) -> None:
        """
        SIGTERM while a streamed upload is half sent stops the server without
        an unhandled error, and the store reopens with nothing of it.
        """
        server = ServerProcess(config={"InMemoryThreshold": 1})
        self.addCleanup(server.stop)
        connection = socket.create_connection(("127.0.0.1", server.http_port))
        self.addCleanup(connection.close)
        data = fixtures.part10_bytes(fixtures.make_dataset(rows=4000, columns=4000))
        connection.sendall(
            b"POST /instances HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Content-Length: {len(data)}\r\n\r\n".encode()
        )
        connection.sendall(data[: 2 * MIB])

        def keep_sending() -> None:
            # Bytes keep arriving while the server shuts down, until it closes.
            try:
                for offset in range(2 * MIB, len(data), 16384):
                    connection.sendall(data[offset : offset + 16384])
                    time.sleep(0.002)
            except OSError:
                pass

        sender = threading.Thread(target=keep_sending)
        sender.start()
        time.sleep(0.2)
        server.stop()
        sender.join(timeout=30)
        log = server.log()
        self.assertIn("Store closed", log)
        self.assertNotIn("Unhandled Error", log)
        self.assertNotIn("Traceback", log)
        counts = store_entries(server.storage)
        self.assertEqual(counts.get("pending", 0), 0)
        self.assertEqual(counts.get("chunks", 0), 0)


class MemoryTests(SynchronousTestCase):
    """
    A large upload streams with bounded server memory.
    """

    def test_large_upload_bounded_rss(self) -> None:
        """
        A 200 MB upload grows the server's RssAnon by less than the
        in-memory threshold plus the transfer queue bound plus 32 MiB of
        interpreter slack, and comes back intact.
        """
        threshold, queue_bound = 8, 16
        server = ServerProcess(
            config={"InMemoryThreshold": threshold, "TransferQueueBound": queue_bound}
        )
        self.addCleanup(server.stop)
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "large.dcm")
        fixtures.large_native_file(path, 200 * 1000 * 1000)
        size = os.path.getsize(path)

        baseline = server.rss_anon()
        peak = [baseline]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], server.rss_anon())
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            connection = http.client.HTTPConnection(
                "127.0.0.1", server.http_port, timeout=120
            )
            with open(path, "rb") as stream:
                connection.request(
                    "POST",
                    "/instances",
                    body=stream,
                    headers={
                        "Content-Length": str(size),
                        "Content-Type": "application/dicom",
                    },
                )
                response = connection.getresponse()
                answer = json.loads(response.read())
            connection.close()
        finally:
            done.set()
            sampler.join()
        self.assertEqual(response.status, 200, answer)
        growth = peak[0] - baseline
        bound = (threshold + queue_bound + 32) * MIB
        self.assertLess(growth, bound, f"RssAnon grew by {growth / MIB:.1f} MiB")
        self.assertEqual(
            server.get_json(f"/instances/{answer['ID']}")["FileSize"], size
        )


O_DSYNC = 0o10000


def store_descriptors(pid: int, storage: str) -> tuple[set[str], set[str]]:
    """
    Find the process's descriptors of the store's data file: the plain ones
    and the O_DSYNC one LMDB writes meta pages through.
    """
    plain, synchronous = set(), set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target != os.path.join(os.path.realpath(storage), "data.mdb"):
            continue
        with open(f"/proc/{pid}/fdinfo/{fd}") as stream:
            fields = dict(line.split(":", 1) for line in stream if ":" in line)
        flags = int(fields["flags"].strip(), 8)
        (synchronous if flags & O_DSYNC else plain).add(fd)
    return plain, synchronous


class AcknowledgeOrderTests(SynchronousTestCase):
    """
    The server writes its HTTP 200 only after the commit reached the disk.
    """

    def test_answer_follows_flushes(self) -> None:
        """
        Under strace, the write of each upload's 200 response comes after an
        fdatasync of the store's data file and then the synchronous meta-page
        write that completes the commit.
        """
        strace = shutil.which("strace")
        if strace is None:
            raise SkipTest("strace is not installed")
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        trace_path = os.path.join(directory, "trace.txt")
        server = ServerProcess()
        self.addCleanup(server.stop)
        data_fds, meta_fds = store_descriptors(server.pid, server.storage)
        self.assertTrue(data_fds)
        self.assertTrue(meta_fds)

        attach = []
        for tid in os.listdir(f"/proc/{server.pid}/task"):
            attach += ["-p", tid]
        tracer = subprocess.Popen(
            [
                strace,
                "-qq",
                "-f",
                "-s",
                "4096",
                "-o",
                trace_path,
                "-e",
                "trace=fdatasync,fsync,pwrite64,write,writev,sendmsg,sendto",
                *attach,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(1.0)
        if tracer.poll() is not None:
            raise SkipTest("strace cannot attach: " + tracer.stderr.read().decode())
        try:
            for _ in range(3):
                status, _ = server.request(
                    "POST", "/instances", fixtures.part10_bytes(fixtures.make_dataset())
                )
                self.assertEqual(status, 200)
        finally:
            tracer.terminate()
            tracer.wait(timeout=30)
            tracer.stderr.close()
        with open(trace_path, errors="replace") as stream:
            calls = completed_calls(stream.read().splitlines())

        last_flush = last_meta = -1
        answers = 0
        for index, completed in enumerate(calls):
            call, fd, args = completed.name, completed.first_argument, completed.text
            if call == "fdatasync" and fd in data_fds:
                last_flush = index
            elif call == "pwrite64" and fd in meta_fds:
                last_meta = index
            elif (
                call in ("write", "writev", "sendmsg", "sendto")
                and '\\"Status\\"' in args
            ):
                # The JSON response of a POST /instances (strace escapes quotes).
                answers += 1
                self.assertGreater(last_flush, -1, args[:200])
                self.assertGreater(last_meta, last_flush, args[:200])
                self.assertGreater(index, last_meta, args[:200])
                last_flush = last_meta = -1
        self.assertEqual(answers, 3)
