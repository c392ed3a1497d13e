"""
Tests for L{twistedpacs.dimse.assembly}.
"""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pynetdicom.pdu import P_DATA_TF
from twisted.trial.unittest import SynchronousTestCase

from twistedpacs.dimse.assembly import (
    MAX_COMMAND_LENGTH,
    PDU_LENGTH_FOR_UNLIMITED_PEER,
    DIMSEProtocolError,
    MessageAssembler,
    fragment_message,
)
from twistedpacs.dimse.commands import (
    CEchoRQ,
    Command,
    CStoreRQ,
    CStoreRSP,
    encode_command,
)

from .test_dimse_commands import commands

# Message control header values (PS3.8 section E.2).
DATA = 0x00
DATA_LAST = 0x02
COMMAND = 0x01
COMMAND_LAST = 0x03

STORE_RQ = CStoreRQ(
    message_id=1,
    affected_sop_class_uid="1.2.840.10008.5.1.4.1.1.7",
    affected_sop_instance_uid="1.2.3.4.5",
)
STORE_RQ_BYTES = encode_command(STORE_RQ)
ECHO_RQ = CEchoRQ(message_id=2)
ECHO_RQ_BYTES = encode_command(ECHO_RQ)


class RecordingReceiver:
    """
    A L{MessageReceiver} that records every call.

    @ivar events: one tuple per call, with data-set fragments copied to bytes.
    @ivar views: the memoryview objects passed to L{dataset_fragment}.
    """

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.views: list[memoryview] = []

    def command_received(self, context_id: int, command: Command) -> None:
        self.events.append(("command", context_id, command))

    def dataset_fragment(self, context_id: int, data: memoryview) -> None:
        self.views.append(data)
        self.events.append(("fragment", context_id, bytes(data)))

    def dataset_complete(self, context_id: int) -> None:
        self.events.append(("complete", context_id))

    def messages(self) -> list[tuple[int, Command, bytes | None]]:
        """
        Group the events into (context ID, command, joined data set) per
        message, with L{None} for a message without a data set.
        """
        result: list[tuple[int, Command, bytes | None]] = []
        dataset: list[bytes] = []
        for event in self.events:
            if event[0] == "command":
                result.append((event[1], event[2], None))
                dataset = []
            elif event[0] == "fragment":
                dataset.append(event[2])
            else:
                context_id, command, _ = result[-1]
                result[-1] = (context_id, command, b"".join(dataset))
        return result


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """
    Split C{data} at the given offsets (taken modulo its length plus one),
    always returning at least one piece.
    """
    offsets = sorted({cut % (len(data) + 1) for cut in cuts} - {0, len(data)})
    bounds = [0, *offsets, len(data)]
    return [data[start:end] for start, end in zip(bounds, bounds[1:])]


def message_pdvs(
    context_id: int,
    command_bytes: bytes,
    dataset: bytes | None,
    command_cuts: list[int] = [],
    dataset_cuts: list[int] = [],
) -> list[tuple[int, int, memoryview]]:
    """
    Build the PDVs of one message, split at the given offsets.
    """
    pdvs = []
    pieces = split(command_bytes, command_cuts)
    for index, piece in enumerate(pieces):
        header = COMMAND_LAST if index == len(pieces) - 1 else COMMAND
        pdvs.append((context_id, header, memoryview(piece)))
    if dataset is not None:
        pieces = split(dataset, dataset_cuts)
        for index, piece in enumerate(pieces):
            header = DATA_LAST if index == len(pieces) - 1 else DATA
            pdvs.append((context_id, header, memoryview(piece)))
    return pdvs


def feed_all(
    assembler: MessageAssembler, pdvs: list[tuple[int, int, memoryview]]
) -> None:
    for context_id, header, data in pdvs:
        assembler.feed_pdv(context_id, header, data)


cuts = st.lists(st.integers(0, 100000), max_size=6)
messages = st.lists(
    st.tuples(
        st.sampled_from([1, 3, 5, 255]),
        commands,
        st.binary(max_size=2000),
        cuts,
        cuts,
    ),
    min_size=1,
    max_size=4,
)


class MessageAssemblerTests(SynchronousTestCase):
    """
    Tests for L{MessageAssembler}.
    """

    def setUp(self) -> None:
        self.receiver = RecordingReceiver()
        self.assembler = MessageAssembler(self.receiver)

    @given(messages)
    def test_assembler_any_split(
        self, stream: list[tuple[int, Command, bytes, list[int], list[int]]]
    ) -> None:
        """
        Any split of a message stream into PDVs gives the same commands and
        the same joined data sets.
        """
        receiver = RecordingReceiver()
        assembler = MessageAssembler(receiver)
        expected = []
        for context_id, command, dataset, command_cuts, dataset_cuts in stream:
            sent = dataset if command.has_dataset else None
            pdvs = message_pdvs(
                context_id, encode_command(command), sent, command_cuts, dataset_cuts
            )
            feed_all(assembler, pdvs)
            expected.append((context_id, command, sent))
        self.assertEqual(receiver.messages(), expected)
        self.assertTrue(assembler.idle)

    def test_assembler_events_in_order(self) -> None:
        """
        A C-STORE-RQ in two command and three data fragments gives one
        command, three fragments and one completion.
        """
        pdvs = message_pdvs(7, STORE_RQ_BYTES, b"abcdefg", [10], [3, 4])
        feed_all(self.assembler, pdvs[:-1])
        self.assertFalse(self.assembler.idle)
        feed_all(self.assembler, pdvs[-1:])
        self.assertEqual(
            self.receiver.events,
            [
                ("command", 7, STORE_RQ),
                ("fragment", 7, b"abc"),
                ("fragment", 7, b"d"),
                ("fragment", 7, b"efg"),
                ("complete", 7),
            ],
        )
        self.assertTrue(self.assembler.idle)

    def test_assembler_command_only_message(self) -> None:
        """
        A command without a data set is reported alone and leaves the
        assembler idle.
        """
        feed_all(self.assembler, message_pdvs(1, ECHO_RQ_BYTES, None))
        self.assertEqual(self.receiver.events, [("command", 1, ECHO_RQ)])
        self.assertTrue(self.assembler.idle)

    def test_assembler_fragments_not_copied(self) -> None:
        """
        Each data-set fragment reaches the receiver as the view passed in.
        """
        feed_all(self.assembler, message_pdvs(1, STORE_RQ_BYTES, None))
        fragment = memoryview(b"x" * 101)
        self.assembler.feed_pdv(1, DATA_LAST, fragment)
        self.assertEqual(len(self.receiver.views), 1)
        self.assertIs(self.receiver.views[0], fragment)

    def test_assembler_empty_fragments(self) -> None:
        """
        Empty data-set fragments are not passed on, but an empty last one
        still completes the data set.
        """
        feed_all(self.assembler, message_pdvs(1, STORE_RQ_BYTES, None))
        self.assembler.feed_pdv(1, DATA, memoryview(b""))
        self.assembler.feed_pdv(1, DATA, memoryview(b"abc"))
        self.assembler.feed_pdv(1, DATA_LAST, memoryview(b""))
        self.assertEqual(
            self.receiver.events,
            [("command", 1, STORE_RQ), ("fragment", 1, b"abc"), ("complete", 1)],
        )

    def test_assembler_command_buffer_reused(self) -> None:
        """
        A command fragment survives the caller reusing its buffer after the
        call.
        """
        buffer = bytearray(STORE_RQ_BYTES[:20])
        view = memoryview(buffer)
        self.assembler.feed_pdv(1, COMMAND, view)
        view.release()
        buffer[:] = b"\xff" * 20
        self.assembler.feed_pdv(1, COMMAND_LAST, memoryview(STORE_RQ_BYTES[20:]))
        self.assertEqual(self.receiver.events, [("command", 1, STORE_RQ)])

    def test_assembler_odd_fragment_lengths(self) -> None:
        """
        Fragments of odd length are accepted.
        """
        pdvs = message_pdvs(1, STORE_RQ_BYTES, b"12345", [1, 4, 9], [1, 2])
        feed_all(self.assembler, pdvs)
        self.assertEqual(self.receiver.messages(), [(1, STORE_RQ, b"12345")])

    def test_assembler_ignores_reserved_bits(self) -> None:
        """
        By default, message control header bits 2 to 7 are not checked, as
        PS3.8 section E.2 requires.
        """
        self.assembler.feed_pdv(1, 0xFC | COMMAND_LAST, memoryview(STORE_RQ_BYTES))
        self.assembler.feed_pdv(1, 0x80 | DATA_LAST, memoryview(b"ab"))
        self.assertEqual(self.receiver.messages(), [(1, STORE_RQ, b"ab")])

    def assert_protocol_error(
        self,
        pdvs: list[tuple[int, int, memoryview]],
        expected: str,
        assembler: MessageAssembler | None = None,
    ) -> None:
        """
        Assert that feeding C{pdvs} raises L{DIMSEProtocolError} on the last
        one, with C{expected} in its message.
        """
        if assembler is None:
            assembler = self.assembler
        feed_all(assembler, pdvs[:-1])
        context_id, header, data = pdvs[-1]
        error = self.assertRaises(
            DIMSEProtocolError, assembler.feed_pdv, context_id, header, data
        )
        self.assertIn(expected, str(error))
        self.assertFalse(assembler.idle)

    def test_error_reserved_bits_checked(self) -> None:
        """
        With C{check_reserved_bits}, a header with bits 2 to 7 set raises.
        """
        assembler = MessageAssembler(self.receiver, check_reserved_bits=True)
        self.assert_protocol_error(
            [(1, 0x04 | COMMAND_LAST, memoryview(ECHO_RQ_BYTES))],
            "message control header 0x07, with reserved bits 2-7 set",
            assembler,
        )
        self.assertEqual(self.receiver.events, [])

    def test_error_data_before_command(self) -> None:
        """
        A data-set PDV before any command raises.
        """
        self.assert_protocol_error(
            [(1, DATA_LAST, memoryview(b"ab"))],
            "data-set PDV on presentation context 1 arrived before any command",
        )

    def test_error_dataset_when_command_has_none(self) -> None:
        """
        A data-set PDV after a command without a data set raises.
        """
        pdvs = message_pdvs(3, ECHO_RQ_BYTES, None) + [(3, DATA, memoryview(b"a"))]
        self.assert_protocol_error(pdvs, "the last command, a C-ECHO-RQ, has no data")

    def test_error_command_inside_dataset(self) -> None:
        """
        A command PDV before the last data-set fragment raises.
        """
        pdvs = message_pdvs(1, STORE_RQ_BYTES, None) + [
            (1, DATA, memoryview(b"ab")),
            (1, COMMAND_LAST, memoryview(ECHO_RQ_BYTES)),
        ]
        self.assert_protocol_error(
            pdvs, "before the last data-set fragment of the C-STORE-RQ"
        )

    def test_error_data_inside_command(self) -> None:
        """
        A data-set PDV before the last command fragment raises.
        """
        pdvs = [
            (1, COMMAND, memoryview(STORE_RQ_BYTES[:10])),
            (1, DATA, memoryview(b"ab")),
        ]
        self.assert_protocol_error(pdvs, "before the last command fragment")

    def test_error_context_changes_in_command(self) -> None:
        """
        A PDV on another context before the command is complete raises.
        """
        pdvs = [
            (1, COMMAND, memoryview(STORE_RQ_BYTES[:10])),
            (3, COMMAND_LAST, memoryview(STORE_RQ_BYTES[10:])),
        ]
        self.assert_protocol_error(
            pdvs,
            "PDV on presentation context 3 arrived while the command fragments "
            "of a message on presentation context 1 were incomplete",
        )

    def test_error_context_changes_in_dataset(self) -> None:
        """
        A PDV on another context before the data set is complete raises.
        """
        pdvs = message_pdvs(5, STORE_RQ_BYTES, None) + [
            (5, DATA, memoryview(b"ab")),
            (7, DATA_LAST, memoryview(b"cd")),
        ]
        self.assert_protocol_error(
            pdvs, "while the data-set fragments of a message on presentation context 5"
        )

    def test_error_command_too_long(self) -> None:
        """
        Command fragments beyond the maximum command length raise before the
        command is complete.
        """
        fragment = memoryview(b"\x00" * 1024)
        pdvs = [(1, COMMAND, fragment)] * (MAX_COMMAND_LENGTH // 1024 + 1)
        self.assert_protocol_error(
            pdvs,
            f"at least {MAX_COMMAND_LENGTH + 1024} bytes, more than the maximum "
            f"of {MAX_COMMAND_LENGTH}",
        )

    def test_error_command_too_long_custom(self) -> None:
        """
        The maximum command length is configurable and counts the last
        fragment.
        """
        assembler = MessageAssembler(self.receiver, max_command_length=100)
        self.assert_protocol_error(
            [
                (1, COMMAND, memoryview(b"\x00" * 60)),
                (1, COMMAND_LAST, memoryview(b"\x00" * 41)),
            ],
            "at least 101 bytes, more than the maximum of 100",
            assembler,
        )

    def test_error_invalid_command(self) -> None:
        """
        A command set that does not decode raises with the decoder's reason.
        """
        self.assert_protocol_error(
            [(1, COMMAND_LAST, memoryview(ECHO_RQ_BYTES[:-2]))],
            "invalid command set on presentation context 1: Command Group "
            "Length is 56, but 54 bytes follow it",
        )

    def test_error_sticks_until_reset(self) -> None:
        """
        After a protocol error every PDV raises, until L{reset}.
        """
        self.assertRaises(
            DIMSEProtocolError, self.assembler.feed_pdv, 1, DATA, memoryview(b"a")
        )
        error = self.assertRaises(
            DIMSEProtocolError,
            self.assembler.feed_pdv,
            1,
            COMMAND_LAST,
            memoryview(ECHO_RQ_BYTES),
        )
        self.assertIn("message assembly already failed: data-set PDV", str(error))
        self.assertEqual(self.receiver.events, [])

        self.assembler.reset()
        self.assertTrue(self.assembler.idle)
        feed_all(self.assembler, message_pdvs(1, ECHO_RQ_BYTES, None))
        self.assertEqual(self.receiver.events, [("command", 1, ECHO_RQ)])

    def test_reset_drops_partial_message(self) -> None:
        """
        L{reset} drops a half-received message.
        """
        feed_all(self.assembler, message_pdvs(1, STORE_RQ_BYTES, None))
        self.assembler.feed_pdv(1, DATA, memoryview(b"ab"))
        self.assembler.reset()
        self.assertTrue(self.assembler.idle)
        self.assert_protocol_error(
            [(1, DATA_LAST, memoryview(b"cd"))], "arrived before any command"
        )


def parse_pdus(pdus: list[list[bytes]]) -> list[tuple[int, int, int, bytes]]:
    """
    Parse one-PDV P-DATA-TF PDUs into (PDU length, context ID, message
    control header, fragment), checking the fixed fields.
    """
    parsed = []
    for parts in pdus:
        pdu = b"".join(parts)
        pdu_type, reserved, pdu_length = struct.unpack_from(">BBI", pdu)
        item_length, context_id, header = struct.unpack_from(">IBB", pdu, 6)
        assert pdu_type == 0x04, pdu_type
        assert reserved == 0x00, reserved
        assert pdu_length == len(pdu) - 6, (pdu_length, len(pdu))
        assert item_length == pdu_length - 4, (item_length, pdu_length)
        parsed.append((pdu_length, context_id, header, pdu[12:]))
    return parsed


max_pdu_lengths = st.sampled_from([0, 7, 8, 9, 13, 4096, 16384]) | st.integers(7, 70000)


class FragmentMessageTests(SynchronousTestCase):
    """
    Tests for L{fragment_message}.
    """

    @given(
        st.sampled_from([1, 3, 127, 255]),
        st.binary(min_size=1, max_size=400),
        st.none() | st.binary(max_size=30000),
        max_pdu_lengths,
        st.booleans(),
    )
    def test_fragment_within_max_and_reassembles(
        self,
        context_id: int,
        command_bytes: bytes,
        dataset: bytes | None,
        max_pdu_length: int,
        as_view: bool,
    ) -> None:
        """
        No PDU is longer than the maximum, fragments are in order with one
        last bit each, and they join to the input.
        """
        payload = memoryview(dataset) if as_view and dataset is not None else dataset
        pdus = fragment_message(context_id, command_bytes, payload, max_pdu_length)
        limit = max_pdu_length or PDU_LENGTH_FOR_UNLIMITED_PEER
        parsed = parse_pdus(pdus)

        for pdu_length, pdu_context_id, header, fragment in parsed:
            self.assertLessEqual(pdu_length, limit)
            self.assertEqual(pdu_context_id, context_id)
            self.assertEqual(header & 0xFC, 0)
            if limit >= 8 and not header & 0x02:
                self.assertEqual(len(fragment) % 2, 0)
        for parts in pdus:
            for part in parts:
                self.assertIs(type(part), bytes)

        headers = [header for _, _, header, _ in parsed]
        command_count = sum(1 for header in headers if header & 0x01)
        self.assertEqual(headers[:command_count], [0x01] * (command_count - 1) + [0x03])
        data_headers = headers[command_count:]
        if dataset is None:
            self.assertEqual(data_headers, [])
        else:
            self.assertEqual(data_headers, [0x00] * (len(data_headers) - 1) + [0x02])

        fragments = [fragment for _, _, _, fragment in parsed]
        self.assertEqual(b"".join(fragments[:command_count]), command_bytes)
        if dataset is not None:
            self.assertEqual(b"".join(fragments[command_count:]), dataset)

    @given(commands, st.binary(max_size=20000), max_pdu_lengths)
    def test_fragment_through_assembler(
        self, command: Command, dataset: bytes, max_pdu_length: int
    ) -> None:
        """
        Fragmented messages fed to a L{MessageAssembler} come out unchanged.
        """
        sent = dataset if command.has_dataset else None
        pdus = fragment_message(5, encode_command(command), sent, max_pdu_length)
        receiver = RecordingReceiver()
        assembler = MessageAssembler(receiver)
        for _, context_id, header, fragment in parse_pdus(pdus):
            assembler.feed_pdv(context_id, header, memoryview(fragment))
        self.assertEqual(receiver.messages(), [(5, command, sent)])

    def test_fragment_pynetdicom_decodes(self) -> None:
        """
        pynetdicom decodes each PDU as a P-DATA-TF with one PDV.
        """
        dataset = bytes(range(256)) * 40
        pdus = fragment_message(3, STORE_RQ_BYTES, dataset, 4096)
        fragments = []
        for parts in pdus:
            pdu = P_DATA_TF()
            pdu.decode(b"".join(parts))
            self.assertLessEqual(pdu.pdu_length, 4096)
            self.assertEqual(len(pdu.presentation_data_value_items), 1)
            item = pdu.presentation_data_value_items[0]
            self.assertEqual(item.presentation_context_id, 3)
            fragments.append(item.presentation_data_value)
        self.assertEqual(fragments[0], b"\x03" + STORE_RQ_BYTES)
        self.assertEqual(b"".join(value[1:] for value in fragments[1:]), dataset)
        self.assertEqual(len(fragments), 1 + 3)
        self.assertEqual([value[0] for value in fragments[1:]], [0x00, 0x00, 0x02])

    def test_fragment_golden_bytes(self) -> None:
        """
        A C-ECHO-RSP becomes one PDU with the P-DATA-TF and PDV headers of
        PS3.8 sections 9.3.5 and E.2.
        """
        command_bytes = encode_command(
            CStoreRSP(message_id_being_responded_to=1, status=0)
        )
        (pdu,) = fragment_message(1, command_bytes, None, 16384)
        length = len(command_bytes)
        self.assertEqual(
            pdu[0],
            b"\x04\x00"
            + (length + 6).to_bytes(4, "big")
            + (length + 2).to_bytes(4, "big")
            + b"\x01\x03",
        )
        self.assertIs(pdu[1], command_bytes)

    def test_fragment_exact_sizes(self) -> None:
        """
        With a 4096-byte maximum, data fragments carry 4090 bytes each.
        """
        pdus = fragment_message(1, b"\x00" * 10, b"\x01" * 10000, 4096)
        lengths = [len(fragment) for _, _, _, fragment in parse_pdus(pdus)]
        self.assertEqual(lengths, [10, 4090, 4090, 1820])

    def test_fragment_unlimited_peer(self) -> None:
        """
        A maximum of 0 fragments at L{PDU_LENGTH_FOR_UNLIMITED_PEER}.
        """
        dataset = b"\x00" * (3 * PDU_LENGTH_FOR_UNLIMITED_PEER)
        parsed = parse_pdus(fragment_message(1, b"\x00" * 10, dataset, 0))
        self.assertEqual(
            [pdu_length for pdu_length, _, _, _ in parsed[1:3]],
            [PDU_LENGTH_FOR_UNLIMITED_PEER, PDU_LENGTH_FOR_UNLIMITED_PEER],
        )
        self.assertEqual(len(parsed), 1 + 4)

    def test_fragment_odd_maximum(self) -> None:
        """
        An odd maximum gives even fragments one byte below it, and a maximum
        of 7 gives one-byte fragments.
        """
        parsed = parse_pdus(fragment_message(1, b"\x00" * 4, b"\x01" * 9, 11))
        self.assertEqual([len(f) for _, _, _, f in parsed], [4, 4, 4, 1])
        parsed = parse_pdus(fragment_message(1, b"\x00" * 2, b"\x01" * 3, 7))
        self.assertEqual([len(f) for _, _, _, f in parsed], [1, 1, 1, 1, 1])

    def test_fragment_empty_dataset(self) -> None:
        """
        An empty data set is one empty last data-set fragment.
        """
        pdus = fragment_message(1, b"\x00" * 10, b"", 4096)
        self.assertEqual(len(pdus), 2)
        self.assertEqual(pdus[1], [bytes.fromhex("04000000000600000002 0102")])

    def test_fragment_invalid_arguments(self) -> None:
        """
        Invalid context IDs, empty commands and impossible maximums raise.
        """
        for context_id in (0, 2, 256, -1):
            self.assertRaises(ValueError, fragment_message, context_id, b"ab", None, 0)
        self.assertRaises(ValueError, fragment_message, 1, b"", None, 0)
        for max_pdu_length in (1, 6, -5, 0x100000000):
            self.assertRaises(
                ValueError, fragment_message, 1, b"ab", None, max_pdu_length
            )
