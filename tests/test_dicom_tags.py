"""
Tests for L{twistedpacs.dicom.tags}.
"""

from __future__ import annotations

import pathlib

import pydicom
from pydicom.datadict import tag_for_keyword
from twisted.trial.unittest import SynchronousTestCase

from twistedpacs.dicom.tags import (
    DICTIONARY_VRS,
    MAIN_TAGS,
    MAXIMUM_TAG_LENGTH,
    TAG_NUMBERS,
    dicom_tags,
    simplified_tags,
)
from twistedpacs.model import Level

DATA = pathlib.Path(pydicom.__file__).parent / "data"


def read_file(path: str) -> bytes:
    return (DATA / path).read_bytes()


class MainTagTests(SynchronousTestCase):
    """
    Tests for the main tag tables.
    """

    def test_main_tags_counts(self) -> None:
        """
        Each level lists Orthanc's default main tags.
        """
        self.assertEqual(len(MAIN_TAGS[Level.PATIENT]), 5)
        self.assertEqual(len(MAIN_TAGS[Level.STUDY]), 10)
        self.assertEqual(len(MAIN_TAGS[Level.SERIES]), 22)
        self.assertEqual(len(MAIN_TAGS[Level.INSTANCE]), 11)

    def test_main_tags_identifying_uids(self) -> None:
        """
        Each level's identifying value is one of its main tags.
        """
        self.assertIn("PatientID", MAIN_TAGS[Level.PATIENT])
        self.assertIn("StudyInstanceUID", MAIN_TAGS[Level.STUDY])
        self.assertIn("SeriesInstanceUID", MAIN_TAGS[Level.SERIES])
        self.assertIn("SOPInstanceUID", MAIN_TAGS[Level.INSTANCE])

    def test_tag_numbers_match_pydicom(self) -> None:
        """
        The tag numbers and VRs agree with pydicom's dictionary.
        """
        for keyword, (group, element) in TAG_NUMBERS.items():
            self.assertEqual(tag_for_keyword(keyword), (group << 16) | element, keyword)
            vr = pydicom.datadict.dictionary_VR((group << 16) | element)
            self.assertEqual(DICTIONARY_VRS[keyword], vr, keyword)


class TagsJsonTests(SynchronousTestCase):
    """
    Tests for L{dicom_tags} and L{simplified_tags}.
    """

    def test_tags_string_entry(self) -> None:
        """
        A text element is a C{String} entry keyed by lowercase C{gggg,eeee}.
        """
        tags = dicom_tags(read_file("test_files/CT_small.dcm"))
        self.assertEqual(
            tags["0008,0005"],
            {"Name": "SpecificCharacterSet", "Type": "String", "Value": "ISO_IR 100"},
        )
        self.assertEqual(tags["0028,0030"]["Value"], "0.661468\\0.661468")

    def test_tags_private_creator(self) -> None:
        """
        Private elements carry their private creator.
        """
        tags = dicom_tags(read_file("test_files/CT_small.dcm"))
        self.assertEqual(tags["0009,0010"]["Name"], "PrivateCreator")
        self.assertEqual(tags["0009,1001"]["PrivateCreator"], "GEMS_IDEN_01")
        self.assertEqual(tags["0009,1001"]["Value"], "GE_GENESIS_FF")

    def test_tags_sequence_entry(self) -> None:
        """
        A sequence is a list of item dicts of the same shape.
        """
        tags = dicom_tags(read_file("test_files/CT_small.dcm"))
        sequence = tags["0010,1002"]
        self.assertEqual(sequence["Type"], "Sequence")
        self.assertEqual(len(sequence["Value"]), 2)
        self.assertEqual(sequence["Value"][0]["0010,0020"]["Value"], "ABCD1234")

    def test_tags_pixel_data_null(self) -> None:
        """
        The pixel data and binary values are C{Null}, and no File Meta element
        is listed.
        """
        tags = dicom_tags(read_file("test_files/CT_small.dcm"))
        self.assertEqual(
            tags["7fe0,0010"], {"Name": "PixelData", "Type": "Null", "Value": None}
        )
        self.assertFalse([key for key in tags if key.startswith("0002,")])

    def test_tags_too_long(self) -> None:
        """
        A value longer than the maximum tag length is C{TooLong}.
        """
        dataset = pydicom.dcmread(DATA / "test_files/CT_small.dcm")
        dataset.StudyDescription = "x" * (MAXIMUM_TAG_LENGTH + 1)
        dataset.SeriesDescription = "y" * MAXIMUM_TAG_LENGTH
        stream = pydicom.filebase.DicomBytesIO()
        dataset.save_as(stream)
        tags = dicom_tags(stream.getvalue())
        self.assertEqual(tags["0008,1030"]["Type"], "TooLong")
        self.assertIsNone(tags["0008,1030"]["Value"])
        self.assertEqual(tags["0008,103e"]["Value"], "y" * MAXIMUM_TAG_LENGTH)

    def test_tags_character_set(self) -> None:
        """
        Values are decoded with the data set's character set.
        """
        tags = simplified_tags(read_file("charset_files/chrH31.dcm"))
        self.assertEqual(tags["PatientName"], "Yamada^Tarou=山田^太郎=やまだ^たろう")

    def test_simplified_tags_shape(self) -> None:
        """
        Simplified tags are keyed by name, with lists for sequences.
        """
        tags = simplified_tags(read_file("test_files/CT_small.dcm"))
        self.assertEqual(tags["PatientID"], "1CT1")
        self.assertIsNone(tags["PixelData"])
        self.assertEqual(
            tags["OtherPatientIDsSequence"][1],
            {"PatientID": "1234ABCD", "TypeOfPatientID": "TEXT"},
        )

    def test_tags_numbers_and_retired(self) -> None:
        """
        Binary numbers are decimal strings, attribute tags are C{gggg,eeee}, and
        retired keywords are marked as DCMTK marks them.
        """
        tags = dicom_tags(read_file("test_files/rtdose.dcm"))
        self.assertEqual(tags["0028,0010"]["Value"], "10")
        self.assertEqual(tags["0028,0009"]["Value"], "3004,000c")
        plan = dicom_tags(read_file("test_files/waveform_ecg.dcm"))
        self.assertEqual(plan["0032,1030"]["Name"], "RETIRED_ReasonForStudy")
