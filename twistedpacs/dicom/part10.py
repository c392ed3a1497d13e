"""
The preamble and File Meta group that turn a bare data set into a Part 10
file (PS3.10 section 7.1).

A data set received over DIMSE, or uploaded without a File Meta group, is
stored as C{file_meta_prefix(...) + data set bytes}, so every stored instance
is a Part 10 file. An upload that already is one is stored as received.
"""

from __future__ import annotations

import struct

IMPLEMENTATION_CLASS_UID = "2.25.163818797814908120031996522218550939159"
"""
TwistedPACS's Implementation Class UID, derived once from the UUID
C{7b3e5a52-2f0c-4a51-9a0e-6c1d2b9f4e17} under the C{2.25} root (PS3.5 B.2).
"""

IMPLEMENTATION_VERSION_NAME = "TWISTEDPACS_010"
"""
The Implementation Version Name sent in File Meta groups and associations
(at most 16 characters).
"""

_PREAMBLE = bytes(128) + b"DICM"


def _element(element: int, vr: bytes, value: bytes, padding: bytes) -> bytes:
    """
    Encode one group 0002 element in explicit VR little endian, padded to an
    even length.
    """
    if len(value) % 2:
        value += padding
    if vr == b"OB":
        return struct.pack("<HH2sxxL", 0x0002, element, vr, len(value)) + value
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def file_meta_prefix(
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax: str,
    source_aet: str = "",
) -> bytes:
    """
    Build the 128-byte preamble, C{DICM} and the File Meta group of a data
    set.

    @param sop_class_uid: the MediaStorageSOPClassUID (the data set's
        SOPClassUID).
    @param sop_instance_uid: the MediaStorageSOPInstanceUID.
    @param transfer_syntax: the transfer syntax UID the data set is encoded in.
    @param source_aet: the AE title of the peer that sent the data set, or
        C{""} to leave SourceApplicationEntityTitle out.
    @return: the bytes to store in front of the data set.
    """
    body = b"".join(
        (
            _element(0x0001, b"OB", b"\x00\x01", b"\0"),
            _element(0x0002, b"UI", sop_class_uid.encode("ascii"), b"\0"),
            _element(0x0003, b"UI", sop_instance_uid.encode("ascii"), b"\0"),
            _element(0x0010, b"UI", transfer_syntax.encode("ascii"), b"\0"),
            _element(0x0012, b"UI", IMPLEMENTATION_CLASS_UID.encode("ascii"), b"\0"),
            _element(0x0013, b"SH", IMPLEMENTATION_VERSION_NAME.encode("ascii"), b" "),
        )
    )
    # An AE title is ASCII without backslash or control characters (PS3.5
    # Table 6.2-1). Any other character a peer sends is replaced with "?".
    aet = "".join(
        character if " " <= character <= "~" and character != "\\" else "?"
        for character in source_aet.strip()
    )
    if aet:
        body += _element(0x0016, b"AE", aet.encode("ascii"), b" ")
    group_length = struct.pack("<HH2sHL", 0x0002, 0x0000, b"UL", 4, len(body))
    return _PREAMBLE + group_length + body
