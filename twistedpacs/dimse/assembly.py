"""
DIMSE messages from and to presentation data values (PS3.7 section 6.3 and
PS3.8 Annex E), with no I/O.

A message is a command set, sent as one or more command fragments, followed
by a data set in one or more data-set fragments when the Command Data Set Type
of the command announces one. Each fragment travels in one presentation data value (PDV) item of a
P-DATA-TF PDU, whose message control header has bit 0 set for a command
fragment and bit 1 set for the last fragment of the command or data set.
"""

from __future__ import annotations

import enum
import struct
from typing import NoReturn, Protocol

from twistedpacs.dimse.commands import Command, CommandDecodeError, decode_command

__all__ = [
    "DIMSEProtocolError",
    "MAX_COMMAND_LENGTH",
    "MessageAssembler",
    "MessageReceiver",
    "PDU_LENGTH_FOR_UNLIMITED_PEER",
    "fragment_message",
]


class DIMSEProtocolError(ValueError):
    """
    A peer broke the rules for fragmenting DIMSE messages into PDVs. The
    association must be aborted.
    """


# Message control header bits (PS3.8 section E.2).
COMMAND_FRAGMENT = 0x01
LAST_FRAGMENT = 0x02

# Cap on the bytes of one received command set. A DIMSE-C command set is a
# few hundred bytes, so a larger one is a broken or hostile peer.
MAX_COMMAND_LENGTH = 64 * 1024

# PDU length that fragment_message uses when the peer's Maximum Length is 0,
# which means it accepts any length. Large enough that the 12 header bytes
# per fragment cost nothing, small enough not to hold up other writes.
PDU_LENGTH_FOR_UNLIMITED_PEER = 128 * 1024

# PDU type, reserved byte and PDU length, then the PDV item length, the
# presentation context ID and the message control header.
_PDATA_TF_WITH_PDV_HEADER = struct.Struct(">BBIIBB")
_PDATA_TF = 0x04
# Bytes of a P-DATA-TF PDU's variable field that are not fragment data: the
# 4-byte item length, the context ID and the message control header.
_PDV_OVERHEAD = 6
_MAX_PDU_LENGTH_FIELD = 0xFFFFFFFF


class MessageReceiver(Protocol):
    """
    The receiver of the messages a L{MessageAssembler} assembles.

    Data-set fragments are passed on as they arrive, so a large data set is
    never held whole here.
    """

    def command_received(self, context_id: int, command: Command) -> None:
        """
        Take the command set of a new message on presentation context
        C{context_id}. If C{command.has_dataset} is true, data-set fragments
        follow.
        """

    def dataset_fragment(self, context_id: int, data: memoryview) -> None:
        """
        Take the next non-empty fragment of the current message's data set.

        C{data} is a view of the caller's receive buffer. Copy it to keep it,
        unless that buffer is an immutable C{bytes} object (the view then
        keeps all of it alive).
        """

    def dataset_complete(self, context_id: int) -> None:
        """
        Finish the data set of the current message, whose last fragment has
        been passed to L{dataset_fragment} (unless it was empty).
        """


class _State(enum.Enum):
    AWAITING_COMMAND = "awaiting a command"
    IN_COMMAND = "inside a command set"
    IN_DATASET = "inside a data set"


class MessageAssembler:
    """
    Assembles the DIMSE messages that a peer sends on one association.

    Command fragments are joined and decoded once the last one arrives.
    Data-set fragments go to the receiver without a copy. Any fragment that
    breaks the rules raises L{DIMSEProtocolError}, after which every further
    call raises it again.

    The assembler does not check that a context ID was accepted during
    negotiation, which is the caller's job.
    """

    def __init__(
        self,
        receiver: MessageReceiver,
        max_command_length: int = MAX_COMMAND_LENGTH,
        check_reserved_bits: bool = False,
    ) -> None:
        """
        @param receiver: the receiver of every assembled command and data-set
            fragment.
        @param max_command_length: the maximum length in bytes of one
            received command set.
        @param check_reserved_bits: whether a PDV with message control header
            bits 2 to 7 set raises L{DIMSEProtocolError}. The default is false
            because PS3.8 section E.2 has the receiver never check those bits.
        """
        self._receiver = receiver
        self._max_command_length = max_command_length
        self._reserved_mask = 0xFC if check_reserved_bits else 0x00
        self._state = _State.AWAITING_COMMAND
        self._context_id = 0
        self._command_fragments = bytearray()
        self._last_command: Command | None = None
        self._failure: str | None = None

    @property
    def idle(self) -> bool:
        """
        Whether the assembler is between messages, with no fragment of an
        unfinished message received.
        """
        return self._state is _State.AWAITING_COMMAND and self._failure is None

    def reset(self) -> None:
        """
        Drop any unfinished message and any earlier failure, as when a new
        association starts.
        """
        self._state = _State.AWAITING_COMMAND
        self._context_id = 0
        self._command_fragments = bytearray()
        self._last_command = None
        self._failure = None

    def feed_pdv(
        self, context_id: int, message_control_header: int, data: memoryview
    ) -> None:
        """
        Process the fragment of one PDV item.

        @param context_id: the presentation context ID of the PDV.
        @param message_control_header: the PDV's message control header byte.
        @param data: the fragment, of any length, valid only during the call.
        @raise DIMSEProtocolError: if the PDV does not continue the current
            message or start a new one, if a command set is longer than the
            maximum or cannot be decoded, or if an earlier PDV failed.
        """
        if self._failure is not None:
            raise DIMSEProtocolError(
                f"message assembly already failed: {self._failure}"
            )
        if message_control_header & self._reserved_mask:
            self._fail(
                f"PDV on presentation context {context_id} has message control "
                f"header 0x{message_control_header:02X}, with reserved bits "
                f"2-7 set"
            )
        is_command = message_control_header & COMMAND_FRAGMENT
        is_last = message_control_header & LAST_FRAGMENT

        if self._state is _State.IN_DATASET:
            self._check_continuation(context_id, is_command)
            if data:
                self._receiver.dataset_fragment(context_id, data)
            if is_last:
                self._state = _State.AWAITING_COMMAND
                self._receiver.dataset_complete(context_id)
            return

        if self._state is _State.AWAITING_COMMAND:
            if not is_command:
                self._fail(self._unexpected_dataset_message(context_id))
            self._state = _State.IN_COMMAND
            self._context_id = context_id
        else:
            self._check_continuation(context_id, is_command)
        self._add_command_fragment(data, is_last)

    def _add_command_fragment(self, data: memoryview, is_last: int) -> None:
        size = len(self._command_fragments) + len(data)
        if size > self._max_command_length:
            self._fail(
                f"command set on presentation context {self._context_id} is "
                f"at least {size} bytes, more than the maximum of "
                f"{self._max_command_length}"
            )
        if not is_last:
            # The caller may reuse the buffer behind data after this call.
            self._command_fragments += data
            return

        if self._command_fragments:
            self._command_fragments += data
            encoded: bytes | memoryview = bytes(self._command_fragments)
            self._command_fragments = bytearray()
        else:
            encoded = data
        try:
            command = decode_command(encoded)
        except CommandDecodeError as error:
            self._fail(
                f"invalid command set on presentation context "
                f"{self._context_id}: {error}"
            )

        self._last_command = command
        if command.has_dataset:
            self._state = _State.IN_DATASET
        else:
            self._state = _State.AWAITING_COMMAND
        self._receiver.command_received(self._context_id, command)

    def _check_continuation(self, context_id: int, is_command: int) -> None:
        expected = "data-set" if self._state is _State.IN_DATASET else "command"
        if context_id != self._context_id:
            self._fail(
                f"PDV on presentation context {context_id} arrived while the "
                f"{expected} fragments of a message on presentation context "
                f"{self._context_id} were incomplete"
            )
        if self._state is _State.IN_DATASET and is_command:
            self._fail(
                f"command PDV on presentation context {context_id} arrived "
                f"before the last data-set fragment of the "
                f"{self._last_command_name()} on that context"
            )
        if self._state is _State.IN_COMMAND and not is_command:
            self._fail(
                f"data-set PDV on presentation context {context_id} arrived "
                f"before the last command fragment"
            )

    def _unexpected_dataset_message(self, context_id: int) -> str:
        if self._last_command is None:
            return (
                f"data-set PDV on presentation context {context_id} arrived "
                f"before any command"
            )
        return (
            f"data-set PDV on presentation context {context_id} arrived, but "
            f"the last command, a {self._last_command_name()}, has no data set"
        )

    def _last_command_name(self) -> str:
        if self._last_command is None:
            return "command"
        return self._last_command.name

    def _fail(self, message: str) -> NoReturn:
        self._failure = message
        raise DIMSEProtocolError(message)


def fragment_message(
    context_id: int,
    command_bytes: bytes,
    dataset: bytes | memoryview | None,
    max_pdu_length: int,
) -> list[list[bytes]]:
    """
    Split a DIMSE message into P-DATA-TF PDUs of one PDV each.

    Every PDU's length field, which counts the bytes after the 6-byte PDU
    header, is at most C{max_pdu_length}, the Maximum Length the peer
    proposed. Fragments have even length unless only one byte fits. An empty
    data set is sent as one empty last fragment.

    Each PDU is a list of the 12 header bytes (PDU and PDV item headers) and,
    unless the fragment is empty, the fragment, ready for
    C{transport.writeSequence}. The fragment is a C{bytes} slice, because
    Twisted's transports accept only C{bytes} (a C{memoryview} raises
    C{TypeError}), so a fragment of a data set is copied once. A C{bytes}
    input that fits in one fragment is passed on without a copy.

    @param context_id: the odd presentation context ID, 1 to 255.
    @param command_bytes: the encoded command set.
    @param dataset: the encoded data set, or L{None} if the message has none.
    @param max_pdu_length: the peer's Maximum Length. 0 means unlimited, and
        then L{PDU_LENGTH_FOR_UNLIMITED_PEER} is used.
    @raise ValueError: if the context ID is invalid, the command is empty or
        C{max_pdu_length} is too small to hold a one-byte fragment.
    """
    if not (1 <= context_id <= 255 and context_id % 2):
        raise ValueError(
            f"presentation context ID {context_id!r} is not an odd number "
            f"from 1 to 255"
        )
    if not command_bytes:
        raise ValueError("command set is empty")
    if max_pdu_length == 0:
        max_pdu_length = PDU_LENGTH_FOR_UNLIMITED_PEER
    if not _PDV_OVERHEAD < max_pdu_length <= _MAX_PDU_LENGTH_FIELD:
        raise ValueError(
            f"maximum PDU length {max_pdu_length!r} must be 0 or from "
            f"{_PDV_OVERHEAD + 1} to {_MAX_PDU_LENGTH_FIELD}"
        )
    fragment_length = max_pdu_length - _PDV_OVERHEAD
    if fragment_length > 1:
        fragment_length &= ~1

    pdus: list[list[bytes]] = []
    _append_fragments(pdus, context_id, command_bytes, fragment_length, True)
    if dataset is not None:
        _append_fragments(pdus, context_id, dataset, fragment_length, False)
    return pdus


def _append_fragments(
    pdus: list[list[bytes]],
    context_id: int,
    payload: bytes | memoryview,
    fragment_length: int,
    is_command: bool,
) -> None:
    flags = COMMAND_FRAGMENT if is_command else 0x00
    if isinstance(payload, memoryview) and payload.format != "B":
        payload = payload.cast("B")
    size = len(payload)
    pack = _PDATA_TF_WITH_PDV_HEADER.pack
    offset = 0
    while True:
        end = min(offset + fragment_length, size)
        length = end - offset
        header = flags | LAST_FRAGMENT if end == size else flags
        pdu = [
            pack(
                _PDATA_TF,
                0x00,
                length + _PDV_OVERHEAD,
                length + 2,
                context_id,
                header,
            )
        ]
        if length:
            pdu.append(bytes(payload[offset:end]))
        pdus.append(pdu)
        offset = end
        if offset == size:
            return
