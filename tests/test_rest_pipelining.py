"""
Tests for how the HTTP channel reads: its read size, and pipelined requests
from a client that does not read the responses.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from tests import fixtures
from tests.server import ServerProcess
from twistedpacs.config import MIB
from twistedpacs.rest.upload import READ_SIZE, UploadChannel

_GET = b"GET /system HTTP/1.1\r\nHost: pacs\r\n\r\n"


class _Answer(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return b"ok"


def _channel() -> tuple[Any, StringTransport]:
    # The channel's timeouts go to a clock, never to the global reactor.
    site = Site(_Answer(), reactor=Clock())
    site.protocol = UploadChannel  # type: ignore[assignment]
    channel: Any = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 6))
    channel.makeConnection(transport)
    return channel, transport


class _TCPLikeTransport(StringTransport):
    # twisted.internet.tcp.Connection reads up to bufferSize bytes at a time.
    bufferSize = 64 * 1024


class ReadSizeTests(SynchronousTestCase):
    """
    The channel asks for 1 MiB per read, so a 0.5 MB upload takes one trip
    through the reactor instead of eight.
    """

    def test_read_size(self) -> None:
        """
        On a transport with a read size, the channel raises it to 1 MiB.
        """
        site = Site(_Answer(), reactor=Clock())
        site.protocol = UploadChannel  # type: ignore[assignment]
        channel: Any = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5))
        transport = _TCPLikeTransport()
        channel.makeConnection(transport)
        self.assertEqual(transport.bufferSize, READ_SIZE)
        self.assertEqual(READ_SIZE, MIB)


class HeldRequestTests(SynchronousTestCase):
    """
    While the send buffer is full, the channel ends no request and reads no
    more, and it responds to the waiting requests once the buffer drained.
    """

    def test_pipelined_requests_wait_for_drain(self) -> None:
        """
        With the send buffer full, only the first of five pipelined requests
        gets its response, and the connection stops reading. After the drain
        the other four get theirs and reading resumes.
        """
        channel, transport = _channel()
        channel.dataReceived(_GET)
        self.assertEqual(transport.value().count(b"HTTP/1.1 200 OK"), 1)
        # What the transport does when its send buffer is full.
        channel.pauseProducing()
        channel.dataReceived(_GET * 5)
        self.assertEqual(transport.value().count(b"HTTP/1.1 200 OK"), 2)
        self.assertEqual(transport.producerState, "paused")
        channel.resumeProducing()
        self.assertEqual(transport.value().count(b"HTTP/1.1 200 OK"), 6)
        self.assertEqual(transport.producerState, "producing")

    def test_not_held_while_sending(self) -> None:
        """
        Pipelined requests all get their responses at once when the send
        buffer has room.
        """
        channel, transport = _channel()
        channel.dataReceived(_GET * 5)
        self.assertEqual(transport.value().count(b"HTTP/1.1 200 OK"), 5)
        self.assertEqual(transport.producerState, "producing")

    def test_connection_lost_while_held(self) -> None:
        """
        A connection lost while a request is held ends without an error.
        """
        channel, transport = _channel()
        channel.pauseProducing()
        channel.dataReceived(_GET * 3)
        channel.connectionLost(ConnectionError("peer gone"))
        self.assertEqual(transport.value().count(b"HTTP/1.1 200 OK"), 1)


_EXPAND = b"GET /patients?expand HTTP/1.1\r\nHost: pacs\r\n\r\n"
_OK = b"HTTP/1.1 200 OK"


class NonReadingClientTests(SynchronousTestCase):
    """
    A live server keeps its memory while a client pipelines requests and
    never reads the responses.
    """

    def setUp(self) -> None:
        self.server = ServerProcess()
        self.addCleanup(self.server.stop)

    def test_memory_bounded_then_all_answered(self) -> None:
        """
        3,000 pipelined requests for about 16 KB of JSON each, never read,
        grow RssAnon by less than 16 MiB; once the client reads, it gets all
        3,000 responses.
        """
        for index in range(40):
            dataset = fixtures.make_dataset(f"QA^PIPE^{index}", f"QAPIPE{index:03d}")
            status, _ = self.server.request(
                "POST", "/instances", fixtures.part10_bytes(dataset)
            )
            self.assertEqual(status, 200)
        baseline = self.server.rss_anon()
        requests = 3000
        client = socket.create_connection(("127.0.0.1", self.server.http_port))
        self.addCleanup(client.close)
        client.sendall(_EXPAND * requests)
        time.sleep(2)
        growth = self.server.rss_anon() - baseline
        self.assertLess(growth, 16 * MIB, f"RssAnon grew by {growth / MIB:.1f} MiB")
        client.settimeout(30)
        answers, tail = 0, b""
        while answers < requests:
            chunk = client.recv(1 << 20)
            self.assertTrue(chunk, f"connection closed after {answers} responses")
            data = tail + chunk
            answers += data.count(_OK)
            tail = data[-(len(_OK) - 1) :]
        self.assertEqual(answers, requests)
