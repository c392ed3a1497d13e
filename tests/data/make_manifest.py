"""
Write tests/data/manifest.json: the expected outcome of uploading each file
bundled with pydicom to C{POST /instances}.

The expectations come from pydicom alone, never from TwistedPACS's scanner,
so that tests/test_dicom_manifest.py checks the scanner against an
independent reading. Run it from the repository root after a pydicom upgrade:

    python tests/data/make_manifest.py
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import warnings
from io import BytesIO
from typing import Any

import pydicom
from pydicom.filereader import _read_file_meta_info, data_element_generator

DATA = pathlib.Path(pydicom.__file__).parent / "data"
FOLDERS = ("charset_files", "palettes", "test_files")
MANIFEST = pathlib.Path(__file__).parent / "manifest.json"
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
DEFLATED = "1.2.840.10008.1.2.1.99"
REQUIRED = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")

# Facts found by uploading every file to Orthanc 1.10.1 (Debian package),
# kept here because pydicom cannot show them.
NOTES = {
    "test_files/rtdose_rle.dcm": (
        "PatientID is encoded with VR UN; pydicom and TwistedPACS decode it "
        "as LO and drop its trailing space, Orthanc 1.10.1 keeps the space and "
        "so computes other ids"
    ),
    "test_files/rtdose_rle_1frame.dcm": (
        "PatientID is encoded with VR UN; pydicom and TwistedPACS decode it "
        "as LO and drop its trailing space, Orthanc 1.10.1 keeps the space and "
        "so computes other ids"
    ),
    "test_files/ExplVR_BigEndNoMeta.dcm": (
        "a bare explicit VR big endian data set, which pydicom and DCMTK read"
    ),
}


def orthanc_id(*values: str) -> str:
    digest = hashlib.sha1("|".join(values).encode("utf-8")).hexdigest()
    return "-".join(digest[i : i + 8] for i in range(0, 40, 8))


def bundled_files() -> list[str]:
    paths = []
    for folder in FOLDERS:
        for path in (DATA / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                paths.append(str(path.relative_to(DATA)))
    return sorted(paths)


def data_set_start(data: bytes) -> int:
    if data[128:132] != b"DICM":
        return 0
    stream = BytesIO(data)
    stream.seek(132)
    _read_file_meta_info(stream)
    return stream.tell()


def short_element(data: bytes, dataset: pydicom.Dataset) -> str | None:
    """
    Return the tag of the first top-level element whose value is shorter
    than its declared length, which pydicom reads without complaint.
    """
    implicit, little = dataset.original_encoding
    stream = BytesIO(data)
    stream.seek(data_set_start(data))
    for raw in data_element_generator(stream, implicit, little, defer_size=None):
        length = getattr(raw, "length", 0xFFFFFFFF)  # sequences come converted
        if length != 0xFFFFFFFF and isinstance(raw.value, bytes):
            if len(raw.value) < length:
                return str(raw.tag)
    return None


def text(dataset: pydicom.Dataset, keyword: str) -> str:
    value = dataset.get(keyword)
    return "" if value is None else str(value)


def expect(path: str) -> dict[str, Any]:
    data = (DATA / path).read_bytes()
    entry: dict[str, Any] = {"path": path}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            dataset = pydicom.dcmread(BytesIO(data), force=True)
        except Exception as error:  # pydicom's errors on garbage vary
            return reject(entry, "NotDicomError", f"pydicom cannot read it: {error}")
    messages = [str(warning.message) for warning in caught]
    first = next(iter(dataset.keys()), None)
    if data[128:132] != b"DICM" and (first is None or first.group != 0x0008):
        return reject(
            entry,
            "NotDicomError",
            "no DICM prefix and the first element is not in group 0008",
        )
    meta = dataset.file_meta
    if meta.get("MediaStorageSOPClassUID") == DICOMDIR_CLASS:
        return reject(entry, "DicomdirError", "a DICOMDIR, not an instance")
    if "DirectoryRecordSequence" in dataset:
        return reject(entry, "DicomdirError", "a DICOMDIR, not an instance")
    if data[128:132] == b"DICM" and not meta.get("TransferSyntaxUID"):
        return reject(
            entry,
            "InvalidInstanceError",
            "the File Meta group has no TransferSyntaxUID",
        )
    if any("Expected explicit VR, but found implicit VR" in m for m in messages):
        return reject(
            entry,
            "InvalidInstanceError",
            "the data set is implicit VR although its transfer syntax is explicit "
            "VR; pydicom guesses, DCMTK and TwistedPACS reject it",
        )
    deflated = meta.get("TransferSyntaxUID") == DEFLATED
    # pydicom inflates a deflated data set whole and raises when it is cut.
    short = None if deflated else short_element(data, dataset)
    if short is not None:
        return reject(
            entry, "InvalidInstanceError", f"truncated: the value of {short} is cut"
        )
    missing = [keyword for keyword in REQUIRED if not text(dataset, keyword)]
    if missing:
        return reject(entry, "InvalidInstanceError", "missing " + ", ".join(missing))
    values = [text(dataset, "PatientID")] + [text(dataset, k) for k in REQUIRED]
    entry.update(
        outcome="stored",
        reason="a valid instance",
        sop_instance_uid=values[3],
        instance_id=orthanc_id(*values),
        patient_id=orthanc_id(values[0]),
        study_id=orthanc_id(*values[:2]),
        series_id=orthanc_id(*values[:3]),
        transfer_syntax=str(meta.get("TransferSyntaxUID") or ""),
    )
    return entry


def reject(entry: dict[str, Any], error: str, reason: str) -> dict[str, Any]:
    entry.update(outcome="rejected", error=error, reason=reason)
    return entry


def main() -> None:
    entries = []
    stored: dict[str, str] = {}
    for path in bundled_files():
        entry = expect(path)
        if path in NOTES:
            entry["note"] = NOTES[path]
        if entry["outcome"] == "stored":
            first = stored.setdefault(entry["instance_id"], path)
            if first != path:
                entry["duplicate_of"] = first
        entries.append(entry)
    document = {
        "pydicom_version": pydicom.__version__,
        "decisions": {
            "unknown_vr": (
                "an explicit VR element whose VR is not one of PS3.5's is "
                "rejected; pydicom reads it with a 2-byte length, but no bundled "
                "file needs that, and random bytes would pass"
            ),
            "truncation": (
                "a file cut on a top-level element boundary is a complete data "
                "set and cannot be told from one; every other cut is rejected"
            ),
            "deflate_trailer": (
                "bytes after the end of a deflate stream are ignored, as pydicom "
                "and DCMTK ignore them"
            ),
        },
        "files": entries,
    }
    MANIFEST.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
