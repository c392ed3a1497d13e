"""
Items and sub-items of the A-ASSOCIATE PDUs (PS3.8 section 9.3.2 and 9.3.3,
PS3.8 Annex D and PS3.7 Annex D.3.3), and the decode error of the PDU codec.

Every item is a frozen dataclass whose C{encode} returns the whole item,
header included. Decoding lives in L{_Parser}, which L{twistedpacs.ul.pdu}
drives. Text fields (AE titles, UIDs, names) are decoded as ISO 8859-1, so any
byte a peer sends survives a round trip, although the standard allows only the
default character repertoire there.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NoReturn

APPLICATION_CONTEXT_ITEM = 0x10
PRESENTATION_CONTEXT_RQ_ITEM = 0x20
PRESENTATION_CONTEXT_AC_ITEM = 0x21
ABSTRACT_SYNTAX_SUB_ITEM = 0x30
TRANSFER_SYNTAX_SUB_ITEM = 0x40
USER_INFORMATION_ITEM = 0x50
MAXIMUM_LENGTH_SUB_ITEM = 0x51
IMPLEMENTATION_CLASS_UID_SUB_ITEM = 0x52
ASYNCHRONOUS_OPERATIONS_WINDOW_SUB_ITEM = 0x53
SCP_SCU_ROLE_SELECTION_SUB_ITEM = 0x54
IMPLEMENTATION_VERSION_NAME_SUB_ITEM = 0x55
SOP_CLASS_EXTENDED_NEGOTIATION_SUB_ITEM = 0x56
SOP_CLASS_COMMON_EXTENDED_NEGOTIATION_SUB_ITEM = 0x57
USER_IDENTITY_RQ_SUB_ITEM = 0x58
USER_IDENTITY_AC_SUB_ITEM = 0x59

# Every item type the standard defines. A type outside this set is skipped
# where it appears, because PS3.8 section 9.3 requires that items of unrecognized
# types be ignored and skipped. A defined type in the wrong place is an error.
DEFINED_ITEM_TYPES = frozenset(
    {
        APPLICATION_CONTEXT_ITEM,
        PRESENTATION_CONTEXT_RQ_ITEM,
        PRESENTATION_CONTEXT_AC_ITEM,
        ABSTRACT_SYNTAX_SUB_ITEM,
        TRANSFER_SYNTAX_SUB_ITEM,
        USER_INFORMATION_ITEM,
        MAXIMUM_LENGTH_SUB_ITEM,
        IMPLEMENTATION_CLASS_UID_SUB_ITEM,
        ASYNCHRONOUS_OPERATIONS_WINDOW_SUB_ITEM,
        SCP_SCU_ROLE_SELECTION_SUB_ITEM,
        IMPLEMENTATION_VERSION_NAME_SUB_ITEM,
        SOP_CLASS_EXTENDED_NEGOTIATION_SUB_ITEM,
        SOP_CLASS_COMMON_EXTENDED_NEGOTIATION_SUB_ITEM,
        USER_IDENTITY_RQ_SUB_ITEM,
        USER_IDENTITY_AC_SUB_ITEM,
    }
)

DICOM_APPLICATION_CONTEXT_NAME = "1.2.840.10008.3.1.1.1"

# Presentation context results in an A-ASSOCIATE-AC (PS3.8 Table 9-18).
CONTEXT_ACCEPTANCE = 0
CONTEXT_USER_REJECTION = 1
CONTEXT_PROVIDER_REJECTION_NO_REASON = 2
CONTEXT_ABSTRACT_SYNTAX_NOT_SUPPORTED = 3
CONTEXT_TRANSFER_SYNTAXES_NOT_SUPPORTED = 4

# User identity types in a user identity negotiation RQ (PS3.7 Table D.3-14).
USER_IDENTITY_USERNAME = 1
USER_IDENTITY_USERNAME_AND_PASSCODE = 2
USER_IDENTITY_KERBEROS = 3
USER_IDENTITY_SAML = 4
USER_IDENTITY_JWT = 5

# The PDU header: type, reserved byte, PDU length (PS3.8 section 9.3.1).
PDU_HEADER = struct.Struct(">BBL")
PDU_HEADER_LENGTH = PDU_HEADER.size

ITEM_HEADER = struct.Struct(">BBH")
_PRESENTATION_CONTEXT_FIELDS = struct.Struct(">BBBB")
_UINT16 = struct.Struct(">H")
_UINT32 = struct.Struct(">L")
_ASYNCHRONOUS_WINDOW = struct.Struct(">HH")
_ROLES = struct.Struct(">BB")
_USER_IDENTITY_FLAGS = struct.Struct(">BBH")

_MAXIMUM_ITEM_DATA = 0xFFFF
_TEXT_ENCODING = "latin-1"
_UID_PADDING = "\x00 "


class PDUDecodeError(ValueError):
    """
    Bytes that are not a valid PDU.

    @ivar pdu_name: The PDU as PS3.8 names it (C{"A-ASSOCIATE-RQ"}), or
        C{"PDU"} when the PDU type itself is unknown.
    @ivar pdu_type: The PDU type from the header.
    @ivar offset: Where the fault is, counted from the first byte of the PDU
        header, so offset N is byte N + 1 in the tables of PS3.8.
    @ivar expected: What the decoder expected at C{offset}.
    @ivar found: What it found there.
    """

    def __init__(
        self, pdu_name: str, pdu_type: int, offset: int, expected: str, found: str
    ) -> None:
        super().__init__(
            f"{pdu_name}: at offset {offset}, expected {expected}, found {found}"
        )
        self.pdu_name = pdu_name
        self.pdu_type = pdu_type
        self.offset = offset
        self.expected = expected
        self.found = found


def encode_item(item_type: int, data: bytes, second_byte: int = 0) -> bytes:
    """
    Prefix C{data} with an item header.

    @param second_byte: The byte after the item type, reserved in every item
        but the SOP class common extended negotiation sub-item.
    @raise ValueError: If C{data} does not fit the 16-bit item length.
    """
    if len(data) > _MAXIMUM_ITEM_DATA:
        raise ValueError(
            f"item 0x{item_type:02x} has {len(data)} bytes of data, "
            f"more than the maximum of {_MAXIMUM_ITEM_DATA}"
        )
    return ITEM_HEADER.pack(item_type, second_byte, len(data)) + data


def encode_text(text: str) -> bytes:
    """
    Encode an AE title, UID or name as ISO 8859-1, the inverse of decoding.
    """
    return text.encode(_TEXT_ENCODING)


def _uid_field(uid: str) -> bytes:
    """
    Encode a UID with its 16-bit length prefix, as role selection and the
    extended negotiation sub-items carry it.
    """
    raw = encode_text(uid)
    if len(raw) > _MAXIMUM_ITEM_DATA:
        raise ValueError(f"UID of {len(raw)} bytes is too long for a length field")
    return _UINT16.pack(len(raw)) + raw


@dataclass(frozen=True)
class PresentationContextRQ:
    """
    A presentation context item of an A-ASSOCIATE-RQ (item type 0x20).

    @ivar context_id: The presentation context ID, an odd number 1 to 255.
    @ivar abstract_syntax: The abstract syntax name, a SOP class UID.
    @ivar transfer_syntaxes: The proposed transfer syntax UIDs. Decoding
        accepts an empty tuple, which negotiation rejects.
    """

    context_id: int
    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...]

    def encode(self) -> bytes:
        """
        Encode the item with its abstract syntax and transfer syntax sub-items.
        """
        parts = [
            _PRESENTATION_CONTEXT_FIELDS.pack(self.context_id, 0, 0, 0),
            encode_item(ABSTRACT_SYNTAX_SUB_ITEM, encode_text(self.abstract_syntax)),
        ]
        for transfer_syntax in self.transfer_syntaxes:
            parts.append(
                encode_item(TRANSFER_SYNTAX_SUB_ITEM, encode_text(transfer_syntax))
            )
        return encode_item(PRESENTATION_CONTEXT_RQ_ITEM, b"".join(parts))


@dataclass(frozen=True)
class PresentationContextAC:
    """
    A presentation context item of an A-ASSOCIATE-AC (item type 0x21).

    @ivar context_id: The presentation context ID of the proposed context this
        result is for.
    @ivar result: One of the C{CONTEXT_*} results (0 is acceptance).
    @ivar transfer_syntax: The accepted transfer syntax UID, or L{None} when
        the item has no transfer syntax sub-item. PS3.8 requires the sub-item
        even for a rejected context, with a value that is not significant.
    """

    context_id: int
    result: int
    transfer_syntax: str | None

    def encode(self) -> bytes:
        """
        Encode the item with its transfer syntax sub-item, if any.
        """
        data = _PRESENTATION_CONTEXT_FIELDS.pack(self.context_id, 0, self.result, 0)
        if self.transfer_syntax is not None:
            data += encode_item(
                TRANSFER_SYNTAX_SUB_ITEM, encode_text(self.transfer_syntax)
            )
        return encode_item(PRESENTATION_CONTEXT_AC_ITEM, data)


@dataclass(frozen=True)
class MaximumLength:
    """
    The maximum length sub-item (0x51, PS3.8 Annex D.1).

    @ivar maximum_length: The largest P-DATA-TF PDU length the sender accepts,
        in bytes. 0 means no limit.
    """

    maximum_length: int

    def encode(self) -> bytes:
        """
        Encode the sub-item.
        """
        return encode_item(MAXIMUM_LENGTH_SUB_ITEM, _UINT32.pack(self.maximum_length))


@dataclass(frozen=True)
class ImplementationClassUID:
    """
    The implementation class UID sub-item (0x52, PS3.7 Annex D.3.3.2).
    """

    uid: str

    def encode(self) -> bytes:
        """
        Encode the sub-item.
        """
        return encode_item(IMPLEMENTATION_CLASS_UID_SUB_ITEM, encode_text(self.uid))


@dataclass(frozen=True)
class AsynchronousOperationsWindow:
    """
    The asynchronous operations window sub-item (0x53, PS3.7 Annex D.3.3.3).

    @ivar maximum_invoked: The maximum number of operations invoked at once.
        0 means unlimited.
    @ivar maximum_performed: The maximum number of operations performed at
        once. 0 means unlimited.
    """

    maximum_invoked: int
    maximum_performed: int

    def encode(self) -> bytes:
        """
        Encode the sub-item.
        """
        data = _ASYNCHRONOUS_WINDOW.pack(self.maximum_invoked, self.maximum_performed)
        return encode_item(ASYNCHRONOUS_OPERATIONS_WINDOW_SUB_ITEM, data)


@dataclass(frozen=True)
class SCPSCURoleSelection:
    """
    The SCP/SCU role selection sub-item (0x54, PS3.7 Annex D.3.3.4).

    @ivar sop_class_uid: The SOP class the roles apply to.
    @ivar scu_role: Whether the sender proposes (or accepts) the SCU role.
    @ivar scp_role: Whether the sender proposes (or accepts) the SCP role.
    """

    sop_class_uid: str
    scu_role: bool
    scp_role: bool

    def encode(self) -> bytes:
        """
        Encode the sub-item.
        """
        data = _uid_field(self.sop_class_uid) + _ROLES.pack(
            int(self.scu_role), int(self.scp_role)
        )
        return encode_item(SCP_SCU_ROLE_SELECTION_SUB_ITEM, data)


@dataclass(frozen=True)
class ImplementationVersionName:
    """
    The implementation version name sub-item (0x55, PS3.7 Annex D.3.3.2).
    """

    name: str

    def encode(self) -> bytes:
        """
        Encode the sub-item.
        """
        return encode_item(IMPLEMENTATION_VERSION_NAME_SUB_ITEM, encode_text(self.name))


@dataclass(frozen=True)
class SOPClassExtendedNegotiation:
    """
    The SOP class extended negotiation sub-item (0x56, PS3.7 Annex D.3.3.5).

    @ivar sop_class_uid: The SOP class the information applies to.
    @ivar service_class_application_information: The service class specific
        bytes, kept as received.
    """

    sop_class_uid: str
    service_class_application_information: bytes

    def encode(self) -> bytes:
        """
        Encode the sub-item.
        """
        data = _uid_field(self.sop_class_uid) + bytes(
            self.service_class_application_information
        )
        return encode_item(SOP_CLASS_EXTENDED_NEGOTIATION_SUB_ITEM, data)


@dataclass(frozen=True)
class SOPClassCommonExtendedNegotiation:
    """
    The SOP class common extended negotiation sub-item (0x57, PS3.7 Annex
    D.3.3.6).

    @ivar sop_class_uid: The SOP class proposed.
    @ivar service_class_uid: The service class of that SOP class.
    @ivar related_general_sop_class_uids: The general SOP classes the SOP
        class specializes.
    @ivar sub_item_version: The byte after the item type, 0 in the current
        standard.
    """

    sop_class_uid: str
    service_class_uid: str
    related_general_sop_class_uids: tuple[str, ...] = ()
    sub_item_version: int = 0

    def encode(self) -> bytes:
        """
        Encode the sub-item.
        """
        related = b"".join(
            _uid_field(uid) for uid in self.related_general_sop_class_uids
        )
        if len(related) > _MAXIMUM_ITEM_DATA:
            raise ValueError("related general SOP class identification is too long")
        data = b"".join(
            [
                _uid_field(self.sop_class_uid),
                _uid_field(self.service_class_uid),
                _UINT16.pack(len(related)),
                related,
            ]
        )
        return encode_item(
            SOP_CLASS_COMMON_EXTENDED_NEGOTIATION_SUB_ITEM, data, self.sub_item_version
        )


@dataclass(frozen=True)
class UserIdentityRQ:
    """
    The user identity negotiation sub-item of an A-ASSOCIATE-RQ (0x58, PS3.7
    Annex D.3.3.7.1).

    @ivar user_identity_type: One of the C{USER_IDENTITY_*} types.
    @ivar positive_response_requested: Whether the requestor requests a
        user identity sub-item in the A-ASSOCIATE-AC.
    @ivar primary_field: The user name, Kerberos ticket, SAML assertion or
        JSON web token.
    @ivar secondary_field: The passcode for user identity type 2, otherwise
        empty.
    """

    user_identity_type: int
    positive_response_requested: bool
    primary_field: bytes
    secondary_field: bytes = b""

    def encode(self) -> bytes:
        """
        Encode the sub-item.
        """
        primary = bytes(self.primary_field)
        secondary = bytes(self.secondary_field)
        header = _USER_IDENTITY_FLAGS.pack(
            self.user_identity_type,
            int(self.positive_response_requested),
            len(primary),
        )
        data = b"".join([header, primary, _UINT16.pack(len(secondary)), secondary])
        return encode_item(USER_IDENTITY_RQ_SUB_ITEM, data)


@dataclass(frozen=True)
class UserIdentityAC:
    """
    The user identity negotiation sub-item of an A-ASSOCIATE-AC (0x59, PS3.7
    Annex D.3.3.7.2).

    @ivar server_response: The Kerberos server ticket, SAML response or JSON
        web token, or empty for a user name.
    """

    server_response: bytes

    def encode(self) -> bytes:
        """
        Encode the sub-item.
        """
        response = bytes(self.server_response)
        return encode_item(
            USER_IDENTITY_AC_SUB_ITEM, _UINT16.pack(len(response)) + response
        )


@dataclass(frozen=True)
class UnknownSubItem:
    """
    A user information sub-item of a type this codec does not define, kept so
    that it survives a round trip (PS3.8 Annex D.2 requires acceptors to
    ignore such sub-items, not to reject them).

    @ivar item_type: The sub-item type.
    @ivar data: The sub-item's bytes after its 4-byte header.
    """

    item_type: int
    data: bytes

    def encode(self) -> bytes:
        """
        Encode the sub-item.
        """
        return encode_item(self.item_type, bytes(self.data))


UserInformationSubItem = (
    MaximumLength
    | ImplementationClassUID
    | AsynchronousOperationsWindow
    | SCPSCURoleSelection
    | ImplementationVersionName
    | SOPClassExtendedNegotiation
    | SOPClassCommonExtendedNegotiation
    | UserIdentityRQ
    | UserIdentityAC
    | UnknownSubItem
)


@dataclass(frozen=True)
class UserInformation:
    """
    The user information item (0x50, PS3.8 section 9.3.2.3), its sub-items in
    the order they were received or are to be sent.

    The properties pick sub-items by type. Where a sub-item may appear once,
    the property returns the first and L{None} when there is none.
    """

    sub_items: tuple[UserInformationSubItem, ...] = field(default=())

    def encode(self) -> bytes:
        """
        Encode the item with all its sub-items.
        """
        data = b"".join(sub_item.encode() for sub_item in self.sub_items)
        return encode_item(USER_INFORMATION_ITEM, data)

    def _first(self, kind: type) -> object | None:
        for sub_item in self.sub_items:
            if type(sub_item) is kind:
                return sub_item
        return None

    @property
    def maximum_length(self) -> int | None:
        """
        The maximum length received, from the first maximum length sub-item.
        """
        sub_item = self._first(MaximumLength)
        return sub_item.maximum_length if isinstance(sub_item, MaximumLength) else None

    @property
    def implementation_class_uid(self) -> str | None:
        """
        The implementation class UID of the sender.
        """
        sub_item = self._first(ImplementationClassUID)
        return sub_item.uid if isinstance(sub_item, ImplementationClassUID) else None

    @property
    def implementation_version_name(self) -> str | None:
        """
        The implementation version name of the sender.
        """
        sub_item = self._first(ImplementationVersionName)
        if isinstance(sub_item, ImplementationVersionName):
            return sub_item.name
        return None

    @property
    def asynchronous_operations_window(self) -> AsynchronousOperationsWindow | None:
        """
        The asynchronous operations window sub-item.
        """
        sub_item = self._first(AsynchronousOperationsWindow)
        if isinstance(sub_item, AsynchronousOperationsWindow):
            return sub_item
        return None

    @property
    def role_selections(self) -> tuple[SCPSCURoleSelection, ...]:
        """
        All SCP/SCU role selection sub-items.
        """
        return tuple(s for s in self.sub_items if isinstance(s, SCPSCURoleSelection))

    @property
    def sop_class_extended_negotiations(
        self,
    ) -> tuple[SOPClassExtendedNegotiation, ...]:
        """
        All SOP class extended negotiation sub-items.
        """
        return tuple(
            s for s in self.sub_items if isinstance(s, SOPClassExtendedNegotiation)
        )

    @property
    def sop_class_common_extended_negotiations(
        self,
    ) -> tuple[SOPClassCommonExtendedNegotiation, ...]:
        """
        All SOP class common extended negotiation sub-items.
        """
        return tuple(
            s
            for s in self.sub_items
            if isinstance(s, SOPClassCommonExtendedNegotiation)
        )

    @property
    def user_identity(self) -> UserIdentityRQ | UserIdentityAC | None:
        """
        The user identity negotiation sub-item, of either direction.
        """
        for sub_item in self.sub_items:
            if isinstance(sub_item, (UserIdentityRQ, UserIdentityAC)):
                return sub_item
        return None

    @property
    def unknown_sub_items(self) -> tuple[UnknownSubItem, ...]:
        """
        All sub-items of types this codec does not define.
        """
        return tuple(s for s in self.sub_items if isinstance(s, UnknownSubItem))


class ItemDecoder:
    """
    Decoder of the variable items of one A-ASSOCIATE-RQ or A-ASSOCIATE-AC body.

    Offsets passed in and out are relative to the start of the body.
    L{fail} converts them to offsets from the start of the PDU header.
    """

    __slots__ = ("_view", "pdu_name", "pdu_type")

    def __init__(self, view: memoryview, pdu_name: str, pdu_type: int) -> None:
        self._view = view
        self.pdu_name = pdu_name
        self.pdu_type = pdu_type

    def fail(self, offset: int, expected: str, found: str) -> NoReturn:
        """
        Raise L{PDUDecodeError} for a fault at body offset C{offset}.
        """
        raise PDUDecodeError(
            self.pdu_name, self.pdu_type, offset + PDU_HEADER_LENGTH, expected, found
        )

    def items(self, start: int, end: int) -> Iterator[tuple[int, int, int, int, int]]:
        """
        Iterate over the items from C{start} to C{end}, checking each length.

        @return: An iterator of (item type, second header byte, item start,
            data start, data end).
        """
        view = self._view
        offset = start
        while offset < end:
            if end - offset < ITEM_HEADER.size:
                self.fail(offset, "a 4-byte item header", f"{end - offset} bytes")
            item_type, second_byte, length = ITEM_HEADER.unpack_from(view, offset)
            data_start = offset + ITEM_HEADER.size
            data_end = data_start + length
            if data_end > end:
                self.fail(
                    offset + 2,
                    f"an item length of at most {end - data_start} "
                    f"for item type 0x{item_type:02x}",
                    str(length),
                )
            yield item_type, second_byte, offset, data_start, data_end
            offset = data_end

    def text(self, start: int, end: int) -> str:
        """
        Decode the bytes from C{start} to C{end} as ISO 8859-1.
        """
        return str(self._view[start:end], _TEXT_ENCODING)

    def uid(self, start: int, end: int) -> str:
        """
        Decode a UID, dropping the trailing NUL or space some peers pad with.
        """
        return self.text(start, end).rstrip(_UID_PADDING)

    def unexpected_type(self, offset: int, item_type: int, allowed: str) -> NoReturn:
        """
        Raise for an item of a type the standard defines for another place.
        """
        self.fail(offset, f"item type {allowed}", f"0x{item_type:02x}")

    def _context_fields(self, start: int, end: int) -> tuple[int, int]:
        if end - start < _PRESENTATION_CONTEXT_FIELDS.size:
            self.fail(
                start - 2,
                "a presentation context item length of at least 4",
                str(end - start),
            )
        context_id, _, result, _ = _PRESENTATION_CONTEXT_FIELDS.unpack_from(
            self._view, start
        )
        return context_id, result

    def presentation_context_rq(self, start: int, end: int) -> PresentationContextRQ:
        """
        Decode the data of a presentation context item of type 0x20.
        """
        context_id, _ = self._context_fields(start, end)
        abstract_syntax: str | None = None
        transfer_syntaxes = []
        sub_items = self.items(start + _PRESENTATION_CONTEXT_FIELDS.size, end)
        for item_type, _, item_start, data_start, data_end in sub_items:
            if item_type == ABSTRACT_SYNTAX_SUB_ITEM:
                if abstract_syntax is not None:
                    self.fail(item_start, "one abstract syntax sub-item", "a second")
                abstract_syntax = self.uid(data_start, data_end)
            elif item_type == TRANSFER_SYNTAX_SUB_ITEM:
                transfer_syntaxes.append(self.uid(data_start, data_end))
            elif item_type in DEFINED_ITEM_TYPES:
                self.unexpected_type(item_start, item_type, "0x30 or 0x40")
        if abstract_syntax is None:
            self.fail(
                start - ITEM_HEADER.size,
                f"an abstract syntax sub-item in presentation context {context_id}",
                "none",
            )
        return PresentationContextRQ(
            context_id, abstract_syntax, tuple(transfer_syntaxes)
        )

    def presentation_context_ac(self, start: int, end: int) -> PresentationContextAC:
        """
        Decode the data of a presentation context item of type 0x21.
        """
        context_id, result = self._context_fields(start, end)
        transfer_syntax: str | None = None
        sub_items = self.items(start + _PRESENTATION_CONTEXT_FIELDS.size, end)
        for item_type, _, item_start, data_start, data_end in sub_items:
            if item_type == TRANSFER_SYNTAX_SUB_ITEM:
                if transfer_syntax is not None:
                    self.fail(item_start, "one transfer syntax sub-item", "a second")
                transfer_syntax = self.uid(data_start, data_end)
            elif item_type in DEFINED_ITEM_TYPES:
                self.unexpected_type(item_start, item_type, "0x40")
        return PresentationContextAC(context_id, result, transfer_syntax)

    def user_information(self, start: int, end: int) -> UserInformation:
        """
        Decode the data of a user information item.
        """
        sub_items = []
        for item_type, second_byte, item_start, data_start, data_end in self.items(
            start, end
        ):
            sub_items.append(
                self._sub_item(item_type, second_byte, item_start, data_start, data_end)
            )
        return UserInformation(tuple(sub_items))

    def _expect_length(self, item_start: int, length: int, expected: int) -> None:
        if length != expected:
            self.fail(item_start + 2, f"an item length of {expected}", str(length))

    def _expect_end(self, offset: int, end: int, sub_item_name: str) -> None:
        if offset != end:
            self.fail(
                offset,
                f"the end of the {sub_item_name} sub-item",
                f"{end - offset} more bytes",
            )

    def _prefixed(self, offset: int, end: int, field_name: str) -> tuple[int, int]:
        """
        Locate a field preceded by a 16-bit length.

        @return: The start and end of the field's value.
        """
        if end - offset < _UINT16.size:
            self.fail(offset, f"a 2-byte {field_name} length", f"{end - offset} bytes")
        (length,) = _UINT16.unpack_from(self._view, offset)
        if offset + 2 + length > end:
            self.fail(
                offset,
                f"a {field_name} length of at most {end - offset - 2}",
                str(length),
            )
        return offset + 2, offset + 2 + length

    def _sub_item(
        self,
        item_type: int,
        second_byte: int,
        item_start: int,
        start: int,
        end: int,
    ) -> UserInformationSubItem:
        view = self._view
        if item_type == MAXIMUM_LENGTH_SUB_ITEM:
            self._expect_length(item_start, end - start, _UINT32.size)
            return MaximumLength(_UINT32.unpack_from(view, start)[0])
        if item_type == IMPLEMENTATION_CLASS_UID_SUB_ITEM:
            return ImplementationClassUID(self.uid(start, end))
        if item_type == ASYNCHRONOUS_OPERATIONS_WINDOW_SUB_ITEM:
            self._expect_length(item_start, end - start, _ASYNCHRONOUS_WINDOW.size)
            return AsynchronousOperationsWindow(
                *_ASYNCHRONOUS_WINDOW.unpack_from(view, start)
            )
        if item_type == SCP_SCU_ROLE_SELECTION_SUB_ITEM:
            uid_start, uid_end = self._prefixed(start, end, "SOP class UID")
            self._expect_end(uid_end + _ROLES.size, end, "SCP/SCU role selection")
            scu_role, scp_role = _ROLES.unpack_from(view, uid_end)
            return SCPSCURoleSelection(
                self.uid(uid_start, uid_end), scu_role != 0, scp_role != 0
            )
        if item_type == IMPLEMENTATION_VERSION_NAME_SUB_ITEM:
            return ImplementationVersionName(self.uid(start, end))
        if item_type == SOP_CLASS_EXTENDED_NEGOTIATION_SUB_ITEM:
            uid_start, uid_end = self._prefixed(start, end, "SOP class UID")
            return SOPClassExtendedNegotiation(
                self.uid(uid_start, uid_end), bytes(view[uid_end:end])
            )
        if item_type == SOP_CLASS_COMMON_EXTENDED_NEGOTIATION_SUB_ITEM:
            return self._common_extended_negotiation(second_byte, start, end)
        if item_type == USER_IDENTITY_RQ_SUB_ITEM:
            return self._user_identity_rq(start, end)
        if item_type == USER_IDENTITY_AC_SUB_ITEM:
            response_start, response_end = self._prefixed(start, end, "server response")
            self._expect_end(response_end, end, "user identity")
            return UserIdentityAC(bytes(view[response_start:response_end]))
        return UnknownSubItem(item_type, bytes(view[start:end]))

    def _common_extended_negotiation(
        self, sub_item_version: int, start: int, end: int
    ) -> SOPClassCommonExtendedNegotiation:
        sop_start, sop_end = self._prefixed(start, end, "SOP class UID")
        service_start, service_end = self._prefixed(sop_end, end, "service class UID")
        related_start, related_end = self._prefixed(
            service_end, end, "related general SOP class identification"
        )
        self._expect_end(related_end, end, "SOP class common extended negotiation")
        related = []
        offset = related_start
        while offset < related_end:
            uid_start, uid_end = self._prefixed(
                offset, related_end, "related general SOP class UID"
            )
            related.append(self.uid(uid_start, uid_end))
            offset = uid_end
        return SOPClassCommonExtendedNegotiation(
            self.uid(sop_start, sop_end),
            self.uid(service_start, service_end),
            tuple(related),
            sub_item_version,
        )

    def _user_identity_rq(self, start: int, end: int) -> UserIdentityRQ:
        view = self._view
        if end - start < 2:
            self.fail(
                start - 2, "a user identity item length of at least 6", str(end - start)
            )
        identity_type = view[start]
        response_requested = view[start + 1] != 0
        primary_start, primary_end = self._prefixed(start + 2, end, "primary field")
        secondary_start, secondary_end = self._prefixed(
            primary_end, end, "secondary field"
        )
        self._expect_end(secondary_end, end, "user identity")
        return UserIdentityRQ(
            identity_type,
            response_requested,
            bytes(view[primary_start:primary_end]),
            bytes(view[secondary_start:secondary_end]),
        )
