"""
Server settings: defaults, the JSON configuration file and their merge.

The configuration file uses Orthanc's option names where Orthanc has one, so an
Orthanc user can reuse the file they know. Sizes in the file follow Orthanc's
units, such as megabytes for C{MaximumStorageSize}. Inside L{Settings} every
size is in bytes and every duration in seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from typing import Any

MIB = 1024 * 1024


class ConfigError(ValueError):
    """
    The configuration file or an option has an invalid value.
    """


@dataclass(frozen=True)
class Settings:
    """
    Every setting of a running server.

    Sizes are in bytes and durations in seconds. For a limit, 0 means
    unlimited.
    """

    name: str = "TwistedPACS"
    http_port: int = 8042
    http_bind: str = "127.0.0.1"
    dicom_port: int = 4242
    dicom_bind: str = "0.0.0.0"
    aet: str = "ORTHANC"
    storage_directory: str = "twistedpacs-db"
    overwrite_instances: bool = False
    # Log every stored instance at the debug level.
    verbose: bool = False
    maximum_storage_size: int = 0
    maximum_instance_size: int = 0
    # DICOM network
    dicom_check_called_aet: bool = False
    unknown_sop_class_accepted: bool = False
    maximum_pdu_length: int = 131072
    dicom_scp_timeout: float = 30.0
    maximum_associations: int = 64
    dicom_modalities: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    # Ingest pipeline
    in_memory_threshold: int = 8 * MIB
    transfer_queue_bound: int = 16 * MIB
    global_queue_bound: int = 256 * MIB
    commit_batch_bytes: int = 16 * MIB
    lmdb_map_size: int = 1 << 40
    # A benchmark-only switch: receive and discard, storing nothing.
    null_store: bool = False


# Orthanc configuration names (and ours where Orthanc has none), with the
# attribute of Settings they set and a converter from the file's unit.
def _megabytes(value: Any) -> int:
    return int(value) * MIB


def _modalities(value: Any) -> dict[str, tuple[str, str, int]]:
    result = {}
    if not isinstance(value, dict):
        raise ConfigError(
            "DicomModalities must be an object of name: [AET, host, port]"
        )
    for name, entry in value.items():
        if isinstance(entry, dict):
            entry = [entry.get("AET"), entry.get("Host"), entry.get("Port")]
        if not (isinstance(entry, list) and len(entry) >= 3):
            raise ConfigError(
                f"DicomModalities entry {name!r} must be [AET, host, port]"
            )
        result[name] = (str(entry[0]), str(entry[1]), int(entry[2]))
    return result


FILE_KEYS: dict[str, tuple[str, Any]] = {
    "Name": ("name", str),
    "HttpPort": ("http_port", int),
    "HttpBind": ("http_bind", str),
    "DicomPort": ("dicom_port", int),
    "DicomBind": ("dicom_bind", str),
    "DicomAet": ("aet", str),
    "StorageDirectory": ("storage_directory", str),
    "OverwriteInstances": ("overwrite_instances", bool),
    "MaximumStorageSize": ("maximum_storage_size", _megabytes),
    "MaximumInstanceSize": ("maximum_instance_size", _megabytes),
    "DicomCheckCalledAet": ("dicom_check_called_aet", bool),
    "UnknownSopClassAccepted": ("unknown_sop_class_accepted", bool),
    "MaximumPduLength": ("maximum_pdu_length", int),
    "DicomScpTimeout": ("dicom_scp_timeout", float),
    "MaximumAssociations": ("maximum_associations", int),
    "DicomModalities": ("dicom_modalities", _modalities),
    "InMemoryThreshold": ("in_memory_threshold", _megabytes),
    "TransferQueueBound": ("transfer_queue_bound", _megabytes),
    "GlobalQueueBound": ("global_queue_bound", _megabytes),
    "CommitBatchSize": ("commit_batch_bytes", _megabytes),
}

# Orthanc options that are accepted in a file and have no effect here, so an
# Orthanc configuration file loads without errors.
IGNORED_KEYS = {
    "RemoteAccessAllowed",
    "AuthenticationEnabled",
    "RegisteredUsers",
    "IndexDirectory",
    "StorageCompression",
    "HttpServerEnabled",
    "DicomServerEnabled",
    "Plugins",
    "ConcurrentJobs",
    "HttpDescribeErrors",
    "StableAge",
}


def settings_from_file(path: str, base: Settings | None = None) -> Settings:
    """
    Read a JSON configuration file and apply it over C{base}.

    @raise ConfigError: if the file cannot be read, is not a JSON object, or
        holds a known option with a value of the wrong type.
    """
    try:
        with open(path, encoding="utf-8") as stream:
            document = json.load(stream)
    except OSError as error:
        raise ConfigError(f"cannot read configuration file {path}: {error}")
    except json.JSONDecodeError as error:
        raise ConfigError(f"configuration file {path} is not valid JSON: {error}")
    if not isinstance(document, dict):
        raise ConfigError(f"configuration file {path} must contain a JSON object")
    return settings_from_mapping(document, base)


def settings_from_mapping(
    document: dict[str, Any], base: Settings | None = None
) -> Settings:
    """
    Apply a mapping of Orthanc-style option names over C{base}.

    Unknown names are ignored, as Orthanc ignores them.
    """
    changes = {}
    for key, value in document.items():
        if key not in FILE_KEYS:
            continue
        attribute, convert = FILE_KEYS[key]
        if convert is bool and not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, not {value!r}")
        try:
            changes[attribute] = convert(value)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{key} has an invalid value {value!r}: {error}")
    return replace(base or Settings(), **changes)


def setting_names() -> list[str]:
    return [item.name for item in fields(Settings)]
