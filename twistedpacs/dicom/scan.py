"""
An incremental structural scanner of DICOM instances, the ingest hot path.

L{InstanceScanner} reads each byte of an upload or of a received data set once,
in chunks split anywhere. It walks every element, including those nested in
sequences and the fragments of encapsulated pixel data, so that a body is
accepted only when the walk ends exactly on an element boundary at the top
level. It keeps only an element header that straddles two chunks and the
values of the few top-level tags it reads, and skips every other value by
counting, so the pixel data is never copied.

Element layout (PS3.5 section 7.1): a tag (group and element, 2 bytes each),
then in explicit VR a 2-letter VR followed by a 2-byte length, or by 2
reserved bytes and a 4-byte length for the VRs in L{_LONG_VRS}. In implicit VR
a 4-byte length follows the tag. Items and delimiters (group C{FFFE}) always
carry a tag and a 4-byte length, and a length of C{FFFFFFFF} means undefined,
closed by a delimiter.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

from pydicom.charset import convert_encodings
from pydicom.multival import MultiValue
from pydicom.values import convert_PN, convert_single_string, convert_text

from twistedpacs.dicom.tags import DICTIONARY_VRS, MAIN_TAGS, TAG_NUMBERS
from twistedpacs.model import InstanceHeader, Level

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
DEFLATED_TRANSFER_SYNTAXES = frozenset(
    ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1")
)
MEDIA_STORAGE_DIRECTORY_STORAGE = "1.2.840.10008.1.3.10"

#: The deepest nesting of sequences, a top-level sequence being 1 deep, that a
#: data set may have. Real data rarely nests more than about 10 deep. pydicom
#: reads and prints each level with several nested calls and fails with
#: RecursionError somewhere between 150 and 200 levels, so a deeper data set
#: would be stored and then could not be read.
MAXIMUM_SEQUENCE_DEPTH = 64

_LONG_VRS = frozenset(
    (b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UC", b"UN", b"UR")
    + (b"UT", b"SV", b"UV")
)
_SHORT_VRS = frozenset(
    (b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS")
    + (b"LO", b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL")
    + (b"US",)
)
_VRS = _LONG_VRS | _SHORT_VRS

_ITEM = 0xFFFEE000
_ITEM_DELIMITER = 0xFFFEE00D
_SEQUENCE_DELIMITER = 0xFFFEE0DD
_UNDEFINED_LENGTH = 0xFFFFFFFF
_PIXEL_DATA = 0x7FE00010
_DIRECTORY_RECORD_SEQUENCE = 0x00041220
_META_GROUP_LENGTH = 0x00020000

# Values of the collected tags longer than this are skipped, not read: no
# conforming value of those VRs comes near it, and it bounds the memory a
# hostile length can make the scanner hold.
_MAX_COLLECTED_LENGTH = 65536
# A File Meta group is a few hundred bytes, so this bounds only a hostile one.
_MAX_META_LENGTH = 1 << 20
# Each call to the inflater produces at most this many bytes.
_INFLATE_PIECE = 1 << 18

_PREAMBLE_LENGTH = 132  # 128-byte preamble and "DICM"

# Frame kinds of the walk: the top level, a sequence (its items), an item (data
# elements) and encapsulated pixel data (its fragments).
_TOP, _SEQUENCE, _ITEM_FRAME, _FRAGMENTS = range(4)
_NO_END = 1 << 62

_EXPLICIT_LE = struct.Struct("<HH2sH").unpack_from
_EXPLICIT_BE = struct.Struct(">HH2sH").unpack_from
_IMPLICIT_LE = struct.Struct("<HHL").unpack_from
_ITEM_BE = struct.Struct(">HHL").unpack_from
_LENGTH_LE = struct.Struct("<L").unpack_from
_LENGTH_BE = struct.Struct(">L").unpack_from

# The tags read at the top level, keyed by 32-bit tag number.
_COLLECTED: dict[int, str] = {
    (group << 16) | element: keyword
    for keyword, (group, element) in TAG_NUMBERS.items()
}
_COLLECTED[_DIRECTORY_RECORD_SEQUENCE] = "DirectoryRecordSequence"
# Once a top-level element with a larger tag is walked, every collected tag
# of a data set in ascending tag order has been seen.
_LAST_COLLECTED = max(_COLLECTED)

_META_TAGS = {
    0x00020002: "MediaStorageSOPClassUID",
    0x00020003: "MediaStorageSOPInstanceUID",
    0x00020010: "TransferSyntaxUID",
}

_REQUIRED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")

# Phases of a scan.
_PREAMBLE, _META, _DATA_SET = range(3)


class InvalidInstanceError(ValueError):
    """
    The bytes are not a DICOM instance that can be stored.

    @ivar message: a short description for the user, such as
        C{"Missing SOPInstanceUID"}.
    @ivar details: a longer description naming the offset or value at fault.
    """

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(f"{message}: {details}" if details else message)
        self.message = message
        self.details = details


class NotDicomError(InvalidInstanceError):
    """
    The bytes are neither a DICOM file nor a bare DICOM data set.
    """


class DicomdirError(InvalidInstanceError):
    """
    The bytes are a DICOMDIR, which indexes a file-set and is no instance.
    """


def _truncated(details: str) -> InvalidInstanceError:
    return InvalidInstanceError("Truncated DICOM file", details)


def _invalid(details: str) -> InvalidInstanceError:
    return InvalidInstanceError("Invalid DICOM file", details)


def _dicomdir_error() -> DicomdirError:
    return DicomdirError(
        "DICOMDIR cannot be imported alone",
        "the file is a DICOMDIR, an index of a file-set; upload the instances "
        "it lists instead",
    )


def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _mode_of(transfer_syntax: str) -> tuple[bool, bool, bool]:
    """
    Return (explicit VR, little endian, deflated) of a transfer syntax.

    Every transfer syntax other than implicit VR little endian and explicit VR
    big endian encodes its data set in explicit VR little endian, deflated
    first for the deflated ones.
    """
    if transfer_syntax == IMPLICIT_VR_LITTLE_ENDIAN:
        return False, True, False
    if transfer_syntax == EXPLICIT_VR_BIG_ENDIAN:
        return True, False, False
    return True, True, transfer_syntax in DEFLATED_TRANSFER_SYNTAXES


def detect_bare_data_set(head: bytes) -> str | None:
    """
    Detect the transfer syntax of a data set sent without a File Meta group.

    The first element must belong to group 0008, as every composite instance
    starts with it. It is read as explicit VR when its bytes 4 and 5 are a
    known VR, little endian first, otherwise as implicit VR little endian.
    Big endian is accepted too, since pydicom and DCMTK read it.

    @param head: at least the first 8 bytes.
    @return: the detected transfer syntax UID, or L{None} when the bytes do
        not start with a plausible group 0008 element.
    """
    if len(head) < 8:
        return None
    vr = bytes(head[4:6])
    if head[0:2] == b"\x08\x00":
        return EXPLICIT_VR_LITTLE_ENDIAN if vr in _VRS else IMPLICIT_VR_LITTLE_ENDIAN
    if head[0:2] == b"\x00\x08" and vr in _VRS:
        return EXPLICIT_VR_BIG_ENDIAN
    return None


class InstanceScanner:
    """
    Walk one DICOM instance fed in chunks, and read its identifying header.

    @ivar size: the number of bytes fed so far.
    """

    def __init__(self, transfer_syntax: str | None = None) -> None:
        """
        @param transfer_syntax: L{None} for an upload, which is a Part 10 file
            (preamble, C{DICM}, File Meta group) or a bare data set whose
            encoding is detected. A transfer syntax UID for a data set received
            over DIMSE, which has no File Meta group.
        """
        self.size = 0
        self._head = b""
        self._meta: dict[str, bytes] = {}
        self._meta_position = 0  # File Meta bytes consumed, after "DICM"
        self._meta_end: int | None = None
        self._meta_deflated = False
        self._has_file_meta = False
        self._transfer_syntax = ""
        self._inflater: Any = None
        # Walk state of the data set stream (inflated when deflated).
        self._stack: list[tuple[int, int, bool, bool]] = []
        self._sequence_depth = 0  # the sequence frames in _stack
        self._explicit = True
        self._little = True
        self._base_explicit = True
        self._base_little = True
        self._offset = 0  # stream offset of the first byte after the tail
        self._tail = b""
        self._need = 0
        self._skip = 0
        self._values: dict[str, tuple[bytes, bool]] = {}
        self._dicomdir = False
        # Whether the walk passed the last collected tag at the top level, and
        # the header built from the values collected until then.
        self._past_collected = False
        self._early_header: InstanceHeader | None = None
        self._early_tried = False
        # Values collected, counting a repeated tag each time.
        self._collected = 0
        self._collected_early = 0
        if transfer_syntax is None:
            self._phase = _PREAMBLE
        else:
            self._start_data_set(transfer_syntax)

    def feed(self, data: bytes | memoryview) -> None:
        """
        Walk the next chunk of the instance.

        @raise InvalidInstanceError: when the bytes fed so far already show
            that the instance is invalid (for example, not DICOM at all).
        """
        self.size += len(data)
        if self._phase == _DATA_SET:
            self._feed_stream(data)
            return
        buffer = self._head + bytes(data) if self._head else data
        self._head = b""
        pos = 0
        if self._phase == _PREAMBLE:
            pos = self._feed_preamble(buffer)
        if self._phase == _META:
            pos = self._feed_meta(buffer, pos)
        if self._phase == _DATA_SET and pos < len(buffer):
            self._feed_stream(memoryview(buffer)[pos:] if pos else buffer)

    def finish(self) -> InstanceHeader:
        """
        Check that the instance ended on an element boundary and return its
        header.

        @raise NotDicomError: when the bytes are not DICOM.
        @raise DicomdirError: when the bytes are a DICOMDIR.
        @raise InvalidInstanceError: when the instance is truncated, invalid or
            lacks one of the UIDs that identify it.
        """
        if self._phase == _PREAMBLE:
            self._finish_preamble()
        if self._phase == _META:
            self._finish_meta()
        if (
            self._meta_text("MediaStorageSOPClassUID")
            == MEDIA_STORAGE_DIRECTORY_STORAGE
        ):
            raise _dicomdir_error()
        if self._inflater is not None:
            self._finish_inflater()
        self._finish_walk()
        early = self._early_header
        if early is not None and self._collected_early == self._collected:
            return early
        return self._build_header()

    def early_header(self) -> InstanceHeader | None:
        """
        Return the header as soon as the walk has passed every tag it reads,
        which in a data set in ascending tag order is before the pixel data.

        L{finish} still checks the rest of the instance, and returns this
        header only if no collected tag came after it.

        @return: the header, or L{None} while tags may still come or when
            the header cannot be built yet (L{finish} then raises the error).
        """
        if self._early_header is not None:
            return self._early_header
        if not self._past_collected or self._early_tried:
            return None
        # The header is built once. If that fails, finish raises the error.
        self._early_tried = True
        self._collected_early = self._collected
        try:
            self._early_header = self._build_header()
        except InvalidInstanceError:
            return None
        return self._early_header

    # Upload detection and the File Meta group.

    def _feed_preamble(self, buffer: bytes | memoryview) -> int:
        """
        Decide between a Part 10 file and a bare data set once 132 bytes have
        arrived, and return the position where the next phase starts.
        """
        if len(buffer) < _PREAMBLE_LENGTH:
            # A preamble may contain anything, so wait for "DICM" or its absence.
            self._head = bytes(buffer)
            return len(buffer)
        if buffer[128:132] == b"DICM":
            self._phase = _META
            self._has_file_meta = True
            return _PREAMBLE_LENGTH
        self._start_bare(buffer)
        return 0

    def _finish_preamble(self) -> None:
        head, self._head = self._head, b""
        self._start_bare(head)
        self._feed_stream(head)

    def _start_bare(self, head: bytes) -> None:
        transfer_syntax = detect_bare_data_set(head)
        if transfer_syntax is None:
            raise NotDicomError(
                "Not a DICOM file",
                "the body has no DICM prefix at offset 128 and does not start "
                "with a group 0008 element",
            )
        self._start_data_set(transfer_syntax)

    def _feed_meta(self, buffer: bytes | memoryview, pos: int) -> int:
        """
        Read File Meta elements from C{buffer[pos:]}, and return the position
        after the group once it ends, or keep the incomplete rest for the next
        chunk and return the end.
        """
        end = len(buffer)
        # File Meta offset of buffer[0], counted from the end of "DICM".
        origin = self._meta_position - pos
        while not self._meta_ends(buffer, pos, origin):
            if end - pos < 12:
                break
            group, element, vr, length = _EXPLICIT_LE(buffer, pos)
            header = 8
            if vr in _LONG_VRS:
                (length,) = _LENGTH_LE(buffer, pos + 8)
                header = 12
            elif vr not in _SHORT_VRS:
                raise _invalid(
                    f"unknown VR {vr!r} in the File Meta group at offset "
                    f"{_PREAMBLE_LENGTH + origin + pos}"
                )
            if length > _MAX_COLLECTED_LENGTH:
                raise _invalid(f"a File Meta element of {length} bytes")
            if end - pos < header + length:
                break
            value = bytes(buffer[pos + header : pos + header + length])
            self._store_meta((group << 16) | element, value, origin + pos + header)
            pos += header + length
        else:
            self._start_data_set(self._meta_transfer_syntax())
            return pos
        self._meta_position = origin + pos
        if origin + end > _MAX_META_LENGTH:
            raise _invalid("the File Meta group is longer than 1 MiB")
        self._head = bytes(buffer[pos:])
        return end

    def _store_meta(self, tag: int, value: bytes, value_offset: int) -> None:
        keyword = _META_TAGS.get(tag)
        if keyword is not None:
            self._meta[keyword] = value
            if keyword == "TransferSyntaxUID":
                syntax = value.decode("latin-1").rstrip("\0 ")
                self._meta_deflated = syntax in DEFLATED_TRANSFER_SYNTAXES
        elif tag == _META_GROUP_LENGTH and len(value) == 4:
            (group_length,) = _LENGTH_LE(value, 0)
            self._meta_end = value_offset + 4 + group_length

    def _meta_ends(self, buffer: bytes | memoryview, pos: int, origin: int) -> bool:
        """
        Tell whether the File Meta group ends at C{pos}: the next element is
        not in group 0002, or, when the data set is deflated and so cannot be
        peeked at, the group length is used up.
        """
        if self._meta_deflated and self._meta_end is not None:
            return origin + pos >= self._meta_end
        return len(buffer) - pos >= 2 and buffer[pos : pos + 2] != b"\x02\x00"

    def _finish_meta(self) -> None:
        head, self._head = self._head, b""
        if head:
            raise _truncated("the data ends inside the File Meta group")
        self._start_data_set(self._meta_transfer_syntax())

    def _meta_transfer_syntax(self) -> str:
        raw = self._meta.get("TransferSyntaxUID")
        transfer_syntax = raw.decode("latin-1").rstrip("\0 ") if raw else ""
        if not transfer_syntax:
            raise InvalidInstanceError(
                "Missing TransferSyntaxUID",
                "the File Meta group has no TransferSyntaxUID (0002,0010)",
            )
        return transfer_syntax

    # The data set stream.

    def _start_data_set(self, transfer_syntax: str) -> None:
        explicit, little, deflated = _mode_of(transfer_syntax)
        self._transfer_syntax = transfer_syntax
        self._explicit = self._base_explicit = explicit
        self._little = self._base_little = little
        if deflated:
            self._inflater = zlib.decompressobj(-15)
        self._phase = _DATA_SET

    def _feed_stream(self, data: bytes | memoryview) -> None:
        inflater = self._inflater
        if inflater is None:
            self._walk_chunk(data)
            return
        if inflater.eof:
            return
        try:
            piece = inflater.decompress(data, _INFLATE_PIECE)
            while piece:
                self._walk_chunk(piece)
                piece = inflater.decompress(inflater.unconsumed_tail, _INFLATE_PIECE)
        except zlib.error as error:
            raise _invalid(f"the deflated data set cannot be inflated: {error}")

    def _finish_inflater(self) -> None:
        if not self._inflater.eof:
            raise _truncated("the deflated data set ends before its last block")
        # NOTE: bytes after the end of the deflate stream are outside the data
        # set and ignored, as pydicom 3.0 and DCMTK 3.6.7 ignore them. pydicom's
        # image_dfl.dcm carries 16 such bytes.

    def _walk_chunk(self, data: bytes | memoryview) -> None:
        """
        Walk one chunk of the data set stream, first completing the element
        left incomplete by the previous chunk.
        """
        pos = 0
        size = len(data)
        while pos < size:
            if self._skip:
                count = min(self._skip, size - pos)
                self._skip -= count
                self._offset += count
                pos += count
            elif self._tail:
                tail = self._tail
                piece = bytes(data[pos : pos + max(self._need - len(tail), 64)])
                joined = tail + piece
                self._tail = b""
                base = self._offset - len(tail)
                stop = self._walk(joined, 0, len(joined), base)
                self._offset += len(piece)
                pos += len(piece)
                if stop < len(joined):
                    self._tail = joined[stop:]
            else:
                stop = self._walk(data, pos, size, self._offset - pos)
                self._offset += size - pos
                if stop < size:
                    self._tail = bytes(data[stop:size])
                pos = size

    def _walk(self, buf: Any, pos: int, end: int, base: int) -> int:
        """
        Walk the elements of C{buf[pos:end]}, whose first byte is at stream
        offset C{base}.

        @return: the position of the first element that is not complete,
            after setting C{_need} to the bytes it needs. Or C{end}, after
            setting C{_skip} to the bytes of a value that continue past
            C{end}.
        """
        long_vrs, short_vrs, collected = _LONG_VRS, _SHORT_VRS, _COLLECTED
        explicit, kind, frame_end, header_of, length_of = self._walk_state(base)
        while True:
            if pos >= frame_end:
                if pos > frame_end:
                    raise _invalid(
                        f"an element ends at offset {base + pos}, past the end "
                        f"of its sequence or item at offset {base + frame_end}"
                    )
                self._pop()
                explicit, kind, frame_end, header_of, length_of = self._walk_state(base)
                continue
            if end - pos < 8:
                self._need = 8
                return pos
            if explicit:
                group, element, vr, length = header_of(buf, pos)
            else:
                group, element, length = header_of(buf, pos)
                vr = None
            if group == 0xFFFE:
                (length,) = length_of(buf, pos + 4)
                pos = self._item(0xFFFE0000 | element, length, kind, pos, end, base)
                if self._skip:
                    return end
                explicit, kind, frame_end, header_of, length_of = self._walk_state(base)
                continue
            if kind == _SEQUENCE or kind == _FRAGMENTS:
                raise _invalid(
                    f"element ({group:04X},{element:04X}) at offset {base + pos} "
                    "is not inside an item"
                )
            header = 8
            if vr is not None:
                if vr in long_vrs:
                    if end - pos < 12:
                        self._need = 12
                        return pos
                    (length,) = length_of(buf, pos + 8)
                    header = 12
                elif vr not in short_vrs:
                    raise _invalid(
                        f"unknown VR {vr!r} in element ({group:04X},{element:04X}) "
                        f"at offset {base + pos}"
                    )
            if length == _UNDEFINED_LENGTH or vr == b"SQ":
                if kind == _TOP and (group << 16) | element > _LAST_COLLECTED:
                    self._past_collected = True
                self._push(
                    (group << 16) | element, vr, length, kind, base + pos + header
                )
                pos += header
                explicit, kind, frame_end, header_of, length_of = self._walk_state(base)
                continue
            value_end = pos + header + length
            if kind == _TOP:
                tag = (group << 16) | element
                if tag > _LAST_COLLECTED:
                    self._past_collected = True
                elif tag in collected and length <= _MAX_COLLECTED_LENGTH:
                    if value_end > end:
                        self._need = header + length
                        return pos
                    self._collect(tag, buf[pos + header : value_end])
            if value_end > end:
                self._skip = value_end - end
                return end
            pos = value_end

    def _walk_state(self, base: int) -> tuple[bool, int, int, Any, Any]:
        """
        Return what the walk needs to know about the innermost frame: explicit
        VR or not, its kind, its end relative to C{base} (L{_NO_END} when
        undefined), and the header and length unpackers of its encoding.
        """
        if self._stack:
            kind, frame_end, _, _ = self._stack[-1]
            if frame_end >= 0:
                frame_end -= base
            else:
                frame_end = _NO_END
        else:
            kind, frame_end = _TOP, _NO_END
        if self._explicit:
            header_of = _EXPLICIT_LE if self._little else _EXPLICIT_BE
        else:
            header_of = _IMPLICIT_LE if self._little else _ITEM_BE
        length_of = _LENGTH_LE if self._little else _LENGTH_BE
        return self._explicit, kind, frame_end, header_of, length_of

    def _push(
        self, tag: int, vr: bytes | None, length: int, kind: int, start: int
    ) -> None:
        """
        Enter a sequence, or the fragments of encapsulated pixel data, whose
        value starts at stream offset C{start}.
        """
        if kind == _TOP and tag == _DIRECTORY_RECORD_SEQUENCE:
            self._dicomdir = True
        explicit, little = self._explicit, self._little
        frame_end = -1 if length == _UNDEFINED_LENGTH else start + length
        if vr == b"SQ" or (vr is None and tag != _PIXEL_DATA):
            frame_kind = _SEQUENCE
        elif vr == b"UN":
            # PS3.5 6.2.2: an undefined-length UN value is a sequence in
            # implicit VR little endian.
            frame_kind = _SEQUENCE
            explicit, little = False, True
        else:
            frame_kind = _FRAGMENTS
        if frame_kind == _SEQUENCE:
            self._sequence_depth += 1
            if self._sequence_depth > MAXIMUM_SEQUENCE_DEPTH:
                raise InvalidInstanceError(
                    "Sequences nested too deeply",
                    f"the sequence {_tag_text(tag)} with its value at offset "
                    f"{start} is nested {self._sequence_depth} deep, more than "
                    f"the maximum of {MAXIMUM_SEQUENCE_DEPTH}",
                )
        self._stack.append((frame_kind, frame_end, explicit, little))
        self._explicit, self._little = explicit, little

    def _pop(self) -> None:
        if self._stack.pop()[0] == _SEQUENCE:
            self._sequence_depth -= 1
        if self._stack:
            _, _, self._explicit, self._little = self._stack[-1]
        else:
            self._explicit, self._little = self._base_explicit, self._base_little

    def _item(
        self, tag: int, length: int, kind: int, pos: int, end: int, base: int
    ) -> int:
        """
        Handle an item or delimiter tag at C{pos}, and return the position
        after it.
        """
        undefined = bool(self._stack) and self._stack[-1][1] < 0
        if tag == _ITEM and kind == _SEQUENCE:
            frame_end = -1 if length == _UNDEFINED_LENGTH else base + pos + 8 + length
            self._stack.append((_ITEM_FRAME, frame_end, self._explicit, self._little))
            return pos + 8
        if tag == _ITEM and kind == _FRAGMENTS and length != _UNDEFINED_LENGTH:
            value_end = pos + 8 + length
            if value_end > end:
                self._skip = value_end - end
                return end
            return value_end
        if tag == _SEQUENCE_DELIMITER and kind in (_SEQUENCE, _FRAGMENTS) and undefined:
            self._pop()
            return pos + 8
        if tag == _ITEM_DELIMITER and kind == _ITEM_FRAME and undefined:
            self._pop()
            return pos + 8
        raise _invalid(f"unexpected {_tag_text(tag)} at offset {base + pos}")

    def _collect(self, tag: int, value: Any) -> None:
        keyword = _COLLECTED[tag]
        if tag == _DIRECTORY_RECORD_SEQUENCE:
            self._dicomdir = True
            return
        self._values[keyword] = (bytes(value), self._little)
        self._collected += 1

    def _finish_walk(self) -> None:
        if self._skip:
            raise _truncated(
                f"the data ends at offset {self._offset}, {self._skip} bytes "
                f"before the end of the value of its last element"
            )
        if self._tail:
            raise _truncated(
                f"the data ends inside the element at offset "
                f"{self._offset - len(self._tail)}"
            )
        # Leave the defined-length sequences and items that end exactly here.
        self._walk(b"", 0, 0, self._offset)
        if self._stack:
            raise _truncated(
                f"{len(self._stack)} sequences or items are not closed at the "
                "end of the data"
            )

    # The header.

    def _build_header(self) -> InstanceHeader:
        media_class = self._meta_text("MediaStorageSOPClassUID")
        if self._dicomdir:
            raise _dicomdir_error()
        decoded = _decode_values(self._values)
        missing = [keyword for keyword in _REQUIRED_UIDS if not decoded.get(keyword)]
        if missing:
            raise InvalidInstanceError(
                "Missing " + ", ".join(missing),
                "the data set lacks " + ", ".join(missing) + ", which identify "
                "an instance",
            )
        main_tags = {
            level: {
                keyword: decoded[keyword]
                for keyword in MAIN_TAGS[level]
                if keyword in decoded
            }
            for level in Level
        }
        return InstanceHeader(
            transfer_syntax=self._transfer_syntax,
            sop_class_uid=decoded.get("SOPClassUID") or media_class,
            sop_instance_uid=decoded["SOPInstanceUID"],
            study_instance_uid=decoded["StudyInstanceUID"],
            series_instance_uid=decoded["SeriesInstanceUID"],
            patient_id=decoded.get("PatientID", ""),
            has_file_meta=self._has_file_meta,
            specific_character_set=decoded.get("SpecificCharacterSet", ""),
            main_tags=main_tags,
        )

    def _meta_text(self, keyword: str) -> str:
        raw = self._meta.get(keyword)
        return raw.decode("latin-1").rstrip("\0 ") if raw else ""


def _decode_values(values: dict[str, tuple[bytes, bool]]) -> dict[str, str]:
    """
    Decode the collected values to strings as pydicom converts them, with the
    values of a multi-valued element joined by backslashes.
    """
    charset = values.get("SpecificCharacterSet")
    encodings: list[str] | None = None
    if charset is not None:
        names = charset[0].decode("latin-1").rstrip(" \0").split("\\")
        try:
            encodings = convert_encodings([name.strip() for name in names])
        except (LookupError, ValueError):
            # pydicom falls back to its default repertoire for unknown names.
            encodings = None
    decoded = {}
    for keyword, (raw, little) in values.items():
        decoded[keyword] = decode_value(DICTIONARY_VRS[keyword], raw, little, encodings)
    return decoded


def decode_value(vr: str, raw: bytes, little: bool, encodings: list[str] | None) -> str:
    """
    Decode one value the way pydicom 3.0 converts it, as a string.

    @param vr: the dictionary VR of the tag.
    @param raw: the value bytes.
    @param little: whether binary values are little endian.
    @param encodings: the Python encodings of the data set's character set,
        or L{None} for the default repertoire.
    """
    if vr == "US":
        count = len(raw) // 2
        numbers = struct.unpack(
            ("<" if little else ">") + "H" * count, raw[: 2 * count]
        )
        return "\\".join(str(number) for number in numbers)
    if vr in ("DS", "IS"):
        text = raw.decode("latin-1").strip()
        return "\\".join(value.strip() for value in text.split("\\"))
    if vr in ("UI", "CS", "DA", "TM", "DT", "AS"):
        return raw.decode("latin-1").rstrip(" \0")
    ascii_text = raw.isascii() and b"\x1b" not in raw
    if vr == "PN":
        if ascii_text:
            return raw.rstrip(b"\0 ").decode("ascii")
        return _join(convert_PN(raw, encodings))
    if vr in ("LT", "ST", "UT"):
        if ascii_text:
            return raw.decode("ascii").rstrip("\0 ")
        return convert_single_string(raw, encodings)
    if ascii_text:
        text = raw.decode("ascii")
        return "\\".join(value.rstrip("\0 ") for value in text.split("\\"))
    return _join(convert_text(raw, encodings))


def _join(value: Any) -> str:
    if isinstance(value, MultiValue):
        return "\\".join(str(item) for item in value)
    return str(value)
