"""
Tests for L{twistedpacs.dicom.scan}, checked against pydicom's reading of the
same bytes.
"""

from __future__ import annotations

import json
import pathlib
import random
import struct
import warnings
import zlib
from io import BytesIO
from typing import Any

import pydicom
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import _read_file_meta_info, data_element_generator
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from twisted.trial.unittest import SynchronousTestCase

from twistedpacs.dicom.scan import (
    MAXIMUM_SEQUENCE_DEPTH,
    DicomdirError,
    InstanceScanner,
    InvalidInstanceError,
    NotDicomError,
)
from twistedpacs.dicom.tags import MAIN_TAGS
from twistedpacs.model import InstanceHeader, Level

DATA = pathlib.Path(pydicom.__file__).parent / "data"
MANIFEST = pathlib.Path(__file__).parent / "data" / "manifest.json"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def stored_files() -> list[str]:
    with MANIFEST.open() as file:
        entries = json.load(file)["files"]
    return [entry["path"] for entry in entries if entry["outcome"] == "stored"]


def scan(chunks: list[bytes], transfer_syntax: str | None = None) -> InstanceHeader:
    scanner = InstanceScanner(transfer_syntax)
    for chunk in chunks:
        scanner.feed(chunk)
    return scanner.finish()


def outcome(chunks: list[bytes], transfer_syntax: str | None = None) -> Any:
    """
    Return the header, or the class and message of the rejection.
    """
    try:
        return scan(chunks, transfer_syntax)
    except InvalidInstanceError as error:
        return (type(error).__name__, error.message)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    edges = [0] + sorted(set(cut for cut in cuts if 0 < cut < len(data))) + [len(data)]
    return [data[start:end] for start, end in zip(edges, edges[1:])]


def pydicom_text(dataset: Dataset, keyword: str) -> str | None:
    """
    Return an element's value as the scanner reports it, from pydicom.
    """
    if keyword not in dataset:
        return None
    value = dataset[keyword].value
    if value is None:
        return ""
    if isinstance(value, MultiValue):
        return "\\".join(str(item) for item in value)
    return str(value)


def read(data: bytes) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(BytesIO(data), force=True, stop_before_pixels=True)


def assert_matches_pydicom(
    case: SynchronousTestCase, header: InstanceHeader, data: bytes, label: str
) -> None:
    dataset = read(data)
    case.assertEqual(header.sop_instance_uid, str(dataset.SOPInstanceUID), label)
    case.assertEqual(header.study_instance_uid, str(dataset.StudyInstanceUID), label)
    case.assertEqual(header.series_instance_uid, str(dataset.SeriesInstanceUID), label)
    case.assertEqual(header.patient_id, pydicom_text(dataset, "PatientID") or "", label)
    for level, keywords in MAIN_TAGS.items():
        for keyword in keywords:
            expected = pydicom_text(dataset, keyword)
            found = header.main_tags[level].get(keyword)
            case.assertEqual(found, expected, f"{label} {keyword}")


def top_level_boundaries(data: bytes) -> set[int]:
    """
    Return the offsets, found by pydicom, where a top-level element ends.
    """
    stream = BytesIO(data)
    start = 0
    if data[128:132] == b"DICM":
        stream.seek(132)
        _read_file_meta_info(stream)
        start = stream.tell()
    stream.seek(start)
    dataset = read(data)
    implicit, little = dataset.original_encoding
    ends = {start}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in data_element_generator(stream, implicit, little, defer_size=None):
            ends.add(stream.tell())
    return ends


def deflate_trailer(data: bytes) -> set[int]:
    """
    Return the cuts of a deflated file that leave its deflate stream whole:
    those inside the bytes that follow the stream, which readers ignore.
    """
    stream = BytesIO(data)
    stream.seek(132)
    _read_file_meta_info(stream)
    inflater = zlib.decompressobj(-15)
    inflater.decompress(data[stream.tell() :])
    return set(range(len(data) - len(inflater.unused_data), len(data)))


class BundledFileTests(SynchronousTestCase):
    """
    The scanner agrees with pydicom on every file bundled with pydicom.
    """

    def test_bundled_files_match_pydicom(self) -> None:
        """
        The UIDs and main tags of each stored file equal pydicom's values.
        """
        paths = stored_files()
        self.assertGreater(len(paths), 150)
        for path in paths:
            data = (DATA / path).read_bytes()
            assert_matches_pydicom(self, scan([data]), data, path)

    def test_bundled_files_any_split(self) -> None:
        """
        Feeding a file in random chunks, or byte by byte, gives the same result
        as feeding it whole.
        """
        rng = random.Random(7)
        for path in sorted(p for p in stored_files() if "TINY_ALPHA" not in p):
            data = (DATA / path).read_bytes()
            whole = scan([data])
            for count in (1, 3, 40):
                cuts = [rng.randrange(1, len(data)) for _ in range(count)]
                self.assertEqual(scan(split(data, cuts)), whole, path)
            if len(data) < 12000:
                bytewise = [data[i : i + 1] for i in range(len(data))]
                self.assertEqual(scan(bytewise), whole, path)

    def test_bundled_files_memoryview_chunks(self) -> None:
        """
        Chunks given as memoryviews are read like bytes.
        """
        data = (DATA / "test_files/CT_small.dcm").read_bytes()
        view = memoryview(data)
        chunks = [view[i : i + 1000] for i in range(0, len(data), 1000)]
        self.assertEqual(scan(chunks), scan([data]))  # type: ignore[arg-type]

    def test_bundled_files_truncated_rejected(self) -> None:
        """
        A file cut anywhere but on a top-level element boundary is rejected.
        """
        rng = random.Random(11)
        for path in stored_files():
            data = (DATA / path).read_bytes()
            if b"1.2.840.10008.1.2.1.99" in data[:400]:
                boundaries = deflate_trailer(data)
            else:
                boundaries = top_level_boundaries(data)
            cuts = {rng.randrange(0, len(data)) for _ in range(25)} | {len(data) - 1}
            for cut in sorted(cuts):
                result = outcome([data[:cut]])
                if isinstance(result, InstanceHeader):
                    self.assertIn(cut, boundaries, f"{path} accepted cut at {cut}")

    def test_header_file_meta_fields(self) -> None:
        """
        A Part 10 upload reports its File Meta transfer syntax.
        """
        header = scan([(DATA / "test_files/MR_small_bigendian.dcm").read_bytes()])
        self.assertEqual(header.transfer_syntax, EXPLICIT_BE)
        self.assertTrue(header.has_file_meta)
        self.assertEqual(header.sop_class_uid, "1.2.840.10008.5.1.4.1.1.4")

    def test_header_character_set(self) -> None:
        """
        Values are decoded with the data set's Specific Character Set.
        """
        header = scan([(DATA / "charset_files/chrH31.dcm").read_bytes()])
        self.assertEqual(header.specific_character_set, "\\ISO 2022 IR 87")
        self.assertEqual(
            header.main_tags[Level.PATIENT]["PatientName"],
            "Yamada^Tarou=山田^太郎=やまだ^たろう",
        )

    def test_deflated_file(self) -> None:
        """
        A deflated file is inflated and walked, in any split.
        """
        data = (DATA / "test_files/image_dfl.dcm").read_bytes()
        header = scan([data[i : i + 7] for i in range(0, len(data), 7)])
        self.assertEqual(header.transfer_syntax, DEFLATED)
        assert_matches_pydicom(self, header, data, "image_dfl.dcm")


def build_data_set(
    patient_id: str | None = "PID", sop_uid: str = "1.2.3.4.5"
) -> Dataset:
    dataset = Dataset()
    dataset.SpecificCharacterSet = "ISO_IR 100"
    dataset.SOPClassUID = CT_IMAGE_STORAGE
    dataset.SOPInstanceUID = sop_uid
    dataset.StudyInstanceUID = "1.2.3"
    dataset.SeriesInstanceUID = "1.2.3.4"
    if patient_id is not None:
        dataset.PatientID = patient_id
    dataset.PatientName = "Müller^Jürgen"
    dataset.Modality = "CT"
    return dataset


def encode(
    dataset: Dataset,
    transfer_syntax: str,
    file_meta: bool = True,
) -> bytes:
    stream = BytesIO()
    implicit = transfer_syntax == IMPLICIT_LE
    little = transfer_syntax != EXPLICIT_BE
    if file_meta:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = dataset.SOPClassUID
        meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        meta.TransferSyntaxUID = transfer_syntax
        dataset.file_meta = meta
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pydicom.dcmwrite(stream, dataset, enforce_file_format=True)
    else:
        pydicom.dcmwrite(stream, dataset, implicit_vr=implicit, little_endian=little)
    return stream.getvalue()


def nested_sequences(depth: int, defined: bool) -> bytes:
    """
    Return explicit VR little endian ContentSequence elements nested C{depth}
    deep, each with one item, with defined or undefined lengths.
    """
    if not defined:
        opening = struct.pack("<HH2sHL", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF)
        opening += struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
        closing = struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
        closing += struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
        return opening * depth + closing * depth
    inner = struct.pack("<HH2sH", 0x0008, 0x0100, b"SH", 4) + b"CODE"
    for _ in range(depth):
        item = struct.pack("<HHL", 0xFFFE, 0xE000, len(inner)) + inner
        inner = struct.pack("<HH2sHL", 0x0040, 0xA730, b"SQ", 0, len(item)) + item
    return inner


def explicit_le(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        return struct.pack("<HH2sHL", group, element, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, element, vr, len(value)) + value


class EarlyHeaderTests(SynchronousTestCase):
    """
    The header is available once the walk has passed the last tag it reads,
    and L{InstanceScanner.finish} returns that same header unless a read tag
    came later.
    """

    def data_set(self, late_patient_id: bytes | None = None) -> bytes:
        elements = [
            explicit_le(0x0008, 0x0016, b"UI", CT_IMAGE_STORAGE.encode() + b"\0"),
            explicit_le(0x0008, 0x0018, b"UI", b"1.2.3.4.5\0"),
            explicit_le(0x0010, 0x0020, b"LO", b"EARLY "),
            explicit_le(0x0020, 0x000D, b"UI", b"1.2.3\0"),
            explicit_le(0x0020, 0x000E, b"UI", b"1.2.3.4\0"),
            explicit_le(0x7FE0, 0x0010, b"OW", bytes(4096)),
        ]
        if late_patient_id is not None:
            elements.append(explicit_le(0x0010, 0x0020, b"LO", late_patient_id))
        return b"".join(elements)

    def test_early_header_before_pixel_data(self) -> None:
        """
        Once the header of the pixel data element is fed, early_header returns
        the header, and finish returns the same object.
        """
        data = self.data_set()
        scanner = InstanceScanner(EXPLICIT_LE)
        pixel_start = data.index(struct.pack("<HH", 0x7FE0, 0x0010))
        scanner.feed(data[:pixel_start])
        self.assertIsNone(scanner.early_header())
        scanner.feed(data[pixel_start : pixel_start + 100])
        early = scanner.early_header()
        assert early is not None
        self.assertEqual(early.sop_instance_uid, "1.2.3.4.5")
        self.assertEqual(early.patient_id, "EARLY")
        scanner.feed(data[pixel_start + 100 :])
        self.assertIs(scanner.finish(), early)

    def test_late_read_tag_rebuilds_header(self) -> None:
        """
        A read tag after the pixel data, out of the ascending order, makes
        finish build the header again with its value.
        """
        data = self.data_set(late_patient_id=b"LATE")
        scanner = InstanceScanner(EXPLICIT_LE)
        scanner.feed(data[:-20])
        early = scanner.early_header()
        assert early is not None
        self.assertEqual(early.patient_id, "EARLY")
        scanner.feed(data[-20:])
        header = scanner.finish()
        self.assertIsNot(header, early)
        self.assertEqual(header.patient_id, "LATE")

    def test_truncated_after_early_header_rejected(self) -> None:
        """
        An instance cut inside its pixel data is rejected by finish even
        though its header was built.
        """
        data = self.data_set()
        scanner = InstanceScanner(EXPLICIT_LE)
        scanner.feed(data[:-10])
        self.assertIsNotNone(scanner.early_header())
        with self.assertRaises(InvalidInstanceError):
            scanner.finish()

    def test_bundled_files_early_equals_finish(self) -> None:
        """
        For every bundled file fed in 1,000-byte chunks, the early header,
        whenever there is one, equals the header of finish.
        """
        early_count = 0
        for path in stored_files():
            data = (DATA / path).read_bytes()
            scanner = InstanceScanner()
            early = None
            for start in range(0, len(data), 1000):
                scanner.feed(data[start : start + 1000])
                early = early or scanner.early_header()
            header = scanner.finish()
            if early is not None:
                early_count += 1
                self.assertEqual(early, header, path)
        self.assertGreater(early_count, 100)


class RejectionTests(SynchronousTestCase):
    """
    The scanner rejects what is not a storable instance, with a precise error.
    """

    def test_missing_uid_named(self) -> None:
        """
        A data set without SOPInstanceUID is rejected naming the keyword.
        """
        dataset = build_data_set()
        del dataset.SOPInstanceUID
        data = encode(dataset, EXPLICIT_LE, file_meta=False)
        result = outcome([data])
        self.assertEqual(result, ("InvalidInstanceError", "Missing SOPInstanceUID"))

    def test_missing_patient_id_allowed(self) -> None:
        """
        A data set without PatientID is stored with an empty one, as Orthanc
        does.
        """
        data = encode(build_data_set(patient_id=None), IMPLICIT_LE, file_meta=False)
        header = scan([data])
        self.assertEqual(header.patient_id, "")
        self.assertNotIn("PatientID", header.main_tags[Level.PATIENT])

    def test_dicomdir_rejected(self) -> None:
        """
        A DICOMDIR is rejected with L{DicomdirError}.
        """
        data = (DATA / "test_files/dicomdirtests/DICOMDIR").read_bytes()
        with self.assertRaises(DicomdirError) as caught:
            scan([data])
        self.assertEqual(caught.exception.message, "DICOMDIR cannot be imported alone")

    def test_directory_record_sequence_rejected(self) -> None:
        """
        A data set holding a DirectoryRecordSequence is a DICOMDIR even when its
        File Meta group names another SOP class.
        """
        dataset = build_data_set()
        dataset.DirectoryRecordSequence = Sequence([Dataset()])
        data = encode(dataset, EXPLICIT_LE)
        self.assertRaises(DicomdirError, scan, [data])

    def test_not_dicom_rejected_early(self) -> None:
        """
        Text is rejected by L{InstanceScanner.feed} once 132 bytes arrived.
        """
        scanner = InstanceScanner()
        scanner.feed(b"x" * 100)
        with self.assertRaises(NotDicomError) as caught:
            scanner.feed(b"x" * 100)
        self.assertEqual(caught.exception.message, "Not a DICOM file")

    def test_empty_body_rejected(self) -> None:
        """
        An empty body is not DICOM.
        """
        self.assertRaises(NotDicomError, scan, [])

    def test_unknown_vr_rejected(self) -> None:
        """
        An explicit VR element with an unknown VR is rejected.
        """
        data = encode(build_data_set(), EXPLICIT_LE, file_meta=False)
        data += struct.pack("<HH2sH", 0x0009, 0x0010, b"QQ", 2) + b"AB"
        result = outcome([data])
        self.assertEqual(result, ("InvalidInstanceError", "Invalid DICOM file"))

    def test_unclosed_sequence_rejected(self) -> None:
        """
        An undefined-length sequence without its delimiter is truncated.
        """
        data = encode(build_data_set(), EXPLICIT_LE, file_meta=False)
        data += struct.pack("<HH2sHL", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF)
        data += struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
        data += struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
        result = outcome([data])
        self.assertEqual(result, ("InvalidInstanceError", "Truncated DICOM file"))

    def test_element_past_item_end_rejected(self) -> None:
        """
        An element that runs past the end of its defined-length item is
        rejected.
        """
        inner = struct.pack("<HH2sH", 0x0008, 0x0100, b"SH", 4) + b"ABCD"
        item = struct.pack("<HHL", 0xFFFE, 0xE000, len(inner) - 2) + inner
        element = struct.pack("<HH2sHL", 0x0040, 0xA730, b"SQ", 0, len(item)) + item
        data = encode(build_data_set(), EXPLICIT_LE, file_meta=False) + element
        result = outcome([data])
        self.assertEqual(result, ("InvalidInstanceError", "Invalid DICOM file"))

    def test_sequence_depth_at_limit_accepted(self) -> None:
        """
        Sequences nested as deep as the limit are accepted, with defined and
        undefined lengths, and two such nests one after the other too.
        """
        data = encode(build_data_set(), EXPLICIT_LE)
        for defined in (False, True):
            nest = nested_sequences(MAXIMUM_SEQUENCE_DEPTH, defined)
            header = scan([data + nest + nest])
            self.assertEqual(header.sop_instance_uid, "1.2.3.4.5")
            self.assertEqual(len(read(data + nest).ContentSequence), 1)

    def test_sequence_depth_past_limit_rejected(self) -> None:
        """
        One level past the limit is rejected, with defined and undefined
        lengths, naming the depth and the limit.
        """
        data = encode(build_data_set(), EXPLICIT_LE)
        for defined in (False, True):
            nest = nested_sequences(MAXIMUM_SEQUENCE_DEPTH + 1, defined)
            with self.assertRaises(InvalidInstanceError) as caught:
                scan([data + nest])
            self.assertEqual(caught.exception.message, "Sequences nested too deeply")
            self.assertIn(
                f"nested {MAXIMUM_SEQUENCE_DEPTH + 1} deep, more than the maximum "
                f"of {MAXIMUM_SEQUENCE_DEPTH}",
                caught.exception.details,
            )

    def test_sequence_depth_implicit_rejected(self) -> None:
        """
        In implicit VR, a nest of 50,000 undefined-length sequences fed in
        small chunks is rejected once it passes the limit.
        """
        data = encode(build_data_set(), IMPLICIT_LE, file_meta=False)
        opening = struct.pack("<HHL", 0x0040, 0xA730, 0xFFFFFFFF) + struct.pack(
            "<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF
        )
        scanner = InstanceScanner()
        scanner.feed(data)
        with self.assertRaises(InvalidInstanceError) as caught:
            for _ in range(50000):
                scanner.feed(opening)
        self.assertEqual(caught.exception.message, "Sequences nested too deeply")
        self.assertLess(scanner.size, len(data) + 16 * (MAXIMUM_SEQUENCE_DEPTH + 2))

    def test_missing_transfer_syntax_rejected(self) -> None:
        """
        A File Meta group without TransferSyntaxUID is rejected.
        """
        data = (DATA / "test_files/meta_missing_tsyntax.dcm").read_bytes()
        result = outcome([data])
        self.assertEqual(result, ("InvalidInstanceError", "Missing TransferSyntaxUID"))

    def test_truncated_deflate_rejected(self) -> None:
        """
        A deflated file cut inside its deflate stream is rejected.
        """
        data = (DATA / "test_files/image_dfl.dcm").read_bytes()
        result = outcome([data[:-40]])
        self.assertEqual(result, ("InvalidInstanceError", "Truncated DICOM file"))


class DimseDataSetTests(SynchronousTestCase):
    """
    Data sets received over DIMSE carry no File Meta group.
    """

    def test_transfer_syntaxes(self) -> None:
        """
        A data set is walked in the transfer syntax it was received in.
        """
        for transfer_syntax in (IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE):
            dataset = build_data_set()
            data = encode(dataset, transfer_syntax, file_meta=False)
            header = scan([data], transfer_syntax)
            self.assertEqual(header.transfer_syntax, transfer_syntax)
            self.assertFalse(header.has_file_meta)
            self.assertEqual(
                header.main_tags[Level.PATIENT]["PatientName"], "Müller^Jürgen"
            )

    def test_deflated(self) -> None:
        """
        A deflated data set is inflated incrementally.
        """
        plain = encode(build_data_set(), EXPLICIT_LE, file_meta=False)
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        data = compressor.compress(plain) + compressor.flush()
        header = scan(split(data, [5, 17, 60]), DEFLATED)
        self.assertEqual(header.sop_instance_uid, "1.2.3.4.5")
        self.assertEqual(header.transfer_syntax, DEFLATED)

    def test_bare_upload_detected(self) -> None:
        """
        An upload without File Meta group is detected in each of the three
        uncompressed transfer syntaxes.
        """
        for transfer_syntax in (IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE):
            data = encode(build_data_set(), transfer_syntax, file_meta=False)
            header = scan([data])
            self.assertEqual(header.transfer_syntax, transfer_syntax)
            self.assertFalse(header.has_file_meta)


# Values of each VR that pydicom writes and reads back unchanged.
TEXT = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh 0123456789éüß", max_size=20)
CODE = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789", max_size=16)
UIDS = st.lists(st.integers(0, 99999), min_size=2, max_size=8).map(
    lambda parts: "1." + ".".join(str(part) for part in parts)
)
NUMBERS = st.integers(-99999, 99999).map(str)
DECIMALS = st.decimals(-1000, 1000, places=3).map(lambda value: str(value))
DATES = st.dates().map(lambda value: value.strftime("%Y%m%d"))
ELEMENT_VALUES: dict[str, Any] = {
    "PatientName": TEXT.map(lambda text: text.strip().replace(" ", "^")),
    "PatientSex": st.sampled_from(["M", "F", "O", ""]),
    "PatientBirthDate": DATES,
    "StudyDescription": TEXT,
    "SeriesDescription": TEXT,
    "AccessionNumber": CODE,
    "Modality": st.sampled_from(["CT", "MR", "US", "OT"]),
    "SeriesNumber": NUMBERS,
    "InstanceNumber": NUMBERS,
    "ImagePositionPatient": st.lists(DECIMALS, min_size=3, max_size=3),
    "ImageComments": TEXT,
    "NumberOfSlices": st.integers(0, 65535),
    "ImageIndex": st.integers(0, 65535),
    "OtherPatientIDs": st.lists(CODE, min_size=1, max_size=3),
    "ImageType": st.lists(CODE.filter(bool), min_size=1, max_size=3),
    "Rows": st.integers(0, 65535),
    "PixelSpacing": st.lists(DECIMALS, min_size=2, max_size=2),
    "WindowCenter": DECIMALS,
}


def nested_items() -> Any:
    item_values = st.fixed_dictionaries(
        {},
        optional={
            "CodeValue": CODE,
            "CodeMeaning": TEXT,
            # A main tag inside a sequence must not be read.
            "SOPInstanceUID": UIDS,
            "PatientID": CODE,
        },
    )
    return st.lists(st.tuples(item_values, st.booleans()), max_size=3)


@st.composite
def data_sets(draw: Any) -> tuple[bytes, str, bool]:
    dataset = Dataset()
    dataset.SpecificCharacterSet = draw(st.sampled_from(["ISO_IR 100", "ISO_IR 192"]))
    dataset.SOPClassUID = CT_IMAGE_STORAGE
    dataset.SOPInstanceUID = draw(UIDS)
    dataset.StudyInstanceUID = draw(UIDS)
    dataset.SeriesInstanceUID = draw(UIDS)
    if draw(st.booleans()):
        dataset.PatientID = draw(CODE)
    for keyword, strategy in ELEMENT_VALUES.items():
        if draw(st.booleans()):
            setattr(dataset, keyword, draw(strategy))
    for keyword in ("ReferencedImageSequence", "ContentSequence"):
        items = draw(nested_items())
        if items or draw(st.booleans()):
            sequence = Sequence()
            for values, undefined_item in items:
                item = Dataset()
                for name, value in values.items():
                    setattr(item, name, value)
                item.is_undefined_length_sequence_item = undefined_item
                sequence.append(item)
            setattr(dataset, keyword, sequence)
            dataset[keyword].is_undefined_length = draw(st.booleans())
    if draw(st.booleans()):
        dataset.BitsAllocated = 8
        dataset.PixelData = draw(
            st.binary(max_size=300).map(lambda b: b + b"\0" * (len(b) % 2))
        )
    transfer_syntax = draw(st.sampled_from([IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE]))
    file_meta = draw(st.booleans())
    data = encode(dataset, transfer_syntax, file_meta)
    if draw(st.booleans()):
        data += odd_private_element(transfer_syntax, draw(st.binary(max_size=9)))
    return data, transfer_syntax, file_meta


def odd_private_element(transfer_syntax: str, value: bytes) -> bytes:
    """
    Encode a private element with an odd length, which pydicom never writes.
    """
    if len(value) % 2 == 0:
        value += b"x"
    if transfer_syntax == IMPLICIT_LE:
        return struct.pack("<HHL", 0x0099, 0x1000, len(value)) + value
    order = "<" if transfer_syntax == EXPLICIT_LE else ">"
    return struct.pack(order + "HH2sxxL", 0x0099, 0x1000, b"UN", len(value)) + value


class GeneratedDataSetTests(SynchronousTestCase):
    """
    Data sets written by pydicom in random shapes and encodings.
    """

    @settings(max_examples=200)
    @given(data_sets(), st.lists(st.integers(1, 4000), max_size=8))
    def test_generated_data_sets_match_pydicom(
        self, case: tuple[bytes, str, bool], cuts: list[int]
    ) -> None:
        """
        Every split of a generated data set gives pydicom's header values.
        """
        data, transfer_syntax, file_meta = case
        header = scan(split(data, cuts), None if file_meta else transfer_syntax)
        self.assertEqual(header.transfer_syntax, transfer_syntax)
        self.assertEqual(header.has_file_meta, file_meta)
        assert_matches_pydicom(self, header, data, "generated")

    @settings(max_examples=100)
    @given(data_sets(), st.integers(0, 1 << 30))
    def test_generated_data_sets_cut_rejected(
        self, case: tuple[bytes, str, bool], position: int
    ) -> None:
        """
        A generated data set cut off the top-level element boundaries is
        rejected.
        """
        data, transfer_syntax, file_meta = case
        cut = position % len(data)
        result = outcome([data[:cut]], None if file_meta else transfer_syntax)
        if isinstance(result, InstanceHeader):
            self.assertIn(cut, top_level_boundaries(data))


class RandomBytesTests(SynchronousTestCase):
    """
    Arbitrary bytes never raise anything but L{InvalidInstanceError}.
    """

    @settings(max_examples=300)
    @given(
        st.sampled_from(
            [b"", bytes(128) + b"DICM", b"\x08\x00", b"\x08\x00\x05\x00CS"]
        ),
        st.binary(max_size=600),
        st.lists(st.integers(1, 600), max_size=4),
    )
    def test_random_bytes_rejected(
        self, prefix: bytes, body: bytes, cuts: list[int]
    ) -> None:
        """
        Random bodies, alone or behind a DICM or group 0008 start, are
        rejected or read, never crash the scanner.
        """
        data = prefix + body
        try:
            scan(split(data, cuts))
        except InvalidInstanceError as error:
            self.assertTrue(error.message)

    @settings(max_examples=300)
    @given(st.sampled_from(sorted(stored_files())[:40]), st.data())
    def test_mutated_files_rejected(self, path: str, data: Any) -> None:
        """
        A real file with random bytes overwritten is rejected or read, never
        crashes the scanner.
        """
        original = bytearray((DATA / path).read_bytes())
        for _ in range(data.draw(st.integers(1, 8))):
            index = data.draw(st.integers(0, len(original) - 1))
            original[index] = data.draw(st.integers(0, 255))
        try:
            scan([bytes(original)])
        except InvalidInstanceError as error:
            self.assertTrue(error.message)
