"""
End-to-end tests of the DICOM listener against real peers over loopback:
DCMTK's C{echoscu} and C{storescu}, and pynetdicom as an SCU.

Each test class runs one TwistedPACS server process, started with twistd as
users start it, bound to 127.0.0.1 on free ports. Stored instances are read
back over the REST API and compared with the sent files by their data set
elements, ignoring the File Meta group.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import warnings
from io import BytesIO
from typing import Any

import pydicom
from pydicom.data import get_testdata_file
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests import fixtures
from tests.server import ServerProcess
from twistedpacs.dicom.ids import resource_ids

AET = "TWISTEDPACS"
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DCMTK_ENVIRONMENT = {**os.environ, "TCP_NODELAY": "1"}

# The storescu flag that proposes each transfer syntax first.
PROPOSAL_FLAGS = {
    "1.2.840.10008.1.2": "-xi",
    "1.2.840.10008.1.2.1": "-xe",
    "1.2.840.10008.1.2.2": "-xb",
    "1.2.840.10008.1.2.1.99": "-xd",
    "1.2.840.10008.1.2.5": "-xr",
    "1.2.840.10008.1.2.4.50": "-xy",
    "1.2.840.10008.1.2.4.51": "-xx",
    "1.2.840.10008.1.2.4.70": "-xs",
    "1.2.840.10008.1.2.4.90": "-xv",
    "1.2.840.10008.1.2.4.91": "-xw",
    "1.2.840.10008.1.2.4.80": "-xt",
    "1.2.840.10008.1.2.4.81": "-xu",
}

# Phrases of storescu output that show a failure on our side, as opposed to
# a file storescu could not read or send.
_SERVER_FAILURES = (
    "Received Store Response",
    "Association Aborted",
    "Association Rejected",
    "Peer Aborted",
    "Association Request Failed",
)


class PeerServer(ServerProcess):
    """
    A L{ServerProcess} whose DICOM port accepts connections.
    """

    def __init__(
        self, aet: str = AET, *extra: str, config: dict[str, Any] | None = None
    ) -> None:
        super().__init__(*extra, aet=aet, config=config)
        self._wait_for_dicom_port()

    def _wait_for_dicom_port(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.dicom_port), 1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"DICOM port did not open: {self.log()}")

    def stop(self) -> int:
        """
        Stop the server and remove its directory.
        """
        code = super().stop()
        if not os.environ.get("KEEP_SERVER_LOGS"):
            shutil.rmtree(self.directory, ignore_errors=True)
        return code

    def count_instances(self) -> int:
        return int(self.get_json("/statistics")["CountInstances"])

    def stored_dataset(self, instance_id: str) -> pydicom.Dataset:
        data = self.get_bytes(f"/instances/{instance_id}/file")
        return pydicom.dcmread(BytesIO(data))


def _require_dcmtk() -> None:
    if shutil.which("storescu") is None or shutil.which("echoscu") is None:
        raise SkipTest("DCMTK (echoscu, storescu) is not installed")


def _instance_id(dataset: pydicom.Dataset) -> str:
    return resource_ids(
        str(dataset.get("PatientID", "")),
        str(dataset.StudyInstanceUID),
        str(dataset.SeriesInstanceUID),
        str(dataset.SOPInstanceUID),
    ).instance


def _test_files() -> dict[str, list[str]]:
    """
    Return pydicom's bundled files that storescu can propose, by transfer
    syntax.
    """
    folder = os.path.dirname(get_testdata_file("CT_small.dcm", download=False))
    paths = sorted(glob.glob(os.path.join(folder, "*.dcm")))
    paths += sorted(glob.glob(os.path.join(folder, "..", "charset_files", "*.dcm")))
    groups: dict[str, list[str]] = {}
    for path in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                dataset = pydicom.dcmread(path, stop_before_pixels=True)
            transfer_syntax = str(dataset.file_meta.TransferSyntaxUID)
            dataset.SOPInstanceUID, dataset.StudyInstanceUID
            dataset.SeriesInstanceUID
        except Exception:
            continue
        if transfer_syntax in PROPOSAL_FLAGS:
            groups.setdefault(transfer_syntax, []).append(path)
    return groups


def _elements(dataset: pydicom.Dataset) -> dict[int, Any]:
    """
    Return the data set's elements, File Meta excluded, as comparable values.

    Group lengths (gggg,0000) and Data Set Trailing Padding (FFFC,FFFC) are
    left out too, because storescu recomputes the first and drops the second.
    """
    result = {}
    for element in dataset:
        tag = element.tag
        if tag.group == 0x0002 or tag.element == 0x0000 or tag == 0xFFFCFFFC:
            continue
        value = element.value
        if element.VR == "SQ":
            value = [_elements(item) for item in value]
        result[int(element.tag)] = value
    return result


class DCMTKTests(SynchronousTestCase):
    """
    Tests with DCMTK's echoscu and storescu.
    """

    def test_echoscu(self) -> None:
        """
        echoscu gets a successful C-ECHO.
        """
        _require_dcmtk()
        server = PeerServer()
        self.addCleanup(server.stop)
        result = subprocess.run(
            ["echoscu", "-aec", AET, "127.0.0.1", str(server.dicom_port)],
            env=DCMTK_ENVIRONMENT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        self.assertEqual(result.returncode, 0, result.stderr)

    def _send_file(self, server: PeerServer, path: str, flag: str, pdu: int) -> bool:
        """
        Send one file with storescu.

        @return: whether it was stored; L{False} when storescu could not send
            it at all.
        """
        result = subprocess.run(
            [
                "storescu",
                "-v",
                flag,
                "-pdu",
                str(pdu),
                "-aec",
                AET,
                "127.0.0.1",
                str(server.dicom_port),
                path,
            ],
            env=DCMTK_ENVIRONMENT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        output = result.stdout + result.stderr
        if "Received Store Response (Success)" in output:
            self.assertEqual(result.returncode, 0, output)
            return True
        for phrase in _SERVER_FAILURES:
            self.assertNotIn(phrase, output, f"{path}: {output}")
        self.assertIn("Store SCU Failed", output, f"{path}: {output}")
        return False

    def _store_all(self, pdu: int) -> None:
        _require_dcmtk()
        server = PeerServer()
        self.addCleanup(server.stop)
        sent: dict[str, str] = {}
        for transfer_syntax, paths in sorted(_test_files().items()):
            flag = PROPOSAL_FLAGS[transfer_syntax]
            for path in paths:
                if not self._send_file(server, path, flag, pdu):
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    dataset = pydicom.dcmread(path)
                # A later file with the same UIDs is a duplicate: the store
                # keeps the first.
                sent.setdefault(_instance_id(dataset), path)
        self.assertGreater(len(sent), 40)
        self.assertEqual(server.count_instances(), len(sent))
        for instance_id, path in sent.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = pydicom.dcmread(path)
                stored = server.stored_dataset(instance_id)
            self.assertEqual(_elements(stored), _elements(expected), path)

    def test_storescu_large_objects(self) -> None:
        """
        storescu stores a 5 MiB native and a 10 MiB encapsulated (JPEG
        Baseline) object, whose data set bytes come back unchanged behind a
        generated File Meta group.
        """
        _require_dcmtk()
        server = PeerServer()
        self.addCleanup(server.stop)
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        native = os.path.join(directory, "native.dcm")
        encapsulated = os.path.join(directory, "encapsulated.dcm")
        uids = {
            native: fixtures.large_native_file(native, 5 * 1024 * 1024),
            encapsulated: fixtures.large_encapsulated_file(
                encapsulated, 5, 2 * 1024 * 1024
            ),
        }
        for path, flag in ((native, "-xe"), (encapsulated, "-xy")):
            self.assertTrue(self._send_file(server, path, flag, 131072), path)
        self.assertEqual(server.count_instances(), 2)
        for path, sop_uid in uids.items():
            with open(path, "rb") as stream:
                sent = stream.read()
            instance_ids = server.get_json("/instances?expand")
            match = [
                document["ID"]
                for document in instance_ids
                if document["MainDicomTags"]["SOPInstanceUID"] == sop_uid
            ]
            self.assertEqual(len(match), 1, path)
            stored = server.get_bytes(f"/instances/{match[0]}/file")
            self.assertEqual(
                hashlib.sha256(_data_set_bytes(stored)).hexdigest(),
                hashlib.sha256(_data_set_bytes(sent)).hexdigest(),
                path,
            )

    def test_storescu_pdu_4096(self) -> None:
        """
        Every bundled file storescu can send is stored intact at a maximum
        PDU length of 4096.
        """
        self._store_all(4096)

    def test_storescu_pdu_16384(self) -> None:
        """
        Every bundled file storescu can send is stored intact at a maximum
        PDU length of 16384.
        """
        self._store_all(16384)

    def test_storescu_pdu_131072(self) -> None:
        """
        Every bundled file storescu can send is stored intact at a maximum
        PDU length of 131072.
        """
        self._store_all(131072)


def _data_set_bytes(part10: bytes) -> bytes:
    """
    Return the bytes of a Part 10 file after its File Meta group.
    """
    (group_length,) = struct.unpack_from("<L", part10, 132 + 8)
    return part10[132 + 12 + group_length :]


def _pynetdicom() -> Any:
    try:
        import pynetdicom
    except ImportError:
        raise SkipTest("pynetdicom is not installed")
    return pynetdicom


def _ct_dataset() -> pydicom.Dataset:
    return pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))


class PynetdicomTests(SynchronousTestCase):
    """
    Tests with pynetdicom as the SCU.
    """

    def setUp(self) -> None:
        _pynetdicom()
        self.server = PeerServer()
        self.addCleanup(self.server.stop)

    def _associate(
        self,
        contexts: list[str],
        max_pdu: int = 16384,
        handlers: list[Any] | None = None,
    ) -> Any:
        pynetdicom = _pynetdicom()
        entity = pynetdicom.AE(ae_title="QA_SCU")
        entity.acse_timeout = 30
        entity.dimse_timeout = 30
        entity.network_timeout = 30
        for abstract_syntax in contexts:
            entity.add_requested_context(
                abstract_syntax,
                [
                    pydicom.uid.ExplicitVRLittleEndian,
                    pydicom.uid.ImplicitVRLittleEndian,
                ],
            )
        association = entity.associate(
            "127.0.0.1",
            self.server.dicom_port,
            ae_title=AET,
            max_pdu=max_pdu,
            evt_handlers=handlers or [],
        )
        self.assertTrue(association.is_established)
        return association

    def test_many_contexts(self) -> None:
        """
        An association proposing 120 contexts is accepted with all of them,
        and C-ECHO and C-STORE work on it.
        """
        pynetdicom = _pynetdicom()
        storage = [
            context.abstract_syntax
            for context in pynetdicom.StoragePresentationContexts
        ]
        contexts = ["1.2.840.10008.1.1", *storage[:119]]
        self.assertIn(pydicom.uid.CTImageStorage, contexts)
        association = self._associate(contexts)
        self.assertEqual(len(association.accepted_contexts), 120)
        self.assertEqual(association.send_c_echo().Status, 0x0000)
        status = association.send_c_store(_ct_dataset())
        self.assertEqual(status.Status, 0x0000)
        association.release()

    def test_large_dataset(self) -> None:
        """
        A data set of 6 MiB, sent in hundreds of PDVs, is stored intact.
        """
        dataset = _ct_dataset()
        dataset.SOPInstanceUID = pydicom.uid.generate_uid()
        dataset.Rows = 1024
        dataset.Columns = 1536
        dataset.PixelData = bytes(range(256)) * (1024 * 1536 * 2 // 256)
        association = self._associate([pydicom.uid.CTImageStorage], max_pdu=16384)
        status = association.send_c_store(dataset)
        association.release()
        self.assertEqual(status.Status, 0x0000)
        stored = self.server.stored_dataset(_instance_id(dataset))
        self.assertEqual(stored.PixelData, dataset.PixelData)
        self.assertEqual(_elements(stored), _elements(dataset))

    def test_duplicates_keep_first(self) -> None:
        """
        A, A, then B with the same UIDs all succeed, and the one stored
        instance is A.
        """
        first = _ct_dataset()
        first.SOPInstanceUID = pydicom.uid.generate_uid()
        other = _ct_dataset()
        other.SOPInstanceUID = first.SOPInstanceUID
        other.PatientName = "OTHER^NAME"
        before = self.server.count_instances()
        association = self._associate([pydicom.uid.CTImageStorage])
        statuses = [
            association.send_c_store(item).Status for item in (first, first, other)
        ]
        association.release()
        self.assertEqual(statuses, [0x0000] * 3)
        self.assertEqual(self.server.count_instances(), before + 1)
        stored = self.server.stored_dataset(_instance_id(first))
        self.assertEqual(str(stored.PatientName), str(first.PatientName))

    def test_abort_mid_transfer(self) -> None:
        """
        An A-ABORT written by pynetdicom's sending thread after five P-DATA-TF
        PDUs of a large data set stores nothing.
        """
        pynetdicom = _pynetdicom()
        dataset = _ct_dataset()
        dataset.SOPInstanceUID = pydicom.uid.generate_uid()
        dataset.PixelData = bytes(range(256)) * (128 * 1024)
        before = self.server.count_instances()
        sent = []

        def abort_after_five(event: Any) -> None:
            # pynetdicom queues Association.abort() behind every P-DATA-TF of
            # the message, so the A-ABORT is written here, in the thread that
            # sends them.
            if type(event.pdu).__name__ != "P_DATA_TF":
                return
            sent.append(event.pdu)
            if len(sent) == 5:
                event.assoc.dul.socket.send(bytes.fromhex("07000000000400000000"))
                event.assoc.dul.socket.close()

        association = self._associate(
            [pydicom.uid.CTImageStorage],
            max_pdu=4096,
            handlers=[(pynetdicom.evt.EVT_PDU_SENT, abort_after_five)],
        )
        association.send_c_store(dataset)
        association.abort()
        time.sleep(0.5)
        self.assertGreaterEqual(len(sent), 5)
        self.assertEqual(self.server.count_instances(), before)
        association = self._associate(["1.2.840.10008.1.1"])
        self.assertEqual(association.send_c_echo().Status, 0x0000)
        association.release()

    def test_abort_raw_socket(self) -> None:
        """
        An A-ABORT after part of a data set leaves CountInstances unchanged,
        and the server keeps serving.
        """
        before = self.server.count_instances()
        uid = pydicom.uid.generate_uid()
        with socket.create_connection(
            ("127.0.0.1", self.server.dicom_port), 10
        ) as peer:
            peer.sendall(_raw_associate_rq())
            answer = peer.recv(65536)
            self.assertEqual(answer[:1], b"\x02")
            command = _raw_store_rq(uid)
            peer.sendall(_raw_pdata(0x03, command))
            peer.sendall(_raw_pdata(0x00, bytes(8000)))
            peer.sendall(bytes.fromhex("07000000000400000000"))
            peer.settimeout(10)
            self.assertEqual(peer.recv(100), b"")
        time.sleep(0.2)
        self.assertEqual(self.server.count_instances(), before)
        association = self._associate(["1.2.840.10008.1.1"])
        self.assertEqual(association.send_c_echo().Status, 0x0000)
        association.release()


def _raw_item(item_type: int, data: bytes) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(data)) + data


def _raw_associate_rq() -> bytes:
    """
    Encode an A-ASSOCIATE-RQ for CT Image Storage in Implicit VR Little
    Endian, from PS3.8 Table 9-11.
    """
    context = b"\x01\x00\x00\x00" + _raw_item(0x30, b"1.2.840.10008.5.1.4.1.1.2")
    context += _raw_item(0x40, b"1.2.840.10008.1.2")
    body = b"\x00\x01\x00\x00" + AET.encode().ljust(16) + b"QA_SCU".ljust(16)
    body += bytes(32) + _raw_item(0x10, b"1.2.840.10008.3.1.1.1")
    body += _raw_item(0x20, context)
    body += _raw_item(0x50, _raw_item(0x51, struct.pack(">L", 16384)))
    return struct.pack(">BBL", 0x01, 0, len(body)) + body


def _raw_store_rq(uid: str) -> bytes:
    def element(number: int, value: bytes) -> bytes:
        return struct.pack("<HHL", 0, number, len(value)) + value

    def ui(text: str) -> bytes:
        raw = text.encode()
        return raw + b"\0" if len(raw) % 2 else raw

    body = (
        element(0x0002, ui("1.2.840.10008.5.1.4.1.1.2"))
        + element(0x0100, struct.pack("<H", 0x0001))
        + element(0x0110, struct.pack("<H", 1))
        + element(0x0700, struct.pack("<H", 0))
        + element(0x0800, struct.pack("<H", 0x0001))
        + element(0x1000, ui(uid))
    )
    return element(0x0000, struct.pack("<L", len(body))) + body


def _raw_pdata(flags: int, data: bytes) -> bytes:
    pdv = struct.pack(">LBB", len(data) + 2, 1, flags) + data
    return struct.pack(">BBL", 0x04, 0, len(pdv)) + pdv


class PynetdicomUnsupportedTests(SynchronousTestCase):
    """
    Requests this server does not provide fail one by one, and the
    association carries on.
    """

    def test_dimse_n_requests(self) -> None:
        """
        With unknown SOP classes accepted, pynetdicom's N-CREATE (MPPS),
        N-ACTION (Storage Commitment) and N-GET each get status 0x0211, a
        C-GET that matches nothing gets 0x0000, a C-ECHO after them
        succeeds, and nothing is stored.
        """
        pynetdicom = _pynetdicom()
        from pynetdicom.sop_class import (  # type: ignore[attr-defined]
            ModalityPerformedProcedureStep,
            PatientRootQueryRetrieveInformationModelGet,
            StorageCommitmentPushModel,
            Verification,
        )

        server = PeerServer(config={"UnknownSopClassAccepted": True})
        self.addCleanup(server.stop)
        entity = pynetdicom.AE(ae_title="QA_SCU")
        entity.acse_timeout = entity.dimse_timeout = entity.network_timeout = 30
        for abstract_syntax in (
            ModalityPerformedProcedureStep,
            StorageCommitmentPushModel,
            PatientRootQueryRetrieveInformationModelGet,
            Verification,
        ):
            entity.add_requested_context(abstract_syntax)
        association = entity.associate("127.0.0.1", server.dicom_port, ae_title=AET)
        self.assertTrue(association.is_established)
        try:
            attributes = pydicom.Dataset()
            attributes.PatientName = "QA^MPPS"
            status, _ = association.send_n_create(
                attributes, ModalityPerformedProcedureStep, "1.2.826.0.1.3680043.9.7"
            )
            self.assertEqual(status.Status, 0x0211)
            status, _ = association.send_n_action(
                attributes,
                1,
                StorageCommitmentPushModel,
                "1.2.840.10008.1.20.1.1",
            )
            self.assertEqual(status.Status, 0x0211)
            status, _ = association.send_n_get(
                [0x00100010],
                ModalityPerformedProcedureStep,
                "1.2.826.0.1.3680043.9.7",
            )
            self.assertEqual(status.Status, 0x0211)
            query = pydicom.Dataset()
            query.QueryRetrieveLevel = "PATIENT"
            query.PatientID = "QA"
            responses = list(
                association.send_c_get(
                    query, PatientRootQueryRetrieveInformationModelGet
                )
            )
            self.assertEqual([status.Status for status, _ in responses], [0x0000])
            self.assertEqual(association.send_c_echo().Status, 0x0000)
        finally:
            association.release()
        self.assertEqual(server.count_instances(), 0)
        self.assertIn("N-CREATE-RQ answered with 0x0211", server.log())
