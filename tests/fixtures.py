"""
DICOM test data built with pydicom: small instances with chosen UIDs, and the
unusual encodings the upload cases need (deflated, no File Meta, odd-length
values, DICOMDIR, multipart envelopes, large objects).
"""

from __future__ import annotations

import io
import os
import struct
import tempfile

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    SecondaryCaptureImageStorage,
    generate_uid,
)


def new_uid() -> str:
    return generate_uid(prefix=None)


def make_dataset(
    patient_name: str = "QA^TEST",
    patient_id: str = "QA0001",
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    rows: int = 4,
    columns: int = 4,
    pixel_value: int = 0,
) -> Dataset:
    """
    Build a small Secondary Capture instance with 8-bit grayscale pixels.
    """
    dataset = Dataset()
    dataset.SOPClassUID = SecondaryCaptureImageStorage
    dataset.SOPInstanceUID = sop_uid or new_uid()
    dataset.StudyInstanceUID = study_uid or new_uid()
    dataset.SeriesInstanceUID = series_uid or new_uid()
    dataset.PatientName = patient_name
    dataset.PatientID = patient_id
    dataset.Modality = "OT"
    dataset.StudyDate = "20240101"
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.Rows = rows
    dataset.Columns = columns
    dataset.BitsAllocated = 8
    dataset.BitsStored = 8
    dataset.HighBit = 7
    dataset.PixelRepresentation = 0
    dataset.PixelData = bytes([pixel_value & 0xFF]) * (rows * columns)
    return dataset


def part10_bytes(
    dataset: Dataset, transfer_syntax: str = ExplicitVRLittleEndian
) -> bytes:
    """
    Encode a data set as a Part 10 file in the given transfer syntax.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    dataset = dataset.copy()
    dataset.file_meta = meta
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def bare_dataset_bytes(dataset: Dataset, implicit: bool = True) -> bytes:
    """
    Encode a data set without preamble, C{DICM} or File Meta group.
    """
    fp = pydicom.filebase.DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = implicit
    pydicom.filewriter.write_dataset(fp, dataset)
    return bytes(fp.getvalue())


def deflated_bytes(dataset: Dataset) -> bytes:
    """
    Encode a Part 10 file whose data set is raw-deflated explicit VR LE.
    """
    return part10_bytes(dataset, DeflatedExplicitVRLittleEndian)


def explicit_element(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"UC", b"UR"):
        return struct.pack("<HH2sHL", group, element, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, element, vr, len(value)) + value


def odd_length_values_file() -> tuple[bytes, str]:
    """
    Build an explicit VR LE file whose PatientID (VL 5) and StudyID (VL 1)
    are unpadded odd-length values; return the bytes and the SOP Instance UID.
    """
    sop_uid = new_uid()

    def uid_value(uid: str) -> bytes:
        raw = uid.encode()
        return raw + b"\0" if len(raw) % 2 else raw

    elements = b"".join(
        [
            explicit_element(
                0x0008, 0x0016, b"UI", uid_value(SecondaryCaptureImageStorage)
            ),
            explicit_element(0x0008, 0x0018, b"UI", uid_value(sop_uid)),
            explicit_element(0x0010, 0x0010, b"PN", b"QA^ODD"),
            explicit_element(0x0010, 0x0020, b"LO", b"12345"),
            explicit_element(0x0020, 0x000D, b"UI", uid_value(new_uid())),
            explicit_element(0x0020, 0x000E, b"UI", uid_value(new_uid())),
            explicit_element(0x0020, 0x0010, b"SH", b"7"),
        ]
    )
    if len(elements) % 2:
        elements += explicit_element(0x0020, 0x0011, b"IS", b"1 ")[:-1]
    meta_elements = b"".join(
        [
            explicit_element(0x0002, 0x0001, b"OB", b"\0\1"),
            explicit_element(
                0x0002, 0x0002, b"UI", uid_value(SecondaryCaptureImageStorage)
            ),
            explicit_element(0x0002, 0x0003, b"UI", uid_value(sop_uid)),
            explicit_element(0x0002, 0x0010, b"UI", uid_value(ExplicitVRLittleEndian)),
        ]
    )
    group_length = explicit_element(
        0x0002, 0x0000, b"UL", struct.pack("<L", len(meta_elements))
    )
    return bytes(128) + b"DICM" + group_length + meta_elements + elements, sop_uid


def dicomdir_bytes() -> bytes:
    """
    Write a DICOMDIR with one PATIENT/STUDY/SERIES/IMAGE record chain.
    """
    from pydicom.fileset import FileSet

    directory = tempfile.mkdtemp(prefix="twistedpacs-dicomdir-")
    instance = make_dataset("QA^DICOMDIR", "QADIR")
    instance.StudyTime = "120000"
    instance.StudyID = "1"
    instance.SeriesNumber = 1
    instance.InstanceNumber = 1
    instance.file_meta = FileMetaDataset()
    instance.file_meta.MediaStorageSOPClassUID = instance.SOPClassUID
    instance.file_meta.MediaStorageSOPInstanceUID = instance.SOPInstanceUID
    instance.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    fileset = FileSet()
    fileset.ID = "QA_FILESET"
    fileset.add(instance)
    fileset.write(directory)
    with open(os.path.join(directory, "DICOMDIR"), "rb") as stream:
        return stream.read()


def multipart_body(parts: list[tuple[str, str, bytes]], boundary: str) -> bytes:
    """
    Build a multipart/form-data body of (filename, content type, bytes) parts
    named C{files}.
    """
    chunks = []
    for filename, content_type, payload in parts:
        chunks.append(
            (
                f"--{boundary}\r\n"
                f'Content-Disposition: form-data; name="files"; filename="{filename}"\r\n'
                f"Content-Type: {content_type}\r\n\r\n"
            ).encode()
            + payload
            + b"\r\n"
        )
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks)


def large_native_file(path: str, pixel_bytes: int) -> str:
    """
    Write an explicit VR LE instance whose native Pixel Data is one OB value
    of C{pixel_bytes} bytes, streamed to disk; return its SOP Instance UID.
    """
    dataset = make_dataset("QA^LARGE^NATIVE", "QALARGE", rows=1, columns=1)
    del dataset.PixelData
    head = part10_bytes(dataset)
    pattern = bytes(range(256)) * 4096
    with open(path, "wb") as stream:
        stream.write(head)
        stream.write(struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OB", 0, pixel_bytes))
        remaining = pixel_bytes
        while remaining:
            piece = pattern[: min(len(pattern), remaining)]
            stream.write(piece)
            remaining -= len(piece)
    return str(dataset.SOPInstanceUID)


def large_encapsulated_file(path: str, fragments: int, fragment_bytes: int) -> str:
    """
    Write a JPEG Baseline labelled instance with undefined-length Pixel Data
    of C{fragments} fragments; return its SOP Instance UID.
    """
    dataset = make_dataset("QA^LARGE^ENCAPSULATED", "QALARGE2", rows=1, columns=1)
    del dataset.PixelData
    dataset.PhotometricInterpretation = "YBR_FULL_422"
    head = part10_bytes(dataset, JPEGBaseline8Bit)
    with open(path, "wb") as stream:
        stream.write(head)
        stream.write(struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF))
        stream.write(struct.pack("<HHL", 0xFFFE, 0xE000, 0))
        block = b"\xff\xd8" + bytes(fragment_bytes - 4) + b"\xff\xd9"
        for _ in range(fragments):
            stream.write(struct.pack("<HHL", 0xFFFE, 0xE000, len(block)))
            stream.write(block)
        stream.write(struct.pack("<HHL", 0xFFFE, 0xE0DD, 0))
    return str(dataset.SOPInstanceUID)
