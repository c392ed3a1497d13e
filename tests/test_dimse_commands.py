"""
Tests for L{twistedpacs.dimse.commands} and L{twistedpacs.dimse.status}.
"""

from __future__ import annotations

import dataclasses
import struct
from io import BytesIO
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pynetdicom import dimse_messages, dimse_primitives
from pynetdicom.dsutils import decode as pynetdicom_decode
from pynetdicom.dsutils import encode as pynetdicom_encode
from twisted.trial.unittest import SynchronousTestCase

from twistedpacs.dimse.commands import (
    CCancelRQ,
    CEchoRQ,
    CEchoRSP,
    CFindRQ,
    CFindRSP,
    CGetRQ,
    CGetRSP,
    CMoveRQ,
    CMoveRSP,
    Command,
    CommandDecodeError,
    CStoreRQ,
    CStoreRSP,
    NRequest,
    NResponse,
    decode_command,
    encode_command,
)
from twistedpacs.dimse.status import StatusCategory, status_category

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def element(element_number: int, value: bytes) -> bytes:
    """
    Write one Implicit VR Little Endian element of group 0000 by hand.
    """
    return (
        b"\x00\x00"
        + element_number.to_bytes(2, "little")
        + len(value).to_bytes(4, "little")
        + value
    )


def with_group_length(body: bytes) -> bytes:
    """
    Prefix the (0000,0000) Command Group Length element to C{body}.
    """
    return element(0x0000, len(body).to_bytes(4, "little")) + body


# PS3.7 Table 9.3-12 with message ID 1. Every element is (group, element,
# 4-byte length, value), little endian, and UIDs are padded with NUL.
GOLDEN_ECHO_RQ = bytes.fromhex(
    "0000 0000 04000000 38000000"  # Command Group Length = 56
    "0000 0200 12000000" + "312e322e3834302e31303030382e312e3100"  # SOP class
    "0000 0001 02000000 3000"  # Command Field = C-ECHO-RQ
    "0000 1001 02000000 0100"  # Message ID = 1
    "0000 0008 02000000 0101"  # Command Data Set Type = no data set
)

# PS3.7 Table 9.3-1 with message ID 7, medium priority and a move originator.
GOLDEN_STORE_RQ = bytes.fromhex(
    "0000 0000 04000000 76000000"  # Command Group Length = 118
    "0000 0200 1a000000"
    + CT_IMAGE_STORAGE.encode().hex()
    + "00"  # Affected SOP Class UID, 25 characters and a NUL
    "0000 0001 02000000 0100"  # Command Field = C-STORE-RQ
    "0000 1001 02000000 0700"  # Message ID = 7
    "0000 0007 02000000 0000"  # Priority = medium
    "0000 0008 02000000 0100"  # Command Data Set Type = data set present
    "0000 0010 08000000"
    + b"1.2.3.4\x00".hex()  # Affected SOP Instance UID
    + "0000 3010 0a000000"
    + b"MOVESCU01 ".hex()  # Move Originator AE Title
    + "0000 3110 02000000 0300"  # Move Originator Message ID = 3
)

# PS3.7 Table 9.3-2, the success response to GOLDEN_STORE_RQ.
GOLDEN_STORE_RSP = bytes.fromhex(
    "0000 0000 04000000 5a000000"  # Command Group Length = 90
    "0000 0200 1a000000" + CT_IMAGE_STORAGE.encode().hex() + "00"
    "0000 0001 02000000 0180"  # Command Field = C-STORE-RSP
    "0000 2001 02000000 0700"  # Message ID Being Responded To = 7
    "0000 0008 02000000 0101"  # Command Data Set Type = no data set
    "0000 0009 02000000 0000"  # Status = success
    "0000 0010 08000000" + b"1.2.3.4\x00".hex()
)

ALL_COMMAND_TYPES: tuple[type[Any], ...] = (
    CEchoRQ,
    CEchoRSP,
    CStoreRQ,
    CStoreRSP,
    CFindRQ,
    CFindRSP,
    CGetRQ,
    CGetRSP,
    CMoveRQ,
    CMoveRSP,
    CCancelRQ,
)

# Text that survives an LO or AE round trip: printable ASCII without the
# backslash, with no leading or trailing space.
_PRINTABLE = "".join(chr(code) for code in range(0x20, 0x7F) if chr(code) != "\\")

uids = (
    st.lists(
        st.integers(0, 10**12).map(str),
        min_size=1,
        max_size=10,
    )
    .map(".".join)
    .filter(lambda uid: len(uid) <= 64)
)
ae_titles = (
    st.text(_PRINTABLE, min_size=1, max_size=16)
    .map(lambda text: text.strip(" "))
    .filter(bool)
)
comments = st.text(_PRINTABLE, max_size=64).map(lambda text: text.strip(" "))
unsigned_shorts = st.integers(0, 0xFFFF)
tag_lists = st.lists(st.integers(0, 0xFFFFFFFF), max_size=4).map(tuple)

_FIELD_STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "message_id": unsigned_shorts,
    "message_id_being_responded_to": unsigned_shorts,
    "affected_sop_class_uid": uids,
    "affected_sop_instance_uid": uids,
    "priority": st.sampled_from([0x0000, 0x0001, 0x0002]),
    "move_originator_aet": ae_titles,
    "move_originator_message_id": unsigned_shorts,
    "move_destination": ae_titles,
    "status": unsigned_shorts,
    "error_comment": comments,
    "offending_element": tag_lists,
    "number_of_remaining_suboperations": unsigned_shorts,
    "number_of_completed_suboperations": unsigned_shorts,
    "number_of_failed_suboperations": unsigned_shorts,
    "number_of_warning_suboperations": unsigned_shorts,
    "has_dataset": st.booleans(),
}


def command_strategy(command_type: type[Any]) -> st.SearchStrategy[Any]:
    """
    Build commands of one type, with each optional field sometimes absent.
    """
    arguments = {}
    for field in dataclasses.fields(command_type):
        strategy = _FIELD_STRATEGIES[field.name]
        if field.default is None:
            strategy = st.none() | strategy
        arguments[field.name] = strategy
    return st.builds(command_type, **arguments)


commands = st.one_of([command_strategy(kind) for kind in ALL_COMMAND_TYPES])

# Our field names and the pynetdicom primitive attributes they map to.
_PYNETDICOM_NAMES = {
    "message_id": "MessageID",
    "message_id_being_responded_to": "MessageIDBeingRespondedTo",
    "affected_sop_class_uid": "AffectedSOPClassUID",
    "affected_sop_instance_uid": "AffectedSOPInstanceUID",
    "priority": "Priority",
    "move_originator_aet": "MoveOriginatorApplicationEntityTitle",
    "move_originator_message_id": "MoveOriginatorMessageID",
    "move_destination": "MoveDestination",
    "status": "Status",
    "error_comment": "ErrorComment",
    "offending_element": "OffendingElement",
    "number_of_remaining_suboperations": "NumberOfRemainingSuboperations",
    "number_of_completed_suboperations": "NumberOfCompletedSuboperations",
    "number_of_failed_suboperations": "NumberOfFailedSuboperations",
    "number_of_warning_suboperations": "NumberOfWarningSuboperations",
}

_PYNETDICOM_TYPES = {
    CEchoRQ: (dimse_primitives.C_ECHO, dimse_messages.C_ECHO_RQ, None),
    CEchoRSP: (dimse_primitives.C_ECHO, dimse_messages.C_ECHO_RSP, None),
    CStoreRQ: (dimse_primitives.C_STORE, dimse_messages.C_STORE_RQ, "DataSet"),
    CStoreRSP: (dimse_primitives.C_STORE, dimse_messages.C_STORE_RSP, None),
    CFindRQ: (dimse_primitives.C_FIND, dimse_messages.C_FIND_RQ, "Identifier"),
    CFindRSP: (dimse_primitives.C_FIND, dimse_messages.C_FIND_RSP, "Identifier"),
    CGetRQ: (dimse_primitives.C_GET, dimse_messages.C_GET_RQ, "Identifier"),
    CGetRSP: (dimse_primitives.C_GET, dimse_messages.C_GET_RSP, "Identifier"),
    CMoveRQ: (dimse_primitives.C_MOVE, dimse_messages.C_MOVE_RQ, "Identifier"),
    CMoveRSP: (dimse_primitives.C_MOVE, dimse_messages.C_MOVE_RSP, "Identifier"),
    CCancelRQ: (dimse_primitives.C_CANCEL, dimse_messages.C_CANCEL_RQ, None),
}


def pynetdicom_command_set(command: Command) -> bytes:
    """
    Encode C{command} with pynetdicom, as a second implementation.
    """
    primitive_type, message_type, dataset_attribute = _PYNETDICOM_TYPES[type(command)]
    primitive = primitive_type()
    for field in dataclasses.fields(command):
        value = getattr(command, field.name)
        if field.name == "has_dataset" or value is None:
            continue
        if field.name == "offending_element":
            value = list(value)
        setattr(primitive, _PYNETDICOM_NAMES[field.name], value)
    if dataset_attribute is not None and command.has_dataset:
        setattr(primitive, dataset_attribute, BytesIO(b"\x08\x00\x05\x00"))
    message = message_type()
    message.primitive_to_message(primitive)
    return bytes(pynetdicom_encode(message.command_set, True, True))


def pynetdicom_supports(command: Command) -> bool:
    """
    Whether pynetdicom can encode C{command} as we do.

    pynetdicom sends a data set only for message types that may carry one,
    and it writes an empty Offending Element or Error Comment differently.
    """
    _, _, dataset_attribute = _PYNETDICOM_TYPES[type(command)]
    if command.has_dataset and dataset_attribute is None:
        return False
    if getattr(command, "offending_element", None) == ():
        return False
    return getattr(command, "error_comment", None) != ""


class GoldenBytesTests(SynchronousTestCase):
    """
    Command sets written by hand from PS3.7.
    """

    def test_encode_echo_rq_golden(self) -> None:
        """
        A C-ECHO-RQ encodes to the bytes of PS3.7 Table 9.3-12.
        """
        self.assertEqual(encode_command(CEchoRQ(message_id=1)), GOLDEN_ECHO_RQ)

    def test_decode_echo_rq_golden(self) -> None:
        """
        The golden C-ECHO-RQ decodes to the command it was written from.
        """
        self.assertEqual(
            decode_command(GOLDEN_ECHO_RQ),
            CEchoRQ(message_id=1, affected_sop_class_uid="1.2.840.10008.1.1"),
        )

    def test_encode_store_rq_golden(self) -> None:
        """
        A C-STORE-RQ with a move originator encodes to the golden bytes.
        """
        command = CStoreRQ(
            message_id=7,
            affected_sop_class_uid=CT_IMAGE_STORAGE,
            affected_sop_instance_uid="1.2.3.4",
            move_originator_aet="MOVESCU01",
            move_originator_message_id=3,
        )
        self.assertEqual(encode_command(command), GOLDEN_STORE_RQ)
        self.assertEqual(decode_command(GOLDEN_STORE_RQ), command)

    def test_encode_store_rsp_golden(self) -> None:
        """
        A successful C-STORE-RSP encodes to the golden bytes.
        """
        command = CStoreRSP(
            message_id_being_responded_to=7,
            status=0x0000,
            affected_sop_class_uid=CT_IMAGE_STORAGE,
            affected_sop_instance_uid="1.2.3.4",
        )
        self.assertEqual(encode_command(command), GOLDEN_STORE_RSP)
        self.assertEqual(decode_command(GOLDEN_STORE_RSP), command)

    def test_golden_matches_pynetdicom(self) -> None:
        """
        pynetdicom encodes the three golden commands to the same bytes.
        """
        for golden in (GOLDEN_ECHO_RQ, GOLDEN_STORE_RQ, GOLDEN_STORE_RSP):
            command = decode_command(golden)
            self.assertEqual(pynetdicom_command_set(command), golden)


class EncodeTests(SynchronousTestCase):
    """
    Tests for L{encode_command}.
    """

    def test_encode_group_length_counts_rest(self) -> None:
        """
        The Command Group Length is the byte count after its own element.
        """
        encoded = encode_command(CCancelRQ(message_id_being_responded_to=9))
        (group_length,) = struct.unpack_from("<I", encoded, 8)
        self.assertEqual(group_length, len(encoded) - 12)
        self.assertEqual(
            encoded[12:],
            element(0x0100, b"\xff\x0f")
            + element(0x0120, b"\x09\x00")
            + element(0x0800, b"\x01\x01"),
        )

    def test_encode_dataset_type_values(self) -> None:
        """
        A data set is announced with 0x0001 and its absence with 0x0101.
        """
        for has_dataset, expected in ((True, b"\x01\x00"), (False, b"\x01\x01")):
            encoded = encode_command(
                CFindRSP(
                    message_id_being_responded_to=1,
                    status=0xFF00,
                    has_dataset=has_dataset,
                )
            )
            self.assertIn(element(0x0800, expected), encoded)

    def test_encode_error_comment_truncated(self) -> None:
        """
        An Error Comment longer than 64 characters is cut to 64.
        """
        command = CStoreRSP(
            message_id_being_responded_to=1, status=0xC000, error_comment="x" * 100
        )
        encoded = encode_command(command)
        self.assertIn(element(0x0902, b"x" * 64), encoded)
        self.assertEqual(decode_command(encoded).error_comment, "x" * 64)

    def test_encode_error_comment_made_valid(self) -> None:
        """
        Non-ASCII characters, backslashes and control codes become C{?}, and
        an odd length is padded with a space.
        """
        command = CStoreRSP(
            message_id_being_responded_to=1,
            status=0xC000,
            error_comment="é\\a\nb",
        )
        self.assertIn(element(0x0902, b"??a?b "), encode_command(command))

    def test_encode_padding(self) -> None:
        """
        An odd-length UID is padded with NUL and an odd-length AE title with
        a space.
        """
        command = CMoveRQ(
            message_id=2,
            affected_sop_class_uid="1.2.3",
            move_destination="DEST",
        )
        encoded = encode_command(command)
        self.assertIn(element(0x0002, b"1.2.3\x00"), encoded)
        self.assertIn(element(0x0600, b"DEST"), encoded)
        odd = encode_command(dataclasses.replace(command, move_destination="ABC"))
        self.assertIn(element(0x0600, b"ABC "), odd)

    def test_encode_offending_element_tags(self) -> None:
        """
        Offending Element tags are written as group then element, each
        little endian.
        """
        command = CFindRSP(
            message_id_being_responded_to=1,
            status=0xA900,
            offending_element=(0x00100010, 0x7FE00010),
        )
        self.assertIn(
            element(0x0901, bytes.fromhex("10001000 e07f1000")),
            encode_command(command),
        )

    def test_encode_invalid_values_raise(self) -> None:
        """
        Values that do not fit their element raise L{ValueError}.
        """
        invalid = [
            CEchoRQ(message_id=0x10000),
            CEchoRQ(message_id=-1),
            CEchoRQ(message_id=1, affected_sop_class_uid="1." * 40),
            CEchoRQ(message_id=1, affected_sop_class_uid="1.2.é"),
            CMoveRQ(
                message_id=1,
                affected_sop_class_uid="1.2",
                move_destination="A" * 17,
            ),
            CMoveRQ(message_id=1, affected_sop_class_uid="1.2", move_destination=""),
            CMoveRQ(
                message_id=1, affected_sop_class_uid="1.2", move_destination="A\\B"
            ),
        ]
        for command in invalid:
            self.assertRaises(ValueError, encode_command, command)

    def test_encode_omits_absent_fields(self) -> None:
        """
        Optional fields left as None are not written.
        """
        encoded = encode_command(CStoreRSP(message_id_being_responded_to=1, status=0))
        self.assertEqual(
            encoded[12:],
            element(0x0100, b"\x01\x80")
            + element(0x0120, b"\x01\x00")
            + element(0x0800, b"\x01\x01")
            + element(0x0900, b"\x00\x00"),
        )

    @given(commands)
    def test_encode_matches_pynetdicom(self, command: Command) -> None:
        """
        pynetdicom encodes every command it supports to the same bytes.
        """
        if pynetdicom_supports(command):
            self.assertEqual(encode_command(command), pynetdicom_command_set(command))

    @given(commands)
    def test_pynetdicom_decodes_encoding(self, command: Command) -> None:
        """
        pydicom, as pynetdicom uses it, reads back every field we encode.
        """
        dataset = pynetdicom_decode(BytesIO(encode_command(command)), True, True)
        self.assertEqual(dataset.CommandField, command.command_field)
        self.assertEqual(dataset.CommandDataSetType != 0x0101, command.has_dataset)
        for field in dataclasses.fields(command):
            value = getattr(command, field.name)
            if field.name == "has_dataset" or value is None:
                continue
            keyword = _PYNETDICOM_NAMES[field.name]
            if keyword == "OffendingElement":
                # pydicom returns one tag bare, several as a MultiValue and
                # an empty value as None.
                offending = dataset[0x00000901]
                if offending.VM == 0:
                    decoded = []
                elif offending.VM == 1:
                    decoded = [offending.value]
                else:
                    decoded = list(offending.value)
                self.assertEqual(tuple(int(tag) for tag in decoded), value)
            elif keyword in ("ErrorComment",) and value == "":
                self.assertIn(dataset[0x00000902].value, ("", None))
            else:
                self.assertEqual(getattr(dataset, keyword), value)


class DecodeTests(SynchronousTestCase):
    """
    Tests for L{decode_command}.
    """

    @given(commands)
    def test_round_trip(self, command: Command) -> None:
        """
        Decoding an encoded command returns an equal command.
        """
        self.assertEqual(decode_command(encode_command(command)), command)

    @given(commands)
    def test_decode_memoryview(self, command: Command) -> None:
        """
        A memoryview of a command set decodes like the bytes.
        """
        encoded = encode_command(command)
        padded = memoryview(b"xx" + encoded + b"yy")[2:-2]
        self.assertEqual(decode_command(padded), command)

    @given(st.binary(max_size=300))
    def test_decode_random_bytes(self, data: bytes) -> None:
        """
        Random bytes decode or raise L{CommandDecodeError}, nothing else.
        """
        try:
            decode_command(data)
        except CommandDecodeError:
            pass

    @given(
        commands,
        st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6),
        st.integers(0, 400),
    )
    def test_decode_mutated_bytes(
        self, command: Command, changes: list[tuple[int, int]], cut: int
    ) -> None:
        """
        A command set with changed bytes, cut short or not, decodes or
        raises L{CommandDecodeError}, nothing else.
        """
        data = bytearray(encode_command(command))
        for offset, value in changes:
            data[offset % len(data)] = value
        for candidate in (bytes(data), bytes(data[: cut % (len(data) + 1)])):
            try:
                decode_command(candidate)
            except CommandDecodeError:
                pass

    @given(commands, st.integers(0, 0xFFFFFFFF), st.data())
    def test_decode_group_length_fixed_mutation(
        self, command: Command, length: int, data: st.DataObject
    ) -> None:
        """
        Any element length in a command set whose group length still matches
        its size decodes or raises L{CommandDecodeError}.
        """
        encoded = bytearray(encode_command(command))
        offsets = []
        offset = 12
        while offset < len(encoded):
            offsets.append(offset)
            offset += 8 + int.from_bytes(encoded[offset + 4 : offset + 8], "little")
        target = data.draw(st.sampled_from(offsets))
        encoded[target + 4 : target + 8] = length.to_bytes(4, "little")
        try:
            decode_command(bytes(encoded))
        except CommandDecodeError:
            pass

    def assert_decode_error(self, data: bytes, *fragments: str) -> None:
        """
        Assert that decoding C{data} raises L{CommandDecodeError} whose
        message contains every fragment.
        """
        error = self.assertRaises(CommandDecodeError, decode_command, data)
        for fragment in fragments:
            self.assertIn(fragment, str(error))

    def test_decode_too_short(self) -> None:
        """
        Fewer bytes than the group length element raise.
        """
        self.assert_decode_error(b"\x00" * 11, "11 bytes long")

    def test_decode_first_element_not_group_length(self) -> None:
        """
        A command set must start with (0000,0000) of length 4.
        """
        self.assert_decode_error(
            element(0x0002, b"\x00\x00\x00\x00") + GOLDEN_ECHO_RQ[12:],
            "starts with element (0000,0002)",
        )

    def test_decode_group_length_mismatch(self) -> None:
        """
        A group length that differs from the bytes after it raises.
        """
        self.assert_decode_error(
            GOLDEN_ECHO_RQ[:-2], "Command Group Length is 56, but 54 bytes"
        )
        self.assert_decode_error(GOLDEN_ECHO_RQ + b"\x00\x00", "but 58 bytes")

    def test_decode_length_past_end(self) -> None:
        """
        An element whose value length runs past the end raises.
        """
        body = GOLDEN_ECHO_RQ[12:-10] + b"\x00\x00\x00\x08\x04\x00\x00\x00\x01\x01"
        self.assert_decode_error(
            with_group_length(body),
            "(0000,0800) Command Data Set Type at offset 58",
            "past the end",
        )

    def test_decode_truncated_element_header(self) -> None:
        """
        Bytes left over that are too few for an element header raise.
        """
        self.assert_decode_error(
            with_group_length(GOLDEN_ECHO_RQ[12:] + b"\x00\x00\x00"),
            "ends 3 bytes into the 8-byte header",
        )

    def test_decode_element_outside_group(self) -> None:
        """
        An element of another group raises.
        """
        stray = b"\x08\x00\x16\x00\x02\x00\x00\x001\x00"
        self.assert_decode_error(
            with_group_length(GOLDEN_ECHO_RQ[12:] + stray),
            "(0008,0016) at offset 68 is outside group 0000",
        )

    def test_decode_duplicate_element(self) -> None:
        """
        An element that appears twice raises.
        """
        self.assert_decode_error(
            with_group_length(GOLDEN_ECHO_RQ[12:] + element(0x0110, b"\x02\x00")),
            "(0000,0110) Message ID appears twice",
        )

    def test_decode_unknown_command_field(self) -> None:
        """
        A Command Field that is no DIMSE message raises.
        """
        data = GOLDEN_ECHO_RQ[:46] + b"\x34\x12" + GOLDEN_ECHO_RQ[48:]
        self.assert_decode_error(data, "unknown Command Field 0x1234")

    def test_decode_dimse_n_missing_element(self) -> None:
        """
        A DIMSE-N response without a required element raises with the
        message name.
        """
        data = GOLDEN_ECHO_RQ[:46] + b"\x30\x81" + GOLDEN_ECHO_RQ[48:]
        self.assert_decode_error(
            data, "N-ACTION-RSP has no element (0000,0120) Message ID Being"
        )

    def test_decode_missing_command_field(self) -> None:
        """
        A command set without a Command Field raises.
        """
        body = GOLDEN_ECHO_RQ[12:38] + GOLDEN_ECHO_RQ[48:]
        self.assert_decode_error(
            with_group_length(body), "no element (0000,0100) Command Field"
        )

    def test_decode_missing_required_element(self) -> None:
        """
        A command set without an element its message requires raises.
        """
        body = GOLDEN_STORE_RQ[12:]
        without_instance = body.replace(element(0x1000, b"1.2.3.4\x00"), b"")
        self.assert_decode_error(
            with_group_length(without_instance),
            "C-STORE-RQ has no element (0000,1000) Affected SOP Instance UID",
        )
        without_type = GOLDEN_ECHO_RQ[12:-10]
        self.assert_decode_error(
            with_group_length(without_type),
            "C-ECHO-RQ has no element (0000,0800) Command Data Set Type",
        )

    def test_decode_bad_us_length(self) -> None:
        """
        A US element whose value is not 2 bytes raises.
        """
        body = GOLDEN_ECHO_RQ[12:48] + element(0x0110, b"\x01\x00\x00\x00")
        body += GOLDEN_ECHO_RQ[58:]
        self.assert_decode_error(
            with_group_length(body),
            "(0000,0110) Message ID has a value length of 4 bytes",
        )

    def test_decode_bad_at_length(self) -> None:
        """
        An Offending Element whose length is not a multiple of 4 raises.
        """
        body = GOLDEN_STORE_RSP[12:] + element(0x0901, b"\x10\x00")
        self.assert_decode_error(
            with_group_length(body), "(0000,0901) Offending Element"
        )

    def test_decode_non_ascii_uid(self) -> None:
        """
        A UID with bytes outside ASCII raises.
        """
        data = GOLDEN_STORE_RSP.replace(b"1.2.3.4\x00", b"1.2.3.\xff\x00")
        self.assert_decode_error(data, "Affected SOP Instance UID contains bytes")

    def test_decode_skips_unused_elements(self) -> None:
        """
        Retired or unused elements of group 0000 are skipped.
        """
        length_to_end = element(0x0001, b"\x00\x00\x00\x00")
        body = length_to_end + GOLDEN_ECHO_RQ[12:] + element(0x4000, b"AB")
        self.assertEqual(
            decode_command(with_group_length(body)), decode_command(GOLDEN_ECHO_RQ)
        )

    def test_decode_dataset_type_any_other_value(self) -> None:
        """
        Any Command Data Set Type other than 0x0101 means a data set follows.
        """
        for value in (b"\x00\x00", b"\x01\x00", b"\x02\x01", b"\xfe\xfe"):
            data = GOLDEN_ECHO_RQ[:-2] + value
            self.assertTrue(decode_command(data).has_dataset)
        self.assertFalse(decode_command(GOLDEN_ECHO_RQ).has_dataset)

    def test_decode_strips_padding(self) -> None:
        """
        UIDs lose NUL padding and AE titles and comments lose spaces.
        """
        command = CMoveRQ(
            message_id=5,
            affected_sop_class_uid="1.2.3",
            move_destination="ABC",
        )
        self.assertEqual(
            decode_command(encode_command(command)).move_destination, "ABC"
        )
        padded = encode_command(command).replace(b"ABC ", b" AB ")
        self.assertEqual(decode_command(padded).move_destination, "AB")

    def test_decode_pynetdicom_store_rq(self) -> None:
        """
        A C-STORE-RQ that pynetdicom encodes decodes to the same fields.
        """
        primitive = dimse_primitives.C_STORE()
        primitive.MessageID = 12
        primitive.AffectedSOPClassUID = CT_IMAGE_STORAGE
        primitive.AffectedSOPInstanceUID = "1.2.826.0.1.3680043.2.1125.1"
        primitive.Priority = 0x0002
        primitive.DataSet = BytesIO(b"\x08\x00\x05\x00")
        message = dimse_messages.C_STORE_RQ()
        message.primitive_to_message(primitive)
        encoded = pynetdicom_encode(message.command_set, True, True)
        self.assertEqual(
            decode_command(encoded),
            CStoreRQ(
                message_id=12,
                affected_sop_class_uid=CT_IMAGE_STORAGE,
                affected_sop_instance_uid="1.2.826.0.1.3680043.2.1125.1",
                priority=0x0002,
            ),
        )


MPPS = "1.2.840.10008.3.1.2.3.3"
STORAGE_COMMITMENT = "1.2.840.10008.1.20.1"
STORAGE_COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"


def pynetdicom_n_request(name: str, **fields: Any) -> bytes:
    """
    Encode a DIMSE-N request with pynetdicom's primitive C{name}.
    """
    primitive = getattr(dimse_primitives, name)()
    for keyword, value in fields.items():
        setattr(primitive, keyword, value)
    message = getattr(dimse_messages, name + "_RQ")()
    message.primitive_to_message(primitive)
    return bytes(pynetdicom_encode(message.command_set, True, True))


class DimseNTests(SynchronousTestCase):
    """
    DIMSE-N requests decode into L{NRequest}, and L{NResponse} encodes their
    responses.
    """

    def test_decode_pynetdicom_requests(self) -> None:
        """
        Each DIMSE-N request that pynetdicom encodes decodes with its Command
        Field, message ID, SOP class and instance, and whether a data set
        follows. Elements such as the Action Type ID are skipped.
        """
        dataset = BytesIO(b"\x08\x00\x05\x00")
        uid = "1.2.826.0.1.3680043.2.1125.7"
        cases = [
            (
                pynetdicom_n_request(
                    "N_CREATE",
                    MessageID=3,
                    AffectedSOPClassUID=MPPS,
                    AffectedSOPInstanceUID=uid,
                    AttributeList=dataset,
                ),
                NRequest(
                    command_field=0x0140,
                    message_id=3,
                    affected_sop_class_uid=MPPS,
                    affected_sop_instance_uid=uid,
                    has_dataset=True,
                ),
            ),
            (
                pynetdicom_n_request(
                    "N_ACTION",
                    MessageID=4,
                    RequestedSOPClassUID=STORAGE_COMMITMENT,
                    RequestedSOPInstanceUID=STORAGE_COMMITMENT_INSTANCE,
                    ActionTypeID=1,
                    ActionInformation=dataset,
                ),
                NRequest(
                    command_field=0x0130,
                    message_id=4,
                    requested_sop_class_uid=STORAGE_COMMITMENT,
                    requested_sop_instance_uid=STORAGE_COMMITMENT_INSTANCE,
                    has_dataset=True,
                ),
            ),
            (
                pynetdicom_n_request(
                    "N_GET",
                    MessageID=5,
                    RequestedSOPClassUID=MPPS,
                    RequestedSOPInstanceUID=uid,
                    AttributeIdentifierList=[0x00100010],
                ),
                NRequest(
                    command_field=0x0110,
                    message_id=5,
                    requested_sop_class_uid=MPPS,
                    requested_sop_instance_uid=uid,
                ),
            ),
            (
                pynetdicom_n_request(
                    "N_DELETE",
                    MessageID=6,
                    RequestedSOPClassUID=MPPS,
                    RequestedSOPInstanceUID=uid,
                ),
                NRequest(
                    command_field=0x0150,
                    message_id=6,
                    requested_sop_class_uid=MPPS,
                    requested_sop_instance_uid=uid,
                ),
            ),
            (
                pynetdicom_n_request(
                    "N_EVENT_REPORT",
                    MessageID=7,
                    AffectedSOPClassUID=STORAGE_COMMITMENT,
                    AffectedSOPInstanceUID=STORAGE_COMMITMENT_INSTANCE,
                    EventTypeID=1,
                    EventInformation=dataset,
                ),
                NRequest(
                    command_field=0x0100,
                    message_id=7,
                    affected_sop_class_uid=STORAGE_COMMITMENT,
                    affected_sop_instance_uid=STORAGE_COMMITMENT_INSTANCE,
                    has_dataset=True,
                ),
            ),
        ]
        for encoded, expected in cases:
            self.assertEqual(decode_command(encoded), expected)
            self.assertEqual(decode_command(encode_command(expected)), expected)

    def test_request_names(self) -> None:
        """
        A request is named after its Command Field.
        """
        self.assertEqual(
            NRequest(command_field=0x0140, message_id=1).name, "N-CREATE-RQ"
        )
        self.assertEqual(
            NResponse(
                command_field=0x8140, message_id_being_responded_to=1, status=0
            ).name,
            "N-CREATE-RSP",
        )

    def test_request_without_message_id(self) -> None:
        """
        A DIMSE-N request without a Message ID raises, naming the request.
        """
        data = with_group_length(
            element(0x0100, b"\x40\x01") + element(0x0800, b"\x01\x01")
        )
        with self.assertRaises(CommandDecodeError) as caught:
            decode_command(data)
        self.assertIn(
            "N-CREATE-RQ has no element (0000,0110) Message ID", str(caught.exception)
        )

    def test_response_read_by_pynetdicom(self) -> None:
        """
        pydicom, as pynetdicom uses it, reads every field of an encoded
        N-CREATE-RSP, with no data set.
        """
        response = NResponse(
            command_field=0x8140,
            message_id_being_responded_to=3,
            status=0x0211,
            affected_sop_class_uid=MPPS,
            affected_sop_instance_uid="1.2.3.4",
        )
        self.assertEqual(decode_command(encode_command(response)), response)
        dataset = pynetdicom_decode(BytesIO(encode_command(response)), True, True)
        self.assertEqual(dataset.CommandField, 0x8140)
        self.assertEqual(dataset.MessageIDBeingRespondedTo, 3)
        self.assertEqual(dataset.Status, 0x0211)
        self.assertEqual(dataset.AffectedSOPClassUID, MPPS)
        self.assertEqual(dataset.AffectedSOPInstanceUID, "1.2.3.4")
        self.assertEqual(dataset.CommandDataSetType, 0x0101)


class StatusCategoryTests(SynchronousTestCase):
    """
    Tests for L{status_category}.
    """

    def test_status_category_table(self) -> None:
        """
        Codes fall into the categories of PS3.7 Annex C.
        """
        table = {
            0x0000: StatusCategory.SUCCESS,
            0x0001: StatusCategory.WARNING,
            0x0107: StatusCategory.WARNING,
            0x0116: StatusCategory.WARNING,
            0xB000: StatusCategory.WARNING,
            0xB007: StatusCategory.WARNING,
            0xBFFF: StatusCategory.WARNING,
            0xFE00: StatusCategory.CANCEL,
            0xFF00: StatusCategory.PENDING,
            0xFF01: StatusCategory.PENDING,
            0xA700: StatusCategory.FAILURE,
            0xA701: StatusCategory.FAILURE,
            0xA702: StatusCategory.FAILURE,
            0xA801: StatusCategory.FAILURE,
            0xA900: StatusCategory.FAILURE,
            0xC000: StatusCategory.FAILURE,
            0x0110: StatusCategory.FAILURE,
            0x0122: StatusCategory.FAILURE,
            0x0211: StatusCategory.FAILURE,
            0xFF02: StatusCategory.FAILURE,
            0x1234: StatusCategory.FAILURE,
        }
        for code, category in table.items():
            self.assertEqual(status_category(code), category, hex(code))

    def test_status_category_out_of_range(self) -> None:
        """
        A value that is not 16 bits raises L{ValueError}.
        """
        self.assertRaises(ValueError, status_category, -1)
        self.assertRaises(ValueError, status_category, 0x10000)
