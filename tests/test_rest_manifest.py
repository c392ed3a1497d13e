"""
End-to-end upload of every file bundled with pydicom through curl, checked
against the committed manifest of expected outcomes.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
from typing import Any

import pydicom
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.server import ServerProcess

DATA = pathlib.Path(pydicom.__file__).parent / "data"
MANIFEST = pathlib.Path(__file__).parent / "data" / "manifest.json"


def load_manifest() -> list[dict[str, Any]]:
    with open(MANIFEST, encoding="utf-8") as stream:
        return list(json.load(stream)["files"])


def curl_post(url: str, path: pathlib.Path, expect: bool) -> tuple[int, Any]:
    """
    POST a file as the raw body with curl; return the status and JSON body.
    """
    command = [
        "curl",
        "-s",
        "-X",
        "POST",
        f"{url}/instances",
        "--data-binary",
        f"@{path}",
        "-w",
        "\n%{http_code}",
    ]
    if not expect:
        command[2:2] = ["-H", "Expect:"]
    output = subprocess.run(command, capture_output=True, check=True).stdout
    body, _, status = output.rpartition(b"\n")
    return int(status), json.loads(body)


def orthanc_id(*values: str) -> str:
    digest = hashlib.sha1("|".join(values).encode("ascii")).hexdigest()
    return "-".join(digest[index : index + 8] for index in range(0, 40, 8))


class ManifestUploadTests(SynchronousTestCase):
    """
    Upload pydicom's files in manifest order, then read everything back.
    """

    def setUp(self) -> None:
        if shutil.which("curl") is None:
            raise SkipTest("curl is not installed")
        self.server = ServerProcess()
        self.addCleanup(self.server.stop)
        self.manifest = load_manifest()
        self.answers: dict[str, tuple[int, Any]] = {}
        for index, entry in enumerate(self.manifest):
            # Half the uploads let curl send Expect: 100-continue for large bodies.
            self.answers[entry["path"]] = curl_post(
                self.server.url, DATA / entry["path"], expect=index % 2 == 0
            )

    def test_manifest_outcomes_match(self) -> None:
        """
        Every file gets the manifest's outcome, ids and status, and each
        rejection is a JSON error with a message.
        """
        for entry in self.manifest:
            status, answer = self.answers[entry["path"]]
            if entry["outcome"] == "stored":
                self.assertEqual(status, 200, (entry["path"], answer))
                self.assertEqual(answer["ID"], entry["instance_id"], entry["path"])
                self.assertEqual(answer["ParentPatient"], entry["patient_id"])
                self.assertEqual(answer["ParentStudy"], entry["study_id"])
                self.assertEqual(answer["ParentSeries"], entry["series_id"])
                self.assertEqual(answer["Path"], f"/instances/{entry['instance_id']}")
                expected = "AlreadyStored" if entry.get("duplicate_of") else "Success"
                self.assertEqual(answer["Status"], expected, entry["path"])
            else:
                self.assertEqual(status, 400, (entry["path"], answer))
                self.assertEqual(answer["HttpStatus"], 400)
                self.assertTrue(answer["Message"], entry["path"])
                self.assertEqual(answer["Method"], "POST")
                self.assertEqual(answer["Uri"], "/instances")

    def test_statistics_count_distinct_instances(self) -> None:
        """
        /statistics counts each distinct instance once, and the byte total is
        the sum of the stored files.
        """
        stored = {e["instance_id"] for e in self.manifest if e["outcome"] == "stored"}
        statistics = self.server.get_json("/statistics")
        self.assertEqual(statistics["CountInstances"], len(stored))
        self.assertEqual(sorted(self.server.get_json("/instances")), sorted(stored))
        patients = {e["patient_id"] for e in self.manifest if e["outcome"] == "stored"}
        self.assertEqual(statistics["CountPatients"], len(patients))
        total = sum(
            self.server.get_json(f"/instances/{instance_id}")["FileSize"]
            for instance_id in stored
        )
        self.assertEqual(int(statistics["TotalDiskSize"]), total)

    def test_file_bytes_round_trip(self) -> None:
        """
        /file returns the first uploaded copy byte for byte; a bare data set
        comes back behind a generated preamble and File Meta group.
        """
        first: dict[str, pathlib.Path] = {}
        for entry in self.manifest:
            if entry["outcome"] == "stored" and entry["instance_id"] not in first:
                first[entry["instance_id"]] = DATA / entry["path"]
        for instance_id, path in first.items():
            sent = path.read_bytes()
            stored = self.server.get_bytes(f"/instances/{instance_id}/file")
            if sent[128:132] == b"DICM":
                self.assertEqual(stored, sent, path)
            else:
                self.assertEqual(stored[128:132], b"DICM", path)
                self.assertTrue(stored.endswith(sent), path)
                meta = pydicom.dcmread(pydicom.filebase.DicomBytesIO(stored))
                self.assertEqual(
                    meta.file_meta.MediaStorageSOPInstanceUID, meta.SOPInstanceUID
                )

    def test_resource_documents_link_up(self) -> None:
        """
        Each stored instance's series, study and patient documents exist and
        list it, with the parent ids the upload returned.
        """
        for entry in self.manifest:
            if entry["outcome"] != "stored" or entry.get("duplicate_of"):
                continue
            instance = self.server.get_json(f"/instances/{entry['instance_id']}")
            self.assertEqual(instance["ParentSeries"], entry["series_id"])
            series = self.server.get_json(f"/series/{entry['series_id']}")
            self.assertIn(entry["instance_id"], series["Instances"])
            self.assertEqual(series["ParentStudy"], entry["study_id"])
            study = self.server.get_json(f"/studies/{entry['study_id']}")
            self.assertIn(entry["series_id"], study["Series"])
            self.assertEqual(study["ParentPatient"], entry["patient_id"])
            patient = self.server.get_json(f"/patients/{entry['patient_id']}")
            self.assertIn(entry["study_id"], patient["Studies"])

    def test_ids_computed_independently(self) -> None:
        """
        The ids of each stored file equal SHA-1 ids computed here from the
        UIDs pydicom reads.
        """
        for entry in self.manifest:
            if entry["outcome"] != "stored":
                continue
            dataset = pydicom.dcmread(
                DATA / entry["path"], force=True, stop_before_pixels=True
            )
            patient = str(dataset.get("PatientID", "")).strip()
            uids = [
                patient,
                str(dataset.StudyInstanceUID).strip(),
                str(dataset.SeriesInstanceUID).strip(),
                str(dataset.SOPInstanceUID).strip(),
            ]
            if entry.get("note"):
                continue
            self.assertEqual(orthanc_id(*uids), entry["instance_id"], entry["path"])
            self.assertEqual(orthanc_id(patient), entry["patient_id"], entry["path"])
