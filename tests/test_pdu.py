"""
Tests for L{twistedpacs.ul.pdu} and L{twistedpacs.ul.items}.

The golden PDUs are written byte by byte from the field tables of PS3.8
section 9.3 and PS3.7 Annex D.3.3, independently of the encoder.
"""

from __future__ import annotations

import string
import struct

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from twistedpacs.ul.pdu import (
    A_ABORT,
    A_ASSOCIATE_AC,
    A_ASSOCIATE_RJ,
    A_ASSOCIATE_RQ,
    A_RELEASE_RP,
    A_RELEASE_RQ,
    ABORT_REASON_INVALID_PDU_PARAMETER_VALUE,
    ABORT_SOURCE_SERVICE_PROVIDER,
    CONTEXT_ABSTRACT_SYNTAX_NOT_SUPPORTED,
    CONTEXT_ACCEPTANCE,
    CONTEXT_TRANSFER_SYNTAXES_NOT_SUPPORTED,
    P_DATA_TF,
    PDU,
    REJECT_RESULT_PERMANENT,
    REJECT_SOURCE_SERVICE_USER,
    REJECT_USER_CALLED_AE_TITLE_NOT_RECOGNIZED,
    USER_IDENTITY_USERNAME_AND_PASSCODE,
    AAbort,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    AReleaseRP,
    AReleaseRQ,
    AsynchronousOperationsWindow,
    ImplementationClassUID,
    ImplementationVersionName,
    MaximumLength,
    PDataTF,
    PDUDecodeError,
    PresentationContextAC,
    PresentationContextRQ,
    PresentationDataValue,
    SCPSCURoleSelection,
    SOPClassCommonExtendedNegotiation,
    SOPClassExtendedNegotiation,
    UnknownSubItem,
    UserIdentityAC,
    UserIdentityRQ,
    UserInformation,
    UserInformationSubItem,
    decode_pdu,
    decode_pdu_stream,
    encode_pdata_tf_parts,
)

VERIFICATION = "1.2.840.10008.1.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
STORAGE_SERVICE_CLASS = "1.2.840.10008.4.2"

# A-ASSOCIATE-RQ (PS3.8 Table 9-11) with two presentation contexts and every
# user information sub-item this codec defines.
GOLDEN_RQ = b"".join(
    [
        b"\x01\x00\x00\x00\x01\xa1",  # PDU type 0x01, reserved, PDU length 417
        b"\x00\x01\x00\x00",  # protocol version 1, reserved
        b"STORESCP        ",  # called AE title
        b"STORESCU        ",  # calling AE title
        b"\x00" * 32,  # reserved
        # Application context item (Table 9-12), length 21.
        b"\x10\x00\x00\x15",
        b"1.2.840.10008.3.1.1.1",
        # Presentation context item (Table 9-13), ID 1, length 4 + 21 + 21.
        b"\x20\x00\x00\x2e",
        b"\x01\x00\x00\x00",
        b"\x30\x00\x00\x11",
        b"1.2.840.10008.1.1",
        b"\x40\x00\x00\x11",
        b"1.2.840.10008.1.2",
        # Presentation context item, ID 3, length 4 + 29 + 23 + 21.
        b"\x20\x00\x00\x4d",
        b"\x03\x00\x00\x00",
        b"\x30\x00\x00\x19",
        b"1.2.840.10008.5.1.4.1.1.2",
        b"\x40\x00\x00\x13",
        b"1.2.840.10008.1.2.1",
        b"\x40\x00\x00\x11",
        b"1.2.840.10008.1.2",
        # User information item (Table 9-16), length 189.
        b"\x50\x00\x00\xbd",
        # Maximum length 16384 (PS3.8 Table D.1-1).
        b"\x51\x00\x00\x04\x00\x00\x40\x00",
        # Implementation class UID.
        b"\x52\x00\x00\x07",
        b"1.2.3.4",
        # Asynchronous operations window: 1 invoked, 1 performed.
        b"\x53\x00\x00\x04\x00\x01\x00\x01",
        # SCP/SCU role selection for CT Image Storage: SCU 0, SCP 1.
        b"\x54\x00\x00\x1d\x00\x19",
        b"1.2.840.10008.5.1.4.1.1.2",
        b"\x00\x01",
        # Implementation version name.
        b"\x55\x00\x00\x0e",
        b"TWISTEDPACS_01",
        # SOP class extended negotiation with 3 bytes of information.
        b"\x56\x00\x00\x1e\x00\x19",
        b"1.2.840.10008.5.1.4.1.1.2",
        b"\x01\x00\x01",
        # SOP class common extended negotiation, version 0, one related UID.
        b"\x57\x00\x00\x37\x00\x19",
        b"1.2.840.10008.5.1.4.1.1.2",
        b"\x00\x11",
        b"1.2.840.10008.4.2",
        b"\x00\x07\x00\x05",
        b"1.2.3",
        # User identity: user name and passcode, positive response requested.
        b"\x58\x00\x00\x0e\x02\x01\x00\x04",
        b"user",
        b"\x00\x04",
        b"pass",
    ]
)

EXPECTED_RQ = AAssociateRQ(
    called_ae_title="STORESCP",
    calling_ae_title="STORESCU",
    presentation_contexts=(
        PresentationContextRQ(1, VERIFICATION, (IMPLICIT_LE,)),
        PresentationContextRQ(3, CT_IMAGE_STORAGE, (EXPLICIT_LE, IMPLICIT_LE)),
    ),
    user_information=UserInformation(
        (
            MaximumLength(16384),
            ImplementationClassUID("1.2.3.4"),
            AsynchronousOperationsWindow(1, 1),
            SCPSCURoleSelection(CT_IMAGE_STORAGE, scu_role=False, scp_role=True),
            ImplementationVersionName("TWISTEDPACS_01"),
            SOPClassExtendedNegotiation(CT_IMAGE_STORAGE, b"\x01\x00\x01"),
            SOPClassCommonExtendedNegotiation(
                CT_IMAGE_STORAGE, STORAGE_SERVICE_CLASS, ("1.2.3",)
            ),
            UserIdentityRQ(USER_IDENTITY_USERNAME_AND_PASSCODE, True, b"user", b"pass"),
        )
    ),
)

# A-ASSOCIATE-AC (PS3.8 Table 9-17): context 1 accepted, context 3 rejected.
GOLDEN_AC = b"".join(
    [
        b"\x02\x00\x00\x00\x00\xe9",  # PDU type 0x02, reserved, PDU length 233
        b"\x00\x01\x00\x00",
        b"STORESCP        ",
        b"STORESCU        ",
        b"\x00" * 32,
        b"\x10\x00\x00\x15",
        b"1.2.840.10008.3.1.1.1",
        # Presentation context item (Table 9-18), ID 1, result 0.
        b"\x21\x00\x00\x19",
        b"\x01\x00\x00\x00",
        b"\x40\x00\x00\x11",
        b"1.2.840.10008.1.2",
        # ID 3, result 3 (abstract syntax not supported).
        b"\x21\x00\x00\x19",
        b"\x03\x00\x03\x00",
        b"\x40\x00\x00\x11",
        b"1.2.840.10008.1.2",
        # User information item, length 78.
        b"\x50\x00\x00\x4e",
        b"\x51\x00\x00\x04\x00\x00\x80\x00",
        b"\x52\x00\x00\x07",
        b"1.2.3.4",
        b"\x54\x00\x00\x1d\x00\x19",
        b"1.2.840.10008.5.1.4.1.1.2",
        b"\x00\x01",
        b"\x55\x00\x00\x0e",
        b"TWISTEDPACS_01",
        # User identity AC (PS3.7 Table D.3-15) with a 2-byte server response.
        b"\x59\x00\x00\x04\x00\x02",
        b"ok",
    ]
)

EXPECTED_AC = AAssociateAC(
    called_ae_title="STORESCP",
    calling_ae_title="STORESCU",
    presentation_contexts=(
        PresentationContextAC(1, CONTEXT_ACCEPTANCE, IMPLICIT_LE),
        PresentationContextAC(3, CONTEXT_ABSTRACT_SYNTAX_NOT_SUPPORTED, IMPLICIT_LE),
    ),
    user_information=UserInformation(
        (
            MaximumLength(32768),
            ImplementationClassUID("1.2.3.4"),
            SCPSCURoleSelection(CT_IMAGE_STORAGE, scu_role=False, scp_role=True),
            ImplementationVersionName("TWISTEDPACS_01"),
            UserIdentityAC(b"ok"),
        )
    ),
)

# A-ASSOCIATE-RJ (PS3.8 Table 9-21): permanent, service user, called AE title
# not recognized.
GOLDEN_RJ = b"\x03\x00\x00\x00\x00\x04\x00\x01\x01\x07"

# P-DATA-TF (PS3.8 Tables 9-22 and 9-23): the last fragment of a command on
# context 1, then a data set fragment of odd length on context 3.
GOLDEN_PDATA = b"".join(
    [
        b"\x04\x00\x00\x00\x00\x15",  # PDU type 0x04, PDU length 21
        b"\x00\x00\x00\x06\x01\x03",  # item length 6, context 1, command, last
        b"\x01\x02\x03\x04",
        b"\x00\x00\x00\x07\x03\x00",  # item length 7, context 3, data set
        b"abcde",
    ]
)

GOLDEN_RELEASE_RQ = b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00"
GOLDEN_RELEASE_RP = b"\x06\x00\x00\x00\x00\x04\x00\x00\x00\x00"

# A-ABORT (PS3.8 Table 9-26): service provider, invalid PDU parameter value.
GOLDEN_ABORT = b"\x07\x00\x00\x00\x00\x04\x00\x00\x02\x06"

GOLDEN_CASES: list[tuple[bytes, PDU]] = [
    (GOLDEN_RQ, EXPECTED_RQ),
    (GOLDEN_AC, EXPECTED_AC),
    (
        GOLDEN_RJ,
        AAssociateRJ(
            REJECT_RESULT_PERMANENT,
            REJECT_SOURCE_SERVICE_USER,
            REJECT_USER_CALLED_AE_TITLE_NOT_RECOGNIZED,
        ),
    ),
    (
        GOLDEN_PDATA,
        PDataTF(
            (
                PresentationDataValue(1, 0x03, b"\x01\x02\x03\x04"),
                PresentationDataValue(3, 0x00, b"abcde"),
            )
        ),
    ),
    (GOLDEN_RELEASE_RQ, AReleaseRQ()),
    (GOLDEN_RELEASE_RP, AReleaseRP()),
    (
        GOLDEN_ABORT,
        AAbort(ABORT_SOURCE_SERVICE_PROVIDER, ABORT_REASON_INVALID_PDU_PARAMETER_VALUE),
    ),
]

# Where the items of an A-ASSOCIATE PDU start, counted from the header.
ITEMS_OFFSET = 74


def associate_bytes(pdu_type: int, items: bytes, version: int = 1) -> bytes:
    """
    Build an A-ASSOCIATE-RQ or -AC from raw items, independently of the
    encoder.
    """
    body = (
        struct.pack(">HH", version, 0)
        + b"ANY-SCP".ljust(16)
        + b"ECHOSCU".ljust(16)
        + bytes(32)
        + items
    )
    return struct.pack(">BBL", pdu_type, 0, len(body)) + body


def raw_item(item_type: int, data: bytes) -> bytes:
    """
    Build one item with a correct length.
    """
    return struct.pack(">BBH", item_type, 0, len(data)) + data


APPLICATION_CONTEXT = raw_item(0x10, b"1.2.840.10008.3.1.1.1")
VERIFICATION_CONTEXT = raw_item(
    0x20,
    b"\x01\x00\x00\x00"
    + raw_item(0x30, VERIFICATION.encode())
    + raw_item(0x40, IMPLICIT_LE.encode()),
)


def decode_whole(data: bytes) -> PDU:
    """
    Decode one PDU that must take all of C{data}.
    """
    pdu, consumed = decode_pdu_stream(data)
    assert consumed == len(data), (consumed, len(data))
    return pdu


# Strategies.

uids = st.text(alphabet="0123456789.", max_size=64)
ae_titles = st.text(
    alphabet=string.ascii_letters + string.digits + " _-", max_size=16
).filter(lambda title: title == title.strip(" "))
names = st.text(alphabet=string.ascii_letters + string.digits + "_.-", max_size=16)
short_bytes = st.binary(max_size=40)
bytes_values = st.integers(0, 255)

user_information_sub_items: st.SearchStrategy[UserInformationSubItem] = st.one_of(
    st.builds(MaximumLength, st.integers(0, 2**32 - 1)),
    st.builds(ImplementationClassUID, uids),
    st.builds(
        AsynchronousOperationsWindow, st.integers(0, 65535), st.integers(0, 65535)
    ),
    st.builds(SCPSCURoleSelection, uids, st.booleans(), st.booleans()),
    st.builds(ImplementationVersionName, names),
    st.builds(SOPClassExtendedNegotiation, uids, short_bytes),
    st.builds(
        SOPClassCommonExtendedNegotiation,
        uids,
        uids,
        st.lists(uids, max_size=3).map(tuple),
        bytes_values,
    ),
    st.builds(UserIdentityRQ, bytes_values, st.booleans(), short_bytes, short_bytes),
    st.builds(UserIdentityAC, short_bytes),
    st.builds(
        UnknownSubItem,
        bytes_values.filter(lambda item_type: not 0x51 <= item_type <= 0x59),
        short_bytes,
    ),
)
user_informations = st.none() | st.builds(
    UserInformation, st.lists(user_information_sub_items, max_size=8).map(tuple)
)
contexts_rq = st.builds(
    PresentationContextRQ,
    bytes_values,
    uids,
    st.lists(uids, max_size=4).map(tuple),
)
contexts_ac = st.builds(
    PresentationContextAC, bytes_values, bytes_values, st.none() | uids
)
associate_rqs = st.builds(
    AAssociateRQ,
    ae_titles,
    ae_titles,
    st.lists(contexts_rq, max_size=6).map(tuple),
    user_informations,
    uids,
    st.integers(0, 65535),
)
associate_acs = st.builds(
    AAssociateAC,
    ae_titles,
    ae_titles,
    st.lists(contexts_ac, max_size=6).map(tuple),
    user_informations,
    uids,
    st.integers(0, 65535),
)
associate_rjs = st.builds(AAssociateRJ, bytes_values, bytes_values, bytes_values)
pdvs = st.builds(PresentationDataValue, bytes_values, bytes_values, st.binary())
pdata_tfs = st.builds(PDataTF, st.lists(pdvs, min_size=1, max_size=5).map(tuple))
aborts = st.builds(AAbort, bytes_values, bytes_values)
pdus: st.SearchStrategy[PDU] = st.one_of(
    associate_rqs,
    associate_acs,
    associate_rjs,
    pdata_tfs,
    st.just(AReleaseRQ()),
    st.just(AReleaseRP()),
    aborts,
)


@st.composite
def mutated_pdus(draw: st.DrawFn) -> bytes:
    """
    Draw a valid encoded PDU and damage it: overwrite, insert or delete a few
    bytes, and sometimes fix up the PDU length so the damage reaches the body
    decoder.
    """
    data = bytearray(draw(pdus).encode())
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["overwrite", "insert", "delete"]))
        if action == "overwrite" and position < len(data):
            data[position] = draw(bytes_values)
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=4))
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 4))]
    if len(data) >= 6 and draw(st.booleans()):
        struct.pack_into(">L", data, 2, len(data) - 6)
    return bytes(data)


class GoldenBytesTests(SynchronousTestCase):
    """
    Tests against PDUs written by hand from the tables of the standard.
    """

    def test_encode_golden_matches(self) -> None:
        """
        Each PDU encodes to the bytes written from the standard.
        """
        for golden, pdu in GOLDEN_CASES:
            self.assertEqual(pdu.encode(), golden, pdu.name)

    def test_decode_golden_matches(self) -> None:
        """
        The bytes written from the standard decode to the expected PDUs.
        """
        for golden, pdu in GOLDEN_CASES:
            self.assertEqual(decode_whole(golden), pdu, pdu.name)

    def test_decode_golden_types(self) -> None:
        """
        Each golden PDU decodes to the class of its PDU type.
        """
        for golden, pdu in GOLDEN_CASES:
            decoded = decode_whole(golden)
            self.assertIs(type(decoded), type(pdu))
            self.assertEqual(decoded.pdu_type, golden[0])

    def test_user_information_properties(self) -> None:
        """
        The user information properties pick the sub-items by type.
        """
        decoded = decode_whole(GOLDEN_RQ)
        assert isinstance(decoded, AAssociateRQ)
        info = decoded.user_information
        assert info is not None
        self.assertEqual(info.maximum_length, 16384)
        self.assertEqual(info.implementation_class_uid, "1.2.3.4")
        self.assertEqual(info.implementation_version_name, "TWISTEDPACS_01")
        self.assertEqual(
            info.asynchronous_operations_window, AsynchronousOperationsWindow(1, 1)
        )
        self.assertEqual(
            info.role_selections,
            (SCPSCURoleSelection(CT_IMAGE_STORAGE, False, True),),
        )
        self.assertEqual(len(info.sop_class_extended_negotiations), 1)
        self.assertEqual(len(info.sop_class_common_extended_negotiations), 1)
        self.assertEqual(
            info.user_identity,
            UserIdentityRQ(USER_IDENTITY_USERNAME_AND_PASSCODE, True, b"user", b"pass"),
        )
        self.assertEqual(info.unknown_sub_items, ())

    def test_user_information_properties_empty(self) -> None:
        """
        An empty user information item has no values.
        """
        info = UserInformation()
        self.assertIsNone(info.maximum_length)
        self.assertIsNone(info.implementation_class_uid)
        self.assertIsNone(info.implementation_version_name)
        self.assertIsNone(info.asynchronous_operations_window)
        self.assertIsNone(info.user_identity)
        self.assertEqual(info.role_selections, ())

    def test_pdv_flags(self) -> None:
        """
        The message control header bits give is_command and is_last.
        """
        decoded = decode_whole(GOLDEN_PDATA)
        assert isinstance(decoded, PDataTF)
        command, data_set = decoded.pdvs
        self.assertTrue(command.is_command)
        self.assertTrue(command.is_last)
        self.assertFalse(data_set.is_command)
        self.assertFalse(data_set.is_last)
        self.assertEqual(bytes(data_set.data), b"abcde")

    def test_reserved_fields_ignored(self) -> None:
        """
        Reserved bytes with any value decode as if they were zero.
        """
        damaged = bytearray(GOLDEN_RQ)
        damaged[1] = 0xFF  # PDU header
        damaged[8:10] = b"\xff\xff"  # after the protocol version
        damaged[42:74] = b"\xee" * 32  # the 32 reserved bytes
        damaged[75] = 0xFF  # application context item
        damaged[100] = 0xFF  # presentation context item header
        damaged[104:107] = b"\xff\xff\xff"  # presentation context fields
        self.assertEqual(decode_whole(bytes(damaged)), EXPECTED_RQ)

    def test_reserved_abort_fields_ignored(self) -> None:
        """
        The reserved bytes of an A-ABORT and an A-RELEASE-RQ are not tested.
        """
        self.assertEqual(
            decode_pdu(A_ABORT, b"\xff\xff\x00\x01"),
            AAbort(0, 1),
        )
        self.assertEqual(decode_pdu(A_RELEASE_RQ, b"\x01\x02\x03\x04"), AReleaseRQ())


class AssociateDecodeTests(SynchronousTestCase):
    """
    Tests of the leniency and the errors of the A-ASSOCIATE decoders.
    """

    def test_decode_other_protocol_version(self) -> None:
        """
        An unsupported protocol version decodes, so the protocol can reject it.
        """
        data = associate_bytes(0x01, APPLICATION_CONTEXT, version=2)
        decoded = decode_whole(data)
        assert isinstance(decoded, AAssociateRQ)
        self.assertEqual(decoded.protocol_version, 2)

    def test_decode_no_presentation_contexts(self) -> None:
        """
        An A-ASSOCIATE-RQ without presentation contexts or user information
        decodes.
        """
        decoded = decode_whole(associate_bytes(0x01, APPLICATION_CONTEXT))
        self.assertEqual(decoded, AAssociateRQ("ANY-SCP", "ECHOSCU", (), None))

    def test_missing_application_context(self) -> None:
        """
        An A-ASSOCIATE-RQ without an application context item is invalid.
        """
        error = self.assertRaises(
            PDUDecodeError,
            decode_whole,
            associate_bytes(0x01, VERIFICATION_CONTEXT),
        )
        self.assertEqual(error.pdu_name, "A-ASSOCIATE-RQ")
        self.assertEqual(error.pdu_type, A_ASSOCIATE_RQ)
        self.assertEqual(error.offset, ITEMS_OFFSET)
        self.assertEqual(error.expected, "an application context item (0x10)")

    def test_misplaced_item_message(self) -> None:
        """
        A defined item type in the wrong PDU is reported with offset and
        types.
        """
        data = associate_bytes(
            0x01, APPLICATION_CONTEXT + raw_item(0x21, b"\x01\x00\x00\x00")
        )
        error = self.assertRaises(PDUDecodeError, decode_whole, data)
        self.assertEqual(
            str(error),
            "A-ASSOCIATE-RQ: at offset 99, expected item type 0x10, 0x20 or 0x50,"
            " found 0x21",
        )
        self.assertEqual(error.offset, ITEMS_OFFSET + len(APPLICATION_CONTEXT))
        self.assertEqual(error.found, "0x21")

    def test_unknown_item_skipped(self) -> None:
        """
        Items of undefined types are skipped, as PS3.8 section 9.3 requires.
        """
        data = associate_bytes(
            0x01,
            APPLICATION_CONTEXT
            + raw_item(0x99, b"future")
            + VERIFICATION_CONTEXT
            + raw_item(0x50, raw_item(0x51, b"\x00\x00\x10\x00")),
        )
        decoded = decode_whole(data)
        assert isinstance(decoded, AAssociateRQ)
        self.assertEqual(
            decoded.presentation_contexts,
            (PresentationContextRQ(1, VERIFICATION, (IMPLICIT_LE,)),),
        )
        assert decoded.user_information is not None
        self.assertEqual(decoded.user_information.maximum_length, 4096)

    def test_unknown_context_sub_item_skipped(self) -> None:
        """
        Undefined sub-items inside a presentation context item are skipped.
        """
        context = raw_item(
            0x20,
            b"\x05\x00\x00\x00"
            + raw_item(0x30, VERIFICATION.encode())
            + raw_item(0xA0, b"x")
            + raw_item(0x40, IMPLICIT_LE.encode()),
        )
        decoded = decode_whole(associate_bytes(0x01, APPLICATION_CONTEXT + context))
        assert isinstance(decoded, AAssociateRQ)
        self.assertEqual(
            decoded.presentation_contexts,
            (PresentationContextRQ(5, VERIFICATION, (IMPLICIT_LE,)),),
        )

    def test_unknown_user_sub_item_round_trip(self) -> None:
        """
        An unknown user information sub-item is kept and encoded again.
        """
        data = associate_bytes(
            0x01,
            APPLICATION_CONTEXT
            + raw_item(
                0x50,
                raw_item(0x51, b"\x00\x00\x10\x00") + raw_item(0x7F, b"\x00vendor"),
            ),
        )
        decoded = decode_whole(data)
        assert isinstance(decoded, AAssociateRQ)
        assert decoded.user_information is not None
        self.assertEqual(
            decoded.user_information.unknown_sub_items,
            (UnknownSubItem(0x7F, b"\x00vendor"),),
        )
        self.assertEqual(decoded.encode(), data)

    def test_item_length_past_end(self) -> None:
        """
        An item whose length runs past the end of the PDU is invalid.
        """
        data = associate_bytes(0x01, APPLICATION_CONTEXT + b"\x20\x00\x00\x30\x01")
        error = self.assertRaises(PDUDecodeError, decode_whole, data)
        self.assertEqual(error.offset, ITEMS_OFFSET + len(APPLICATION_CONTEXT) + 2)
        self.assertEqual(error.found, "48")
        self.assertIn("item length of at most 1", error.expected)

    def test_truncated_item_header(self) -> None:
        """
        Fewer than 4 bytes left for an item header is invalid.
        """
        data = associate_bytes(0x01, APPLICATION_CONTEXT + b"\x50\x00")
        error = self.assertRaises(PDUDecodeError, decode_whole, data)
        self.assertEqual(error.expected, "a 4-byte item header")
        self.assertEqual(error.found, "2 bytes")

    def test_body_shorter_than_fixed_fields(self) -> None:
        """
        An A-ASSOCIATE-RQ body shorter than its 68 fixed bytes is invalid.
        """
        error = self.assertRaises(PDUDecodeError, decode_pdu, A_ASSOCIATE_RQ, bytes(67))
        self.assertEqual(error.offset, 2)
        self.assertEqual(error.expected, "a PDU length of at least 68")
        self.assertEqual(error.found, "67")

    def test_second_application_context(self) -> None:
        """
        Two application context items are invalid.
        """
        data = associate_bytes(0x02, APPLICATION_CONTEXT * 2)
        error = self.assertRaises(PDUDecodeError, decode_whole, data)
        self.assertEqual(error.pdu_name, "A-ASSOCIATE-AC")
        self.assertEqual(error.expected, "one application context item")

    def test_missing_abstract_syntax(self) -> None:
        """
        A presentation context item without an abstract syntax is invalid.
        """
        context = raw_item(0x20, b"\x07\x00\x00\x00" + raw_item(0x40, b"1.2"))
        data = associate_bytes(0x01, APPLICATION_CONTEXT + context)
        error = self.assertRaises(PDUDecodeError, decode_whole, data)
        self.assertEqual(
            error.expected, "an abstract syntax sub-item in presentation context 7"
        )
        self.assertEqual(error.offset, ITEMS_OFFSET + len(APPLICATION_CONTEXT))

    def test_two_abstract_syntaxes(self) -> None:
        """
        A presentation context item with two abstract syntaxes is invalid.
        """
        context = raw_item(
            0x20, b"\x01\x00\x00\x00" + raw_item(0x30, b"1.2") + raw_item(0x30, b"1.3")
        )
        data = associate_bytes(0x01, APPLICATION_CONTEXT + context)
        error = self.assertRaises(PDUDecodeError, decode_whole, data)
        self.assertEqual(error.expected, "one abstract syntax sub-item")

    def test_short_presentation_context(self) -> None:
        """
        A presentation context item shorter than its 4 fixed bytes is invalid.
        """
        data = associate_bytes(0x01, APPLICATION_CONTEXT + raw_item(0x20, b"\x01"))
        error = self.assertRaises(PDUDecodeError, decode_whole, data)
        self.assertEqual(error.found, "1")

    def test_rejected_context_without_transfer_syntax(self) -> None:
        """
        A rejected presentation context in an AC may lack its transfer syntax.
        """
        context = raw_item(0x21, b"\x01\x00\x04\x00")
        decoded = decode_whole(associate_bytes(0x02, APPLICATION_CONTEXT + context))
        assert isinstance(decoded, AAssociateAC)
        self.assertEqual(
            decoded.presentation_contexts,
            (PresentationContextAC(1, CONTEXT_TRANSFER_SYNTAXES_NOT_SUPPORTED, None),),
        )
        self.assertEqual(
            decoded.encode(), associate_bytes(0x02, APPLICATION_CONTEXT + context)
        )

    def test_uid_padding_stripped(self) -> None:
        """
        A trailing NUL or space after a UID is dropped when decoding.
        """
        context = raw_item(
            0x20,
            b"\x01\x00\x00\x00"
            + raw_item(0x30, b"1.2.840.10008.1.1\x00")
            + raw_item(0x40, b"1.2.840.10008.1.2 "),
        )
        decoded = decode_whole(associate_bytes(0x01, APPLICATION_CONTEXT + context))
        assert isinstance(decoded, AAssociateRQ)
        self.assertEqual(
            decoded.presentation_contexts,
            (PresentationContextRQ(1, VERIFICATION, (IMPLICIT_LE,)),),
        )

    def test_ae_title_padding_stripped(self) -> None:
        """
        AE titles lose their leading and trailing spaces and NUL padding.
        """
        data = bytearray(associate_bytes(0x01, APPLICATION_CONTEXT))
        data[10:26] = b"  CT_01\x00\x00\x00\x00\x00\x00\x00\x00\x00"
        decoded = decode_whole(bytes(data))
        assert isinstance(decoded, AAssociateRQ)
        self.assertEqual(decoded.called_ae_title, "CT_01")
        self.assertEqual(decoded.calling_ae_title, "ECHOSCU")

    def test_long_ae_title_rejected(self) -> None:
        """
        Encoding an AE title longer than 16 characters raises ValueError.
        """
        pdu = AAssociateRQ("A" * 17, "SCU", (), None)
        self.assertRaises(ValueError, pdu.encode)

    def test_oversized_item_rejected(self) -> None:
        """
        Encoding an item beyond the 16-bit item length raises ValueError.
        """
        item = SOPClassExtendedNegotiation("1.2", bytes(70000))
        self.assertRaises(ValueError, item.encode)

    def test_sub_item_wrong_fixed_length(self) -> None:
        """
        A maximum length sub-item of 3 bytes is invalid.
        """
        info = raw_item(0x50, raw_item(0x51, b"\x00\x40\x00"))
        data = associate_bytes(0x01, APPLICATION_CONTEXT + info)
        error = self.assertRaises(PDUDecodeError, decode_whole, data)
        self.assertEqual(error.expected, "an item length of 4")
        self.assertEqual(error.offset, ITEMS_OFFSET + len(APPLICATION_CONTEXT) + 6)

    def test_role_selection_uid_past_end(self) -> None:
        """
        A role selection UID length beyond its sub-item is invalid.
        """
        info = raw_item(0x50, raw_item(0x54, b"\x00\x09" + b"1.2\x00\x01"))
        data = associate_bytes(0x01, APPLICATION_CONTEXT + info)
        error = self.assertRaises(PDUDecodeError, decode_whole, data)
        self.assertEqual(error.expected, "a SOP class UID length of at most 5")

    def test_user_identity_trailing_bytes(self) -> None:
        """
        Bytes after the secondary field of a user identity sub-item are
        invalid.
        """
        identity = b"\x01\x00\x00\x01u\x00\x00!"
        info = raw_item(0x50, raw_item(0x58, identity))
        data = associate_bytes(0x01, APPLICATION_CONTEXT + info)
        error = self.assertRaises(PDUDecodeError, decode_whole, data)
        self.assertEqual(error.expected, "the end of the user identity sub-item")
        self.assertEqual(error.found, "1 more bytes")

    def test_128_presentation_contexts(self) -> None:
        """
        An A-ASSOCIATE-RQ with 128 presentation contexts round-trips.
        """
        contexts = tuple(
            PresentationContextRQ(
                context_id,
                f"1.2.840.10008.5.1.4.1.1.{context_id}",
                (EXPLICIT_LE, IMPLICIT_LE),
            )
            for context_id in range(1, 256, 2)
        )
        pdu = AAssociateRQ(
            "STORESCP",
            "STORESCU",
            contexts,
            UserInformation((MaximumLength(0),)),
        )
        decoded = decode_whole(pdu.encode())
        assert isinstance(decoded, AAssociateRQ)
        self.assertEqual(len(decoded.presentation_contexts), 128)
        self.assertEqual(decoded, pdu)


class PDataTFTests(SynchronousTestCase):
    """
    Tests of the P-DATA-TF decoder and the part encoder.
    """

    def test_pdv_data_is_view(self) -> None:
        """
        Decoded PDV data are memoryview slices of the body, not copies.
        """
        body = GOLDEN_PDATA[6:]
        decoded = decode_pdu(P_DATA_TF, body)
        assert isinstance(decoded, PDataTF)
        for pdv in decoded.pdvs:
            assert isinstance(pdv.data, memoryview)
            self.assertIs(pdv.data.obj, body)
        self.assertEqual(decoded.pdvs[1].data, b"abcde")

    def test_pdv_data_view_of_bytearray(self) -> None:
        """
        A bytearray body is shared too: a change to it shows in the PDV data.
        """
        body = bytearray(GOLDEN_PDATA[6:])
        decoded = decode_pdu(P_DATA_TF, memoryview(body))
        assert isinstance(decoded, PDataTF)
        body[-1] = ord("Z")
        self.assertEqual(bytes(decoded.pdvs[1].data), b"abcdZ")

    def test_empty_pdata(self) -> None:
        """
        A P-DATA-TF without any PDV item is invalid.
        """
        error = self.assertRaises(PDUDecodeError, decode_pdu, P_DATA_TF, b"")
        self.assertEqual(error.offset, 2)
        self.assertEqual(error.pdu_name, "P-DATA-TF")

    def test_pdv_length_below_two(self) -> None:
        """
        A PDV item length below 2 is invalid.
        """
        body = b"\x00\x00\x00\x01\x01\x03"
        error = self.assertRaises(PDUDecodeError, decode_pdu, P_DATA_TF, body)
        self.assertEqual(
            str(error),
            "P-DATA-TF: at offset 6, expected a PDV item length of at least 2,"
            " found 1",
        )

    def test_pdv_length_past_end(self) -> None:
        """
        A PDV item length beyond the PDU body is invalid.
        """
        body = GOLDEN_PDATA[6:16] + b"\x00\x00\x00\x08\x03\x00abcde"
        error = self.assertRaises(PDUDecodeError, decode_pdu, P_DATA_TF, body)
        self.assertEqual(error.offset, 16)
        self.assertEqual(error.expected, "a PDV item length of at most 7")
        self.assertEqual(error.found, "8")

    def test_truncated_pdv_header(self) -> None:
        """
        Fewer than 6 bytes left for a PDV item header is invalid.
        """
        body = GOLDEN_PDATA[6:16] + b"\x00\x00\x00"
        error = self.assertRaises(PDUDecodeError, decode_pdu, P_DATA_TF, body)
        self.assertEqual(error.found, "3 bytes")

    def test_odd_pdu_length(self) -> None:
        """
        A P-DATA-TF of odd length with a 1-byte fragment decodes.
        """
        body = b"\x00\x00\x00\x03\x01\x02!"
        decoded = decode_pdu(P_DATA_TF, body)
        self.assertEqual(decoded, PDataTF((PresentationDataValue(1, 2, b"!"),)))

    def test_parts_keep_payloads(self) -> None:
        """
        The parts for writeSequence hold each payload object itself.
        """
        first = b"\x01" * 100
        second = memoryview(b"\x02" * 51)
        pdvs = [PresentationDataValue(1, 0, first), PresentationDataValue(1, 2, second)]
        parts = encode_pdata_tf_parts(pdvs)
        self.assertEqual(len(parts), 4)
        self.assertIs(parts[1], first)
        self.assertIs(parts[3], second)
        self.assertEqual(parts[0], b"\x04\x00\x00\x00\x00\xa3\x00\x00\x00\x66\x01\x00")
        self.assertEqual(parts[2], b"\x00\x00\x00\x35\x01\x02")
        self.assertEqual(b"".join(parts), PDataTF(tuple(pdvs)).encode())

    def test_parts_need_a_pdv(self) -> None:
        """
        Encoding a P-DATA-TF without PDVs raises ValueError.
        """
        self.assertRaises(ValueError, encode_pdata_tf_parts, [])


class FramingTests(SynchronousTestCase):
    """
    Tests of the PDU type dispatch and of L{decode_pdu_stream}.
    """

    def test_unknown_pdu_type(self) -> None:
        """
        An unknown PDU type is reported with the name "PDU" at offset 0.
        """
        error = self.assertRaises(PDUDecodeError, decode_pdu, 0x08, b"")
        self.assertEqual(
            str(error),
            "PDU: at offset 0, expected a PDU type from 0x01 to 0x07, found 0x08",
        )
        self.assertEqual(error.pdu_type, 0x08)

    def test_fixed_length_mismatch(self) -> None:
        """
        A-RELEASE, A-ABORT and A-ASSOCIATE-RJ bodies must be 4 bytes long.
        """
        for pdu_type in (A_ASSOCIATE_RJ, A_RELEASE_RQ, A_RELEASE_RP, A_ABORT):
            for body in (b"", bytes(3), bytes(5)):
                error = self.assertRaises(PDUDecodeError, decode_pdu, pdu_type, body)
                self.assertEqual(error.offset, 2)
                self.assertEqual(error.expected, "a PDU length of 4")
                self.assertEqual(error.found, str(len(body)))

    def test_stream_consumes_one_pdu(self) -> None:
        """
        decode_pdu_stream decodes the first PDU and reports its length.
        """
        pdu, consumed = decode_pdu_stream(GOLDEN_ABORT + GOLDEN_RELEASE_RQ)
        self.assertEqual(pdu, AAbort(2, 6))
        self.assertEqual(consumed, len(GOLDEN_ABORT))

    def test_stream_short_data(self) -> None:
        """
        decode_pdu_stream raises when the data end before the PDU does.
        """
        error = self.assertRaises(PDUDecodeError, decode_pdu_stream, GOLDEN_RJ[:-1])
        self.assertEqual(error.pdu_name, "A-ASSOCIATE-RJ")
        self.assertEqual(error.found, "3")
        error = self.assertRaises(PDUDecodeError, decode_pdu_stream, b"\x01\x00")
        self.assertEqual(error.expected, "a 6-byte PDU header")

    def test_decode_memoryview_of_other_format(self) -> None:
        """
        A memoryview of another item size is read as bytes.
        """
        body = memoryview(bytearray(b"\x00\x01\x01\x07")).cast("H")
        self.assertEqual(decode_pdu(A_ASSOCIATE_RJ, body), AAssociateRJ(1, 1, 7))

    def test_associate_ac_type_constant(self) -> None:
        """
        The PDU classes carry their PDU type and standard name.
        """
        self.assertEqual(AAssociateAC.pdu_type, A_ASSOCIATE_AC)
        self.assertEqual(AAssociateAC.name, "A-ASSOCIATE-AC")
        self.assertEqual(PDataTF.name, "P-DATA-TF")


class PropertyTests(SynchronousTestCase):
    """
    Hypothesis tests over every PDU type and item.
    """

    @given(pdus)
    def test_round_trip(self, pdu: PDU) -> None:
        """
        Every PDU decodes from its encoding to an equal PDU.
        """
        data = pdu.encode()
        decoded, consumed = decode_pdu_stream(data)
        self.assertEqual(decoded, pdu)
        self.assertEqual(consumed, len(data))
        self.assertEqual(struct.unpack(">L", data[2:6])[0], len(data) - 6)

    @given(pdata_tfs)
    def test_parts_join_to_encoding(self, pdu: PDataTF) -> None:
        """
        The writeSequence parts of a P-DATA-TF join to its encoding.
        """
        parts = encode_pdata_tf_parts(pdu.pdvs)
        self.assertEqual(b"".join(parts), pdu.encode())
        self.assertEqual(len(parts), 2 * len(pdu.pdvs))

    @given(st.integers(-1, 256), st.binary(max_size=300))
    def test_random_bytes_raise_decode_error_only(
        self, pdu_type: int, body: bytes
    ) -> None:
        """
        Random bodies either decode or raise PDUDecodeError.
        """
        try:
            decode_pdu(pdu_type, body)
        except PDUDecodeError as error:
            self.assertGreaterEqual(error.offset, 0)
            self.assertLessEqual(error.offset, len(body) + 6)

    @given(mutated_pdus())
    def test_mutated_bytes_raise_decode_error_only(self, data: bytes) -> None:
        """
        Damaged PDUs either decode or raise PDUDecodeError, and what decodes
        encodes to bytes that decode to the same PDU.
        """
        try:
            decoded, consumed = decode_pdu_stream(data)
        except PDUDecodeError as error:
            self.assertGreaterEqual(error.offset, 0)
            self.assertLessEqual(error.offset, len(data))
            return
        self.assertLessEqual(consumed, len(data))
        self.assertEqual(decode_whole(decoded.encode()), decoded)


class PynetdicomInteropTests(SynchronousTestCase):
    """
    Cross-checks against pynetdicom's codec, an independent implementation.
    """

    def test_pynetdicom_rq_decodes(self) -> None:
        """
        An A-ASSOCIATE-RQ encoded by pynetdicom decodes and re-encodes to the
        same bytes.
        """
        from pynetdicom.pdu import A_ASSOCIATE_RQ as PynetdicomRQ
        from pynetdicom.pdu_primitives import (
            A_ASSOCIATE,
            ImplementationClassUIDNotification,
            MaximumLengthNotification,
            SCP_SCU_RoleSelectionNegotiation,
        )
        from pynetdicom.presentation import build_context

        primitive = A_ASSOCIATE()
        primitive.application_context_name = "1.2.840.10008.3.1.1.1"
        primitive.calling_ae_title = "STORESCU"
        primitive.called_ae_title = "STORESCP"
        context = build_context(CT_IMAGE_STORAGE, [EXPLICIT_LE, IMPLICIT_LE])
        context.context_id = 1
        primitive.presentation_context_definition_list = [context]
        maximum_length = MaximumLengthNotification()
        maximum_length.maximum_length_received = 16384
        class_uid = ImplementationClassUIDNotification()
        class_uid.implementation_class_uid = "1.2.3.4"
        role = SCP_SCU_RoleSelectionNegotiation()
        role.sop_class_uid = CT_IMAGE_STORAGE
        role.scu_role = False
        role.scp_role = True
        primitive.user_information = [maximum_length, class_uid, role]
        pdu = PynetdicomRQ()
        pdu.from_primitive(primitive)
        data = pdu.encode()

        decoded = decode_whole(data)
        assert isinstance(decoded, AAssociateRQ)
        self.assertEqual(decoded.called_ae_title, "STORESCP")
        self.assertEqual(
            decoded.presentation_contexts,
            (PresentationContextRQ(1, CT_IMAGE_STORAGE, (EXPLICIT_LE, IMPLICIT_LE)),),
        )
        assert decoded.user_information is not None
        self.assertEqual(decoded.user_information.maximum_length, 16384)
        self.assertEqual(
            decoded.user_information.role_selections,
            (SCPSCURoleSelection(CT_IMAGE_STORAGE, False, True),),
        )
        self.assertEqual(decoded.encode(), data)

    def test_pynetdicom_decodes_golden_ac(self) -> None:
        """
        pynetdicom reads the golden A-ASSOCIATE-AC as this codec does.
        """
        from pynetdicom.pdu import A_ASSOCIATE_AC as PynetdicomAC

        pdu = PynetdicomAC()
        pdu.decode(EXPECTED_AC.encode())
        results = [
            (context.context_id, context.result, context.transfer_syntax)
            for context in pdu.presentation_context
        ]
        self.assertEqual(
            results,
            [
                (1, CONTEXT_ACCEPTANCE, IMPLICIT_LE),
                (3, CONTEXT_ABSTRACT_SYNTAX_NOT_SUPPORTED, IMPLICIT_LE),
            ],
        )
        info = pdu.user_information
        assert info is not None
        self.assertEqual(info.maximum_length, 32768)
        self.assertEqual(info.implementation_class_uid, "1.2.3.4")
