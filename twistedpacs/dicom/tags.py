"""
Orthanc's main DICOM tags, and the tags JSON of Orthanc's REST API.

The main tag lists are those of Orthanc 1.10 and later
(C{OrthancFramework/Sources/DicomFormat/DicomMap.cpp}, the C{DEFAULT_*} lists,
which Orthanc keeps fixed because stored databases depend on them).
ImageOrientationPatient is a main tag at both the series and the instance level
there, and so it is here.
"""

from __future__ import annotations

from twistedpacs.model import Level

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
