"""
Tests of the DICOM listener on a fake transport: negotiation, PDU framing,
timers, backpressure and the C-ECHO and C-STORE SCPs.

Every PDU and data set is built here from the layouts of PS3.8 and PS3.5, and
the protocol runs on a L{StringTransport} with a L{Clock}, so no socket or
reactor is involved.
"""

from __future__ import annotations

import struct
import zlib
from io import BytesIO
from typing import Any, Callable

import pydicom
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from tests.pdu_streams import (
    ABORT_RQ,
    CT_IMAGE_STORAGE,
    DEFLATED_LE,
    EXPLICIT_LE,
    IMPLICIT_LE,
    PRINT_META_SOP_CLASS,
    RELEASE_RQ,
    UID_44,
    VERIFICATION,
)
from tests.pdu_streams import (
    associate_rq as _associate_rq,
)
from tests.pdu_streams import (
    dataset as _dataset,
)
from tests.pdu_streams import (
    dataset_of_length as _dataset_of_length,
)
from tests.pdu_streams import (
    echo_rq as _echo_rq,
)
from tests.pdu_streams import (
    element as _element,
)
from tests.pdu_streams import (
    even as _even,
)
from tests.pdu_streams import (
    item as _item,
)
from tests.pdu_streams import (
    pdata as _pdata,
)
from tests.pdu_streams import (
    pdv as _pdv,
)
from tests.pdu_streams import (
    responses as _responses,
)
from tests.pdu_streams import (
    split_pdus as _split_pdus,
)
from tests.pdu_streams import (
    statuses as _statuses,
)
from tests.pdu_streams import (
    store_message as _store_message,
)
from tests.pdu_streams import (
    store_rq as _store_rq,
)
from twistedpacs.config import Settings
from twistedpacs.dicom.part10 import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
)
from twistedpacs.dimse.commands import (
    CEchoRSP,
    CFindRQ,
    CFindRSP,
    CGetRQ,
    CGetRSP,
    CStoreRSP,
    NRequest,
    NResponse,
    encode_command,
)
from twistedpacs.model import (
    IndexEntry,
    StorageFullError,
    StoreResult,
    StoreStatus,
)
from twistedpacs.ul.listener import DICOMServerFactory, build_factory
from twistedpacs.ul.machine import State
from twistedpacs.ul.negotiation import (
    ACCEPTED_TRANSFER_SYNTAXES,
    STORAGE_SOP_CLASSES,
)
from twistedpacs.ul.protocol import DICOMServerProtocol

TIMEOUT = 30.0


_PDU_HEADER = struct.Struct(">BBL")
_PDV_HEADER = struct.Struct(">LBB")


# The fake store.


class _FakeTransfer:
    def __init__(
        self, store: _FakeStore, pause: Callable[[], None], resume: Callable[[], None]
    ) -> None:
        self.store = store
        self.pause = pause
        self.resume = resume
        self.chunks: list[bytes] = []
        self.aborted = False
        self.finished = False

    def write(self, data: bytes | memoryview) -> None:
        assert not (self.aborted or self.finished)
        self.chunks.append(bytes(data))
        if self.store.pause_on_write:
            self.pause()

    def abort(self) -> None:
        self.aborted = True

    def finish(self, entry: IndexEntry) -> Deferred[StoreResult]:
        assert not (self.aborted or self.finished)
        self.finished = True
        return self.store.commit(self, entry)


class _FakeStore:
    """
    A store in memory that keeps the first copy of each SOP instance, as the
    real store does without OverwriteInstances.
    """

    def __init__(self) -> None:
        self.transfers: list[_FakeTransfer] = []
        self.instances: dict[str, bytes] = {}
        self.entries: dict[str, IndexEntry] = {}
        self.pause_on_write = False
        self.hold = False
        self.held: list[tuple[Deferred[StoreResult], StoreResult]] = []
        self.failure: Exception | None = None

    def begin_transfer(
        self, pause: Callable[[], None], resume: Callable[[], None]
    ) -> _FakeTransfer:
        transfer = _FakeTransfer(self, pause, resume)
        self.transfers.append(transfer)
        return transfer

    def commit(
        self, transfer: _FakeTransfer, entry: IndexEntry
    ) -> Deferred[StoreResult]:
        if self.failure is not None:
            return fail(self.failure)
        uid = entry.header.sop_instance_uid
        data = entry.prefix + b"".join(transfer.chunks)
        status = StoreStatus.ALREADY_STORED
        if uid not in self.instances:
            status = StoreStatus.SUCCESS
            self.instances[uid] = data
            self.entries[uid] = entry
        result = StoreResult(entry.ids, status, len(data))
        if self.hold:
            deferred: Deferred[StoreResult] = Deferred()
            self.held.append((deferred, result))
            return deferred
        return succeed(result)

    def stored_data_set(self, uid: str) -> bytes:
        """
        Return the bytes stored for C{uid} after the generated File Meta
        group.
        """
        return self.instances[uid][len(self.entries[uid].prefix) :]


class _Connection:
    """
    One protocol on a L{StringTransport}, with its factory, store and clock.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        store: Any = None,
        factory: DICOMServerFactory | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings or Settings(aet="TWISTEDPACS")
        self.store = store if store is not None else _FakeStore()
        self.clock = clock or Clock()
        self.factory = factory or build_factory(self.store, self.settings, self.clock)
        address = IPv4Address("TCP", "127.0.0.1", 40404)
        self.protocol: DICOMServerProtocol = self.factory.buildProtocol(address)
        self.transport = StringTransport(peerAddress=address)
        self.protocol.makeConnection(self.transport)

    def feed(self, data: bytes, step: int = 0) -> None:
        if not step:
            self.protocol.dataReceived(data)
            return
        for start in range(0, len(data), step):
            self.protocol.dataReceived(data[start : start + step])

    def take(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return bytes(data)

    def associate(self, **arguments: Any) -> bytes:
        self.feed(_associate_rq(**arguments))
        output = self.take()
        assert output[0] == 0x02, f"expected an A-ASSOCIATE-AC, got {output!r}"
        return output


def _store_contexts() -> list[tuple[int, str, list[str]]]:
    return [
        (1, VERIFICATION, [IMPLICIT_LE]),
        (3, CT_IMAGE_STORAGE, [IMPLICIT_LE]),
    ]


class NegotiationTests(SynchronousTestCase):
    """
    Tests of association acceptance and rejection.
    """

    def test_associate_exact_ac_bytes(self) -> None:
        """
        A Verification proposal is answered with the A-ASSOCIATE-AC of PS3.8
        Table 9-17, byte for byte.
        """
        connection = _Connection()
        connection.feed(_associate_rq())
        version = IMPLEMENTATION_VERSION_NAME.encode()
        user = (
            _item(0x51, struct.pack(">L", 131072))
            + _item(0x52, IMPLEMENTATION_CLASS_UID.encode())
            + _item(0x55, version)
        )
        body = (
            b"\x00\x01\x00\x00"
            + b"TWISTEDPACS     "
            + b"QA_SCU          "
            + bytes(32)
            + b"\x10\x00\x00\x15"
            + b"1.2.840.10008.3.1.1.1"
            + b"\x21\x00\x00\x19\x01\x00\x00\x00"
            + b"\x40\x00\x00\x11"
            + b"1.2.840.10008.1.2"
            + _item(0x50, user)
        )
        expected = b"\x02\x00" + struct.pack(">L", len(body)) + body
        self.assertEqual(connection.take(), expected)
        self.assertIs(connection.protocol.machine.state, State.Sta6)

    def _rejection(self, settings: Settings | None = None, **arguments: Any) -> bytes:
        connection = _Connection(settings)
        connection.feed(_associate_rq(**arguments))
        self.assertIs(connection.protocol.machine.state, State.Sta13)
        return connection.take()

    def test_associate_called_aet_mismatch(self) -> None:
        """
        With the called AE title checked, another title is rejected
        permanently by the service user with reason 7.
        """
        settings = Settings(aet="TWISTEDPACS", dicom_check_called_aet=True)
        self.assertEqual(
            self._rejection(settings, called="OTHER"),
            bytes.fromhex("03000000000400010107"),
        )

    def test_associate_called_aet_unchecked(self) -> None:
        """
        Without the check, any called AE title is accepted.
        """
        connection = _Connection()
        connection.associate(called="OTHER")
        self.assertIs(connection.protocol.machine.state, State.Sta6)

    def test_associate_bad_application_context(self) -> None:
        """
        An application context other than DICOM's is rejected permanently by
        the service user with reason 2.
        """
        self.assertEqual(
            self._rejection(application_context="1.2.3.4"),
            bytes.fromhex("03000000000400010102"),
        )

    def test_associate_bad_protocol_version(self) -> None:
        """
        A protocol version without bit 0 is rejected permanently by the ACSE
        provider with reason 2.
        """
        self.assertEqual(
            self._rejection(version=2), bytes.fromhex("03000000000400010202")
        )

    def test_associate_maximum_associations(self) -> None:
        """
        Past the maximum, an association is rejected transiently by the
        presentation provider with reason 2, until one ends.
        """
        settings = Settings(aet="TWISTEDPACS", maximum_associations=1)
        first = _Connection(settings)
        first.associate()
        second = _Connection(settings, factory=first.factory, clock=first.clock)
        second.feed(_associate_rq())
        self.assertEqual(second.take(), bytes.fromhex("03000000000400020302"))
        first.protocol.connectionLost()
        second.protocol.connectionLost()
        self.assertEqual(first.factory.active_associations, 0)
        third = _Connection(settings, factory=first.factory, clock=first.clock)
        third.associate()
        self.assertEqual(first.factory.active_associations, 1)

    def _context_results(self, output: bytes) -> dict[int, tuple[int, str]]:
        results = {}
        body = output[6:]
        offset = 68
        while offset < len(body):
            item_type, _, length = struct.unpack_from(">BBH", body, offset)
            if item_type == 0x21:
                context_id, _, result, _ = body[offset + 4 : offset + 8]
                transfer = body[offset + 12 : offset + 4 + length].decode()
                results[context_id] = (result, transfer)
            offset += 4 + length
        return results

    def test_negotiate_context_results(self) -> None:
        """
        A meta SOP class gets result 3, a storage class with only an
        unknown transfer syntax result 4, Verification result 0, and a
        C-STORE on the result-4 context aborts with nothing stored; a new
        association then works.
        """
        connection = _Connection()
        output = connection.associate(
            contexts=[
                (1, PRINT_META_SOP_CLASS, [IMPLICIT_LE]),
                (3, CT_IMAGE_STORAGE, ["1.2.3.4.5.6.7.8.9"]),
                (5, VERIFICATION, [IMPLICIT_LE]),
            ]
        )
        results = self._context_results(output)
        self.assertEqual(results[1][0], 3)
        self.assertEqual(results[3][0], 4)
        self.assertEqual(results[5], (0, IMPLICIT_LE))
        connection.feed(_store_message(3, _dataset()))
        self.assertEqual(connection.take(), bytes.fromhex("07000000000400000206"))
        self.assertEqual(connection.store.instances, {})
        self.assertEqual(connection.store.transfers, [])

        again = _Connection(factory=connection.factory, store=connection.store)
        again.associate(contexts=_store_contexts())
        again.feed(_store_message(3, _dataset()))
        self.assertEqual(_statuses(again.take()), [0x0000])

    def test_negotiate_first_acceptable_syntax(self) -> None:
        """
        The first proposed transfer syntax that is supported is accepted.
        """
        connection = _Connection()
        output = connection.associate(
            contexts=[(1, CT_IMAGE_STORAGE, ["1.2.3", EXPLICIT_LE, IMPLICIT_LE])]
        )
        self.assertEqual(self._context_results(output)[1], (0, EXPLICIT_LE))

    def test_negotiate_unknown_sop_class(self) -> None:
        """
        An unknown abstract syntax is accepted only with
        C{unknown_sop_class_accepted}.
        """
        contexts = [(1, "1.2.3.4.5", [IMPLICIT_LE])]
        refused = _Connection().associate(contexts=contexts)
        self.assertEqual(self._context_results(refused)[1][0], 3)
        settings = Settings(aet="TWISTEDPACS", unknown_sop_class_accepted=True)
        accepted = _Connection(settings).associate(contexts=contexts)
        self.assertEqual(self._context_results(accepted)[1][0], 0)

    def test_negotiate_roles_and_window(self) -> None:
        """
        Role selection keeps the requestor's SCU role, and its SCP role for
        a storage class (which a C-GET sends on) but not for a query class.
        An asynchronous operations window gets 1/1 in the A-ASSOCIATE-AC.
        """
        study_find = "1.2.840.10008.5.1.4.1.2.2.1"

        def role(uid: str, flags: bytes) -> bytes:
            return _item(0x54, struct.pack(">H", len(uid)) + uid.encode() + flags)

        window = _item(0x53, struct.pack(">HH", 5, 5))
        output = _Connection().associate(
            contexts=[
                (1, CT_IMAGE_STORAGE, [IMPLICIT_LE]),
                (3, study_find, [IMPLICIT_LE]),
            ],
            extra_sub_items=window
            + role(CT_IMAGE_STORAGE, b"\x01\x01")
            + role(study_find, b"\x01\x01"),
        )
        self.assertIn(_item(0x53, struct.pack(">HH", 1, 1)), output)
        self.assertIn(role(CT_IMAGE_STORAGE, b"\x01\x01"), output)
        self.assertIn(role(study_find, b"\x01\x00"), output)

    def test_negotiate_requestor_scp_classes(self) -> None:
        """
        The storage classes whose SCP role the requestor took are the ones a
        C-GET may send on. A storage class proposed without the SCP role is
        not among them.
        """
        from twistedpacs.ul.negotiation import negotiate
        from twistedpacs.ul.pdu import (
            AAssociateRQ,
            MaximumLength,
            PresentationContextRQ,
            SCPSCURoleSelection,
            UserInformation,
        )

        mr = "1.2.840.10008.5.1.4.1.1.4"
        rq = AAssociateRQ(
            called_ae_title="TWISTEDPACS",
            calling_ae_title="QA_SCU",
            presentation_contexts=(
                PresentationContextRQ(1, CT_IMAGE_STORAGE, (IMPLICIT_LE,)),
                PresentationContextRQ(3, mr, (IMPLICIT_LE,)),
            ),
            user_information=UserInformation(
                (
                    MaximumLength(16384),
                    SCPSCURoleSelection(CT_IMAGE_STORAGE, False, True),
                    SCPSCURoleSelection(mr, True, False),
                )
            ),
        )
        negotiation = negotiate(rq, Settings(aet="TWISTEDPACS"))
        self.assertEqual(negotiation.requestor_scp_classes, {CT_IMAGE_STORAGE})

    def test_negotiate_storage_classes_and_syntaxes(self) -> None:
        """
        The supported sets hold the storage classes and transfer syntaxes of
        pydicom, and leave out non-storage classes.
        """
        self.assertIn(CT_IMAGE_STORAGE, STORAGE_SOP_CLASSES)
        self.assertIn("1.2.840.10008.5.1.4.1.1.1.1", STORAGE_SOP_CLASSES)
        self.assertNotIn("1.2.840.10008.1.20.1", STORAGE_SOP_CLASSES)
        self.assertNotIn(PRINT_META_SOP_CLASS, STORAGE_SOP_CLASSES)
        for uid in (IMPLICIT_LE, EXPLICIT_LE, "1.2.840.10008.1.2.2", DEFLATED_LE):
            self.assertIn(uid, ACCEPTED_TRANSFER_SYNTAXES)
        for uid in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.80"):
            self.assertIn(uid, ACCEPTED_TRANSFER_SYNTAXES)
        for uid in ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.201"):
            self.assertIn(uid, ACCEPTED_TRANSFER_SYNTAXES)
        for uid in ("1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.100"):
            self.assertIn(uid, ACCEPTED_TRANSFER_SYNTAXES)
        self.assertIn("1.2.840.10008.1.2.4.107", ACCEPTED_TRANSFER_SYNTAXES)
        self.assertNotIn("1.2.840.10008.1.2.4.94", ACCEPTED_TRANSFER_SYNTAXES)


def _full_stream() -> bytes:
    """
    Encode an association with a C-ECHO, a C-STORE and a release.
    """
    dataset = _dataset()
    return (
        _associate_rq(contexts=_store_contexts())
        + _pdata(_pdv(1, 0x03, _echo_rq(1)))
        + _pdata(_pdv(3, 0x03, _store_rq(2)))
        + _pdata(_pdv(3, 0x00, dataset[:101]), _pdv(3, 0x00, dataset[101:700]))
        + _pdata(_pdv(3, 0x02, dataset[700:]))
        + RELEASE_RQ
    )


class FramingTests(SynchronousTestCase):
    """
    Tests of PDU framing and of the reactions to bad streams.
    """

    def _run_chunks(self, chunks: list[bytes]) -> tuple[bytes, _FakeStore]:
        connection = _Connection()
        for chunk in chunks:
            connection.feed(chunk)
        return connection.take(), connection.store

    def test_stream_whole(self) -> None:
        """
        The full stream is answered with an AC, C-ECHO-RSP, C-STORE-RSP and
        A-RELEASE-RP, and the data set is stored.
        """
        output, store = self._run_chunks([_full_stream()])
        types = [pdu_type for pdu_type, _ in _split_pdus(output)]
        self.assertEqual(types, [0x02, 0x04, 0x04, 0x06])
        responses = _responses(output)
        self.assertIsInstance(responses[0], CEchoRSP)
        self.assertIsInstance(responses[1], CStoreRSP)
        self.assertEqual(_statuses(output), [0x0000, 0x0000])
        self.assertEqual(store.stored_data_set(UID_44), _dataset())

    def test_stream_byte_at_a_time(self) -> None:
        """
        Feeding one byte at a time gives the same output and stored bytes.
        """
        whole, whole_store = self._run_chunks([_full_stream()])
        stream = _full_stream()
        output, store = self._run_chunks(
            [stream[i : i + 1] for i in range(len(stream))]
        )
        self.assertEqual(output, whole)
        self.assertEqual(store.instances, whole_store.instances)

    @given(st.lists(st.integers(min_value=1, max_value=2000), max_size=40))
    def test_stream_any_split(self, sizes: list[int]) -> None:
        """
        Any split of the stream gives the same output and stored bytes.
        """
        whole, whole_store = self._run_chunks([_full_stream()])
        stream = _full_stream()
        chunks = []
        offset = 0
        for size in sizes:
            chunks.append(stream[offset : offset + size])
            offset += size
        chunks.append(stream[offset:])
        output, store = self._run_chunks(chunks)
        self.assertEqual(output, whole)
        self.assertEqual(store.instances, whole_store.instances)

    def test_oversize_pdata_aborts_before_body(self) -> None:
        """
        A P-DATA-TF header announcing more than our maximum length aborts at
        once with source 2, reason 6, and later bytes are ignored.
        """
        connection = _Connection()
        connection.associate()
        connection.feed(_PDU_HEADER.pack(0x04, 0, 131073))
        self.assertEqual(connection.take(), bytes.fromhex("07000000000400000206"))
        connection.feed(bytes(1000) + _pdata(_pdv(1, 0x03, _echo_rq())))
        self.assertEqual(connection.take(), b"")
        self.assertIs(connection.protocol.machine.state, State.Sta13)

    def test_oversize_pdata_split_header(self) -> None:
        """
        The length check also applies when the header arrives in pieces.
        """
        connection = _Connection()
        connection.associate()
        header = _PDU_HEADER.pack(0x04, 0, 0x7FFFFFFF)
        connection.feed(header[:3])
        self.assertEqual(connection.take(), b"")
        connection.feed(header[3:])
        self.assertEqual(connection.take(), bytes.fromhex("07000000000400000206"))

    def test_pdata_at_maximum_accepted(self) -> None:
        """
        A P-DATA-TF exactly as long as our maximum length is accepted.
        """
        settings = Settings(aet="TWISTEDPACS", maximum_pdu_length=4096)
        connection = _Connection(settings)
        connection.associate(contexts=_store_contexts())
        dataset = _dataset_of_length(4090)
        connection.feed(_pdata(_pdv(3, 0x03, _store_rq())))
        pdu = _pdata(_pdv(3, 0x02, dataset))
        self.assertEqual(_PDU_HEADER.unpack_from(pdu)[2], 4096)
        connection.feed(pdu)
        self.assertEqual(_statuses(connection.take()), [0x0000])

    def test_oversize_associate_rq(self) -> None:
        """
        An A-ASSOCIATE-RQ header announcing over 1 MiB aborts at once.
        """
        connection = _Connection()
        connection.feed(_PDU_HEADER.pack(0x01, 0, (1 << 20) + 1))
        output = connection.take()
        self.assertEqual(output[:6], bytes.fromhex("070000000004"))
        self.assertIs(connection.protocol.machine.state, State.Sta13)

    def test_unknown_pdu_type(self) -> None:
        """
        An unknown PDU type aborts with reason 1 (unrecognized PDU).
        """
        connection = _Connection()
        connection.associate()
        connection.feed(bytes.fromhex("090000000004 00000000"))
        self.assertEqual(connection.take(), bytes.fromhex("07000000000400000201"))

    def test_invalid_pdu_aborts(self) -> None:
        """
        An A-RELEASE-RQ of the wrong length aborts with source 2, reason 6.
        """
        connection = _Connection()
        connection.associate()
        connection.feed(bytes.fromhex("050000000005 0000000000"))
        self.assertEqual(connection.take(), bytes.fromhex("07000000000400000206"))

    def test_artim_without_request(self) -> None:
        """
        A connection that sends no A-ASSOCIATE-RQ is closed when ARTIM
        expires.
        """
        connection = _Connection()
        connection.clock.advance(TIMEOUT - 1)
        self.assertFalse(connection.transport.disconnecting)
        connection.clock.advance(1)
        self.assertTrue(connection.transport.disconnecting)

    def test_idle_timeout(self) -> None:
        """
        An association silent for the DIMSE timeout is aborted and closed.
        """
        connection = _Connection()
        connection.associate()
        connection.clock.advance(TIMEOUT - 1)
        connection.feed(_pdata(_pdv(1, 0x03, _echo_rq())))
        connection.take()
        connection.clock.advance(TIMEOUT - 1)
        self.assertFalse(connection.transport.disconnecting)
        connection.clock.advance(1)
        self.assertEqual(connection.take(), bytes.fromhex("07000000000400000000"))
        self.assertTrue(connection.transport.disconnecting)

    @given(st.binary(max_size=600))
    def test_random_bytes_end_closed(self, data: bytes) -> None:
        """
        Random bytes never raise out of dataReceived, and the connection ends
        closed once the timers have run.
        """
        connection = _Connection()
        connection.feed(data)
        connection.clock.advance(TIMEOUT)
        connection.clock.advance(TIMEOUT)
        self.assertTrue(connection.transport.disconnecting)

    @given(
        st.lists(
            st.tuples(st.integers(min_value=0), st.integers(0, 255)),
            min_size=1,
            max_size=8,
        ),
        st.integers(min_value=1, max_value=700),
    )
    def test_mutated_stream_end_closed(
        self, mutations: list[tuple[int, int]], step: int
    ) -> None:
        """
        A valid stream with bytes changed never raises out of dataReceived,
        and the connection ends aborted, rejected or closed.
        """
        stream = bytearray(_full_stream())
        for position, value in mutations:
            stream[position % len(stream)] = value
        connection = _Connection()
        connection.feed(bytes(stream), step)
        connection.clock.advance(TIMEOUT)
        connection.clock.advance(TIMEOUT)
        self.assertTrue(connection.transport.disconnecting)
        for transfer in connection.store.transfers:
            self.assertTrue(transfer.aborted or transfer.finished)


class ServiceTests(SynchronousTestCase):
    """
    Tests of the C-ECHO and C-STORE SCPs over the protocol.
    """

    def _associated(
        self, settings: Settings | None = None, **arguments: Any
    ) -> _Connection:
        connection = _Connection(settings)
        arguments.setdefault("contexts", _store_contexts())
        connection.associate(**arguments)
        return connection

    def test_echo(self) -> None:
        """
        A C-ECHO-RQ is answered with a C-ECHO-RSP of status 0 for its message
        ID.
        """
        connection = self._associated()
        connection.feed(_pdata(_pdv(1, 0x03, _echo_rq(7))))
        (response,) = _responses(connection.take())
        self.assertEqual(
            response,
            CEchoRSP(
                message_id_being_responded_to=7,
                status=0,
                affected_sop_class_uid=VERIFICATION,
            ),
        )

    def test_store_fragments_cycle(self) -> None:
        """
        A data set in 63 PDUs with cycling fragment sizes, after a
        command in two PDVs, is stored whole with status 0.
        """
        connection = self._associated()
        command = _store_rq()
        self.assertEqual(len(command), 138)
        cycle = [2, 4, 6, 2, 10, 8, 2, 14, 30, 2, 64, 6]
        sizes = [cycle[i % len(cycle)] for i in range(63)]
        dataset = _dataset_of_length(sum(sizes))
        stream = _pdata(_pdv(3, 0x01, command[:20])) + _pdata(
            _pdv(3, 0x03, command[20:])
        )
        offset = 0
        for index, size in enumerate(sizes):
            flags = 0x02 if index == len(sizes) - 1 else 0x00
            stream += _pdata(_pdv(3, flags, dataset[offset : offset + size]))
            offset += size
        self.assertEqual(offset, len(dataset))
        connection.feed(stream)
        self.assertEqual(_statuses(connection.take()), [0x0000])
        self.assertEqual(connection.store.stored_data_set(UID_44), dataset)

    def test_store_logged_only_verbose(self) -> None:
        """
        A stored instance gets a debug event with its SOP Instance UID with
        C{--verbose}, and none without it.
        """
        for verbose in (False, True):
            connection = self._associated(Settings(aet="TWISTEDPACS", verbose=verbose))
            with capturedLogs() as events:
                connection.feed(_store_message(3, _dataset()))
            self.assertEqual(_statuses(connection.take()), [0x0000])
            stored = [
                event
                for event in events
                if event.get("sop_instance_uid") == UID_44
                and event["log_level"] is LogLevel.debug
            ]
            self.assertEqual(len(stored), 1 if verbose else 0, verbose)

    def test_store_command_and_data_one_pdu(self) -> None:
        """
        A command PDV and a data PDV in one P-DATA-TF are stored.
        """
        connection = self._associated()
        dataset = _dataset()
        connection.feed(_pdata(_pdv(3, 0x03, _store_rq()), _pdv(3, 0x02, dataset)))
        self.assertEqual(_statuses(connection.take()), [0x0000])
        self.assertEqual(connection.store.stored_data_set(UID_44), dataset)

    def test_peer_maximum_zero(self) -> None:
        """
        A peer maximum length of 0 still gets our maximum length in the
        AC, and store and echo succeed.
        """
        connection = _Connection()
        output = connection.associate(contexts=_store_contexts(), maximum_length=0)
        self.assertIn(_item(0x51, struct.pack(">L", 131072)), output)
        connection.feed(_store_message(3, _dataset()))
        connection.feed(_pdata(_pdv(1, 0x03, _echo_rq(2))))
        self.assertEqual(_statuses(connection.take()), [0x0000, 0x0000])

    def test_peer_maximum_4096(self) -> None:
        """
        With a peer maximum of 4096, no PDU we send is longer.
        """
        connection = _Connection()
        output = connection.associate(contexts=_store_contexts(), maximum_length=4096)
        connection.feed(_store_message(3, _dataset(), message_id=1))
        connection.feed(_store_message(3, _dataset(None), message_id=2))
        connection.feed(_pdata(_pdv(1, 0x03, _echo_rq(3))))
        connection.feed(RELEASE_RQ)
        output += connection.take()
        for _, body in _split_pdus(output):
            self.assertLessEqual(len(body), 4096)
        self.assertEqual(len(_responses(output)), 3)

    def test_peer_maximum_splits_command(self) -> None:
        """
        A response longer than the peer's maximum length goes out in several
        command fragments, each PDU within the maximum.
        """
        connection = _Connection()
        connection.associate(contexts=_store_contexts(), maximum_length=16)
        connection.feed(_pdata(_pdv(1, 0x03, _echo_rq(3))))
        output = connection.take()
        pdus = _split_pdus(output)
        self.assertGreater(len(pdus), 1)
        for _, body in pdus:
            self.assertLessEqual(len(body), 16)
        self.assertEqual(_statuses(output), [0x0000])

    def test_store_odd_last_fragment(self) -> None:
        """
        A last data PDV of 517 bytes, ending in a Pixel Data of odd
        length 15, is either stored exactly or aborted with nothing stored.
        """
        connection = self._associated()
        dataset = _dataset(pixel_data=bytes(range(15)), comments=b"QA " * 200)
        head = len(dataset) - 517
        self.assertGreater(head, 0)
        connection.feed(_pdata(_pdv(3, 0x03, _store_rq())))
        connection.feed(_pdata(_pdv(3, 0x00, dataset[:head])))
        connection.feed(_pdata(_pdv(3, 0x02, dataset[head:])))
        output = connection.take()
        if output[:1] == b"\x07":
            self.assertEqual(output, bytes.fromhex("07000000000400000206"))
            self.assertEqual(connection.store.instances, {})
        else:
            self.assertEqual(_statuses(output), [0x0000])
            self.assertEqual(connection.store.stored_data_set(UID_44), dataset)

    def test_abort_mid_store(self) -> None:
        """
        An A-ABORT after two data PDVs without the last bit gets no
        response, closes the connection and stores nothing.
        """
        connection = self._associated()
        connection.feed(_pdata(_pdv(3, 0x03, _store_rq())))
        connection.feed(_pdata(_pdv(3, 0x00, _dataset_of_length(1024))))
        connection.feed(_pdata(_pdv(3, 0x00, bytes(1024))))
        connection.feed(ABORT_RQ)
        self.assertEqual(connection.take(), b"")
        self.assertTrue(connection.transport.disconnecting)
        self.assertEqual(connection.store.instances, {})
        (transfer,) = connection.store.transfers
        self.assertTrue(transfer.aborted)
        self.assertFalse(transfer.finished)

    def test_connection_lost_mid_pdu(self) -> None:
        """
        A P-DATA-TF announcing 4606 bytes with 994 sent, then a lost
        connection, stores nothing and raises nothing.
        """
        connection = self._associated()
        connection.feed(_pdata(_pdv(3, 0x03, _store_rq())))
        dataset = _dataset_of_length(4600)
        pdu = _pdata(_pdv(3, 0x02, dataset))
        self.assertEqual(_PDU_HEADER.unpack_from(pdu)[2], 4606)
        connection.feed(pdu[: 6 + 994])
        connection.protocol.connectionLost()
        self.assertEqual(connection.take(), b"")
        self.assertEqual(connection.store.instances, {})
        (transfer,) = connection.store.transfers
        self.assertTrue(transfer.aborted)
        self.assertIs(connection.protocol.machine.state, State.Sta1)

    def test_store_huge_value_length(self) -> None:
        """
        A Patient's Name of length 0x00FFFF00 followed by 8 bytes gets
        a 0xCxxx status with a short Error Comment, then C-ECHO works.
        """
        connection = self._associated()
        dataset = (
            _element(0x0008, 0x0016, _even(CT_IMAGE_STORAGE, b"\0"))
            + _element(0x0008, 0x0018, _even(UID_44, b"\0"))
            + struct.pack("<HHL", 0x0010, 0x0010, 0x00FFFF00)
            + bytes(8)
        )
        connection.feed(_store_message(3, dataset))
        connection.feed(_pdata(_pdv(1, 0x03, _echo_rq(2))))
        store_response, echo_response = _responses(connection.take())
        assert isinstance(store_response, CStoreRSP)
        self.assertEqual(store_response.status & 0xF000, 0xC000)
        self.assertIsNotNone(store_response.error_comment)
        self.assertLessEqual(len(store_response.error_comment or ""), 64)
        self.assertEqual(echo_response.status, 0x0000)  # type: ignore[union-attr]
        self.assertEqual(connection.store.instances, {})

    def test_store_missing_instance_uid(self) -> None:
        """
        A data set without SOP Instance UID gets 0xA900 or 0xCxxx,
        nothing is stored, and C-ECHO works.
        """
        connection = self._associated()
        connection.feed(_store_message(3, _dataset(None)))
        connection.feed(_pdata(_pdv(1, 0x03, _echo_rq(2))))
        statuses = _statuses(connection.take())
        self.assertTrue(
            statuses[0] == 0xA900 or statuses[0] & 0xF000 == 0xC000, hex(statuses[0])
        )
        self.assertEqual(statuses[1], 0x0000)
        self.assertEqual(connection.store.instances, {})

    def test_store_non_ascii_uid(self) -> None:
        """
        A data set whose SOP Class UID holds a byte outside ASCII gets a
        0xCxxx status, and C-ECHO works.
        """
        connection = self._associated()
        dataset = _dataset().replace(
            _even(CT_IMAGE_STORAGE, b"\0"), b"\x80" + _even(CT_IMAGE_STORAGE, b"\0")[1:]
        )
        connection.feed(_store_message(3, dataset))
        connection.feed(_pdata(_pdv(1, 0x03, _echo_rq(2))))
        statuses = _statuses(connection.take())
        self.assertEqual(statuses[0] & 0xF000, 0xC000, hex(statuses[0]))
        self.assertEqual(statuses[1], 0x0000)
        self.assertEqual(connection.store.instances, {})

    def test_store_uid_mismatch(self) -> None:
        """
        A data set whose SOP Instance UID differs from the command's gets
        0xA900 and is not stored.
        """
        connection = self._associated()
        connection.feed(_store_message(3, _dataset("2.25.999"), uid=UID_44))
        (response,) = _responses(connection.take())
        assert isinstance(response, CStoreRSP)
        self.assertEqual(response.status, 0xA900)
        self.assertEqual(response.affected_sop_instance_uid, UID_44)
        self.assertEqual(connection.store.instances, {})
        self.assertTrue(connection.store.transfers[0].aborted)

    def test_store_duplicates(self) -> None:
        """
        A, A, then B with the same UIDs all get status 0, and the one
        stored instance holds A's bytes.
        """
        connection = self._associated()
        first = _dataset()
        other = _dataset(patient_name="OTHER^NAME")
        connection.feed(_store_message(3, first, 1))
        connection.feed(_store_message(3, first, 2))
        connection.feed(_store_message(3, other, 3))
        self.assertEqual(_statuses(connection.take()), [0x0000] * 3)
        self.assertEqual(list(connection.store.instances), [UID_44])
        self.assertEqual(connection.store.stored_data_set(UID_44), first)

    def test_store_deflated(self) -> None:
        """
        A raw-deflated data set on a deflated context is stored with a
        File Meta transfer syntax that matches its bytes.
        """
        connection = self._associated(contexts=[(1, CT_IMAGE_STORAGE, [DEFLATED_LE])])
        dataset = pydicom.Dataset()
        dataset.SOPClassUID = CT_IMAGE_STORAGE
        dataset.SOPInstanceUID = UID_44
        dataset.StudyInstanceUID = "2.25.1001"
        dataset.SeriesInstanceUID = "2.25.1002"
        dataset.PatientID = "QA01"
        dataset.Modality = "CT"
        buffer = pydicom.filebase.DicomBytesIO()
        buffer.is_little_endian = True
        buffer.is_implicit_VR = False
        pydicom.filewriter.write_dataset(buffer, dataset)
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        deflated = compressor.compress(buffer.getvalue()) + compressor.flush()
        connection.feed(_store_message(1, deflated))
        self.assertEqual(_statuses(connection.take()), [0x0000])
        stored = pydicom.dcmread(BytesIO(connection.store.instances[UID_44]))
        self.assertEqual(stored.file_meta.TransferSyntaxUID, DEFLATED_LE)
        self.assertEqual(stored.SOPInstanceUID, UID_44)
        self.assertEqual(stored.PatientID, "QA01")

    def test_store_response_after_commit(self) -> None:
        """
        The C-STORE-RSP goes out only when the store's finish fires.
        """
        connection = self._associated()
        connection.store.hold = True
        connection.feed(_store_message(3, _dataset()))
        connection.feed(_pdata(_pdv(1, 0x03, _echo_rq(2))))
        self.assertEqual(connection.take(), b"")
        deferred, result = connection.store.held.pop()
        deferred.callback(result)
        responses = _responses(connection.take())
        self.assertIsInstance(responses[0], CStoreRSP)
        self.assertIsInstance(responses[1], CEchoRSP)

    def test_release_waits_for_response(self) -> None:
        """
        An A-RELEASE-RQ while a C-STORE is committing is answered after its
        C-STORE-RSP.
        """
        connection = self._associated()
        connection.store.hold = True
        connection.feed(_store_message(3, _dataset()))
        connection.feed(RELEASE_RQ)
        self.assertEqual(connection.take(), b"")
        deferred, result = connection.store.held.pop()
        deferred.callback(result)
        types = [pdu_type for pdu_type, _ in _split_pdus(connection.take())]
        self.assertEqual(types, [0x04, 0x06])

    def test_release_mid_dataset_drops_store(self) -> None:
        """
        An A-RELEASE-RQ inside a data set drops the partial instance and is
        answered at once.
        """
        connection = self._associated()
        connection.feed(_pdata(_pdv(3, 0x03, _store_rq())))
        connection.feed(_pdata(_pdv(3, 0x00, _dataset_of_length(1024))))
        connection.feed(RELEASE_RQ)
        self.assertEqual(connection.take(), bytes.fromhex("06000000000400000000"))
        (transfer,) = connection.store.transfers
        self.assertTrue(transfer.aborted)
        self.assertEqual(connection.store.instances, {})

    def test_idle_timeout_mid_dataset(self) -> None:
        """
        An idle timeout inside a data set aborts and drops the instance.
        """
        connection = self._associated()
        connection.feed(_pdata(_pdv(3, 0x03, _store_rq())))
        connection.feed(_pdata(_pdv(3, 0x00, _dataset_of_length(1024))))
        connection.clock.advance(TIMEOUT)
        self.assertEqual(connection.take(), bytes.fromhex("07000000000400000000"))
        self.assertTrue(connection.store.transfers[0].aborted)

    def test_idle_timer_waits_for_commit(self) -> None:
        """
        The idle timeout does not abort while the peer waits for a commit.
        """
        connection = self._associated()
        connection.store.hold = True
        connection.feed(_store_message(3, _dataset()))
        connection.clock.advance(TIMEOUT * 3)
        self.assertFalse(connection.transport.disconnecting)
        deferred, result = connection.store.held.pop()
        deferred.callback(result)
        self.assertEqual(_statuses(connection.take()), [0x0000])

    def test_storage_full(self) -> None:
        """
        A full store gets 0xA700, and the association carries on.
        """
        connection = self._associated()
        connection.store.failure = StorageFullError("quota reached")
        connection.feed(_store_message(3, _dataset()))
        connection.feed(_pdata(_pdv(1, 0x03, _echo_rq(2))))
        self.assertEqual(_statuses(connection.take()), [0xA700, 0x0000])

    def test_backpressure_pauses(self) -> None:
        """
        A paused transfer pauses the transport and the idle timer until it
        resumes.
        """
        connection = self._associated()
        connection.store.pause_on_write = True
        connection.feed(_pdata(_pdv(3, 0x03, _store_rq())))
        connection.feed(_pdata(_pdv(3, 0x00, _dataset_of_length(1024))))
        self.assertEqual(connection.transport.producerState, "paused")
        connection.clock.advance(TIMEOUT * 3)
        self.assertFalse(connection.transport.disconnecting)
        connection.store.transfers[0].resume()
        self.assertEqual(connection.transport.producerState, "producing")
        connection.clock.advance(TIMEOUT)
        self.assertTrue(connection.transport.disconnecting)

    def test_unaccepted_context_aborts(self) -> None:
        """
        A PDV on a context ID that was never proposed aborts with source 2,
        reason 6.
        """
        connection = self._associated()
        connection.feed(_pdata(_pdv(9, 0x03, _echo_rq())))
        self.assertEqual(connection.take(), bytes.fromhex("07000000000400000206"))

    def test_find_without_level(self) -> None:
        """
        A C-FIND-RQ whose identifier has no Query/Retrieve Level is answered
        with 0xA900 after its identifier.
        """
        settings = Settings(aet="TWISTEDPACS", unknown_sop_class_accepted=True)
        find_model = "1.2.840.10008.5.1.4.1.2.1.1"
        connection = self._associated(
            settings, contexts=[(1, find_model, [IMPLICIT_LE])]
        )
        command = encode_command(
            CFindRQ(message_id=4, affected_sop_class_uid=find_model)
        )
        connection.feed(_pdata(_pdv(1, 0x03, command)))
        self.assertEqual(connection.take(), b"")
        connection.feed(_pdata(_pdv(1, 0x02, _element(0x0010, 0x0020, b""))))
        (response,) = _responses(connection.take())
        self.assertEqual(
            response,
            CFindRSP(
                message_id_being_responded_to=4,
                status=0xA900,
                affected_sop_class_uid=find_model,
                error_comment="Missing QueryRetrieveLevel",
            ),
        )

    def test_dimse_n_unsupported(self) -> None:
        """
        An N-CREATE-RQ with a data set and an N-GET-RQ without one each get
        a 0x0211 response naming their SOP class and instance, and the
        association carries on with a C-ECHO.
        """
        settings = Settings(aet="TWISTEDPACS", unknown_sop_class_accepted=True)
        mpps = "1.2.840.10008.3.1.2.3.3"
        connection = self._associated(
            settings,
            contexts=[(1, mpps, [IMPLICIT_LE]), (3, VERIFICATION, [IMPLICIT_LE])],
        )
        create = NRequest(
            command_field=0x0140,
            message_id=5,
            affected_sop_class_uid=mpps,
            affected_sop_instance_uid="1.2.3.9",
            has_dataset=True,
        )
        connection.feed(_pdata(_pdv(1, 0x03, encode_command(create))))
        self.assertEqual(connection.take(), b"")
        connection.feed(_pdata(_pdv(1, 0x02, _element(0x0010, 0x0010, b"A^B "))))

        get = NRequest(
            command_field=0x0110,
            message_id=6,
            requested_sop_class_uid=mpps,
            requested_sop_instance_uid="1.2.3.9",
        )
        connection.feed(_pdata(_pdv(1, 0x03, encode_command(get))))
        connection.feed(_pdata(_pdv(3, 0x03, _echo_rq(7))))

        self.assertEqual(
            _responses(connection.take()),
            [
                NResponse(
                    command_field=0x8140,
                    message_id_being_responded_to=5,
                    status=0x0211,
                    affected_sop_class_uid=mpps,
                    affected_sop_instance_uid="1.2.3.9",
                ),
                NResponse(
                    command_field=0x8110,
                    message_id_being_responded_to=6,
                    status=0x0211,
                    affected_sop_class_uid=mpps,
                    affected_sop_instance_uid="1.2.3.9",
                ),
                CEchoRSP(
                    message_id_being_responded_to=7,
                    status=0,
                    affected_sop_class_uid=VERIFICATION,
                ),
            ],
        )
        self.assertEqual(connection.store.instances, {})

    def test_c_get_on_storage_context(self) -> None:
        """
        A C-GET-RQ on a context that is not a GET model's gets a 0x0211
        response once its identifier arrived.
        """
        get_model = "1.2.840.10008.5.1.4.1.2.1.3"
        connection = self._associated(contexts=[(1, CT_IMAGE_STORAGE, [IMPLICIT_LE])])
        command = encode_command(CGetRQ(message_id=8, affected_sop_class_uid=get_model))
        connection.feed(_pdata(_pdv(1, 0x03, command)))
        self.assertEqual(connection.take(), b"")
        connection.feed(_pdata(_pdv(1, 0x02, _element(0x0008, 0x0052, b"STUDY "))))
        (response,) = _responses(connection.take())
        self.assertEqual(
            response,
            CGetRSP(
                message_id_being_responded_to=8,
                status=0x0211,
                affected_sop_class_uid=get_model,
            ),
        )

    def test_stray_store_response_ignored(self) -> None:
        """
        A C-STORE-RSP when no C-GET runs is ignored, and the association
        goes on.
        """
        connection = self._associated()
        stray = encode_command(CStoreRSP(message_id_being_responded_to=5, status=0))
        connection.feed(_pdata(_pdv(3, 0x03, stray)))
        self.assertEqual(connection.take(), b"")
        connection.feed(_pdata(_pdv(1, 0x03, _echo_rq(6))))
        self.assertEqual(_statuses(connection.take()), [0x0000])

    def test_null_store(self) -> None:
        """
        The benchmark's null store acknowledges a C-STORE.
        """
        from twistedpacs.storage.null import NullStore

        settings = Settings(aet="TWISTEDPACS")
        connection = _Connection(settings, store=NullStore(settings, None))
        connection.associate(contexts=_store_contexts())
        connection.feed(_store_message(3, _dataset()))
        self.assertEqual(_statuses(connection.take()), [0x0000])
