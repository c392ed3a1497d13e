# -*- test-case-name: tests.test_dimse_outgoing -*-
"""
Sending stored instances to a peer as C-STORE SCU: for the sub-operations of
a C-MOVE and for Orthanc's C{/modalities/{name}/store}.

A sub-association proposes one presentation context per stored SOP class
and transfer syntax (L{proposed_contexts}); each instance goes on a context
in its stored syntax, or for little endian data in the other little endian
(L{choose_context}). In its stored syntax an instance streams from the store
chunk by chunk (L{StoredDataSet}), so sending holds about two chunks of it
in memory, whatever its size. Converting between the two little endian
syntaxes needs pydicom and therefore the whole data set in memory.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from io import BytesIO
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks, succeed

from twistedpacs.dimse.scu import ProposedContext, ServiceUser
from twistedpacs.ul.negotiation import AcceptedContext

__all__ = [
    "StoredDataSet",
    "choose_context",
    "convert_little_endian",
    "data_set_start",
    "dataset_offset",
    "proposed_contexts",
    "send_stored_instance",
]

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
_LITTLE_ENDIAN_SYNTAXES = (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN)

# A sub-association proposes at most 128 presentation contexts (PS3.8).
_MAXIMUM_CONTEXTS = 128

_PREAMBLE_AND_MAGIC = 132
_EXPLICIT_HEADER = struct.Struct("<HH2sH")
_LONG_LENGTH = struct.Struct("<L")
_LONG_LENGTH_VRS = frozenset((b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC"))
_LONG_LENGTH_VRS |= frozenset((b"UN", b"UR", b"UT", b"SV", b"UV"))


def data_set_start(head: bytes | bytearray | memoryview, complete: bool) -> int | None:
    """
    Return where the data set starts in the first bytes of a stored file:
    after the preamble, C{DICM} and the File Meta group, or 0 for a bare
    data set.

    @param complete: C{head} is the whole file, so a File Meta group that
        runs to its end ends there.
    @return: the offset, or L{None} when C{head} ends inside the File Meta
        group and more bytes are needed.
    """
    view = memoryview(head)
    if len(view) < _PREAMBLE_AND_MAGIC:
        return 0 if complete else None
    if bytes(view[128:_PREAMBLE_AND_MAGIC]) != b"DICM":
        return 0
    offset = _PREAMBLE_AND_MAGIC
    # The File Meta group is Explicit VR Little Endian (PS3.10 section 7.1).
    while True:
        if offset + 12 > len(view) and not complete:
            return None
        if offset + 8 > len(view):
            return min(offset, len(view))
        group, _, vr, short_length = _EXPLICIT_HEADER.unpack_from(view, offset)
        if group != 0x0002:
            return offset
        if vr in _LONG_LENGTH_VRS:
            if offset + 12 > len(view):
                return len(view)
            (length,) = _LONG_LENGTH.unpack_from(view, offset + 8)
            offset += 12 + length
        else:
            offset += 8 + short_length


def dataset_offset(file_bytes: bytes | memoryview) -> int:
    """
    Return where the data set starts in a whole stored file.
    """
    start = data_set_start(file_bytes, complete=True)
    assert start is not None
    return start


def convert_little_endian(data: bytes, source: str, target: str) -> bytes:
    """
    Re-encode a data set between Implicit and Explicit VR Little Endian.
    """
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import read_dataset
    from pydicom.filewriter import write_dataset

    dataset = read_dataset(BytesIO(data), source == IMPLICIT_VR_LITTLE_ENDIAN, True)
    buffer = DicomBytesIO()
    buffer.is_little_endian = True
    buffer.is_implicit_VR = target == IMPLICIT_VR_LITTLE_ENDIAN
    write_dataset(buffer, dataset)
    return buffer.getvalue()


def proposed_contexts(pairs: set[tuple[str, str]]) -> list[ProposedContext]:
    """
    Build the presentation contexts of a sub-association: one per stored SOP
    class and transfer syntax, and for a SOP class stored in little endian a
    context that also offers the other little endian syntax.

    @raise ValueError: if more than 128 contexts would be needed.
    """
    contexts = [ProposedContext(sop, (syntax,)) for sop, syntax in sorted(pairs)]
    little = sorted({sop for sop, syntax in pairs if syntax in _LITTLE_ENDIAN_SYNTAXES})
    contexts += [ProposedContext(sop, _LITTLE_ENDIAN_SYNTAXES) for sop in little]
    if len(contexts) > _MAXIMUM_CONTEXTS:
        raise ValueError(f"{len(contexts)} presentation contexts needed")
    return contexts


def choose_context(
    user: ServiceUser, sop_class_uid: str, transfer_syntax: str
) -> AcceptedContext | None:
    """
    Return the accepted context to send an instance on: one in its stored
    transfer syntax, or for little endian data in the other little endian.
    """
    exact = user.context_for(sop_class_uid, transfer_syntax)
    if exact is not None or transfer_syntax not in _LITTLE_ENDIAN_SYNTAXES:
        return exact
    for syntax in _LITTLE_ENDIAN_SYNTAXES:
        context = user.context_for(sop_class_uid, syntax)
        if context is not None:
            return context
    return None


class StoredDataSet:
    """
    The data set of a stored instance, read piece by piece: its File Meta
    group (or the preamble, magic and File Meta of a stored Part 10 file)
    is skipped.

    @param reader: a L{twistedpacs.storage.reads.BlobReader} of the file.
    """

    def __init__(self, reader: Any) -> None:
        self._reader = reader
        self._head: bytearray | None = bytearray()

    def read_next(self) -> Deferred[bytes | memoryview | None]:
        """
        Read the next piece of the data set.

        @return: a L{Deferred} firing with the bytes, or with L{None} after
            the last piece. It fails with
            L{twistedpacs.model.StorageError} when the instance was deleted
            or overwritten meanwhile.
        """
        if self._head is None:
            return self._reader.read_next()  # type: ignore[no-any-return]
        return self._skip_meta()

    @inlineCallbacks
    def _skip_meta(self) -> Iterator[Deferred[Any]]:
        head = self._head
        assert head is not None
        while True:
            piece = yield self._reader.read_next()
            if piece is not None:
                head += piece
            start = data_set_start(head, complete=piece is None)
            if start is not None:
                break
        self._head = None
        if start >= len(head):
            # Only a complete file ends with its File Meta group.
            return None
        return memoryview(head)[start:]


def send_stored_instance(
    store: Any,
    user: ServiceUser,
    context: AcceptedContext,
    instance_id: str,
    sop_instance_uid: str,
    transfer_syntax: str,
    **originator: Any,
) -> Deferred[Any]:
    """
    Send the stored instance C{instance_id} on C{context} with a C-STORE-RQ.

    @param transfer_syntax: the transfer syntax the instance is stored in.
    @param originator: C{move_originator_aet} and
        C{move_originator_message_id} for a C-MOVE sub-operation.
    @return: a L{Deferred} firing with the C-STORE-RSP, or with L{None} when
        the instance is no longer stored.
    """
    if context.transfer_syntax == transfer_syntax:
        reader = store.open_reader(instance_id)
        if reader is None:
            return succeed(None)
        return user.store(
            context, sop_instance_uid, StoredDataSet(reader), **originator
        )
    return _send_converted(
        store, user, context, instance_id, sop_instance_uid, transfer_syntax, originator
    )


@inlineCallbacks
def _send_converted(
    store: Any,
    user: ServiceUser,
    context: AcceptedContext,
    instance_id: str,
    sop_instance_uid: str,
    transfer_syntax: str,
    originator: dict[str, Any],
) -> Iterator[Deferred[Any]]:
    file_bytes = yield store.read_file(instance_id)
    if file_bytes is None:
        return None
    data = bytes(memoryview(file_bytes)[dataset_offset(file_bytes) :])
    del file_bytes
    data = convert_little_endian(data, transfer_syntax, context.transfer_syntax)
    response = yield user.store(context, sop_instance_uid, data, **originator)
    return response
