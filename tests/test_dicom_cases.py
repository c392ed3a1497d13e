"""
Field failure cases of associations and C-STORE, replayed as raw byte streams
against a live server started with C{--aet TWISTEDPACS}.

A client here behaves as a real one: it waits for the response after the
A-ASSOCIATE-RQ, after the last fragment of each request and after the
A-RELEASE-RQ.
"""

from __future__ import annotations

import socket
import struct
import time
import zlib

import pydicom
from pydicom.filebase import DicomBytesIO
from twisted.trial.unittest import SynchronousTestCase

from tests.pdu_streams import (
    ABORT_RQ,
    CT_IMAGE_STORAGE,
    DEFLATED_LE,
    IMPLICIT_LE,
    PRINT_META_SOP_CLASS,
    RELEASE_RQ,
    UID_44,
    VERIFICATION,
    associate_rq,
    dataset,
    dataset_of_length,
    echo_rq,
    element,
    even,
    pdata,
    pdv,
    store_rq,
)
from tests.server import ServerProcess
from twistedpacs.dimse.commands import decode_command

AET = "TWISTEDPACS"
_PDU_HEADER = struct.Struct(">BBL")
_PDV_HEADER = struct.Struct(">LBB")
CONTEXTS = [(1, CT_IMAGE_STORAGE, [IMPLICIT_LE]), (3, VERIFICATION, [IMPLICIT_LE])]


class Peer:
    """
    A raw DICOM peer on one TCP connection, reading whole PDUs back.
    """

    def __init__(self, port: int) -> None:
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""
        self.received: list[tuple[int, bytes]] = []

    def send(self, data: bytes) -> None:
        self.socket.sendall(data)

    def read_pdu(self, timeout: float = 10.0) -> tuple[int, bytes] | None:
        """
        Return the next PDU (type, body), or None once the server closed.
        """
        self.socket.settimeout(timeout)
        while True:
            if len(self.buffer) >= 6:
                pdu_type, _, length = _PDU_HEADER.unpack_from(self.buffer)
                if len(self.buffer) >= 6 + length:
                    body = self.buffer[6 : 6 + length]
                    self.buffer = self.buffer[6 + length :]
                    self.received.append((pdu_type, body))
                    return pdu_type, body
            try:
                piece = self.socket.recv(65536)
            except ConnectionResetError:
                return None
            if not piece:
                return None
            self.buffer += piece

    def read_command(self) -> object:
        """
        Read P-DATA-TF PDUs until a complete command set, and decode it.
        """
        fragments = b""
        while True:
            pdu = self.read_pdu()
            assert pdu is not None, "the server closed instead of answering"
            pdu_type, body = pdu
            assert pdu_type == 0x04, f"expected P-DATA-TF, got PDU type {pdu_type}"
            offset = 0
            while offset < len(body):
                length, _, flags = _PDV_HEADER.unpack_from(body, offset)
                fragments += body[offset + 6 : offset + 4 + length]
                offset += 4 + length
                if flags & 0x03 == 0x03:
                    return decode_command(fragments)

    def closed(self, timeout: float = 5.0) -> bool:
        """
        Tell whether the server closes the connection within C{timeout}.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pdu = self.read_pdu(timeout=deadline - time.monotonic())
            if pdu is None:
                return True
        return False

    def close(self) -> None:
        self.socket.close()


class CaseTests(SynchronousTestCase):
    """
    Each case against one fresh server.
    """

    def setUp(self) -> None:
        self.server = ServerProcess(aet=AET)
        self.addCleanup(self.server.stop)

    def associate(
        self,
        contexts: list[tuple[int, str, list[str]]] = CONTEXTS,
        maximum: int = 16384,
    ) -> tuple[Peer, bytes]:
        peer = Peer(self.server.dicom_port)
        self.addCleanup(peer.close)
        peer.send(associate_rq(contexts, maximum_length=maximum, called=AET))
        pdu = peer.read_pdu()
        assert pdu is not None
        self.assertEqual(pdu[0], 0x02, "expected A-ASSOCIATE-AC")
        return peer, pdu[1]

    def echo(self, peer: Peer, context_id: int = 3, message_id: int = 9) -> None:
        peer.send(pdata(pdv(context_id, 0x03, echo_rq(message_id))))
        self.assertEqual(peer.read_command().status, 0x0000)

    def release(self, peer: Peer) -> None:
        peer.send(RELEASE_RQ)
        pdu = peer.read_pdu()
        assert pdu is not None
        self.assertEqual(pdu[0], 0x06, "expected A-RELEASE-RP")

    def count(self) -> int:
        return int(self.server.get_json("/statistics")["CountInstances"])

    def stored_dataset(self) -> pydicom.Dataset:
        instance_id = self.server.get_json("/instances")[0]
        data = self.server.get_bytes(f"/instances/{instance_id}/file")
        return pydicom.dcmread(DicomBytesIO(data))

    def test_fragmented_store(self) -> None:
        """
        A command in two PDVs and a data set in 63 one-PDV PDUs whose sizes
        cut tags in half are reassembled and stored.
        """
        peer, _ = self.associate()
        command = store_rq(1)
        peer.send(pdata(pdv(1, 0x01, command[:20])))
        peer.send(pdata(pdv(1, 0x03, command[20:])))
        data = dataset(patient_name="QA^FRAGMENTED", pixel_data=bytes(range(256)))
        sizes = [2, 4, 6, 2, 10, 8, 2, 14, 30, 2, 64, 6]
        offset, index = 0, 0
        while offset < len(data):
            size = min(sizes[index % len(sizes)], len(data) - offset)
            last = offset + size == len(data)
            peer.send(
                pdata(pdv(1, 0x02 if last else 0x00, data[offset : offset + size]))
            )
            offset += size
            index += 1
        self.assertEqual(peer.read_command().status, 0x0000)
        self.echo(peer)
        self.release(peer)
        stored = self.stored_dataset()
        self.assertEqual(str(stored.PatientName), "QA^FRAGMENTED")
        self.assertEqual(stored.PixelData, bytes(range(256)))

    def test_command_and_data_in_one_pdu(self) -> None:
        """
        Command and data set PDVs in the same P-DATA-TF are stored.
        """
        peer, _ = self.associate()
        peer.send(
            pdata(
                pdv(1, 0x03, store_rq(1)),
                pdv(1, 0x02, dataset(patient_name="QA^ONEPDU")),
            )
        )
        self.assertEqual(peer.read_command().status, 0x0000)
        self.release(peer)
        self.assertEqual(str(self.stored_dataset().PatientName), "QA^ONEPDU")

    def test_peer_maximum_zero(self) -> None:
        """
        A peer maximum length of 0 (unlimited) is accepted; the AC announces
        our own maximum.
        """
        peer, ac = self.associate(maximum=0)
        self.assertIn(b"\x51\x00\x00\x04", ac)
        maximum = struct.unpack(">L", ac[ac.index(b"\x51\x00\x00\x04") + 4 :][:4])[0]
        self.assertGreater(maximum, 0)
        peer.send(pdata(pdv(1, 0x03, store_rq(1))) + pdata(pdv(1, 0x02, dataset())))
        self.assertEqual(peer.read_command().status, 0x0000)
        self.echo(peer)
        self.release(peer)

    def test_peer_maximum_4096(self) -> None:
        """
        With a peer maximum of 4096, a 40,500-byte data set sent in 4090-byte
        fragments is stored, and no PDU from the server exceeds 4096 bytes.
        """
        peer, _ = self.associate(maximum=4096)
        data = dataset_of_length(40500)
        peer.send(pdata(pdv(1, 0x03, store_rq(1))))
        for offset in range(0, len(data), 4090):
            piece = data[offset : offset + 4090]
            last = offset + 4090 >= len(data)
            peer.send(pdata(pdv(1, 0x02 if last else 0x00, piece)))
        self.assertEqual(peer.read_command().status, 0x0000)
        self.echo(peer)
        self.release(peer)
        for pdu_type, body in peer.received:
            self.assertLessEqual(len(body), 4096, f"PDU type {pdu_type}")
        self.assertEqual(self.count(), 1)

    def test_odd_length_last_fragment(self) -> None:
        """
        A data set ending in 15 bytes of Pixel Data (an odd 517-byte PDV) is
        either stored with its 15 bytes or aborted with nothing stored. The
        server responds either way, within the read timeout.
        """
        peer, _ = self.associate()
        data = dataset(pixel_data=bytes(range(15)))
        peer.send(pdata(pdv(1, 0x03, store_rq(1))) + pdata(pdv(1, 0x02, data)))
        pdu = peer.read_pdu()
        self.assertIsNotNone(pdu)
        if pdu[0] == 0x07:
            self.assertEqual(self.count(), 0)
            return
        peer.buffer = _PDU_HEADER.pack(pdu[0], 0, len(pdu[1])) + pdu[1] + peer.buffer
        self.assertEqual(peer.read_command().status, 0x0000)
        self.echo(peer)
        stored = self.stored_dataset()
        self.assertEqual(stored.PixelData[:15], bytes(range(15)))

    def test_no_acceptable_context(self) -> None:
        """
        A print meta SOP class gets result 3 and CT storage with an unknown
        transfer syntax gets result 4.
        """
        contexts = [
            (1, PRINT_META_SOP_CLASS, [IMPLICIT_LE]),
            (3, CT_IMAGE_STORAGE, ["1.2.3.4.5.6.7.8.9"]),
        ]
        peer = Peer(self.server.dicom_port)
        self.addCleanup(peer.close)
        peer.send(associate_rq(contexts, called=AET))
        pdu = peer.read_pdu()
        assert pdu is not None
        if pdu[0] == 0x03:
            self.assertEqual(pdu[1][1:4], b"\x01\x01\x01")
            return
        self.assertEqual(pdu[0], 0x02)
        results = _context_results(pdu[1])
        self.assertEqual(results, {1: 3, 3: 4})

    def test_store_on_rejected_context(self) -> None:
        """
        After an echo on the accepted context, a C-STORE on a rejected one
        is aborted (source 2), nothing is stored, and the next association
        works.
        """
        contexts = [
            (1, PRINT_META_SOP_CLASS, [IMPLICIT_LE]),
            (3, CT_IMAGE_STORAGE, ["1.2.3.4.5.6.7.8.9"]),
            (5, VERIFICATION, [IMPLICIT_LE]),
        ]
        peer, ac = self.associate(contexts)
        self.assertEqual(_context_results(ac), {1: 3, 3: 4, 5: 0})
        self.echo(peer, context_id=5)
        peer.send(pdata(pdv(3, 0x03, store_rq(1))) + pdata(pdv(3, 0x02, dataset())))
        pdu = peer.read_pdu()
        assert pdu is not None
        self.assertEqual(pdu[0], 0x07)
        self.assertEqual(pdu[1][2], 2)
        self.assertEqual(self.count(), 0)
        again, _ = self.associate()
        self.echo(again)
        self.release(again)

    def test_abort_mid_store(self) -> None:
        """
        An A-ABORT after two data fragments gets no response, the server
        closes, and nothing is stored.
        """
        peer, _ = self.associate()
        data = dataset_of_length(4600)
        peer.send(pdata(pdv(1, 0x03, store_rq(1))))
        peer.send(pdata(pdv(1, 0x00, data[:1024])))
        peer.send(pdata(pdv(1, 0x00, data[1024:2048])))
        peer.send(ABORT_RQ)
        self.assertTrue(peer.closed())
        # Only the A-ASSOCIATE-AC came back: no C-STORE-RSP, no A-ABORT.
        self.assertEqual([pdu_type for pdu_type, _ in peer.received], [0x02])
        self.assertEqual(self.count(), 0)
        again, _ = self.associate()
        self.echo(again)

    def test_stream_ends_inside_pdu(self) -> None:
        """
        A P-DATA-TF announcing 4,606 bytes of which 994 arrive, then a
        half-close, stores nothing and the server closes within 5 s.
        """
        peer, _ = self.associate()
        data = dataset_of_length(4600)
        peer.send(pdata(pdv(1, 0x03, store_rq(1))))
        whole = pdata(pdv(1, 0x02, data))
        self.assertEqual(len(whole) - 6, 4606)
        peer.send(whole[: 6 + 994])
        peer.socket.shutdown(socket.SHUT_WR)
        self.assertTrue(peer.closed())
        self.assertEqual(self.count(), 0)
        again, _ = self.associate()
        self.echo(again)

    def test_unparseable_dataset_answered(self) -> None:
        """
        A data set whose PatientName length runs far past its end gets a
        0xCxxx status with a short Error Comment, and the association goes on.
        """
        peer, _ = self.associate()
        broken = (
            element(0x0008, 0x0008, b"ORIGINAL\\PRIMARY ")
            + element(0x0008, 0x0016, even(CT_IMAGE_STORAGE, b"\0"))
            + element(0x0008, 0x0018, even(UID_44, b"\0"))
            + struct.pack("<HHL", 0x0010, 0x0010, 0x00FFFF00)
            + b"QA^BROKE"
        )
        peer.send(pdata(pdv(1, 0x03, store_rq(1))) + pdata(pdv(1, 0x02, broken)))
        response = peer.read_command()
        self.assertEqual(response.status & 0xF000, 0xC000)
        if response.error_comment is not None:
            self.assertLessEqual(len(response.error_comment), 64)
        self.echo(peer)
        self.release(peer)
        self.assertEqual(self.count(), 0)

    def test_missing_sop_instance_uid(self) -> None:
        """
        A data set without SOP Instance UID under a command that names one
        gets 0xA900 or 0xCxxx, and nothing is stored.
        """
        peer, _ = self.associate()
        peer.send(
            pdata(pdv(1, 0x03, store_rq(1)))
            + pdata(pdv(1, 0x02, dataset(sop_instance_uid=None)))
        )
        status = peer.read_command().status
        self.assertTrue(status == 0xA900 or status & 0xF000 == 0xC000, hex(status))
        self.echo(peer)
        self.assertEqual(self.count(), 0)

    def test_same_instance_three_times(self) -> None:
        """
        A, A, then B with the same UIDs: three successes and one stored
        instance holding A.
        """
        peer, _ = self.associate()
        first = dataset(patient_name="QA^DUPLICATE^FIRST")
        second = dataset(
            patient_name="QA^DUPLICATE^SECOND",
            pixel_data=bytes(255 - b for b in bytes(range(256)) * 4),
        )
        statuses = []
        for message_id, data in enumerate((first, first, second), start=1):
            peer.send(
                pdata(pdv(1, 0x03, store_rq(message_id))) + pdata(pdv(1, 0x02, data))
            )
            statuses.append(peer.read_command().status)
        self.assertEqual(statuses, [0, 0, 0])
        self.release(peer)
        self.assertEqual(self.count(), 1)
        stored = self.stored_dataset()
        self.assertEqual(str(stored.PatientName), "QA^DUPLICATE^FIRST")
        self.assertEqual(stored.PixelData, bytes(range(256)) * 4)

    def test_deflated_store(self) -> None:
        """
        A raw-deflated data set on a deflated context is stored with a File
        Meta transfer syntax that matches its bytes.
        """
        peer, ac = self.associate([(1, CT_IMAGE_STORAGE, [DEFLATED_LE])])
        plain = pydicom.Dataset()
        plain.SOPClassUID = CT_IMAGE_STORAGE
        plain.SOPInstanceUID = UID_44
        plain.PatientName = "QA^DEFLATED"
        plain.PatientID = "QA18"
        plain.StudyInstanceUID = "2.25.1801"
        plain.SeriesInstanceUID = "2.25.1802"
        plain.Rows = plain.Columns = 32
        plain.BitsAllocated = 8
        plain.PixelData = bytes(1024)
        buffer = DicomBytesIO()
        buffer.is_little_endian, buffer.is_implicit_VR = True, False
        pydicom.filewriter.write_dataset(buffer, plain)
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        deflated = compressor.compress(buffer.getvalue()) + compressor.flush()
        if _context_results(ac)[1] != 0:
            return
        peer.send(pdata(pdv(1, 0x03, store_rq(1))) + pdata(pdv(1, 0x02, deflated)))
        self.assertEqual(peer.read_command().status, 0x0000)
        self.release(peer)
        stored = self.stored_dataset()
        self.assertEqual(stored.file_meta.TransferSyntaxUID, DEFLATED_LE)
        self.assertEqual(str(stored.PatientName), "QA^DEFLATED")
        self.assertEqual(stored.PixelData, bytes(1024))


def _context_results(ac_body: bytes) -> dict[int, int]:
    """
    Read the presentation context results of an A-ASSOCIATE-AC body.
    """
    results = {}
    offset = 68
    while offset < len(ac_body):
        item_type, _, length = struct.unpack_from(">BBH", ac_body, offset)
        if item_type == 0x21:
            results[ac_body[offset + 4]] = ac_body[offset + 6]
        offset += 4 + length
    return results
