"""
Byte streams a DICOM peer sends, built from the layouts of PS3.8 section 9.3
and PS3.5 section 7.1, and readers of what a server sends back.

The fake-transport protocol tests and the live-server case tests share them.
"""

from __future__ import annotations

import struct

from twistedpacs.dimse.commands import (
    CEchoRQ,
    Command,
    CStoreRQ,
    decode_command,
    encode_command,
)

VERIFICATION = "1.2.840.10008.1.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
PRINT_META_SOP_CLASS = "1.2.840.10008.5.1.1.9"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"

# A 44-character UID, so that a C-STORE-RQ for it is 138 bytes long.
UID_44 = "2.25.123456789012345678901234567890123456789"

_PDU_HEADER = struct.Struct(">BBL")
_PDV_HEADER = struct.Struct(">LBB")


def item(item_type: int, data: bytes) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(data)) + data


def ae(title: str) -> bytes:
    return title.encode("ascii").ljust(16, b" ")


def associate_rq(
    contexts: list[tuple[int, str, list[str]]] | None = None,
    maximum_length: int = 16384,
    called: str = "TWISTEDPACS",
    calling: str = "QA_SCU",
    application_context: str = APPLICATION_CONTEXT,
    version: int = 1,
    extra_sub_items: bytes = b"",
) -> bytes:
    if contexts is None:
        contexts = [(1, VERIFICATION, [IMPLICIT_LE])]
    body = struct.pack(">HH", version, 0) + ae(called) + ae(calling) + bytes(32)
    body += item(0x10, application_context.encode())
    for context_id, abstract_syntax, transfer_syntaxes in contexts:
        data = bytes([context_id, 0, 0, 0]) + item(0x30, abstract_syntax.encode())
        for transfer_syntax in transfer_syntaxes:
            data += item(0x40, transfer_syntax.encode())
        body += item(0x20, data)
    user = item(0x51, struct.pack(">L", maximum_length)) + extra_sub_items
    body += item(0x50, user)
    return _PDU_HEADER.pack(0x01, 0, len(body)) + body


def pdv(context_id: int, flags: int, data: bytes) -> bytes:
    return _PDV_HEADER.pack(len(data) + 2, context_id, flags) + data


def pdata(*pdvs: bytes) -> bytes:
    body = b"".join(pdvs)
    return _PDU_HEADER.pack(0x04, 0, len(body)) + body


RELEASE_RQ = bytes.fromhex("050000000004 00000000")
ABORT_RQ = bytes.fromhex("070000000004 00000000")


def element(group: int, element: int, value: bytes) -> bytes:
    """
    Encode one Implicit VR Little Endian element.
    """
    return struct.pack("<HHL", group, element, len(value)) + value


def even(text: str, pad: bytes = b" ") -> bytes:
    raw = text.encode("ascii")
    return raw + pad if len(raw) % 2 else raw


def dataset(
    sop_instance_uid: str | None = UID_44,
    pixel_data: bytes = bytes(range(256)) * 4,
    patient_name: str = "QA^PATIENT",
    comments: bytes = b"",
) -> bytes:
    """
    Encode a CT data set in Implicit VR Little Endian.
    """
    parts = [element(0x0008, 0x0016, even(CT_IMAGE_STORAGE, b"\0"))]
    if sop_instance_uid is not None:
        parts.append(element(0x0008, 0x0018, even(sop_instance_uid, b"\0")))
    parts += [
        element(0x0008, 0x0060, b"CT"),
        element(0x0010, 0x0010, even(patient_name)),
        element(0x0010, 0x0020, b"QA01"),
        element(0x0020, 0x000D, even("2.25.1001", b"\0")),
        element(0x0020, 0x000E, even("2.25.1002", b"\0")),
    ]
    if comments:
        parts.append(element(0x0020, 0x4000, comments))
    parts.append(element(0x7FE0, 0x0010, pixel_data))
    return b"".join(parts)


def dataset_of_length(total: int) -> bytes:
    """
    Encode a data set of exactly C{total} bytes by sizing its Pixel Data.
    """
    base = len(dataset(pixel_data=b""))
    return dataset(pixel_data=bytes(i % 251 for i in range(total - base)))


def store_rq(message_id: int = 1, uid: str = UID_44) -> bytes:
    return encode_command(
        CStoreRQ(
            message_id=message_id,
            affected_sop_class_uid=CT_IMAGE_STORAGE,
            affected_sop_instance_uid=uid,
        )
    )


def echo_rq(message_id: int = 1) -> bytes:
    return encode_command(CEchoRQ(message_id=message_id))


def store_message(
    context_id: int, dataset: bytes, message_id: int = 1, uid: str = UID_44
) -> bytes:
    """
    Encode a C-STORE-RQ and its data set, each in one PDU of one PDV.
    """
    return pdata(pdv(context_id, 0x03, store_rq(message_id, uid))) + pdata(
        pdv(context_id, 0x02, dataset)
    )


# Readers of what the protocol wrote.


def split_pdus(data: bytes) -> list[tuple[int, bytes]]:
    pdus = []
    offset = 0
    while offset < len(data):
        pdu_type, _, length = _PDU_HEADER.unpack_from(data, offset)
        body = data[offset + 6 : offset + 6 + length]
        assert len(body) == length, "truncated PDU in the output"
        pdus.append((pdu_type, body))
        offset += 6 + length
    return pdus


def responses(data: bytes) -> list[Command]:
    """
    Decode every DIMSE command the protocol wrote in P-DATA-TF PDUs.
    """
    commands = []
    fragments = b""
    for pdu_type, body in split_pdus(data):
        if pdu_type != 0x04:
            continue
        offset = 0
        while offset < len(body):
            length, _, flags = _PDV_HEADER.unpack_from(body, offset)
            fragments += body[offset + 6 : offset + 4 + length]
            offset += 4 + length
            if flags & 0x02:
                commands.append(decode_command(fragments))
                fragments = b""
    return commands


def statuses(data: bytes) -> list[int]:
    return [command.status for command in responses(data)]  # type: ignore[union-attr]
