"""
Orthanc's main DICOM tags, and the tags JSON of Orthanc's REST API.

The tags JSON is built with pydicom on demand, never on the ingest path.

The main tag lists are those of Orthanc 1.10 and later
(C{OrthancFramework/Sources/DicomFormat/DicomMap.cpp}, the C{DEFAULT_*} lists,
which Orthanc keeps fixed because stored databases depend on them).
ImageOrientationPatient is a main tag at both the series and the instance level
there, and so it is here.
"""

from __future__ import annotations

import re
from io import BytesIO
from typing import Any

from pydicom import dcmread
from pydicom.datadict import (
    DicomDictionary,
    dictionary_is_retired,
    keyword_for_tag,
    private_dictionary_description,
)
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag

from twistedpacs.model import Level

PIXEL_DATA = 0x7FE00010
_DATA_SET_TRAILING_PADDING = 0xFFFCFFFC

# (level, keyword, group, element, dictionary VR), in Orthanc's order.
_MAIN_TAG_TABLE: tuple[tuple[Level, str, int, int, str], ...] = (
    (Level.PATIENT, "PatientName", 0x0010, 0x0010, "PN"),
    (Level.PATIENT, "PatientBirthDate", 0x0010, 0x0030, "DA"),
    (Level.PATIENT, "PatientSex", 0x0010, 0x0040, "CS"),
    (Level.PATIENT, "OtherPatientIDs", 0x0010, 0x1000, "LO"),
    (Level.PATIENT, "PatientID", 0x0010, 0x0020, "LO"),
    (Level.STUDY, "StudyDate", 0x0008, 0x0020, "DA"),
    (Level.STUDY, "StudyTime", 0x0008, 0x0030, "TM"),
    (Level.STUDY, "StudyID", 0x0020, 0x0010, "SH"),
    (Level.STUDY, "StudyDescription", 0x0008, 0x1030, "LO"),
    (Level.STUDY, "AccessionNumber", 0x0008, 0x0050, "SH"),
    (Level.STUDY, "StudyInstanceUID", 0x0020, 0x000D, "UI"),
    (Level.STUDY, "RequestedProcedureDescription", 0x0032, 0x1060, "LO"),
    (Level.STUDY, "InstitutionName", 0x0008, 0x0080, "LO"),
    (Level.STUDY, "RequestingPhysician", 0x0032, 0x1032, "PN"),
    (Level.STUDY, "ReferringPhysicianName", 0x0008, 0x0090, "PN"),
    (Level.SERIES, "SeriesDate", 0x0008, 0x0021, "DA"),
    (Level.SERIES, "SeriesTime", 0x0008, 0x0031, "TM"),
    (Level.SERIES, "Modality", 0x0008, 0x0060, "CS"),
    (Level.SERIES, "Manufacturer", 0x0008, 0x0070, "LO"),
    (Level.SERIES, "StationName", 0x0008, 0x1010, "SH"),
    (Level.SERIES, "SeriesDescription", 0x0008, 0x103E, "LO"),
    (Level.SERIES, "BodyPartExamined", 0x0018, 0x0015, "CS"),
    (Level.SERIES, "SequenceName", 0x0018, 0x0024, "SH"),
    (Level.SERIES, "ProtocolName", 0x0018, 0x1030, "LO"),
    (Level.SERIES, "SeriesNumber", 0x0020, 0x0011, "IS"),
    (Level.SERIES, "CardiacNumberOfImages", 0x0018, 0x1090, "IS"),
    (Level.SERIES, "ImagesInAcquisition", 0x0020, 0x1002, "IS"),
    (Level.SERIES, "NumberOfTemporalPositions", 0x0020, 0x0105, "IS"),
    (Level.SERIES, "NumberOfSlices", 0x0054, 0x0081, "US"),
    (Level.SERIES, "NumberOfTimeSlices", 0x0054, 0x0101, "US"),
    (Level.SERIES, "SeriesInstanceUID", 0x0020, 0x000E, "UI"),
    (Level.SERIES, "ImageOrientationPatient", 0x0020, 0x0037, "DS"),
    (Level.SERIES, "SeriesType", 0x0054, 0x1000, "CS"),
    (Level.SERIES, "OperatorsName", 0x0008, 0x1070, "PN"),
    (Level.SERIES, "PerformedProcedureStepDescription", 0x0040, 0x0254, "LO"),
    (Level.SERIES, "AcquisitionDeviceProcessingDescription", 0x0018, 0x1400, "LO"),
    (Level.SERIES, "ContrastBolusAgent", 0x0018, 0x0010, "LO"),
    (Level.INSTANCE, "InstanceCreationDate", 0x0008, 0x0012, "DA"),
    (Level.INSTANCE, "InstanceCreationTime", 0x0008, 0x0013, "TM"),
    (Level.INSTANCE, "AcquisitionNumber", 0x0020, 0x0012, "IS"),
    (Level.INSTANCE, "ImageIndex", 0x0054, 0x1330, "US"),
    (Level.INSTANCE, "InstanceNumber", 0x0020, 0x0013, "IS"),
    (Level.INSTANCE, "NumberOfFrames", 0x0028, 0x0008, "IS"),
    (Level.INSTANCE, "TemporalPositionIdentifier", 0x0020, 0x0100, "IS"),
    (Level.INSTANCE, "SOPInstanceUID", 0x0008, 0x0018, "UI"),
    (Level.INSTANCE, "ImagePositionPatient", 0x0020, 0x0032, "DS"),
    (Level.INSTANCE, "ImageComments", 0x0020, 0x4000, "LT"),
    (Level.INSTANCE, "ImageOrientationPatient", 0x0020, 0x0037, "DS"),
)

MAIN_TAGS: dict[Level, tuple[str, ...]] = {
    level: tuple(row[1] for row in _MAIN_TAG_TABLE if row[0] is level)
    for level in Level
}
"""
Orthanc's main DICOM tags of each level, as DICOM keywords.
"""

TAG_NUMBERS: dict[str, tuple[int, int]] = {
    row[1]: (row[2], row[3]) for row in _MAIN_TAG_TABLE
}
"""
The (group, element) of each main tag, and of the other tags the scanner
reads, keyed by keyword.
"""
TAG_NUMBERS["SOPClassUID"] = (0x0008, 0x0016)
TAG_NUMBERS["SpecificCharacterSet"] = (0x0008, 0x0005)

DICTIONARY_VRS: dict[str, str] = {row[1]: row[4] for row in _MAIN_TAG_TABLE}
"""
The dictionary VR of each tag in L{TAG_NUMBERS}, which decides how its value
is decoded whatever VR the data set declares.
"""
DICTIONARY_VRS["SOPClassUID"] = "UI"
DICTIONARY_VRS["SpecificCharacterSet"] = "CS"

# Values longer than this are returned as "TooLong", as Orthanc does with its
# ORTHANC_MAXIMUM_TAG_LENGTH of 256.
MAXIMUM_TAG_LENGTH = 256

_BINARY_VRS = frozenset(("OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW"))
_UNKNOWN_NAME = "Unknown Tag & Data"


def dicom_tags(file_bytes: bytes) -> dict[str, Any]:
    """
    Build the body Orthanc returns for C{/instances/{id}/tags} of a stored file.

    Each tag of the data set (the File Meta group left out) is keyed by its
    lowercase C{gggg,eeee} and maps to its C{Name}, its C{Type} (C{String},
    C{Sequence}, C{Null} for binary values and the pixel data, C{TooLong} for
    values longer than L{MAXIMUM_TAG_LENGTH}) and its C{Value}, with
    C{PrivateCreator} added for private tags.
    """
    return _tags_json(_read(file_bytes))


def simplified_tags(file_bytes: bytes) -> dict[str, Any]:
    """
    Build the body Orthanc returns for C{/instances/{id}/simplified-tags}: each tag
    keyed by its name, with its value as a string, a list of dicts for a
    sequence, or L{None} for binary and overlong values.
    """
    return _simplify(_tags_json(_read(file_bytes)))


def _read(file_bytes: bytes) -> Dataset:
    # pydicom defers the values larger than this. Of those, _is_converted
    # reads only sequences, so the pixel data and other large values stay
    # unread bytes in the file.
    return dcmread(BytesIO(file_bytes), force=True, defer_size=MAXIMUM_TAG_LENGTH * 4)


def _tags_json(dataset: Dataset) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for tag in dataset.keys():
        if tag.group == 0x0002 or tag == _DATA_SET_TRAILING_PADDING:
            continue
        raw = dataset.get_item(tag)
        element = dataset[tag] if _is_converted(tag, raw) else None
        entry = _element_json(dataset, tag, raw, element)
        result[f"{tag.group:04x},{tag.element:04x}"] = entry
    return result


def _is_converted(tag: BaseTag, raw: Any) -> bool:
    """
    Tell whether an element's value is converted: it is small enough, or a
    sequence other than encapsulated pixel data. Larger values are reported
    without being read.
    """
    if isinstance(raw, DataElement) or raw.length <= MAXIMUM_TAG_LENGTH * 4:
        return True
    if raw.VR == "SQ" or raw.length == 0xFFFFFFFF:
        return tag != PIXEL_DATA
    if raw.VR is None and tag in DicomDictionary:
        return bool(DicomDictionary[tag][0] == "SQ")
    return False


def _element_json(
    dataset: Dataset, tag: BaseTag, raw: Any, element: DataElement | None
) -> dict[str, Any]:
    entry: dict[str, Any] = {"Name": _tag_name(dataset, tag)}
    if tag.is_private and not tag.is_private_creator:
        creator_tag = Tag(tag.group, tag.element >> 8)
        if creator_tag in dataset:
            entry["PrivateCreator"] = str(dataset[creator_tag].value)
    vr = element.VR if element is not None else raw.VR
    if vr == "SQ" and element is not None:
        entry["Type"] = "Sequence"
        entry["Value"] = [_tags_json(item) for item in element.value]
    elif tag == PIXEL_DATA or vr in _BINARY_VRS:
        entry["Type"] = "Null"
        entry["Value"] = None
    elif element is None:
        entry["Type"] = "TooLong"
        entry["Value"] = None
    else:
        text = _value_text(element)
        if len(text) > MAXIMUM_TAG_LENGTH:
            entry["Type"] = "TooLong"
            entry["Value"] = None
        else:
            entry["Type"] = "String"
            entry["Value"] = text
    return entry


def _tag_name(dataset: Dataset, tag: BaseTag) -> str:
    """
    Name a tag as Orthanc does.

    NOTE: private tags are named from pydicom's private dictionary, whose
    names differ from DCMTK's for some GE tags (C{LastScanLoc} where Orthanc
    shows C{LastScanLocation}).
    """
    if tag.is_private_creator:
        return "PrivateCreator"
    if tag.is_private:
        creator_tag = Tag(tag.group, tag.element >> 8)
        if creator_tag in dataset:
            try:
                description = private_dictionary_description(
                    tag, str(dataset[creator_tag].value)
                )
            except KeyError:
                return _UNKNOWN_NAME
            words = re.split(r"[^0-9A-Za-z]+", description)
            return "".join(word[:1].upper() + word[1:] for word in words)
        return _UNKNOWN_NAME
    if tag.element == 0x0000:
        return "GenericGroupLength"
    keyword = keyword_for_tag(tag)
    if not keyword:
        return _UNKNOWN_NAME
    # DCMTK's dictionary, which Orthanc uses, marks retired keywords, except
    # OtherPatientIDs, a main tag that DCMTK 3.6.7 still lists as current.
    if dictionary_is_retired(tag) and keyword != "OtherPatientIDs":
        return "RETIRED_" + keyword
    return keyword


def _value_text(element: DataElement) -> str:
    value = element.value
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return value.decode("latin-1").rstrip("\0 ")
    if isinstance(value, (MultiValue, list)):
        return "\\".join(_item_text(item) for item in value)
    return _item_text(value)


def _item_text(value: Any) -> str:
    if isinstance(value, BaseTag):
        return f"{value.group:04x},{value.element:04x}"
    if type(value) is float:
        # Shortest round-trip form, written as DCMTK writes integral values.
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return str(value)


def _simplify(tags: dict[str, Any]) -> dict[str, Any]:
    simplified: dict[str, Any] = {}
    for entry in tags.values():
        if entry["Type"] == "Sequence":
            simplified[entry["Name"]] = [_simplify(item) for item in entry["Value"]]
        else:
            simplified[entry["Name"]] = entry["Value"]
    return simplified
