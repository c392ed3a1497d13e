"""
Tests of L{twistedpacs.rest.timeouts} on a fake transport with a L{Clock}.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from twistedpacs.rest.timeouts import HEADER_TIMEOUT, HeaderDeadline

_GET = b"GET / HTTP/1.1\r\nHost: pacs\r\n\r\n"


class _Channel(HeaderDeadline, http.HTTPChannel):
    """
    An HTTP channel with the header deadline.
    """


class _Answer(Resource):
    """
    A resource that answers C{ok}, after C{delay} seconds when it is set.
    """

    isLeaf = True

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.delay = 0.0

    def render_GET(self, request: Request) -> Any:
        if not self.delay:
            return b"ok"

        def answer() -> None:
            request.write(b"ok")
            request.finish()

        self.clock.callLater(self.delay, answer)
        return NOT_DONE_YET


class _Client:
    """
    One channel of a site on a L{StringTransport}, with its clock.
    """

    def __init__(self, timeout: float | None = None) -> None:
        self.clock = Clock()
        self.resource = _Answer(self.clock)
        site = Site(self.resource, reactor=self.clock)
        site.protocol = _Channel  # type: ignore[assignment]
        self.protocol: Any = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5))
        if timeout is not None:
            self.protocol.header_timeout = timeout
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 6))
        self.protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def take(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return bytes(data)


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


class HeaderDeadlineTests(SynchronousTestCase):
    """
    Tests of the deadline for a request head.
    """

    def test_trickled_head_timed_out(self) -> None:
        """
        A head trickled one byte every 10 seconds is answered 408 with an
        Orthanc-shaped JSON body, and the connection closes, when the deadline
        passes.
        """
        client = _Client()
        head = b"GET / HTTP/1.1\r\nHost: pacs\r\nX-Slow: aaaaaaaaaaaaa"
        for offset in range(int(HEADER_TIMEOUT // 10) - 1):
            client.send(head[offset : offset + 1])
            client.clock.advance(10)
        self.assertEqual(client.take(), b"")
        self.assertFalse(client.transport.disconnecting)
        client.send(head[3:4])
        client.clock.advance(10)
        response = client.take()
        self.assertEqual(_status(response), 408)
        body = json.loads(response.split(b"\r\n\r\n", 1)[1])
        self.assertEqual(body["HttpStatus"], 408)
        self.assertEqual(body["Message"], "Request headers too slow")
        self.assertTrue(client.transport.disconnecting)
        client.send(b"more")
        self.assertEqual(client.take(), b"")

    def test_silent_connection_timed_out(self) -> None:
        """
        A connection that sends nothing is closed after the deadline, before
        twisted.web's own idle timeout.
        """
        client = _Client()
        client.clock.advance(HEADER_TIMEOUT)
        self.assertEqual(_status(client.take()), 408)
        self.assertTrue(client.transport.disconnecting)

    def test_complete_head_answered(self) -> None:
        """
        A head complete within the deadline is answered, and the deadline
        does not fire later.
        """
        client = _Client()
        client.clock.advance(HEADER_TIMEOUT - 1)
        client.send(_GET)
        self.assertEqual(_status(client.take()), 200)
        client.clock.advance(HEADER_TIMEOUT * 1.5)
        self.assertEqual(client.take(), b"")
        self.assertFalse(client.transport.disconnecting)

    def test_later_head_timed_out(self) -> None:
        """
        A later request on the connection gets its own deadline from its
        first byte, not from the end of the previous request.
        """
        client = _Client()
        client.send(_GET)
        self.assertEqual(_status(client.take()), 200)
        client.clock.advance(HEADER_TIMEOUT * 1.5)
        client.send(b"GET / HTTP/1.1\r\n")
        client.clock.advance(HEADER_TIMEOUT - 1)
        self.assertEqual(client.take(), b"")
        client.clock.advance(1)
        self.assertEqual(_status(client.take()), 408)

    def test_pipelined_head_waits_for_response(self) -> None:
        """
        A head that arrives while a slow request is handled starts its
        deadline only when the channel reads it, so both are answered.
        """
        client = _Client()
        client.resource.delay = HEADER_TIMEOUT * 2
        client.send(_GET)
        client.send(_GET)
        client.clock.advance(HEADER_TIMEOUT * 2)
        client.clock.advance(HEADER_TIMEOUT * 2)
        responses = client.take()
        self.assertEqual(responses.count(b"HTTP/1.1 200 OK"), 2)
        self.assertNotIn(b"408", responses)

    def test_no_limit(self) -> None:
        """
        A header timeout of 0 sets no deadline.
        """
        client = _Client(timeout=0)
        client.send(b"GET / HTTP/1.1\r\n")
        client.clock.advance(HEADER_TIMEOUT * 1.9)
        self.assertEqual(client.take(), b"")
        self.assertFalse(client.transport.disconnecting)
