"""
Check the scanner against tests/data/manifest.json, the outcome pydicom
predicts for each file bundled with pydicom.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pydicom
from twisted.trial.unittest import SynchronousTestCase

from twistedpacs.dicom.ids import resource_ids
from twistedpacs.dicom.scan import InstanceScanner, InvalidInstanceError

DATA = pathlib.Path(pydicom.__file__).parent / "data"
MANIFEST = pathlib.Path(__file__).parent / "data" / "manifest.json"


def load_manifest() -> dict[str, Any]:
    with MANIFEST.open() as file:
        document: dict[str, Any] = json.load(file)
    return document


class ManifestTests(SynchronousTestCase):
    """
    Tests for the scanner on every manifest entry.
    """

    def test_manifest_lists_every_file(self) -> None:
        """
        The manifest lists each bundled file once, in sorted order.
        """
        paths = [entry["path"] for entry in load_manifest()["files"]]
        bundled = sorted(
            str(path.relative_to(DATA))
            for folder in ("charset_files", "palettes", "test_files")
            for path in (DATA / folder).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        )
        self.assertEqual(paths, bundled)

    def test_manifest_outcomes(self) -> None:
        """
        The scanner stores or rejects each file as the manifest says, with the
        expected error class and ids.
        """
        for entry in load_manifest()["files"]:
            path = entry["path"]
            scanner = InstanceScanner()
            try:
                scanner.feed((DATA / path).read_bytes())
                header = scanner.finish()
            except InvalidInstanceError as error:
                self.assertEqual(entry["outcome"], "rejected", f"{path}: {error}")
                self.assertEqual(type(error).__name__, entry["error"], path)
                continue
            self.assertEqual(entry["outcome"], "stored", path)
            self.assertEqual(header.sop_instance_uid, entry["sop_instance_uid"], path)
            if entry["transfer_syntax"]:  # empty for bare data sets
                self.assertEqual(header.transfer_syntax, entry["transfer_syntax"], path)
            ids = resource_ids(
                header.patient_id,
                header.study_instance_uid,
                header.series_instance_uid,
                header.sop_instance_uid,
            )
            self.assertEqual(ids.instance, entry["instance_id"], path)
            self.assertEqual(ids.series, entry["series_id"], path)
            self.assertEqual(ids.study, entry["study_id"], path)
            self.assertEqual(ids.patient, entry["patient_id"], path)

    def test_manifest_duplicates_consistent(self) -> None:
        """
        A duplicate names an earlier stored file with the same instance id.
        """
        seen: dict[str, str] = {}
        duplicates = 0
        for entry in load_manifest()["files"]:
            if entry["outcome"] != "stored":
                self.assertNotIn("duplicate_of", entry)
                continue
            first = seen.setdefault(entry["instance_id"], entry["path"])
            self.assertEqual(entry.get("duplicate_of", entry["path"]), first)
            duplicates += "duplicate_of" in entry
        self.assertEqual(duplicates, 29)
