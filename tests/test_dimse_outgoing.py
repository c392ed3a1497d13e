"""
Tests of sending stored instances as C-STORE SCU: finding the data set in a
stored file, reading it piece by piece, and streaming it to the peer with
the transport's flow control.
"""

from __future__ import annotations

import io
import pathlib
from typing import Any

import pydicom
from hypothesis import given, strategies as st
from pydicom.filereader import _read_file_meta_info, read_preamble
from twisted.internet.defer import Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase

from tests.fixtures import bare_dataset_bytes, make_dataset, part10_bytes
from twistedpacs.dimse.commands import CStoreRSP
from twistedpacs.dimse.outgoing import StoredDataSet, data_set_start, dataset_offset
from twistedpacs.dimse.scu import ServiceUser
from twistedpacs.model import StorageError
from twistedpacs.ul.negotiation import AcceptedContext
from twistedpacs.ul.pdu import PDV_COMMAND, PDV_LAST_FRAGMENT

DATA = pathlib.Path(pydicom.__file__).parent / "data"
CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def part10_files() -> list[pathlib.Path]:
    """
    The bundled pydicom files that have a preamble and C{DICM}.
    """
    found = []
    for folder in ("test_files", "charset_files"):
        for path in sorted((DATA / folder).glob("*.dcm")):
            with path.open("rb") as stream:
                head = stream.read(132)
            if head[128:132] == b"DICM":
                found.append(path)
    return found


def pydicom_data_set_start(data: bytes) -> int:
    stream = io.BytesIO(data)
    read_preamble(stream, False)
    _read_file_meta_info(stream)
    return stream.tell()


class FakeReader:
    """
    A stand-in for L{twistedpacs.storage.reads.BlobReader} that returns
    given pieces, and can fail at one of them.
    """

    def __init__(self, pieces: list[bytes], fail_at: int | None = None) -> None:
        self.pieces = list(pieces)
        self.fail_at = fail_at
        self.reads = 0

    def read_next(self) -> Deferred[bytes | None]:
        index = self.reads
        self.reads += 1
        if index == self.fail_at:
            return fail(StorageError("instance was deleted while it was read"))
        if index >= len(self.pieces):
            return succeed(None)
        return succeed(self.pieces[index])


def drain(source: StoredDataSet) -> bytes:
    out = bytearray()
    while True:
        results: list[Any] = []
        source.read_next().addBoth(results.append)
        (piece,) = results
        if piece is None:
            return bytes(out)
        out += piece


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0] + sorted(set(cuts)) + [len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


class DataSetStartTests(SynchronousTestCase):
    """
    L{data_set_start} finds the data set where pydicom does.
    """

    def test_bundled_files(self) -> None:
        """
        In every bundled Part 10 file, the data set starts where pydicom
        stops reading the File Meta group, from the whole file and from any
        head that reaches 12 bytes past that point. A shorter head gives
        that offset or L{None}, for more bytes.
        """
        paths = part10_files()
        self.assertGreater(len(paths), 50)
        for path in paths:
            data = path.read_bytes()
            expected = pydicom_data_set_start(data)
            self.assertEqual(dataset_offset(data), expected, path.name)
            for length in range(0, min(len(data), expected + 40)):
                found = data_set_start(data[:length], complete=False)
                if length >= expected + 12:
                    self.assertEqual(found, expected, (path.name, length))
                else:
                    self.assertIn(found, (None, expected), (path.name, length))

    def test_bare_data_set(self) -> None:
        """
        A data set without a preamble starts at 0, even before 132 bytes.
        """
        bare = bare_dataset_bytes(make_dataset())
        self.assertEqual(data_set_start(bare, complete=False), 0)
        self.assertIsNone(data_set_start(bare[:100], complete=False))
        self.assertEqual(data_set_start(bare[:100], complete=True), 0)


class StoredDataSetTests(SynchronousTestCase):
    """
    L{StoredDataSet} yields exactly the data set, whatever the pieces.
    """

    file = part10_bytes(make_dataset(rows=64, columns=64))

    @given(st.lists(st.integers(min_value=1, max_value=len(file) - 1), max_size=12))
    def test_any_pieces(self, cuts: list[int]) -> None:
        """
        The pieces read, joined, are the file after its File Meta group.
        """
        reader = FakeReader(split(self.file, cuts))
        expected = self.file[pydicom_data_set_start(self.file) :]
        self.assertEqual(drain(StoredDataSet(reader)), expected)

    def test_bare_data_set(self) -> None:
        """
        A bare stored data set comes back whole.
        """
        bare = bare_dataset_bytes(make_dataset())
        reader = FakeReader([bare[:50], bare[50:]])
        self.assertEqual(drain(StoredDataSet(reader)), bare)

    def test_file_of_file_meta_only(self) -> None:
        """
        A file that ends with its File Meta group has an empty data set.
        """
        meta_only = self.file[: pydicom_data_set_start(self.file)]
        self.assertEqual(drain(StoredDataSet(FakeReader([meta_only]))), b"")


class FakeClient:
    """
    A stand-in for L{twistedpacs.ul.client.DICOMClientProtocol}: it records
    P-DATA-TF PDUs and lets the test decide when the transport drains.
    """

    peer_maximum_length = 16384

    def __init__(self) -> None:
        self.receiver: Any = None
        self.sent: list[tuple[int, bytes]] = []
        self.aborted = False
        self.paused = False
        self.waiters: list[Deferred[None]] = []

    def send_pdata(self, pdata: Any) -> None:
        for pdv in pdata.pdvs:
            self.sent.append((pdv.message_control_header, bytes(pdv.data)))

    def writable(self) -> Deferred[None]:
        waiter: Deferred[None] = Deferred()
        if self.paused:
            self.waiters.append(waiter)
        else:
            waiter.callback(None)
        return waiter

    def drain(self) -> None:
        self.paused = False
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def abort(self) -> None:
        self.aborted = True
        if self.receiver is not None:
            from twistedpacs.ul.client import AssociationAborted

            self.receiver.association_ended(AssociationAborted("aborted"))


class StreamingStoreTests(SynchronousTestCase):
    """
    L{ServiceUser.store} with a L{StoredDataSet} sends the data set piece by
    piece as the transport drains.
    """

    def setUp(self) -> None:
        self.client = FakeClient()
        self.context = AcceptedContext(1, CT, EXPLICIT_LE)
        self.user = ServiceUser(self.client, {1: self.context})
        self.file = part10_bytes(make_dataset(rows=300, columns=300))
        self.data_set = self.file[pydicom_data_set_start(self.file) :]
        self.pieces = split(self.file, list(range(40000, len(self.file), 40000)))

    def data_fragments(self) -> list[tuple[int, bytes]]:
        return [item for item in self.client.sent if not item[0] & PDV_COMMAND]

    def respond(self, status: int = 0) -> None:
        self.user.command_received(
            1, CStoreRSP(message_id_being_responded_to=1, status=status)
        )

    def test_sends_data_set_in_order(self) -> None:
        """
        The fragments carry the data set in order, each within the peer's
        maximum length, and only the final one is marked last.
        """
        results: list[Any] = []
        stored = self.user.store(
            self.context, "1.2.3", StoredDataSet(FakeReader(self.pieces))
        )
        stored.addBoth(results.append)
        fragments = self.data_fragments()
        self.assertEqual(b"".join(data for _, data in fragments), self.data_set)
        flags = [header & PDV_LAST_FRAGMENT for header, _ in fragments]
        self.assertEqual(flags, [0] * (len(fragments) - 1) + [PDV_LAST_FRAGMENT])
        self.assertTrue(all(len(data) <= 16384 - 6 for _, data in fragments))
        self.assertEqual(results, [])
        self.respond()
        self.assertEqual(results[0].status, 0)

    def test_waits_while_transport_is_full(self) -> None:
        """
        While the transport does not drain, no fragment of the data set is
        sent and at most two pieces are read. All of it follows the drain.
        """
        reader = FakeReader(self.pieces)
        self.client.paused = True
        self.user.store(self.context, "1.2.3", StoredDataSet(reader))
        self.assertEqual(self.data_fragments(), [])
        self.assertLessEqual(reader.reads, 2)
        self.client.drain()
        self.assertEqual(
            b"".join(data for _, data in self.data_fragments()), self.data_set
        )

    def test_failed_read_aborts(self) -> None:
        """
        A piece that cannot be read aborts the association, and the store
        fails with the read's error; nothing more is sent.
        """
        results: list[Any] = []
        reader = FakeReader(self.pieces, fail_at=3)
        stored = self.user.store(self.context, "1.2.3", StoredDataSet(reader))
        stored.addBoth(results.append)
        self.assertTrue(self.client.aborted)
        self.assertTrue(results[0].check(StorageError))
        last = [h for h, _ in self.data_fragments() if h & PDV_LAST_FRAGMENT]
        self.assertEqual(last, [])

    def test_next_request_waits_for_last_fragment(self) -> None:
        """
        A response that arrives before the data set is out does not let the
        next request interleave with it.
        """
        self.client.paused = True
        first = self.user.store(
            self.context, "1.2.3", StoredDataSet(FakeReader(self.pieces))
        )
        self.respond(0xA700)
        second = self.user.store(self.context, "1.2.4", b"\x08\x00\x05\x00")
        commands = [h for h, _ in self.client.sent if h & PDV_COMMAND]
        self.assertEqual(len(commands), 1)
        self.client.drain()
        results: list[Any] = []
        first.addBoth(results.append)
        self.assertEqual(results[0].status, 0xA700)
        sent = self.client.sent
        last_data = min(i for i, (h, _) in enumerate(sent) if h == PDV_LAST_FRAGMENT)
        second_command = [i for i, (h, _) in enumerate(sent) if h & PDV_COMMAND][-1]
        self.assertGreater(second_command, last_data)
        second.addErrback(lambda _: None)


class SendWindowTests(SynchronousTestCase):
    """
    L{DICOMClientProtocol.writable} follows the transport's producer calls.
    """

    def setUp(self) -> None:
        from twisted.internet.task import Clock
        from twisted.internet.testing import StringTransport

        from twistedpacs.dimse.scu import ProposedContext, _build_rq
        from twistedpacs.ul.client import DICOMClientProtocol

        rq = _build_rq("QA_SCU", "DEST", [ProposedContext(CT)], 16384)
        self.protocol = DICOMClientProtocol(rq, Clock(), lambda protocol: None)
        self.protocol.accepted.addErrback(lambda reason: None)
        self.protocol.machine.associate_request(rq)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)

    def fired(self) -> list[Any]:
        results: list[Any] = []
        self.protocol.writable().addBoth(results.append)
        return results

    def test_fires_at_once_when_not_paused(self) -> None:
        """
        With room in the write buffer, C{writable} has fired already.
        """
        self.assertEqual(self.fired(), [None])

    def test_waits_for_resume(self) -> None:
        """
        After C{pauseProducing}, C{writable} fires on C{resumeProducing}.
        """
        self.transport.producer.pauseProducing()
        results = self.fired()
        self.assertEqual(results, [])
        self.transport.producer.resumeProducing()
        self.assertEqual(results, [None])

    def test_connection_lost_wakes_waiters(self) -> None:
        """
        A sender waiting on a full buffer wakes when the connection closes.
        """
        from twisted.python.failure import Failure

        self.transport.producer.pauseProducing()
        results = self.fired()
        self.protocol.connectionLost(Failure(ConnectionError("gone")))
        self.assertEqual(results, [None])
        self.assertEqual(self.fired(), [None])
