"""
Tests for L{twistedpacs.dicom.part10}.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from io import BytesIO

import pydicom
from pydicom.data import get_testdata_file
from twisted.trial.unittest import SynchronousTestCase

from twistedpacs.dicom.part10 import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    file_meta_prefix,
)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SOP_UID = "1.2.333.4444.5.6.7.8"  # the SOPInstanceUID of ExplVR_LitEndNoMeta.dcm
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def bare_data_set() -> bytes:
    path = get_testdata_file("ExplVR_LitEndNoMeta.dcm", download=False)
    with open(path, "rb") as file:
        return file.read()


class FileMetaPrefixTests(SynchronousTestCase):
    """
    Tests for L{file_meta_prefix}.
    """

    def test_prefix_preamble_and_magic(self) -> None:
        """
        The prefix starts with 128 zero bytes and C{DICM}.
        """
        prefix = file_meta_prefix(CT_IMAGE_STORAGE, SOP_UID, EXPLICIT_LE)
        self.assertEqual(prefix[:128], bytes(128))
        self.assertEqual(prefix[128:132], b"DICM")

    def test_prefix_pydicom_reads_meta(self) -> None:
        """
        pydicom reads the generated group and the data set behind it.
        """
        prefix = file_meta_prefix(CT_IMAGE_STORAGE, SOP_UID, EXPLICIT_LE, "STORESCU")
        dataset = pydicom.dcmread(BytesIO(prefix + bare_data_set()))
        meta = dataset.file_meta
        self.assertEqual(meta.FileMetaInformationVersion, b"\x00\x01")
        self.assertEqual(meta.MediaStorageSOPClassUID, CT_IMAGE_STORAGE)
        self.assertEqual(meta.MediaStorageSOPInstanceUID, SOP_UID)
        self.assertEqual(meta.TransferSyntaxUID, EXPLICIT_LE)
        self.assertEqual(meta.ImplementationClassUID, IMPLEMENTATION_CLASS_UID)
        self.assertEqual(meta.ImplementationVersionName, IMPLEMENTATION_VERSION_NAME)
        self.assertEqual(meta.SourceApplicationEntityTitle, "STORESCU")
        self.assertEqual(dataset.SOPInstanceUID, SOP_UID)

    def test_prefix_group_length_counts_group(self) -> None:
        """
        The group length counts the bytes of the group after its own element.
        """
        prefix = file_meta_prefix(CT_IMAGE_STORAGE, SOP_UID, EXPLICIT_LE)
        self.assertEqual(prefix[132:140], b"\x02\x00\x00\x00UL\x04\x00")
        length = int.from_bytes(prefix[140:144], "little")
        self.assertEqual(length, len(prefix) - 144)

    def test_prefix_pads_uid_with_nul(self) -> None:
        """
        An odd-length UID is padded with a NUL byte to an even length.
        """
        odd_uid = "1.2.333.4444.5.6.78"
        prefix = file_meta_prefix(CT_IMAGE_STORAGE, odd_uid, EXPLICIT_LE)
        element = b"\x02\x00\x03\x00UI\x14\x00" + odd_uid.encode() + b"\0"
        self.assertIn(element, prefix)

    def test_prefix_without_source_aet(self) -> None:
        """
        Without a source AE title, (0002,0016) is left out.
        """
        prefix = file_meta_prefix(CT_IMAGE_STORAGE, SOP_UID, EXPLICIT_LE)
        self.assertNotIn(b"\x02\x00\x16\x00", prefix)
        meta = pydicom.dcmread(BytesIO(prefix + bare_data_set())).file_meta
        self.assertNotIn("SourceApplicationEntityTitle", meta)

    def test_constants_valid(self) -> None:
        """
        Our Implementation Class UID is a 2.25 UID of at most 64 characters and
        the version name fits its 16-character SH value.
        """
        self.assertTrue(IMPLEMENTATION_CLASS_UID.startswith("2.25."))
        self.assertLessEqual(len(IMPLEMENTATION_CLASS_UID), 64)
        self.assertLessEqual(len(IMPLEMENTATION_VERSION_NAME), 16)

    def test_prefix_dcmdump_reads_file(self) -> None:
        """
        DCMTK's dcmdump reads the generated group without a warning.
        """
        dcmdump = shutil.which("dcmdump")
        if dcmdump is None:
            self.skipTest("dcmdump (DCMTK) is not installed")
        prefix = file_meta_prefix(CT_IMAGE_STORAGE, SOP_UID, EXPLICIT_LE, "MODALITY")
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "instance.dcm")
            with open(path, "wb") as file:
                file.write(prefix + bare_data_set())
            result = subprocess.run(
                [dcmdump, path], capture_output=True, text=True, check=False
            )
        self.assertEqual(result.returncode, 0)
        self.assertEqual(result.stderr, "")
        self.assertIn(f"(0002,0003) UI [{SOP_UID}]", result.stdout)
        self.assertIn(f"(0002,0012) UI [{IMPLEMENTATION_CLASS_UID}]", result.stdout)
        self.assertIn("(0002,0016) AE [MODALITY]", result.stdout)
        self.assertIn("(0008,0018) UI [1.2.333.4444.5.6.7.8]", result.stdout)
