"""
A live server against a DICOM peer that sends C-ECHO-RQs and never reads the
responses.

These run the installed package: run C{pip install /work/main} into the
virtualenv before them.
"""

from __future__ import annotations

import socket
import struct
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.pdu_streams import associate_rq, echo_rq, pdata, pdv
from tests.server import ServerProcess

MIB = 1024 * 1024

# The idle timeout of the server, in seconds.
_TIMEOUT = 3.0

# The C-ECHO-RQs sent at most, and how many go in one send().
_REQUESTS = 200_000
_BATCH = 100


def _read_pdu(peer: socket.socket) -> bytes:
    data = b""
    while len(data) < 6 or len(data) < 6 + struct.unpack(">L", data[2:6])[0]:
        chunk = peer.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    return data


class SlowReaderTests(SynchronousTestCase):
    """
    The server stops reading from a peer that does not read, and its memory
    stays bounded.
    """

    def test_peer_never_reads(self) -> None:
        """
        The server stops reading while its responses are not read, so send()
        blocks, its anonymous memory grows by less than 32 MiB, and the idle
        timeout then ends the connection.
        """
        server = ServerProcess(config={"DicomScpTimeout": _TIMEOUT})
        self.addCleanup(server.stop)
        peer = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(peer.close)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        peer.connect(("127.0.0.1", server.dicom_port))
        peer.sendall(associate_rq(called=server.aet))
        self.assertEqual(_read_pdu(peer)[0], 0x02)
        before = server.rss_anon()

        batch = pdata(pdv(1, 0x03, echo_rq())) * _BATCH
        peer.settimeout(2.0)
        sent = 0
        blocked = False
        while sent < _REQUESTS:
            try:
                peer.sendall(batch)
            except TimeoutError:
                blocked = True
                break
            sent += _BATCH
        grown = server.rss_anon() - before
        self.assertTrue(blocked, f"{sent} requests sent without blocking")
        self.assertLess(grown, 32 * MIB)

        # Still unread, the connection is aborted after the idle timeout: a
        # close after a flush of the write buffer would never happen.
        deadline = time.monotonic() + _TIMEOUT * 4
        while "closed" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        log = server.log()
        self.assertIn("timed out after", log)
        self.assertIn(f"connection from 127.0.0.1:{peer.getsockname()[1]} closed", log)
