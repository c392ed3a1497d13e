"""
Orthanc resource identifiers.

Orthanc names each patient, study, series and instance by the SHA-1 of its
identifying values joined by C{|}, printed as five dash-separated groups of
eight lowercase hex digits. The values are the decoded DICOM strings without
their trailing padding (spaces, and C{NUL} for UIDs), which is what the
scanner returns.
"""

from __future__ import annotations

import hashlib

from twistedpacs.model import ResourceIds


def orthanc_id(*values: str) -> str:
    """
    Compute the Orthanc identifier of a resource.

    @param values: the identifying values, from the patient down to the
        resource itself.
    @return: the SHA-1 of the values joined by C{|}, in Orthanc's layout.
    """
    digest = hashlib.sha1("|".join(values).encode("utf-8")).hexdigest()
    return "-".join(
        (digest[0:8], digest[8:16], digest[16:24], digest[24:32], digest[32:40])
    )


def resource_ids(
    patient_id: str, study_uid: str, series_uid: str, sop_uid: str
) -> ResourceIds:
    """
    Compute the Orthanc identifiers of an instance and of its ancestors.

    @param patient_id: the PatientID, or C{""} when the data set has none.
    @param study_uid: the StudyInstanceUID.
    @param series_uid: the SeriesInstanceUID.
    @param sop_uid: the SOPInstanceUID.
    """
    return ResourceIds(
        patient=orthanc_id(patient_id),
        study=orthanc_id(patient_id, study_uid),
        series=orthanc_id(patient_id, study_uid, series_uid),
        instance=orthanc_id(patient_id, study_uid, series_uid, sop_uid),
    )
