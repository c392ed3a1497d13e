"""
End-to-end query/retrieve against real peers over loopback: DCMTK findscu,
movescu and storescp, pynetdicom as Find SCU and Storage SCP, and a second
TwistedPACS server as the remote PACS of the REST routes.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Any

import pydicom
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests import fixtures
from tests.fixtures import make_dataset, part10_bytes
from tests.server import ServerProcess, free_port

AET = "TWISTEDPACS"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
CASES = [
    ("20231231", "QA^ALPHA", None),
    ("20240101", "QA^BETA", None),
    ("20240131", "QA^GAMMA", None),
    ("20240201", "Grüßner^Jörg", "ISO_IR 100"),
]


def _require(program: str) -> None:
    if shutil.which(program) is None:
        raise SkipTest(f"{program} (DCMTK) is not installed")


def _store_cases(server: ServerProcess) -> list[pydicom.Dataset]:
    datasets = []
    for date, name, charset in CASES:
        dataset = make_dataset(patient_name=name, patient_id="P" + date)
        dataset.StudyDate = date
        if charset:
            dataset.SpecificCharacterSet = charset
        status, _ = server.request("POST", "/instances", part10_bytes(dataset))
        assert status == 200
        datasets.append(dataset)
    return datasets


def _findscu(server: ServerProcess, *keys: bytes) -> tuple[int, list[bytes], bytes]:
    """
    Run findscu with Study Root keys; return its exit status, the response
    files and its log.
    """
    directory = tempfile.mkdtemp(prefix="findscu-")
    arguments = [b"findscu", b"-S", b"-X", b"-od", directory.encode()]
    arguments += [b"-aet", b"QA_SCU", b"-aec", AET.encode()]
    for key in (b"QueryRetrieveLevel=STUDY", b"StudyDate", b"PatientName") + keys:
        arguments += [b"-k", key]
    arguments += [b"-k", b"PatientID", b"-k", b"StudyInstanceUID"]
    arguments += [b"127.0.0.1", str(server.dicom_port).encode()]
    done = subprocess.run(arguments, capture_output=True, timeout=60)
    files = []
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as stream:
            files.append(stream.read())
    shutil.rmtree(directory)
    return done.returncode, files, done.stderr


class FindSCUTests(SynchronousTestCase):
    """
    DCMTK findscu and pynetdicom against our C-FIND SCP.
    """

    def setUp(self) -> None:
        _require("findscu")
        self.server = ServerProcess(aet=AET)
        self.addCleanup(self.server.stop)
        self.datasets = _store_cases(self.server)

    def _count(self, *keys: bytes) -> list[pydicom.Dataset]:
        status, files, log = _findscu(self.server, *keys)
        self.assertEqual(status, 0, log.decode("latin-1"))
        return [
            pydicom.dcmread(pydicom.filebase.DicomBytesIO(f), force=True) for f in files
        ]

    def test_findscu_date_ranges(self) -> None:
        """
        Date range, open range, single date and reversed range find 2, 3, 1,
        1 and 0 studies.
        """
        cases = [
            (b"StudyDate=20240101-20240131", 2),
            (b"StudyDate=20240101-", 3),
            (b"StudyDate=-20231231", 1),
            (b"StudyDate=20240131", 1),
            (b"StudyDate=20240201-20240101", 0),
        ]
        for key, expected in cases:
            self.assertEqual(len(self._count(key)), expected, key)

    def test_findscu_names(self) -> None:
        """
        QA^* finds 3, Q?^BET? finds QA^BETA, * finds all 4.
        """
        self.assertEqual(len(self._count(b"PatientName=QA^*")), 3)
        (beta,) = self._count(b"PatientName=Q?^BET?")
        self.assertEqual(str(beta.PatientName), "QA^BETA")
        self.assertEqual(len(self._count(b"PatientName=*")), 4)

    def test_findscu_latin1(self) -> None:
        """
        A Latin-1 query finds the Latin-1 name, answered in ISO_IR 100 bytes.
        """
        (found,) = self._count(
            b"SpecificCharacterSet=ISO_IR 100", "PatientName=Grü*".encode("latin-1")
        )
        self.assertEqual(found.SpecificCharacterSet, "ISO_IR 100")
        self.assertEqual(str(found.PatientName), "Grüßner^Jörg")
        self.assertEqual(found.StudyInstanceUID, self.datasets[3].StudyInstanceUID)

    def test_pynetdicom_find(self) -> None:
        """
        pynetdicom's Find SCU gets 3 pending matches and a final 0x0000.
        """
        try:
            from pynetdicom import AE
        except ImportError:
            raise SkipTest("pynetdicom is not installed")
        ae = AE(ae_title="QA_SCU")
        ae.add_requested_context(STUDY_ROOT_FIND)
        assoc = ae.associate("127.0.0.1", self.server.dicom_port, ae_title=AET)
        self.assertTrue(assoc.is_established)
        query = pydicom.Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.PatientName = "qa^*"
        query.StudyInstanceUID = ""
        statuses = []
        names = []
        for status, identifier in assoc.send_c_find(query, STUDY_ROOT_FIND):
            statuses.append(status.Status)
            if identifier is not None:
                names.append(str(identifier.PatientName))
        assoc.release()
        self.assertEqual(statuses, [0xFF00, 0xFF00, 0xFF00, 0x0000])
        self.assertEqual(sorted(names), ["QA^ALPHA", "QA^BETA", "QA^GAMMA"])


class _StoreSCP:
    """
    A DCMTK storescp writing received files into a temporary directory.
    """

    def __init__(self, aet: str, pdu: int = 16384) -> None:
        _require("storescp")
        self.port = free_port()
        self.directory = tempfile.mkdtemp(prefix="storescp-")
        self.process = subprocess.Popen(
            [
                "storescp",
                "-pdu",
                str(pdu),
                "-aet",
                aet,
                "-od",
                self.directory,
                "--bit-preserving",
                str(self.port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.3)

    def files(self) -> list[bytes]:
        found = []
        for name in sorted(os.listdir(self.directory)):
            with open(os.path.join(self.directory, name), "rb") as stream:
                found.append(stream.read())
        return found

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        shutil.rmtree(self.directory)


def _start_move_pair(
    case: SynchronousTestCase, pdu: int
) -> tuple[_StoreSCP, ServerProcess]:
    """
    Start a storescp called DEST with maximum PDU C{pdu}, and a server that
    knows it as the modality C{dest}; both stop when C{case} ends.
    """
    _require("movescu")
    destination = _StoreSCP("DEST", pdu=pdu)
    case.addCleanup(destination.stop)
    server = ServerProcess(
        aet=AET,
        config={"DicomModalities": {"dest": ["DEST", "127.0.0.1", destination.port]}},
    )
    case.addCleanup(server.stop)
    return destination, server


def _getscu(
    server: ServerProcess, study: str, directory: str, timeout: float
) -> subprocess.CompletedProcess[str]:
    """
    Retrieve a study with DCMTK's getscu into C{directory}.
    """
    return subprocess.run(
        [
            "getscu",
            "-S",
            "-aet",
            "QA_SCU",
            "-aec",
            AET,
            "-od",
            directory,
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            "StudyInstanceUID=" + study,
            "127.0.0.1",
            str(server.dicom_port),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _data_set(file_bytes: bytes) -> bytes:
    from twistedpacs.dimse.outgoing import dataset_offset

    return file_bytes[dataset_offset(file_bytes) :]


class MoveSCPTests(SynchronousTestCase):
    """
    DCMTK movescu moving from us to a storescp with a 4096-byte PDU.
    """

    def setUp(self) -> None:
        self.destination, self.server = _start_move_pair(self, pdu=4096)
        # 40 000 pixel bytes make an instance of about 40 KB.
        self.dataset = make_dataset(rows=200, columns=200, pixel_value=7)
        self.file = part10_bytes(self.dataset)
        status, _ = self.server.request("POST", "/instances", self.file)
        assert status == 200

    def _movescu(self, destination: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "movescu",
                "-S",
                "-aet",
                "QA_SCU",
                "-aec",
                AET,
                "-aem",
                destination,
                "-k",
                "QueryRetrieveLevel=STUDY",
                "-k",
                "StudyInstanceUID=" + self.dataset.StudyInstanceUID,
                "127.0.0.1",
                str(self.server.dicom_port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def test_movescu_to_storescp_pdu_4096(self) -> None:
        """
        A 40 KB instance reaches a storescp -pdu 4096 with its data set intact.
        """
        done = self._movescu("DEST")
        self.assertEqual(done.returncode, 0, done.stderr)
        (received,) = self.destination.files()
        self.assertEqual(_data_set(received), _data_set(self.file))
        self.assertGreater(len(self.file), 40000)

    def test_movescu_unknown_destination(self) -> None:
        """
        An unknown destination gets 0xA801 and the server still answers.
        """
        done = self._movescu("NO_SUCH_AE")
        self.assertIn("MoveDestinationUnknown", done.stderr)
        echo = subprocess.run(
            [
                "echoscu",
                "-aet",
                "QA_SCU",
                "-aec",
                AET,
                "127.0.0.1",
                str(self.server.dicom_port),
            ],
            capture_output=True,
            timeout=30,
        )
        self.assertEqual(echo.returncode, 0)


class RemotePACSTests(SynchronousTestCase):
    """
    The REST modality routes against a second TwistedPACS and storescp.
    """

    def setUp(self) -> None:
        _require("storescp")
        self.push_target = _StoreSCP("PUSH")
        self.addCleanup(self.push_target.stop)
        remote_port = free_port()
        self.local = ServerProcess(
            aet=AET,
            config={
                "DicomModalities": {
                    "remote": ["REMOTE", "127.0.0.1", remote_port],
                    "push": ["PUSH", "127.0.0.1", self.push_target.port],
                }
            },
        )
        self.addCleanup(self.local.stop)
        self.remote = ServerProcess(
            "--dicom-port",
            str(remote_port),
            aet="REMOTE",
            config={
                "DicomModalities": {"local": [AET, "127.0.0.1", self.local.dicom_port]}
            },
        )
        self.addCleanup(self.remote.stop)
        self.remote.dicom_port = remote_port
        self.datasets = _store_cases(self.remote)
        self.remote_files = {}
        for dataset in self.datasets:
            self.remote_files[dataset.SOPInstanceUID] = part10_bytes(dataset)

    def _post(self, path: str, body: Any) -> tuple[int, Any]:
        return self.local.request("POST", path, json.dumps(body).encode())

    def test_rest_modalities_and_echo(self) -> None:
        """
        GET /modalities lists both names, with ?expand their AE titles, hosts
        and ports, and an echo to each answers {}.
        """
        self.assertEqual(self.local.get_json("/modalities"), ["push", "remote"])
        for query in ("?expand", "?expand=true"):
            expanded = self.local.get_json("/modalities" + query)
            self.assertEqual(sorted(expanded), ["push", "remote"], query)
            self.assertEqual(set(expanded["remote"]), {"AET", "Host", "Port"}, query)
        self.assertEqual(
            self.local.request("POST", "/modalities/remote/echo", b""), (200, {})
        )
        status, body = self.local.request("POST", "/modalities/nowhere/echo", b"")
        self.assertEqual(status, 404)

    def test_rest_query_and_retrieve(self) -> None:
        """
        A study query finds the 3 QA studies, and retrieving them stores
        their instances here, byte for byte in their data sets.
        """
        status, query = self._post(
            "/modalities/remote/query",
            {"Level": "Study", "Query": {"PatientName": "QA*"}},
        )
        self.assertEqual(status, 200, query)
        self.assertEqual(query["Path"], "/queries/" + query["ID"])
        answers = self.local.get_json(f"/queries/{query['ID']}/answers")
        self.assertEqual(answers, ["0", "1", "2"])
        content = self.local.get_json(f"/queries/{query['ID']}/answers/0/content")
        self.assertIn("0020,000d", content)
        status, moved = self._post(f"/queries/{query['ID']}/retrieve", {})
        self.assertEqual(status, 200, moved)
        self.assertEqual(moved["TargetAet"], AET)
        statistics = self.local.get_json("/statistics")
        self.assertEqual(statistics["CountInstances"], 3)
        for instance_id in self.local.get_json("/instances"):
            stored = self.local.get_bytes(f"/instances/{instance_id}/file")
            uid = pydicom.dcmread(pydicom.filebase.DicomBytesIO(stored)).SOPInstanceUID
            self.assertEqual(_data_set(stored), _data_set(self.remote_files[uid]))

    def test_rest_move_and_store(self) -> None:
        """
        /move pulls the fourth study by UID, /store pushes it to storescp.
        """
        uid = self.datasets[3].StudyInstanceUID
        status, moved = self._post(
            "/modalities/remote/move",
            {"Level": "Study", "Resources": [{"StudyInstanceUID": uid}]},
        )
        self.assertEqual(status, 200, moved)
        studies = [
            study
            for study in self.local.get_json("/studies")
            if self.local.get_json(f"/studies/{study}")["MainDicomTags"][
                "StudyInstanceUID"
            ]
            == uid
        ]
        self.assertEqual(len(studies), 1)
        status, pushed = self._post("/modalities/push/store", {"Resources": studies})
        self.assertEqual(status, 200, pushed)
        self.assertEqual(pushed["InstancesCount"], 1)
        self.assertEqual(pushed["FailedInstancesCount"], 0)
        self.assertEqual(pushed["RemoteAet"], "PUSH")
        (received,) = self.push_target.files()
        expected = self.remote_files[self.datasets[3].SOPInstanceUID]
        self.assertEqual(_data_set(received), _data_set(expected))


class PynetdicomMoveTests(SynchronousTestCase):
    """
    A pynetdicom Storage SCP as the C-MOVE destination.
    """

    def test_pynetdicom_storage_scp_destination(self) -> None:
        """
        movescu moves one instance to a pynetdicom SCP, which receives the
        Move Originator AE title and the data set.
        """
        _require("movescu")
        try:
            from pynetdicom import AE, evt
            from pynetdicom.sop_class import SecondaryCaptureImageStorage
        except ImportError:
            raise SkipTest("pynetdicom is not installed")
        received: list[Any] = []

        def on_store(event: Any) -> int:
            received.append(
                (event.request.MoveOriginatorApplicationEntityTitle, event.dataset)
            )
            return 0x0000

        port = free_port()
        ae = AE(ae_title="PYSCP")
        ae.add_supported_context(SecondaryCaptureImageStorage)
        scp = ae.start_server(
            ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
        )
        server = ServerProcess(
            aet=AET, config={"DicomModalities": {"py": ["PYSCP", "127.0.0.1", port]}}
        )
        try:
            dataset = make_dataset()
            server.request("POST", "/instances", part10_bytes(dataset))
            done = subprocess.run(
                [
                    "movescu",
                    "-S",
                    "-aet",
                    "QA_SCU",
                    "-aec",
                    AET,
                    "-aem",
                    "PYSCP",
                    "-k",
                    "QueryRetrieveLevel=STUDY",
                    "-k",
                    "StudyInstanceUID=" + dataset.StudyInstanceUID,
                    "127.0.0.1",
                    str(server.dicom_port),
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
        finally:
            server.stop()
            scp.shutdown()
        self.assertEqual(done.returncode, 0, done.stderr)
        ((originator, stored),) = received
        self.assertEqual(originator.strip(), "QA_SCU")
        self.assertEqual(stored.SOPInstanceUID, dataset.SOPInstanceUID)
        self.assertEqual(stored.PixelData, dataset.PixelData)


MIB = 1024 * 1024


class LargeMoveTests(SynchronousTestCase):
    """
    A 60 MB instance sent to a storescp streams from the store, so the
    server's memory does not grow with the instance's size.
    """

    def setUp(self) -> None:
        self.destination, self.server = _start_move_pair(self, pdu=131072)

        directory = tempfile.mkdtemp(prefix="large-move-")
        self.addCleanup(shutil.rmtree, directory)
        self.path = os.path.join(directory, "large.dcm")
        fixtures.large_native_file(self.path, 60 * 1000 * 1000)
        header = pydicom.dcmread(self.path, stop_before_pixels=True)
        self.study = str(header.StudyInstanceUID)

        connection = http.client.HTTPConnection(
            "127.0.0.1", self.server.http_port, timeout=120
        )
        with open(self.path, "rb") as stream:
            connection.request(
                "POST",
                "/instances",
                body=stream,
                headers={"Content-Length": str(os.path.getsize(self.path))},
            )
            response = connection.getresponse()
            self.instance = json.loads(response.read())["ID"]
        connection.close()
        self.assertEqual(response.status, 200)

    def _peak_rss_during(self, action: Any) -> tuple[Any, int]:
        baseline = self.server.rss_anon()
        peak = [baseline]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], self.server.rss_anon())
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            result = action()
        finally:
            done.set()
            sampler.join()
        return result, peak[0] - baseline

    def _received_data_set(self) -> bytes:
        (received,) = self.destination.files()
        return _data_set(received)

    def _sent_data_set(self) -> bytes:
        with open(self.path, "rb") as stream:
            return _data_set(stream.read())

    def test_movescu_large_instance(self) -> None:
        """
        movescu moves the instance intact, and the server's RssAnon grows by
        less than 16 MiB while it sends 60 MB.
        """

        def move() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [
                    "movescu",
                    "-S",
                    "-aet",
                    "QA_SCU",
                    "-aec",
                    AET,
                    "-aem",
                    "DEST",
                    "-k",
                    "QueryRetrieveLevel=STUDY",
                    "-k",
                    "StudyInstanceUID=" + self.study,
                    "127.0.0.1",
                    str(self.server.dicom_port),
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )

        done, growth = self._peak_rss_during(move)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertLess(growth, 16 * MIB, f"RssAnon grew by {growth / MIB:.1f} MiB")
        self.assertEqual(self._received_data_set(), self._sent_data_set())

    def test_getscu_large_instance(self) -> None:
        """
        getscu retrieves the instance intact over its own association, with
        the same bound on memory.
        """
        _require("getscu")
        directory = tempfile.mkdtemp(prefix="getscu-large-")
        self.addCleanup(shutil.rmtree, directory)

        def get() -> subprocess.CompletedProcess[str]:
            return _getscu(self.server, self.study, directory, timeout=120)

        done, growth = self._peak_rss_during(get)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertLess(growth, 16 * MIB, f"RssAnon grew by {growth / MIB:.1f} MiB")
        (name,) = os.listdir(directory)
        with open(os.path.join(directory, name), "rb") as stream:
            self.assertEqual(_data_set(stream.read()), self._sent_data_set())

    def test_rest_store_large_instance(self) -> None:
        """
        POST /modalities/dest/store sends the instance intact, with the same
        bound on memory.
        """
        body = json.dumps([self.instance]).encode()
        (status, answer), growth = self._peak_rss_during(
            lambda: self.server.request("POST", "/modalities/dest/store", body)
        )
        self.assertEqual(status, 200, answer)
        self.assertEqual(answer["FailedInstancesCount"], 0)
        self.assertLess(growth, 16 * MIB, f"RssAnon grew by {growth / MIB:.1f} MiB")
        self.assertEqual(self._received_data_set(), self._sent_data_set())


class GetSCPTests(SynchronousTestCase):
    """
    C-GET: the instances come back on the requestor's own association.
    """

    def setUp(self) -> None:
        self.server = ServerProcess(aet=AET)
        self.addCleanup(self.server.stop)
        study = fixtures.new_uid()
        self.files = {}
        for index in range(2):
            dataset = make_dataset(
                study_uid=study, rows=100, columns=100, pixel_value=index + 1
            )
            self.files[dataset.SOPInstanceUID] = part10_bytes(dataset)
            status, _ = self.server.request(
                "POST", "/instances", self.files[dataset.SOPInstanceUID]
            )
            assert status == 200
        self.study = study

    def test_getscu_study(self) -> None:
        """
        DCMTK getscu retrieves both instances of a study, their data sets
        byte for byte.
        """
        _require("getscu")
        directory = tempfile.mkdtemp(prefix="getscu-")
        self.addCleanup(shutil.rmtree, directory)
        done = _getscu(self.server, self.study, directory, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)

        received = {}
        for name in os.listdir(directory):
            with open(os.path.join(directory, name), "rb") as stream:
                data = stream.read()
            received[str(pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID)] = data
        self.assertEqual(sorted(received), sorted(self.files))
        for uid, sent in self.files.items():
            self.assertEqual(_data_set(received[uid]), _data_set(sent))

    def _pynetdicom_get(self, scp_role: bool) -> tuple[list[Any], list[Any]]:
        try:
            from pynetdicom import AE, build_role, evt
            from pynetdicom.sop_class import (  # type: ignore[attr-defined]
                SecondaryCaptureImageStorage,
                StudyRootQueryRetrieveInformationModelGet,
                Verification,
            )
        except ImportError:
            raise SkipTest("pynetdicom is not installed")
        received: list[Any] = []

        def on_store(event: Any) -> int:
            received.append(event.dataset)
            return 0x0000

        entity = AE(ae_title="QA_SCU")
        entity.acse_timeout = entity.dimse_timeout = entity.network_timeout = 30
        entity.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
        entity.add_requested_context(SecondaryCaptureImageStorage)
        entity.add_requested_context(Verification)
        roles = [build_role(SecondaryCaptureImageStorage, scp_role=True)]
        association = entity.associate(
            "127.0.0.1",
            self.server.dicom_port,
            ae_title=AET,
            ext_neg=roles if scp_role else [],
            evt_handlers=[(evt.EVT_C_STORE, on_store)],
        )
        self.assertTrue(association.is_established)
        query = pydicom.Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = self.study
        try:
            responses = list(
                association.send_c_get(query, StudyRootQueryRetrieveInformationModelGet)
            )
            self.assertEqual(association.send_c_echo().Status, 0x0000)
        finally:
            association.release()
        return responses, received

    def test_pynetdicom_get(self) -> None:
        """
        pynetdicom, taking the Storage SCP role, receives both instances; a
        Pending C-GET-RSP follows the first and the final one counts two
        completed sub-operations.
        """
        responses, received = self._pynetdicom_get(scp_role=True)
        statuses = [status.Status for status, _ in responses]
        self.assertEqual(statuses, [0xFF00, 0x0000])
        final = responses[-1][0]
        self.assertEqual(final.NumberOfCompletedSuboperations, 2)
        self.assertEqual(final.NumberOfFailedSuboperations, 0)
        self.assertEqual(
            sorted(dataset.SOPInstanceUID for dataset in received), sorted(self.files)
        )
        for dataset in received:
            sent = pydicom.dcmread(io.BytesIO(self.files[dataset.SOPInstanceUID]))
            self.assertEqual(dataset.PixelData, sent.PixelData)

    def test_pynetdicom_get_without_role(self) -> None:
        """
        Without the Storage SCP role, nothing can be sent back: both
        sub-operations fail, and the final status 0xB000 lists both
        instances.
        """
        responses, received = self._pynetdicom_get(scp_role=False)
        self.assertEqual(received, [])
        final, identifier = responses[-1]
        self.assertEqual(final.Status, 0xB000)
        self.assertEqual(final.NumberOfFailedSuboperations, 2)
        self.assertEqual(
            sorted(identifier.FailedSOPInstanceUIDList), sorted(self.files)
        )
