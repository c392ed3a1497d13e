"""
DIMSE-C command sets (PS3.7 section 9.3 and Annex E) as frozen types, with a codec.

DIMSE-N requests (PS3.7 section 10.3) decode into one generic type,
L{NRequest}, and responses into L{NResponse}: this server provides no
DIMSE-N service and only rejects those requests.

A command set is group 0000 encoded in Implicit VR Little Endian, whatever the
transfer syntax of the presentation context. It starts with (0000,0000) Command
Group Length (UL), whose value is the number of bytes of the elements after it
(PS3.7 section 6.3.1). Elements follow in ascending tag order.

The codec walks the elements with C{struct} and never imports pydicom, because
C-STORE-RQ decoding and C-STORE-RSP encoding run once per stored instance.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Union

__all__ = [
    "CCancelRQ",
    "CEchoRQ",
    "CEchoRSP",
    "CFindRQ",
    "CFindRSP",
    "CGetRQ",
    "CGetRSP",
    "CMoveRQ",
    "CMoveRSP",
    "CStoreRQ",
    "CStoreRSP",
    "Command",
    "CommandDecodeError",
    "NRequest",
    "NResponse",
    "decode_command",
    "encode_command",
]


class CommandDecodeError(ValueError):
    """
    The bytes are not a valid DIMSE-C command set.
    """


# Command Field (0000,0100) values, PS3.7 Annex E.
C_STORE_RQ = 0x0001
C_STORE_RSP = 0x8001
C_GET_RQ = 0x0010
C_GET_RSP = 0x8010
C_FIND_RQ = 0x0020
C_FIND_RSP = 0x8020
C_MOVE_RQ = 0x0021
C_MOVE_RSP = 0x8021
C_ECHO_RQ = 0x0030
C_ECHO_RSP = 0x8030
C_CANCEL_RQ = 0x0FFF

# DIMSE-N Command Field values. Requests decode into NRequest and responses
# into NResponse.
N_EVENT_REPORT_RQ = 0x0100
N_GET_RQ = 0x0110
N_SET_RQ = 0x0120
N_ACTION_RQ = 0x0130
N_CREATE_RQ = 0x0140
N_DELETE_RQ = 0x0150
# Set in the Command Field of every response.
RESPONSE_BIT = 0x8000

_DIMSE_N_NAMES = {
    0x0100: "N-EVENT-REPORT-RQ",
    0x8100: "N-EVENT-REPORT-RSP",
    0x0110: "N-GET-RQ",
    0x8110: "N-GET-RSP",
    0x0120: "N-SET-RQ",
    0x8120: "N-SET-RSP",
    0x0130: "N-ACTION-RQ",
    0x8130: "N-ACTION-RSP",
    0x0140: "N-CREATE-RQ",
    0x8140: "N-CREATE-RSP",
    0x0150: "N-DELETE-RQ",
    0x8150: "N-DELETE-RSP",
}

# Priority (0000,0700) values.
PRIORITY_MEDIUM = 0x0000
PRIORITY_HIGH = 0x0001
PRIORITY_LOW = 0x0002

# Command Data Set Type (0000,0800): 0x0101 means no data set follows and any
# other value means one does. The encoder writes 0x0001 for a data set, as
# DCMTK and pynetdicom do.
DATASET_ABSENT = 0x0101
DATASET_PRESENT = 0x0001

VERIFICATION_SOP_CLASS_UID = "1.2.840.10008.1.1"

# Element numbers of group 0000, PS3.7 Table E.1-1.
_AFFECTED_SOP_CLASS_UID = 0x0002
_REQUESTED_SOP_CLASS_UID = 0x0003
_COMMAND_FIELD = 0x0100
_MESSAGE_ID = 0x0110
_MESSAGE_ID_BEING_RESPONDED_TO = 0x0120
_MOVE_DESTINATION = 0x0600
_PRIORITY = 0x0700
_COMMAND_DATA_SET_TYPE = 0x0800
_STATUS = 0x0900
_OFFENDING_ELEMENT = 0x0901
_ERROR_COMMENT = 0x0902
_AFFECTED_SOP_INSTANCE_UID = 0x1000
_REQUESTED_SOP_INSTANCE_UID = 0x1001
_REMAINING_SUBOPERATIONS = 0x1020
_COMPLETED_SUBOPERATIONS = 0x1021
_FAILED_SUBOPERATIONS = 0x1022
_WARNING_SUBOPERATIONS = 0x1023
_MOVE_ORIGINATOR_AET = 0x1030
_MOVE_ORIGINATOR_MESSAGE_ID = 0x1031

_ELEMENT_NAMES = {
    _AFFECTED_SOP_CLASS_UID: "Affected SOP Class UID",
    _REQUESTED_SOP_CLASS_UID: "Requested SOP Class UID",
    _COMMAND_FIELD: "Command Field",
    _MESSAGE_ID: "Message ID",
    _MESSAGE_ID_BEING_RESPONDED_TO: "Message ID Being Responded To",
    _MOVE_DESTINATION: "Move Destination",
    _PRIORITY: "Priority",
    _COMMAND_DATA_SET_TYPE: "Command Data Set Type",
    _STATUS: "Status",
    _OFFENDING_ELEMENT: "Offending Element",
    _ERROR_COMMENT: "Error Comment",
    _AFFECTED_SOP_INSTANCE_UID: "Affected SOP Instance UID",
    _REQUESTED_SOP_INSTANCE_UID: "Requested SOP Instance UID",
    _REMAINING_SUBOPERATIONS: "Number of Remaining Sub-operations",
    _COMPLETED_SUBOPERATIONS: "Number of Completed Sub-operations",
    _FAILED_SUBOPERATIONS: "Number of Failed Sub-operations",
    _WARNING_SUBOPERATIONS: "Number of Warning Sub-operations",
    _MOVE_ORIGINATOR_AET: "Move Originator Application Entity Title",
    _MOVE_ORIGINATOR_MESSAGE_ID: "Move Originator Message ID",
}

# Group, element and value length of an Implicit VR Little Endian element.
_ELEMENT_HEADER = struct.Struct("<HHI")
# The whole (0000,0000) Command Group Length element.
_GROUP_LENGTH_ELEMENT = struct.Struct("<HHII")
_US = struct.Struct("<H")

_MAX_UI_LENGTH = 64
_MAX_AE_LENGTH = 16
_MAX_LO_LENGTH = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class CEchoRQ:
    """
    A C-ECHO-RQ command set (PS3.7 Table 9.3-12).
    """

    name: ClassVar[str] = "C-ECHO-RQ"
    command_field: ClassVar[int] = C_ECHO_RQ

    message_id: int
    affected_sop_class_uid: str = VERIFICATION_SOP_CLASS_UID
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CEchoRSP:
    """
    A C-ECHO-RSP command set (PS3.7 Table 9.3-13).
    """

    name: ClassVar[str] = "C-ECHO-RSP"
    command_field: ClassVar[int] = C_ECHO_RSP

    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    error_comment: str | None = None
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CStoreRQ:
    """
    A C-STORE-RQ command set (PS3.7 Table 9.3-1).

    @ivar move_originator_aet: the AE title of the C-MOVE SCU when this
        C-STORE is a sub-operation of a C-MOVE, else L{None}.
    """

    name: ClassVar[str] = "C-STORE-RQ"
    command_field: ClassVar[int] = C_STORE_RQ

    message_id: int
    affected_sop_class_uid: str
    affected_sop_instance_uid: str
    priority: int = PRIORITY_MEDIUM
    move_originator_aet: str | None = None
    move_originator_message_id: int | None = None
    has_dataset: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class CStoreRSP:
    """
    A C-STORE-RSP command set (PS3.7 Table 9.3-2).

    @ivar offending_element: tags, as C{group << 16 | element}, of the data
        elements a failure status blames, or L{None}.
    """

    name: ClassVar[str] = "C-STORE-RSP"
    command_field: ClassVar[int] = C_STORE_RSP

    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    affected_sop_instance_uid: str | None = None
    offending_element: tuple[int, ...] | None = None
    error_comment: str | None = None
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CFindRQ:
    """
    A C-FIND-RQ command set (PS3.7 Table 9.3-3), followed by the Identifier.
    """

    name: ClassVar[str] = "C-FIND-RQ"
    command_field: ClassVar[int] = C_FIND_RQ

    message_id: int
    affected_sop_class_uid: str
    priority: int = PRIORITY_MEDIUM
    has_dataset: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class CFindRSP:
    """
    A C-FIND-RSP command set (PS3.7 Table 9.3-4). A pending response carries
    an Identifier, so set C{has_dataset} on those.
    """

    name: ClassVar[str] = "C-FIND-RSP"
    command_field: ClassVar[int] = C_FIND_RSP

    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    offending_element: tuple[int, ...] | None = None
    error_comment: str | None = None
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CGetRQ:
    """
    A C-GET-RQ command set (PS3.7 Table 9.3-5), followed by the Identifier.
    """

    name: ClassVar[str] = "C-GET-RQ"
    command_field: ClassVar[int] = C_GET_RQ

    message_id: int
    affected_sop_class_uid: str
    priority: int = PRIORITY_MEDIUM
    has_dataset: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class CGetRSP:
    """
    A C-GET-RSP command set (PS3.7 Table 9.3-6).
    """

    name: ClassVar[str] = "C-GET-RSP"
    command_field: ClassVar[int] = C_GET_RSP

    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    number_of_remaining_suboperations: int | None = None
    number_of_completed_suboperations: int | None = None
    number_of_failed_suboperations: int | None = None
    number_of_warning_suboperations: int | None = None
    offending_element: tuple[int, ...] | None = None
    error_comment: str | None = None
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CMoveRQ:
    """
    A C-MOVE-RQ command set (PS3.7 Table 9.3-7), followed by the Identifier.
    """

    name: ClassVar[str] = "C-MOVE-RQ"
    command_field: ClassVar[int] = C_MOVE_RQ

    message_id: int
    affected_sop_class_uid: str
    move_destination: str
    priority: int = PRIORITY_MEDIUM
    has_dataset: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class CMoveRSP:
    """
    A C-MOVE-RSP command set (PS3.7 Table 9.3-8).
    """

    name: ClassVar[str] = "C-MOVE-RSP"
    command_field: ClassVar[int] = C_MOVE_RSP

    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    number_of_remaining_suboperations: int | None = None
    number_of_completed_suboperations: int | None = None
    number_of_failed_suboperations: int | None = None
    number_of_warning_suboperations: int | None = None
    offending_element: tuple[int, ...] | None = None
    error_comment: str | None = None
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CCancelRQ:
    """
    A C-CANCEL-RQ command set (PS3.7 Table 9.3-11), which cancels the
    C-FIND, C-GET or C-MOVE with the given message ID.
    """

    name: ClassVar[str] = "C-CANCEL-RQ"
    command_field: ClassVar[int] = C_CANCEL_RQ

    message_id_being_responded_to: int
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NRequest:
    """
    A DIMSE-N request: N-EVENT-REPORT-RQ, N-GET-RQ, N-SET-RQ, N-ACTION-RQ,
    N-CREATE-RQ or N-DELETE-RQ (PS3.7 section 10.3), with the fields its
    response needs. N-EVENT-REPORT and N-CREATE name the Affected SOP Class and
    Instance; the others name the Requested ones.
    """

    command_field: int
    message_id: int
    affected_sop_class_uid: str | None = None
    requested_sop_class_uid: str | None = None
    affected_sop_instance_uid: str | None = None
    requested_sop_instance_uid: str | None = None
    has_dataset: bool = False

    @property
    def name(self) -> str:
        return _DIMSE_N_NAMES.get(self.command_field, "DIMSE-N request")


@dataclass(frozen=True, slots=True, kw_only=True)
class NResponse:
    """
    The response to a L{NRequest}. Its Command Field is the request's with
    L{RESPONSE_BIT} set.
    """

    command_field: int
    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    affected_sop_instance_uid: str | None = None
    error_comment: str | None = None
    has_dataset: bool = False

    @property
    def name(self) -> str:
        return _DIMSE_N_NAMES.get(self.command_field, "DIMSE-N response")


Command = Union[
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
    NRequest,
    NResponse,
]


# Value encoders and decoders, one pair per VR. An encoder takes the field
# value and returns the even-length value bytes. A decoder takes the value
# bytes and the element number, which its error message names.


def _encode_us(value: int) -> bytes:
    return _US.pack(value)


def _decode_us(raw: bytes, element: int) -> int:
    if len(raw) != 2:
        raise CommandDecodeError(
            f"{_describe(element)} has a value length of {len(raw)} bytes, "
            f"but a US value is 2 bytes"
        )
    return (raw[1] << 8) | raw[0]


def _encode_dataset_type(value: bool) -> bytes:
    return _US.pack(DATASET_PRESENT if value else DATASET_ABSENT)


def _decode_dataset_type(raw: bytes, element: int) -> bool:
    return _decode_us(raw, element) != DATASET_ABSENT


def _encode_ui(value: str) -> bytes:
    encoded = value.encode("ascii")
    if len(encoded) > _MAX_UI_LENGTH:
        raise ValueError(f"UID {value!r} is longer than {_MAX_UI_LENGTH} bytes")
    if len(encoded) % 2:
        encoded += b"\x00"
    return encoded


def _decode_ui(raw: bytes, element: int) -> str:
    try:
        return raw.rstrip(b"\x00 ").decode("ascii")
    except UnicodeDecodeError:
        raise CommandDecodeError(
            f"{_describe(element)} contains bytes outside ASCII: {raw!r}"
        ) from None


def _encode_ae(value: str) -> bytes:
    encoded = value.strip(" ").encode("ascii")
    if not encoded or len(encoded) > _MAX_AE_LENGTH:
        raise ValueError(f"AE title {value!r} must have 1 to 16 characters")
    if b"\\" in encoded or any(byte < 0x20 for byte in encoded):
        raise ValueError(f"AE title {value!r} contains a backslash or control code")
    if len(encoded) % 2:
        encoded += b" "
    return encoded


def _decode_ae(raw: bytes, element: int) -> str:
    try:
        return raw.strip(b" \x00").decode("ascii")
    except UnicodeDecodeError:
        raise CommandDecodeError(
            f"{_describe(element)} contains bytes outside ASCII: {raw!r}"
        ) from None


# Bytes an LO value may not contain: control codes and the value separator.
_LO_FORBIDDEN = bytes(range(0x20)) + b"\\\x7f"
_LO_REPLACEMENTS = bytes.maketrans(_LO_FORBIDDEN, b"?" * len(_LO_FORBIDDEN))


def _encode_lo(value: str) -> bytes:
    # Error Comment is free text, often an exception message, so the encoder
    # makes it a valid LO instead of raising: at most 64 characters of the
    # default repertoire.
    encoded = value[:_MAX_LO_LENGTH].encode("ascii", "replace")
    encoded = encoded.translate(_LO_REPLACEMENTS)
    if len(encoded) % 2:
        encoded += b" "
    return encoded


def _decode_lo(raw: bytes, element: int) -> str:
    return raw.strip(b" \x00").decode("ascii", "replace")


def _encode_at(value: tuple[int, ...]) -> bytes:
    return b"".join(_US.pack(tag >> 16) + _US.pack(tag & 0xFFFF) for tag in value)


def _decode_at(raw: bytes, element: int) -> tuple[int, ...]:
    if len(raw) % 4:
        raise CommandDecodeError(
            f"{_describe(element)} has a value length of {len(raw)} bytes, "
            f"not a multiple of the 4 bytes of an AT value"
        )
    values = struct.unpack(f"<{len(raw) // 2}H", raw)
    return tuple((values[i] << 16) | values[i + 1] for i in range(0, len(values), 2))


_Encoder = Callable[..., bytes]
_Decoder = Callable[[bytes, int], object]

_US_CODEC = (_encode_us, _decode_us)
_UI_CODEC = (_encode_ui, _decode_ui)
_AE_CODEC = (_encode_ae, _decode_ae)
_LO_CODEC = (_encode_lo, _decode_lo)
_AT_CODEC = (_encode_at, _decode_at)
_DATASET_TYPE_CODEC = (_encode_dataset_type, _decode_dataset_type)

# A field row: element number, attribute name, (encoder, decoder), and
# whether a decoded command set must contain the element. Rows are in
# ascending element order, which is the order of the encoded elements.
_FieldRow = tuple[int, str, tuple[_Encoder, _Decoder], bool]

_COMMAND_FIELD_ROW: _FieldRow = (_COMMAND_FIELD, "command_field", _US_CODEC, True)
_DATASET_TYPE_ROW: _FieldRow = (
    _COMMAND_DATA_SET_TYPE,
    "has_dataset",
    _DATASET_TYPE_CODEC,
    True,
)
_RESPONDED_TO_ROW: _FieldRow = (
    _MESSAGE_ID_BEING_RESPONDED_TO,
    "message_id_being_responded_to",
    _US_CODEC,
    True,
)
_STATUS_ROWS: tuple[_FieldRow, ...] = (
    (_STATUS, "status", _US_CODEC, True),
    (_OFFENDING_ELEMENT, "offending_element", _AT_CODEC, False),
    (_ERROR_COMMENT, "error_comment", _LO_CODEC, False),
)
_SUBOPERATION_ROWS: tuple[_FieldRow, ...] = (
    (_REMAINING_SUBOPERATIONS, "number_of_remaining_suboperations", _US_CODEC, False),
    (_COMPLETED_SUBOPERATIONS, "number_of_completed_suboperations", _US_CODEC, False),
    (_FAILED_SUBOPERATIONS, "number_of_failed_suboperations", _US_CODEC, False),
    (_WARNING_SUBOPERATIONS, "number_of_warning_suboperations", _US_CODEC, False),
)


def _request_rows(*extra: _FieldRow) -> tuple[_FieldRow, ...]:
    rows: tuple[_FieldRow, ...] = (
        (_AFFECTED_SOP_CLASS_UID, "affected_sop_class_uid", _UI_CODEC, True),
        _COMMAND_FIELD_ROW,
        (_MESSAGE_ID, "message_id", _US_CODEC, True),
        *extra,
        _DATASET_TYPE_ROW,
    )
    return tuple(sorted(rows, key=lambda row: row[0]))


def _response_rows(*extra: _FieldRow) -> tuple[_FieldRow, ...]:
    rows: tuple[_FieldRow, ...] = (
        (_AFFECTED_SOP_CLASS_UID, "affected_sop_class_uid", _UI_CODEC, False),
        _COMMAND_FIELD_ROW,
        _RESPONDED_TO_ROW,
        _DATASET_TYPE_ROW,
        *extra,
    )
    return tuple(sorted(rows, key=lambda row: row[0]))


_PRIORITY_ROW: _FieldRow = (_PRIORITY, "priority", _US_CODEC, True)

_ROWS: dict[type[Any], tuple[_FieldRow, ...]] = {
    CEchoRQ: _request_rows(),
    CEchoRSP: _response_rows(
        (_STATUS, "status", _US_CODEC, True),
        (_ERROR_COMMENT, "error_comment", _LO_CODEC, False),
    ),
    CStoreRQ: _request_rows(
        _PRIORITY_ROW,
        (_AFFECTED_SOP_INSTANCE_UID, "affected_sop_instance_uid", _UI_CODEC, True),
        (_MOVE_ORIGINATOR_AET, "move_originator_aet", _AE_CODEC, False),
        (_MOVE_ORIGINATOR_MESSAGE_ID, "move_originator_message_id", _US_CODEC, False),
    ),
    CStoreRSP: _response_rows(
        *_STATUS_ROWS,
        (_AFFECTED_SOP_INSTANCE_UID, "affected_sop_instance_uid", _UI_CODEC, False),
    ),
    CFindRQ: _request_rows(_PRIORITY_ROW),
    CFindRSP: _response_rows(*_STATUS_ROWS),
    CGetRQ: _request_rows(_PRIORITY_ROW),
    CGetRSP: _response_rows(*_STATUS_ROWS, *_SUBOPERATION_ROWS),
    CMoveRQ: _request_rows(
        _PRIORITY_ROW,
        (_MOVE_DESTINATION, "move_destination", _AE_CODEC, True),
    ),
    CMoveRSP: _response_rows(*_STATUS_ROWS, *_SUBOPERATION_ROWS),
    CCancelRQ: (
        _COMMAND_FIELD_ROW,
        _RESPONDED_TO_ROW,
        _DATASET_TYPE_ROW,
    ),
    NRequest: (
        (_AFFECTED_SOP_CLASS_UID, "affected_sop_class_uid", _UI_CODEC, False),
        (_REQUESTED_SOP_CLASS_UID, "requested_sop_class_uid", _UI_CODEC, False),
        _COMMAND_FIELD_ROW,
        (_MESSAGE_ID, "message_id", _US_CODEC, True),
        _DATASET_TYPE_ROW,
        (_AFFECTED_SOP_INSTANCE_UID, "affected_sop_instance_uid", _UI_CODEC, False),
        (
            _REQUESTED_SOP_INSTANCE_UID,
            "requested_sop_instance_uid",
            _UI_CODEC,
            False,
        ),
    ),
    NResponse: _response_rows(
        (_STATUS, "status", _US_CODEC, True),
        (_ERROR_COMMENT, "error_comment", _LO_CODEC, False),
        (_AFFECTED_SOP_INSTANCE_UID, "affected_sop_instance_uid", _UI_CODEC, False),
    ),
}

# Decoding skips the Command Field row of a DIMSE-C type, because the class
# already fixes it. NRequest and NResponse keep it, because each of them is
# used for six commands.
_DECODE_ROWS: dict[int, tuple[type[Any], tuple[_FieldRow, ...]]] = {
    command_type.command_field: (
        command_type,
        tuple(row for row in rows if row[0] != _COMMAND_FIELD),
    )
    for command_type, rows in _ROWS.items()
    if command_type not in (NRequest, NResponse)
}
for _field in (
    N_EVENT_REPORT_RQ,
    N_GET_RQ,
    N_SET_RQ,
    N_ACTION_RQ,
    N_CREATE_RQ,
    N_DELETE_RQ,
):
    _DECODE_ROWS[_field] = (NRequest, _ROWS[NRequest])
    _DECODE_ROWS[_field | RESPONSE_BIT] = (NResponse, _ROWS[NResponse])


def _describe(element: int) -> str:
    name = _ELEMENT_NAMES.get(element)
    if name is None:
        return f"element (0000,{element:04X})"
    return f"element (0000,{element:04X}) {name}"


def encode_command(command: Command) -> bytes:
    """
    Encode a command set in Implicit VR Little Endian, with its Command Group
    Length.

    Fields set to L{None} are left out. UIDs are padded to even length with
    NUL, AE titles and the Error Comment with a space, and the Error Comment
    is cut to the 64 characters of an LO value.

    @raise ValueError: if a value does not fit its element, such as a message
        ID above 0xFFFF, a UID over 64 bytes or an AE title over 16 characters.
    """
    rows = _ROWS[type(command)]
    parts = []
    for element, attribute, (encode, _), _ in rows:
        value = getattr(command, attribute)
        if value is None:
            continue
        try:
            encoded = encode(value)
        except (struct.error, UnicodeEncodeError, TypeError) as error:
            raise ValueError(
                f"invalid {attribute} {value!r} for {_describe(element)} "
                f"of a {command.name}: {error}"
            ) from None
        parts.append(_ELEMENT_HEADER.pack(0x0000, element, len(encoded)))
        parts.append(encoded)
    body = b"".join(parts)
    return _GROUP_LENGTH_ELEMENT.pack(0x0000, 0x0000, 4, len(body)) + body


def decode_command(data: bytes | memoryview) -> Command:
    """
    Decode a command set from its Implicit VR Little Endian bytes.

    Elements of group 0000 that the command does not use are skipped, so a
    peer may send retired ones.

    @raise CommandDecodeError: if the bytes do not start with a Command Group
        Length equal to the number of bytes after it, or if an element lies
        outside group 0000, runs past the end or appears twice. Also if the
        Command Field is no DIMSE message, or if an element the command
        requires is missing or malformed. No other exception escapes for any
        input bytes.
    """
    raw = bytes(data)
    values = _split_elements(raw)

    command_field_raw = values.get(_COMMAND_FIELD)
    if command_field_raw is None:
        raise CommandDecodeError(f"command set has no {_describe(_COMMAND_FIELD)}")
    command_field = _decode_us(command_field_raw, _COMMAND_FIELD)
    entry = _DECODE_ROWS.get(command_field)
    if entry is None:
        raise CommandDecodeError(f"unknown Command Field 0x{command_field:04X}")

    command_type, rows = entry
    label = _DIMSE_N_NAMES.get(command_field) or command_type.name
    arguments = {}
    for element, attribute, (_, decode), required in rows:
        value = values.get(element)
        if value is None:
            if required:
                raise CommandDecodeError(
                    f"{label} has no {_describe(element)}, which it requires"
                )
            continue
        arguments[attribute] = decode(value, element)
    return command_type(**arguments)  # type: ignore[no-any-return]


def _split_elements(raw: bytes) -> dict[int, bytes]:
    """
    Check the Command Group Length and return the value bytes of every
    element after it, keyed by element number.
    """
    size = len(raw)
    if size < 12:
        raise CommandDecodeError(
            f"command set is {size} bytes long, shorter than the 12 bytes of "
            f"the (0000,0000) Command Group Length element"
        )
    group, element, length, group_length = _GROUP_LENGTH_ELEMENT.unpack_from(raw)
    if group != 0x0000 or element != 0x0000 or length != 4:
        raise CommandDecodeError(
            f"command set starts with element ({group:04X},{element:04X}) of "
            f"length {length}, expected (0000,0000) Command Group Length of "
            f"length 4"
        )
    if group_length != size - 12:
        raise CommandDecodeError(
            f"Command Group Length is {group_length}, but {size - 12} bytes "
            f"follow it"
        )

    values: dict[int, bytes] = {}
    unpack_header = _ELEMENT_HEADER.unpack_from
    offset = 12
    while offset < size:
        if size - offset < 8:
            raise CommandDecodeError(
                f"command set ends {size - offset} bytes into the 8-byte "
                f"header of the element at offset {offset}"
            )
        group, element, length = unpack_header(raw, offset)
        if group != 0x0000:
            raise CommandDecodeError(
                f"element ({group:04X},{element:04X}) at offset {offset} is "
                f"outside group 0000"
            )
        offset += 8
        if length > size - offset:
            raise CommandDecodeError(
                f"{_describe(element)} at offset {offset - 8} has a value "
                f"length of {length}, past the end of the command set "
                f"({size - offset} bytes left)"
            )
        if element in values or element == 0x0000:
            raise CommandDecodeError(
                f"{_describe(element)} appears twice in the command set"
            )
        values[element] = raw[offset : offset + length]
        offset += length
    return values
