"""
Tests for how the HTTP channel reads: its read size, a request head read
together with its body, an upload handed to the store before routing, and
pipelined requests from a client that does not read the responses.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from tests import fixtures
from tests.server import ServerProcess
from twistedpacs.config import MIB, Settings
from twistedpacs.rest.site import build_site
from twistedpacs.rest.upload import HEAD_SPLIT_SIZE, READ_SIZE, UploadChannel
from twistedpacs.storage.null import NullStore

_GET = b"GET /system HTTP/1.1\r\nHost: pacs\r\n\r\n"


class _Answer(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []

    def render_GET(self, request: Request) -> bytes:
        return b"ok"

    def render_POST(self, request: Request) -> bytes:
        self.bodies.append(request.content.read())
        return b"ok"


def _site_channel(site: Site) -> tuple[Any, StringTransport]:
    channel: Any = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 6))
    channel.makeConnection(transport)
    return channel, transport


def _channel(resource: Resource | None = None) -> tuple[Any, StringTransport]:
    # The channel's timeouts go to a clock, never to the global reactor.
    site = Site(resource or _Answer(), reactor=Clock())
    site.protocol = UploadChannel  # type: ignore[assignment]
    return _site_channel(site)


class _TCPLikeTransport(StringTransport):
    # twisted.internet.tcp.Connection reads up to bufferSize bytes at a time.
    bufferSize = 64 * 1024


class ReadSizeTests(SynchronousTestCase):
    """
    The channel reads up to 1 MiB at a time, so a 0.5 MB upload takes one
    trip through the reactor instead of eight.
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


def _post(path: bytes, body: bytes, chunked: bool = False) -> bytes:
    if not chunked:
        return (
            b"POST %s HTTP/1.1\r\nHost: pacs\r\nContent-Length: %d\r\n\r\n"
            % (path, len(body))
            + body
        )
    pieces = [body[start : start + 40000] for start in range(0, len(body), 40000)]
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    return (
        b"POST %s HTTP/1.1\r\nHost: pacs\r\nTransfer-Encoding: chunked\r\n\r\n"
        % path
        + chunks
        + b"0\r\n\r\n"
    )


class _LineBufferSpy:
    """
    Record the size of the channel's line buffer at each header line.
    """

    def __init__(self, channel: Any) -> None:
        self.sizes: list[int] = []
        received = channel.lineReceived

        def line_received(line: bytes) -> None:
            self.sizes.append(len(channel._buffer))
            received(line)

        channel.lineReceived = line_received


class HeadSplitTests(SynchronousTestCase):
    """
    A read that contains a request head and the body after it reaches the
    line parser as the head alone, so the body is not copied at every header
    line.
    """

    body = bytes(range(256)) * 800

    def test_body_intact_and_next_request_served(self) -> None:
        """
        A head, a 200 KB body and a pipelined GET in one read give the
        resource the whole body and the client two responses.
        """
        resource = _Answer()
        channel, transport = _channel(resource)
        spy = _LineBufferSpy(channel)
        channel.dataReceived(_post(b"/echo", self.body) + _GET)
        self.assertEqual(resource.bodies, [self.body])
        self.assertEqual(transport.value().count(b"HTTP/1.1 200 OK"), 2)
        self.assertTrue(spy.sizes)
        self.assertLess(max(spy.sizes), HEAD_SPLIT_SIZE)

    def test_chunked_body_intact(self) -> None:
        """
        A chunked body read together with its head arrives whole.
        """
        resource = _Answer()
        channel, transport = _channel(resource)
        channel.dataReceived(_post(b"/echo", self.body, chunked=True))
        self.assertEqual(resource.bodies, [self.body])
        self.assertEqual(transport.value().count(b"HTTP/1.1 200 OK"), 1)

    def test_head_split_across_reads(self) -> None:
        """
        A head whose blank line arrives in the next read still gives the
        whole body.
        """
        resource = _Answer()
        channel, transport = _channel(resource)
        request = _post(b"/echo", self.body)
        end = request.index(b"\r\n\r\n")
        channel.dataReceived(request[: end + 2])
        channel.dataReceived(request[end + 2 :])
        self.assertEqual(resource.bodies, [self.body])
        self.assertEqual(transport.value().count(b"HTTP/1.1 200 OK"), 1)

    def test_upload_with_its_head(self) -> None:
        """
        A DICOM upload read in one piece with its head gets a 200 response
        with C{Status} C{Success}.
        """
        settings = Settings(null_store=True)
        site = build_site(NullStore(settings, Clock()), settings, Clock())
        channel, transport = _site_channel(site)
        dataset = fixtures.make_dataset(rows=256, columns=512)
        data = fixtures.part10_bytes(dataset)
        self.assertGreater(len(data), HEAD_SPLIT_SIZE)
        channel.dataReceived(_post(b"/instances", data))
        output = transport.value()
        self.assertTrue(output.startswith(b"HTTP/1.1 200 OK"), output[:300])
        self.assertIn(b'"Status":"Success"', output.replace(b" ", b""))

    def test_rejected_head_body_not_read(self) -> None:
        """
        A head rejected from its Content-Length closes the connection, and
        the body that came with it is not parsed.
        """
        settings = Settings(null_store=True, maximum_instance_size=1024)
        site = build_site(NullStore(settings, Clock()), settings, Clock())
        channel, transport = _site_channel(site)
        channel.dataReceived(_post(b"/instances", self.body))
        output = transport.value()
        self.assertTrue(output.startswith(b"HTTP/1.1 413"), output[:300])
        self.assertTrue(transport.disconnecting)
        self.assertIsNone(channel.requests[0].upload_body)


class _RecordingStore(NullStore):
    """
    A null store that counts the finished transfers.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, Clock())
        self.finished = 0

    def begin_transfer(self, pause: Any, resume: Any) -> Any:
        transfer = super().begin_transfer(pause, resume)
        finish = transfer.finish

        def counted(entry: Any) -> Any:
            self.finished += 1
            return finish(entry)

        transfer.finish = counted
        return transfer


class _RoutingSpy(Resource):
    """
    The site's root, recording how many transfers had finished each time a
    request reached it.
    """

    isLeaf = True

    def __init__(self, store: _RecordingStore, resource: Any) -> None:
        super().__init__()
        self.store = store
        self.resource = resource
        self.finished_at_routing: list[int] = []

    def render(self, request: Any) -> Any:
        self.finished_at_routing.append(self.store.finished)
        return self.resource.render(request)


class EarlyFinishTests(SynchronousTestCase):
    """
    An upload goes to the writer when its body is complete, before
    twisted.web and klein route the request.
    """

    def test_finish_before_routing(self) -> None:
        """
        The transfer is finished when the request reaches the resource, and
        the client gets a 200 response.
        """
        settings = Settings(null_store=True)
        store = _RecordingStore(settings)
        site = build_site(store, settings, Clock())
        spy = _RoutingSpy(store, site.resource)
        site.resource = spy
        channel, transport = _site_channel(site)
        data = fixtures.part10_bytes(fixtures.make_dataset())
        channel.dataReceived(_post(b"/instances", data))
        self.assertEqual(spy.finished_at_routing, [1])
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 OK"))


class VerboseLogTests(SynchronousTestCase):
    """
    With C{--verbose}, every instance received over REST gets a debug event,
    whether it came as the body or as a part of a form upload.
    """

    def received_events(self, verbose: bool, body: bytes, content_type: bytes) -> int:
        settings = Settings(null_store=True, verbose=verbose)
        site = build_site(NullStore(settings, Clock()), settings, Clock())
        channel, transport = _site_channel(site)
        head = (
            b"POST /instances HTTP/1.1\r\nHost: pacs\r\nContent-Type: %s\r\n"
            b"Content-Length: %d\r\n\r\n" % (content_type, len(body))
        )
        with capturedLogs() as events:
            channel.dataReceived(head + body)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 OK"))
        return sum(
            1
            for event in events
            if event["log_level"] is LogLevel.debug and "instance_id" in event
        )

    def test_body_logged_only_verbose(self) -> None:
        """
        A DICOM body gets one event with C{--verbose} and none without.
        """
        data = fixtures.part10_bytes(fixtures.make_dataset())
        self.assertEqual(self.received_events(True, data, b"application/dicom"), 1)
        self.assertEqual(self.received_events(False, data, b"application/dicom"), 0)

    def test_form_parts_logged(self) -> None:
        """
        A form upload of two files gets one event per file with C{--verbose}.
        """
        parts = [
            (f"{index}.dcm", "application/dicom", fixtures.part10_bytes(dataset))
            for index, dataset in enumerate(
                [fixtures.make_dataset(), fixtures.make_dataset()]
            )
        ]
        body = fixtures.multipart_body(parts, "BOUNDARY")
        content_type = b"multipart/form-data; boundary=BOUNDARY"
        self.assertEqual(self.received_events(True, body, content_type), 2)
        self.assertEqual(self.received_events(False, body, content_type), 0)


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
