"""
The seven PDUs of the DICOM upper layer protocol (PS3.8 section 9.3), as
frozen dataclasses with C{encode}, and L{decode_pdu} for received bytes.

The codec is pure: it does no I/O and keeps no state. L{decode_pdu} takes the
body of one PDU, the bytes after the 6-byte header, which the protocol has
already framed, and raises L{PDUDecodeError} and nothing else for any bytes
that are not a valid PDU of that type. The items of the A-ASSOCIATE PDUs live
in L{twistedpacs.ul.items} and are re-exported here.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from twistedpacs.ul.items import (
    ABSTRACT_SYNTAX_SUB_ITEM,
    APPLICATION_CONTEXT_ITEM,
    ASYNCHRONOUS_OPERATIONS_WINDOW_SUB_ITEM,
    CONTEXT_ABSTRACT_SYNTAX_NOT_SUPPORTED,
    CONTEXT_ACCEPTANCE,
    CONTEXT_PROVIDER_REJECTION_NO_REASON,
    CONTEXT_TRANSFER_SYNTAXES_NOT_SUPPORTED,
    CONTEXT_USER_REJECTION,
    DEFINED_ITEM_TYPES,
    DICOM_APPLICATION_CONTEXT_NAME,
    IMPLEMENTATION_CLASS_UID_SUB_ITEM,
    IMPLEMENTATION_VERSION_NAME_SUB_ITEM,
    MAXIMUM_LENGTH_SUB_ITEM,
    PDU_HEADER,
    PDU_HEADER_LENGTH,
    PRESENTATION_CONTEXT_AC_ITEM,
    PRESENTATION_CONTEXT_RQ_ITEM,
    SCP_SCU_ROLE_SELECTION_SUB_ITEM,
    SOP_CLASS_COMMON_EXTENDED_NEGOTIATION_SUB_ITEM,
    SOP_CLASS_EXTENDED_NEGOTIATION_SUB_ITEM,
    TRANSFER_SYNTAX_SUB_ITEM,
    USER_IDENTITY_AC_SUB_ITEM,
    USER_IDENTITY_JWT,
    USER_IDENTITY_KERBEROS,
    USER_IDENTITY_RQ_SUB_ITEM,
    USER_IDENTITY_SAML,
    USER_IDENTITY_USERNAME,
    USER_IDENTITY_USERNAME_AND_PASSCODE,
    USER_INFORMATION_ITEM,
    AsynchronousOperationsWindow,
    ImplementationClassUID,
    ImplementationVersionName,
    ItemDecoder,
    MaximumLength,
    PDUDecodeError,
    PresentationContextAC,
    PresentationContextRQ,
    SCPSCURoleSelection,
    SOPClassCommonExtendedNegotiation,
    SOPClassExtendedNegotiation,
    UnknownSubItem,
    UserIdentityAC,
    UserIdentityRQ,
    UserInformation,
    UserInformationSubItem,
    encode_item,
    encode_text,
)

__all__ = [
    "ABORT_REASON_INVALID_PDU_PARAMETER_VALUE",
    "ABORT_REASON_NOT_SPECIFIED",
    "ABORT_REASON_UNEXPECTED_PDU",
    "ABORT_REASON_UNEXPECTED_PDU_PARAMETER",
    "ABORT_REASON_UNRECOGNIZED_PDU",
    "ABORT_REASON_UNRECOGNIZED_PDU_PARAMETER",
    "ABORT_SOURCE_SERVICE_PROVIDER",
    "ABORT_SOURCE_SERVICE_USER",
    "ABSTRACT_SYNTAX_SUB_ITEM",
    "APPLICATION_CONTEXT_ITEM",
    "ASYNCHRONOUS_OPERATIONS_WINDOW_SUB_ITEM",
    "A_ABORT",
    "A_ASSOCIATE_AC",
    "A_ASSOCIATE_RJ",
    "A_ASSOCIATE_RQ",
    "A_RELEASE_RP",
    "A_RELEASE_RQ",
    "CONTEXT_ABSTRACT_SYNTAX_NOT_SUPPORTED",
    "CONTEXT_ACCEPTANCE",
    "CONTEXT_PROVIDER_REJECTION_NO_REASON",
    "CONTEXT_TRANSFER_SYNTAXES_NOT_SUPPORTED",
    "CONTEXT_USER_REJECTION",
    "DICOM_APPLICATION_CONTEXT_NAME",
    "IMPLEMENTATION_CLASS_UID_SUB_ITEM",
    "IMPLEMENTATION_VERSION_NAME_SUB_ITEM",
    "MAXIMUM_LENGTH_SUB_ITEM",
    "PDU",
    "PDU_HEADER",
    "PDU_HEADER_LENGTH",
    "PDU_NAMES",
    "PDV_COMMAND",
    "PDV_ITEM_OVERHEAD",
    "PDV_LAST_FRAGMENT",
    "PRESENTATION_CONTEXT_AC_ITEM",
    "PRESENTATION_CONTEXT_RQ_ITEM",
    "PROTOCOL_VERSION",
    "P_DATA_TF",
    "REJECT_ACSE_NO_REASON_GIVEN",
    "REJECT_ACSE_PROTOCOL_VERSION_NOT_SUPPORTED",
    "REJECT_PRESENTATION_LOCAL_LIMIT_EXCEEDED",
    "REJECT_PRESENTATION_TEMPORARY_CONGESTION",
    "REJECT_RESULT_PERMANENT",
    "REJECT_RESULT_TRANSIENT",
    "REJECT_SOURCE_SERVICE_PROVIDER_ACSE",
    "REJECT_SOURCE_SERVICE_PROVIDER_PRESENTATION",
    "REJECT_SOURCE_SERVICE_USER",
    "REJECT_USER_APPLICATION_CONTEXT_NAME_NOT_SUPPORTED",
    "REJECT_USER_CALLED_AE_TITLE_NOT_RECOGNIZED",
    "REJECT_USER_CALLING_AE_TITLE_NOT_RECOGNIZED",
    "REJECT_USER_NO_REASON_GIVEN",
    "SCP_SCU_ROLE_SELECTION_SUB_ITEM",
    "SOP_CLASS_COMMON_EXTENDED_NEGOTIATION_SUB_ITEM",
    "SOP_CLASS_EXTENDED_NEGOTIATION_SUB_ITEM",
    "TRANSFER_SYNTAX_SUB_ITEM",
    "USER_IDENTITY_AC_SUB_ITEM",
    "USER_IDENTITY_JWT",
    "USER_IDENTITY_KERBEROS",
    "USER_IDENTITY_RQ_SUB_ITEM",
    "USER_IDENTITY_SAML",
    "USER_IDENTITY_USERNAME",
    "USER_IDENTITY_USERNAME_AND_PASSCODE",
    "USER_INFORMATION_ITEM",
    "AAbort",
    "AAssociateAC",
    "AAssociateRJ",
    "AAssociateRQ",
    "AReleaseRP",
    "AReleaseRQ",
    "AsynchronousOperationsWindow",
    "ImplementationClassUID",
    "ImplementationVersionName",
    "MaximumLength",
    "PDUDecodeError",
    "PDataTF",
    "PresentationContextAC",
    "PresentationContextRQ",
    "PresentationDataValue",
    "SCPSCURoleSelection",
    "SOPClassCommonExtendedNegotiation",
    "SOPClassExtendedNegotiation",
    "UnknownSubItem",
    "UserIdentityAC",
    "UserIdentityRQ",
    "UserInformation",
    "UserInformationSubItem",
    "decode_pdu",
    "decode_pdu_stream",
    "encode_pdata_tf_parts",
]

A_ASSOCIATE_RQ = 0x01
A_ASSOCIATE_AC = 0x02
A_ASSOCIATE_RJ = 0x03
P_DATA_TF = 0x04
A_RELEASE_RQ = 0x05
A_RELEASE_RP = 0x06
A_ABORT = 0x07

PDU_NAMES = {
    A_ASSOCIATE_RQ: "A-ASSOCIATE-RQ",
    A_ASSOCIATE_AC: "A-ASSOCIATE-AC",
    A_ASSOCIATE_RJ: "A-ASSOCIATE-RJ",
    P_DATA_TF: "P-DATA-TF",
    A_RELEASE_RQ: "A-RELEASE-RQ",
    A_RELEASE_RP: "A-RELEASE-RP",
    A_ABORT: "A-ABORT",
}

# Bit 0 of the protocol version field: version 1, the only one defined.
PROTOCOL_VERSION = 0x0001

# A-ASSOCIATE-RJ result, source and reason (PS3.8 Table 9-21). The reason
# values depend on the source, so each name carries its source.
REJECT_RESULT_PERMANENT = 1
REJECT_RESULT_TRANSIENT = 2
REJECT_SOURCE_SERVICE_USER = 1
REJECT_SOURCE_SERVICE_PROVIDER_ACSE = 2
REJECT_SOURCE_SERVICE_PROVIDER_PRESENTATION = 3
REJECT_USER_NO_REASON_GIVEN = 1
REJECT_USER_APPLICATION_CONTEXT_NAME_NOT_SUPPORTED = 2
REJECT_USER_CALLING_AE_TITLE_NOT_RECOGNIZED = 3
REJECT_USER_CALLED_AE_TITLE_NOT_RECOGNIZED = 7
REJECT_ACSE_NO_REASON_GIVEN = 1
REJECT_ACSE_PROTOCOL_VERSION_NOT_SUPPORTED = 2
REJECT_PRESENTATION_TEMPORARY_CONGESTION = 1
REJECT_PRESENTATION_LOCAL_LIMIT_EXCEEDED = 2

# A-ABORT source and reason (PS3.8 Table 9-26). The reason is significant
# only when the source is the service provider.
ABORT_SOURCE_SERVICE_USER = 0
ABORT_SOURCE_SERVICE_PROVIDER = 2
ABORT_REASON_NOT_SPECIFIED = 0
ABORT_REASON_UNRECOGNIZED_PDU = 1
ABORT_REASON_UNEXPECTED_PDU = 2
ABORT_REASON_UNRECOGNIZED_PDU_PARAMETER = 4
ABORT_REASON_UNEXPECTED_PDU_PARAMETER = 5
ABORT_REASON_INVALID_PDU_PARAMETER_VALUE = 6

# Bits of the message control header of a presentation data value (PS3.8
# Annex E.2): bit 0 set for a command, bit 1 set for the last fragment.
PDV_COMMAND = 0x01
PDV_LAST_FRAGMENT = 0x02

# Bytes a PDV item adds to its data: item length, context ID and header byte.
PDV_ITEM_OVERHEAD = 6

_ASSOCIATE_FIXED = struct.Struct(">HH16s16s32s")
_FOUR_BYTES = struct.Struct(">BBBB")
_PDV_HEADER = struct.Struct(">LBB")
_PDATA_HEADER_WITH_PDV = struct.Struct(">BBLLBB")

_AE_TITLE_LENGTH = 16
_AE_TITLE_PADDING = " \x00"


def _encode_pdu(pdu_type: int, body: bytes) -> bytes:
    return PDU_HEADER.pack(pdu_type, 0, len(body)) + body


def _encode_ae_title(title: str) -> bytes:
    raw = encode_text(title)
    if len(raw) > _AE_TITLE_LENGTH:
        raise ValueError(f"AE title {title!r} is longer than 16 characters")
    return raw.ljust(_AE_TITLE_LENGTH, b" ")


def _decode_ae_title(raw: bytes) -> str:
    return raw.decode("latin-1").strip(_AE_TITLE_PADDING)


def _encode_associate(
    pdu_type: int,
    protocol_version: int,
    called_ae_title: str,
    calling_ae_title: str,
    application_context_name: str,
    contexts: Iterable[PresentationContextRQ | PresentationContextAC],
    user_information: UserInformation | None,
) -> bytes:
    parts = [
        _ASSOCIATE_FIXED.pack(
            protocol_version,
            0,
            _encode_ae_title(called_ae_title),
            _encode_ae_title(calling_ae_title),
            b"",
        ),
        encode_item(APPLICATION_CONTEXT_ITEM, encode_text(application_context_name)),
    ]
    parts.extend(context.encode() for context in contexts)
    if user_information is not None:
        parts.append(user_information.encode())
    return _encode_pdu(pdu_type, b"".join(parts))


@dataclass(frozen=True)
class AAssociateRQ:
    """
    The A-ASSOCIATE-RQ PDU (PS3.8 section 9.3.2).

    @ivar called_ae_title: The AE title of the acceptor, without padding.
    @ivar calling_ae_title: The AE title of the requestor, without padding.
    @ivar presentation_contexts: The proposed presentation contexts. Decoding
        accepts an empty tuple and leaves the response to negotiation.
    @ivar user_information: The user information item, or L{None} if the
        PDU has none.
    @ivar application_context_name: The application context name UID.
    @ivar protocol_version: The protocol version bits as received. Decoding
        accepts any value, so the protocol can reject an unsupported version
        with an A-ASSOCIATE-RJ.
    """

    pdu_type: ClassVar[int] = A_ASSOCIATE_RQ
    name: ClassVar[str] = "A-ASSOCIATE-RQ"

    called_ae_title: str
    calling_ae_title: str
    presentation_contexts: tuple[PresentationContextRQ, ...]
    user_information: UserInformation | None
    application_context_name: str = DICOM_APPLICATION_CONTEXT_NAME
    protocol_version: int = PROTOCOL_VERSION

    def encode(self) -> bytes:
        """
        Encode the whole PDU, header included.

        @raise ValueError: If an AE title is longer than 16 characters or an
            item does not fit its 16-bit length.
        """
        return _encode_associate(
            A_ASSOCIATE_RQ,
            self.protocol_version,
            self.called_ae_title,
            self.calling_ae_title,
            self.application_context_name,
            self.presentation_contexts,
            self.user_information,
        )


@dataclass(frozen=True)
class AAssociateAC:
    """
    The A-ASSOCIATE-AC PDU (PS3.8 section 9.3.3).

    @ivar called_ae_title: The called AE title of the A-ASSOCIATE-RQ, which
        PS3.8 requires the acceptor to return unchanged and receivers not
        to test.
    @ivar calling_ae_title: The calling AE title of the A-ASSOCIATE-RQ,
        returned in the same way.
    @ivar presentation_contexts: One result for each proposed context.
    @ivar user_information: The user information item, or L{None} if the
        PDU has none.
    @ivar application_context_name: The application context name UID.
    @ivar protocol_version: The protocol version bits as received.
    """

    pdu_type: ClassVar[int] = A_ASSOCIATE_AC
    name: ClassVar[str] = "A-ASSOCIATE-AC"

    called_ae_title: str
    calling_ae_title: str
    presentation_contexts: tuple[PresentationContextAC, ...]
    user_information: UserInformation | None
    application_context_name: str = DICOM_APPLICATION_CONTEXT_NAME
    protocol_version: int = PROTOCOL_VERSION

    def encode(self) -> bytes:
        """
        Encode the whole PDU, header included.

        @raise ValueError: If an AE title is longer than 16 characters or an
            item does not fit its 16-bit length.
        """
        return _encode_associate(
            A_ASSOCIATE_AC,
            self.protocol_version,
            self.called_ae_title,
            self.calling_ae_title,
            self.application_context_name,
            self.presentation_contexts,
            self.user_information,
        )


@dataclass(frozen=True)
class AAssociateRJ:
    """
    The A-ASSOCIATE-RJ PDU (PS3.8 section 9.3.4).

    @ivar result: C{REJECT_RESULT_PERMANENT} or C{REJECT_RESULT_TRANSIENT}.
    @ivar source: One of the C{REJECT_SOURCE_*} values.
    @ivar reason: The reason, one of the C{REJECT_USER_*}, C{REJECT_ACSE_*}
        or C{REJECT_PRESENTATION_*} values as the source requires.
    """

    pdu_type: ClassVar[int] = A_ASSOCIATE_RJ
    name: ClassVar[str] = "A-ASSOCIATE-RJ"

    result: int
    source: int
    reason: int

    def encode(self) -> bytes:
        """
        Encode the whole PDU, header included.
        """
        body = _FOUR_BYTES.pack(0, self.result, self.source, self.reason)
        return _encode_pdu(A_ASSOCIATE_RJ, body)


@dataclass(frozen=True, slots=True)
class PresentationDataValue:
    """
    One presentation data value item of a P-DATA-TF PDU (PS3.8 section
    9.3.5.1): a fragment of a command or a data set.

    @ivar context_id: The presentation context ID.
    @ivar message_control_header: The header byte of PS3.8 Annex E.2, a
        combination of C{PDV_COMMAND} and C{PDV_LAST_FRAGMENT}.
    @ivar data: The fragment. A decoded value is a slice of the PDU body
        that was decoded, not a copy, and keeps that body alive.
    """

    context_id: int
    message_control_header: int
    data: bytes | memoryview

    def __repr__(self) -> str:
        return (
            f"PresentationDataValue(context_id={self.context_id}, "
            f"message_control_header=0x{self.message_control_header:02x}, "
            f"data=<{len(self.data)} bytes>)"
        )

    @property
    def is_command(self) -> bool:
        """
        Whether the fragment is part of a command set, not of a data set.
        """
        return bool(self.message_control_header & PDV_COMMAND)

    @property
    def is_last(self) -> bool:
        """
        Whether the fragment is the last of its command set or data set.
        """
        return bool(self.message_control_header & PDV_LAST_FRAGMENT)


@dataclass(frozen=True)
class PDataTF:
    """
    The P-DATA-TF PDU (PS3.8 section 9.3.5).

    @ivar pdvs: The presentation data value items, at least one.
    """

    pdu_type: ClassVar[int] = P_DATA_TF
    name: ClassVar[str] = "P-DATA-TF"

    pdvs: tuple[PresentationDataValue, ...]

    def encode(self) -> bytes:
        """
        Encode the whole PDU as one L{bytes}, copying every payload.
        """
        return b"".join(encode_pdata_tf_parts(self.pdvs))


def encode_pdata_tf_parts(
    pdvs: Sequence[PresentationDataValue],
) -> list[bytes | memoryview]:
    """
    Encode a P-DATA-TF PDU as a list of parts for C{transport.writeSequence},
    without copying the payloads.

    The PDU header and each PDV item header are small L{bytes}. Each payload
    is the PDV's own C{data} object.

    @param pdvs: At least one item. Each C{data} must be L{bytes} or a
        memoryview of bytes, so that C{len} counts bytes.
    @return: The parts, whose concatenation is the PDU.
    @raise ValueError: If C{pdvs} is empty.
    @raise struct.error: If a context ID or header byte is outside 0 to 255.
    """
    if not pdvs:
        raise ValueError("a P-DATA-TF PDU needs at least one PDV item")
    pdu_length = PDV_ITEM_OVERHEAD * len(pdvs)
    for pdv in pdvs:
        pdu_length += len(pdv.data)
    first = pdvs[0]
    parts: list[bytes | memoryview] = [
        _PDATA_HEADER_WITH_PDV.pack(
            P_DATA_TF,
            0,
            pdu_length,
            len(first.data) + 2,
            first.context_id,
            first.message_control_header,
        ),
        first.data,
    ]
    for pdv in pdvs[1:]:
        parts.append(
            _PDV_HEADER.pack(
                len(pdv.data) + 2, pdv.context_id, pdv.message_control_header
            )
        )
        parts.append(pdv.data)
    return parts


@dataclass(frozen=True)
class AReleaseRQ:
    """
    The A-RELEASE-RQ PDU (PS3.8 section 9.3.6).
    """

    pdu_type: ClassVar[int] = A_RELEASE_RQ
    name: ClassVar[str] = "A-RELEASE-RQ"

    def encode(self) -> bytes:
        """
        Encode the whole PDU, header included.
        """
        return _RELEASE_RQ_BYTES


@dataclass(frozen=True)
class AReleaseRP:
    """
    The A-RELEASE-RP PDU (PS3.8 section 9.3.7).
    """

    pdu_type: ClassVar[int] = A_RELEASE_RP
    name: ClassVar[str] = "A-RELEASE-RP"

    def encode(self) -> bytes:
        """
        Encode the whole PDU, header included.
        """
        return _RELEASE_RP_BYTES


@dataclass(frozen=True)
class AAbort:
    """
    The A-ABORT PDU (PS3.8 section 9.3.8).

    @ivar source: C{ABORT_SOURCE_SERVICE_USER} or
        C{ABORT_SOURCE_SERVICE_PROVIDER}.
    @ivar reason: One of the C{ABORT_REASON_*} values, significant only when
        the source is the service provider.
    """

    pdu_type: ClassVar[int] = A_ABORT
    name: ClassVar[str] = "A-ABORT"

    source: int = ABORT_SOURCE_SERVICE_USER
    reason: int = ABORT_REASON_NOT_SPECIFIED

    def encode(self) -> bytes:
        """
        Encode the whole PDU, header included.
        """
        return _encode_pdu(A_ABORT, _FOUR_BYTES.pack(0, 0, self.source, self.reason))


_RELEASE_RQ_BYTES = _encode_pdu(A_RELEASE_RQ, bytes(4))
_RELEASE_RP_BYTES = _encode_pdu(A_RELEASE_RP, bytes(4))

PDU = (
    AAssociateRQ
    | AAssociateAC
    | AAssociateRJ
    | PDataTF
    | AReleaseRQ
    | AReleaseRP
    | AAbort
)


def _fail(pdu_type: int, body_offset: int, expected: str, found: str) -> PDUDecodeError:
    return PDUDecodeError(
        PDU_NAMES[pdu_type],
        pdu_type,
        body_offset + PDU_HEADER_LENGTH,
        expected,
        found,
    )


def _check_fixed_length(pdu_type: int, view: memoryview, length: int) -> None:
    if len(view) != length:
        # Offset 2 is the PDU length field of the header.
        raise _fail(pdu_type, -4, f"a PDU length of {length}", str(len(view)))


def _decode_associate_fields(
    pdu_type: int, view: memoryview
) -> tuple[int, str, str, ItemDecoder]:
    if len(view) < _ASSOCIATE_FIXED.size:
        raise _fail(
            pdu_type,
            -4,
            f"a PDU length of at least {_ASSOCIATE_FIXED.size}",
            str(len(view)),
        )
    version, _, called, calling, _ = _ASSOCIATE_FIXED.unpack_from(view)
    decoder = ItemDecoder(view, PDU_NAMES[pdu_type], pdu_type)
    return version, _decode_ae_title(called), _decode_ae_title(calling), decoder


_Context = TypeVar("_Context", PresentationContextRQ, PresentationContextAC)


def _decode_associate_items(
    decoder: ItemDecoder,
    end: int,
    context_item_type: int,
    decode_context: Callable[[int, int], _Context],
) -> tuple[str, tuple[_Context, ...], UserInformation | None]:
    """
    Decode the variable items of an A-ASSOCIATE-RQ or A-ASSOCIATE-AC.

    Items may come in any order, although PS3.8 requires senders to use
    increasing item types. Defined item types that belong elsewhere are an error.

    @param context_item_type: 0x20 for an RQ, 0x21 for an AC.
    @param decode_context: The decoder method for that presentation context
        item.
    """
    start = _ASSOCIATE_FIXED.size
    application_context: str | None = None
    contexts = []
    user_information: UserInformation | None = None
    for item_type, _, item_start, data_start, data_end in decoder.items(start, end):
        if item_type == APPLICATION_CONTEXT_ITEM:
            if application_context is not None:
                decoder.fail(item_start, "one application context item", "a second")
            application_context = decoder.uid(data_start, data_end)
        elif item_type == context_item_type:
            contexts.append(decode_context(data_start, data_end))
        elif item_type == USER_INFORMATION_ITEM:
            if user_information is not None:
                decoder.fail(item_start, "one user information item", "a second")
            user_information = decoder.user_information(data_start, data_end)
        elif item_type in DEFINED_ITEM_TYPES:
            decoder.unexpected_type(
                item_start, item_type, f"0x10, 0x{context_item_type:02x} or 0x50"
            )
    if application_context is None:
        decoder.fail(start, "an application context item (0x10)", "none")
    return application_context, tuple(contexts), user_information


def _decode_associate_rq(view: memoryview) -> AAssociateRQ:
    version, called, calling, decoder = _decode_associate_fields(A_ASSOCIATE_RQ, view)
    application_context, contexts, user_information = _decode_associate_items(
        decoder,
        len(view),
        PRESENTATION_CONTEXT_RQ_ITEM,
        decoder.presentation_context_rq,
    )
    return AAssociateRQ(
        called, calling, contexts, user_information, application_context, version
    )


def _decode_associate_ac(view: memoryview) -> AAssociateAC:
    version, called, calling, decoder = _decode_associate_fields(A_ASSOCIATE_AC, view)
    application_context, contexts, user_information = _decode_associate_items(
        decoder,
        len(view),
        PRESENTATION_CONTEXT_AC_ITEM,
        decoder.presentation_context_ac,
    )
    return AAssociateAC(
        called, calling, contexts, user_information, application_context, version
    )


def _decode_associate_rj(view: memoryview) -> AAssociateRJ:
    _check_fixed_length(A_ASSOCIATE_RJ, view, _FOUR_BYTES.size)
    _, result, source, reason = _FOUR_BYTES.unpack_from(view)
    return AAssociateRJ(result, source, reason)


def _decode_pdata_tf(view: memoryview) -> PDataTF:
    end = len(view)
    if not end:
        raise _fail(P_DATA_TF, -4, "a PDU length of at least 6", "0")
    pdvs = []
    offset = 0
    unpack_from = _PDV_HEADER.unpack_from
    while offset < end:
        if end - offset < PDV_ITEM_OVERHEAD:
            raise _fail(
                P_DATA_TF,
                offset,
                "a 6-byte presentation data value item header",
                f"{end - offset} bytes",
            )
        length, context_id, control = unpack_from(view, offset)
        if length < 2:
            raise _fail(
                P_DATA_TF, offset, "a PDV item length of at least 2", str(length)
            )
        data_end = offset + 4 + length
        if data_end > end:
            raise _fail(
                P_DATA_TF,
                offset,
                f"a PDV item length of at most {end - offset - 4}",
                str(length),
            )
        pdvs.append(
            PresentationDataValue(context_id, control, view[offset + 6 : data_end])
        )
        offset = data_end
    return PDataTF(tuple(pdvs))


def _decode_release_rq(view: memoryview) -> AReleaseRQ:
    _check_fixed_length(A_RELEASE_RQ, view, 4)
    return AReleaseRQ()


def _decode_release_rp(view: memoryview) -> AReleaseRP:
    _check_fixed_length(A_RELEASE_RP, view, 4)
    return AReleaseRP()


def _decode_abort(view: memoryview) -> AAbort:
    _check_fixed_length(A_ABORT, view, _FOUR_BYTES.size)
    _, _, source, reason = _FOUR_BYTES.unpack_from(view)
    return AAbort(source, reason)


_DECODERS: dict[int, Callable[[memoryview], PDU]] = {
    A_ASSOCIATE_RQ: _decode_associate_rq,
    A_ASSOCIATE_AC: _decode_associate_ac,
    A_ASSOCIATE_RJ: _decode_associate_rj,
    P_DATA_TF: _decode_pdata_tf,
    A_RELEASE_RQ: _decode_release_rq,
    A_RELEASE_RP: _decode_release_rp,
    A_ABORT: _decode_abort,
}


def decode_pdu(pdu_type: int, body: bytes | bytearray | memoryview) -> PDU:
    """
    Decode the body of one PDU.

    Reserved fields are not checked, because PS3.8 requires that receivers not
    test them. Item types the standard does not define are skipped, except
    user information sub-items, which are kept as L{UnknownSubItem}.

    @param pdu_type: The PDU type from the header.
    @param body: The bytes after the 6-byte header, exactly as many as the
        header's PDU length. PDV data of a P-DATA-TF are slices of it, so a
        mutable buffer must not change while they are in use.
    @raise PDUDecodeError: If C{pdu_type} is unknown or C{body} is not a
        valid PDU of that type.
    """
    decoder = _DECODERS.get(pdu_type)
    if decoder is None:
        raise PDUDecodeError(
            "PDU", pdu_type, 0, "a PDU type from 0x01 to 0x07", f"0x{pdu_type:02x}"
        )
    view = memoryview(body)
    if view.format != "B":
        view = view.cast("B")
    return decoder(view)


def decode_pdu_stream(data: bytes | bytearray | memoryview) -> tuple[PDU, int]:
    """
    Decode the first PDU of C{data}, header included.

    @return: The PDU and the number of bytes it took.
    @raise PDUDecodeError: If C{data} is shorter than the PDU its header
        announces, or the PDU is not valid.
    """
    view = memoryview(data)
    if len(view) < PDU_HEADER_LENGTH:
        raise PDUDecodeError("PDU", -1, 0, "a 6-byte PDU header", f"{len(view)} bytes")
    pdu_type, _, length = PDU_HEADER.unpack_from(view)
    end = PDU_HEADER_LENGTH + length
    if len(view) < end:
        raise PDUDecodeError(
            PDU_NAMES.get(pdu_type, "PDU"),
            pdu_type,
            2,
            f"{length} bytes after the header",
            str(len(view) - PDU_HEADER_LENGTH),
        )
    return decode_pdu(pdu_type, view[PDU_HEADER_LENGTH:end]), end
