"""
Plain types shared by the ingest path, the store and the services.

Nothing here imports pydicom, LMDB or the reactor, so every layer can use these
types without pulling in the others.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Level(enum.Enum):
    """
    A level of the DICOM information model, named as Orthanc's REST API names
    its resource families.
    """

    PATIENT = "patients"
    STUDY = "studies"
    SERIES = "series"
    INSTANCE = "instances"

    @property
    def parent(self) -> Level | None:
        """
        The level above this one, or L{None} for patients.
        """
        index = _LEVEL_ORDER.index(self)
        return _LEVEL_ORDER[index - 1] if index else None

    @property
    def child(self) -> Level | None:
        """
        The level below this one, or L{None} for instances.
        """
        index = _LEVEL_ORDER.index(self)
        return _LEVEL_ORDER[index + 1] if index < 3 else None

    @property
    def orthanc_type(self) -> str:
        """
        The C{Type} string Orthanc returns for a resource of this level.
        """
        return {
            Level.PATIENT: "Patient",
            Level.STUDY: "Study",
            Level.SERIES: "Series",
            Level.INSTANCE: "Instance",
        }[self]


_LEVEL_ORDER = [Level.PATIENT, Level.STUDY, Level.SERIES, Level.INSTANCE]
LEVELS = tuple(_LEVEL_ORDER)


@dataclass(frozen=True)
class ResourceIds:
    """
    Orthanc identifiers of an instance and of its three ancestors.
    """

    patient: str
    study: str
    series: str
    instance: str

    def for_level(self, level: Level) -> str:
        return {
            Level.PATIENT: self.patient,
            Level.STUDY: self.study,
            Level.SERIES: self.series,
            Level.INSTANCE: self.instance,
        }[level]


@dataclass(frozen=True)
class InstanceHeader:
    """
    The identifying UIDs and main tags the ingest path reads from an
    instance before storing it.

    @ivar transfer_syntax: the transfer syntax UID of the stored data set.
    @ivar has_file_meta: whether the bytes start with a preamble, C{DICM} and a
        File Meta group. When false, the store prepends a generated one.
    @ivar main_tags: for each level, the Orthanc main tags found in the data
        set, keyed by DICOM keyword, as decoded strings.
    """

    transfer_syntax: str
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    patient_id: str
    has_file_meta: bool
    specific_character_set: str = ""
    main_tags: dict[Level, dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Provenance:
    """
    The origin of an instance, recorded at ingest as Orthanc records it.
    """

    origin: str  # "DicomProtocol" or "RestApi", Orthanc's spelling
    remote_aet: str = ""
    called_aet: str = ""
    remote_ip: str = ""
    http_username: str = ""


@dataclass(frozen=True)
class IndexEntry:
    """
    Everything the writer needs to index a finished transfer.

    @ivar prefix: bytes stored in front of the transferred bytes (a preamble
        and generated File Meta group), or C{b""}.
    """

    ids: ResourceIds
    header: InstanceHeader
    provenance: Provenance
    prefix: bytes = b""


class StoreStatus(enum.Enum):
    """
    Outcome of storing one instance, spelled as Orthanc's C{Status} field.
    """

    SUCCESS = "Success"
    ALREADY_STORED = "AlreadyStored"


@dataclass(frozen=True)
class StoreResult:
    """
    Outcome of a finished transfer, returned once the commit holding it has
    returned.
    """

    ids: ResourceIds
    status: StoreStatus
    size: int


class StorageError(Exception):
    """
    The store could not complete an operation (disk or map full, LMDB error).
    """


class StorageFullError(StorageError):
    """
    Storing an instance would exceed C{MaximumStorageSize}.
    """
