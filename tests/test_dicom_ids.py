"""
Tests for L{twistedpacs.dicom.ids}.
"""

from __future__ import annotations

import hashlib
import re

from twisted.trial.unittest import SynchronousTestCase

from twistedpacs.dicom.ids import orthanc_id, resource_ids

PATIENT_ID = "ozp00SjY2xG"
STUDY_UID = "1.2.840.113619.2.176.2025.1499492.7391.1171285944.390"
SERIES_UID = "1.2.840.113619.2.176.2025.1499492.7391.1171285944.394"
SOP_UID = "1.2.840.113619.2.176.2025.1499492.7040.1171286242.109"


class OrthancIdTests(SynchronousTestCase):
    """
    Tests for L{orthanc_id} and L{resource_ids}.
    """

    def test_resource_ids_known_instance(self) -> None:
        """
        The ids of a known instance are those Orthanc gives it.
        """
        ids = resource_ids(PATIENT_ID, STUDY_UID, SERIES_UID, SOP_UID)
        self.assertEqual(ids.instance, "66a662ce-7430e543-bad44d47-0dc5a943-ec7a538d")
        self.assertEqual(ids.patient, "6816cb19-844d5aee-85245eba-28e841e6-2414fae2")

    def test_resource_ids_levels_hash_prefixes(self) -> None:
        """
        Each level hashes the identifying values from the patient down to it.
        """
        ids = resource_ids(PATIENT_ID, STUDY_UID, SERIES_UID, SOP_UID)
        self.assertEqual(ids.patient, orthanc_id(PATIENT_ID))
        self.assertEqual(ids.study, orthanc_id(PATIENT_ID, STUDY_UID))
        self.assertEqual(ids.series, orthanc_id(PATIENT_ID, STUDY_UID, SERIES_UID))

    def test_orthanc_id_layout(self) -> None:
        """
        An id is the SHA-1 hex digest in five dash-separated groups of eight.
        """
        value = orthanc_id("a", "b")
        self.assertRegex(value, r"^[0-9a-f]{8}(-[0-9a-f]{8}){4}$")
        digest = hashlib.sha1(b"a|b").hexdigest()
        self.assertEqual(value.replace("-", ""), digest)

    def test_orthanc_id_empty_patient(self) -> None:
        """
        A data set without PatientID hashes the empty string at patient level.
        """
        ids = resource_ids("", STUDY_UID, SERIES_UID, SOP_UID)
        self.assertEqual(ids.patient, orthanc_id(""))
        self.assertEqual(
            re.sub("-", "", ids.study),
            hashlib.sha1(("|" + STUDY_UID).encode()).hexdigest(),
        )
