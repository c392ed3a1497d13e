"""
Time the reactor's share of one instance, in one process and without a
network or a disk: a C-STORE fed to the DICOM protocol, and a C{POST
/instances} fed to the HTTP channel, both on a L{StringTransport} in front of
the null store. A third row times what the null store leaves out: a store
transfer joining the data set's PDVs into chunks for the writer.

Run from the repository root: C{python -m benchmarks.reactor_cpu [COUNT]
[--profile]}. It sends the SMALL source file of pydicom-data (526 KB) COUNT
times (default 2,000) in pieces of 1 MiB, as the servers read their sockets,
and prints the median of five runs in microseconds per instance. With
C{--profile} it also prints the 25 functions with the most own time under
cProfile.
"""

from __future__ import annotations

import cProfile
import pstats
import statistics
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import replace

from pydicom import dcmread
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from benchmarks.data import SMALL_SOURCE, source_directory
from benchmarks.store_latency import entry
from twistedpacs.config import Settings
from twistedpacs.dimse.commands import CStoreRQ, encode_command
from twistedpacs.rest.site import build_site
from twistedpacs.service import keep_buffers_in_heap
from twistedpacs.storage.null import NullStore
from twistedpacs.storage.transfer import FlowControl, Transfer
from twistedpacs.storage.writer import Operation, TransferState
from twistedpacs.ul.listener import build_factory

READ_SIZE = 1024 * 1024
PDU_LENGTH = 128 * 1024
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
_PDU = struct.Struct(">BBL")
_PDV = struct.Struct(">LBB")
_ITEM = struct.Struct(">BBH")
ADDRESS = IPv4Address("TCP", "127.0.0.1", 40000)


def _item(item_type: int, data: bytes) -> bytes:
    return _ITEM.pack(item_type, 0, len(data)) + data


def _associate_rq() -> bytes:
    body = struct.pack(">HH", 1, 0) + b"ORTHANC".ljust(16) + b"BENCH".ljust(16)
    body += bytes(32) + _item(0x10, b"1.2.840.10008.3.1.1.1")
    context = bytes([1, 0, 0, 0]) + _item(0x30, CT_IMAGE_STORAGE.encode())
    context += _item(0x40, EXPLICIT_LE.encode())
    body += _item(0x20, context)
    body += _item(0x50, _item(0x51, struct.pack(">L", PDU_LENGTH)))
    return _PDU.pack(0x01, 0, len(body)) + body


def _pdata(flags: int, data: bytes) -> bytes:
    """
    Encode C{data} as P-DATA-TF PDUs of at most C{PDU_LENGTH} bytes, one PDV
    each, the last one with the last-fragment bit.
    """
    pdus = []
    room = PDU_LENGTH - 6
    for offset in range(0, len(data), room):
        piece = data[offset : offset + room]
        last = offset + room >= len(data)
        pdv = _PDV.pack(len(piece) + 2, 1, flags | (0x02 if last else 0)) + piece
        pdus.append(_PDU.pack(0x04, 0, len(pdv)) + pdv)
    return b"".join(pdus)


def _source() -> tuple[bytes, bytes, str]:
    """
    Return the Part 10 file, its data set without File Meta, and its SOP
    Instance UID.
    """
    path = source_directory() / SMALL_SOURCE
    part10 = path.read_bytes()
    # The File Meta group follows the preamble and "DICM". Its first element,
    # (0002,0000) UL in explicit VR, contains the length of the rest.
    (group_length,) = struct.unpack_from("<L", part10, 140)
    dataset = part10[144 + group_length :]
    uid = str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)
    return part10, dataset, uid


def _pieces(data: bytes) -> list[bytes]:
    starts = range(0, len(data), READ_SIZE)
    return [data[start : start + READ_SIZE] for start in starts]


def dicom_sender(settings: Settings) -> Callable[[int], None]:
    """
    Return a function that stores the SMALL data set COUNT times over one
    association.
    """
    _, dataset, uid = _source()
    command = encode_command(
        CStoreRQ(
            message_id=1,
            affected_sop_class_uid=CT_IMAGE_STORAGE,
            affected_sop_instance_uid=uid,
        )
    )
    message = _pdata(0x01, command) + _pdata(0x00, dataset)
    pieces = _pieces(message)
    factory = build_factory(NullStore(settings, Clock()), settings, Clock())
    protocol = factory.buildProtocol(ADDRESS)
    transport = StringTransport(peerAddress=ADDRESS)
    protocol.makeConnection(transport)
    protocol.dataReceived(_associate_rq())
    if transport.value()[:1] != b"\x02":
        raise RuntimeError(f"association not accepted: {transport.value()[:16]!r}")
    transport.clear()

    def send(count: int) -> None:
        for _ in range(count):
            for piece in pieces:
                protocol.dataReceived(piece)
            if not transport.value():
                raise RuntimeError("no C-STORE-RSP")
            transport.clear()

    return send


def rest_sender(settings: Settings) -> Callable[[int], None]:
    """
    Return a function that uploads the SMALL file COUNT times over one
    keep-alive connection.
    """
    part10, _, _ = _source()
    head = (
        b"POST /instances HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/dicom\r\n"
        b"Content-Length: %d\r\n\r\n" % len(part10)
    )
    pieces = _pieces(head + part10)
    site = build_site(NullStore(settings, Clock()), settings, Clock())
    channel = site.buildProtocol(ADDRESS)
    transport = StringTransport(peerAddress=ADDRESS)
    channel.makeConnection(transport)

    def send(count: int) -> None:
        for _ in range(count):
            for piece in pieces:
                channel.dataReceived(piece)
            if not transport.value().startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"upload failed: {transport.value()[:200]!r}")
            transport.clear()

    return send


def chunk_sender(settings: Settings) -> Callable[[int], None]:
    """
    Return a function that writes the SMALL data set COUNT times into a store
    transfer, one view per PDV as the DICOM protocol hands them over, and
    drops the operations meant for the writer.
    """
    _, dataset, _ = _source()
    received = memoryview(dataset)
    room = PDU_LENGTH - 12
    views = [received[start : start + room] for start in range(0, len(dataset), room)]
    flow = FlowControl(1 << 62, 1 << 62)
    dropped: list[Operation] = []
    index_entry = entry(0)

    def send(count: int) -> None:
        for _ in range(count):
            state = TransferState(lambda: None, lambda: None)
            transfer = Transfer(
                state,
                dropped.append,
                flow,
                time.monotonic,
                settings.in_memory_threshold,
                lambda transfer: None,
            )
            for view in views:
                transfer.write(view)
            transfer.finish(index_entry)
            dropped.clear()

    return send


def measure(send: Callable[[int], None], count: int, runs: int = 5) -> float:
    """
    Return the median over C{runs} of the microseconds per instance.
    """
    send(50)
    results = []
    for _ in range(runs):
        start = time.perf_counter()
        send(count)
        results.append((time.perf_counter() - start) / count * 1e6)
    return statistics.median(results)


def main() -> None:
    arguments = [argument for argument in sys.argv[1:] if not argument.startswith("-")]
    count = int(arguments[0]) if arguments else 2000
    settings = replace(Settings(), null_store=True)
    # The server sets the same allocator thresholds when it starts.
    keep_buffers_in_heap()
    senders = (
        ("C-STORE", dicom_sender),
        ("REST", rest_sender),
        ("chunks", chunk_sender),
    )
    for name, build in senders:
        send = build(settings)
        print(f"{name:8} {measure(send, count):7.1f} us per instance")
        if "--profile" in sys.argv:
            profile = cProfile.Profile()
            profile.runcall(send, count)
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
