"""
JSON documents of the four resource levels, built from the store's index
records in the shapes Orthanc returns.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.threads import deferToThreadPool
from twisted.web.iweb import IRequest

from twistedpacs.dicom.tags import dicom_tags, simplified_tags
from twistedpacs.model import LEVELS, Level
from twistedpacs.rest.errors import RestError

_CHILDREN_FIELD = {
    Level.PATIENT: "Studies",
    Level.STUDY: "Series",
    Level.SERIES: "Instances",
}
_PARENT_FIELD = {
    Level.STUDY: "ParentPatient",
    Level.SERIES: "ParentStudy",
    Level.INSTANCE: "ParentSeries",
}
_SINGULAR = {
    "patient": Level.PATIENT,
    "study": Level.STUDY,
    "series": Level.SERIES,
}
_PLURAL = {level.value: level for level in LEVELS}


def unknown_resource(level: Level, resource_id: str) -> RestError:
    return RestError(
        404,
        f"Unknown resource: {level.value}/{resource_id}",
        "",
        "UnknownResource",
    )


def has_flag(request: IRequest, name: bytes) -> bool:
    """
    Tell whether the query string carries C{name}, with or without a value.

    twisted.web drops query items without C{=} from C{request.args}, but
    Orthanc clients write C{?expand} bare.
    """
    if name in request.args:
        return True
    query = request.uri.split(b"?", 1)[1] if b"?" in request.uri else b""
    return any(item.split(b"=", 1)[0] == name for item in query.split(b"&"))


def integer_argument(request: IRequest, name: bytes, default: int) -> int:
    values = request.args.get(name)
    if not values:
        return default
    try:
        value = int(values[0])
    except ValueError:
        value = -1
    # Index keys hold 64-bit counters, so larger values can match nothing.
    if value < 0 or value >= 2**63:
        raise RestError(
            400,
            f"Invalid value of {name.decode()}: "
            f"{values[0].decode('utf-8', 'replace')[:40]!r}",
            "expected an integer from 0 to 2**63 - 1",
            "ParameterOutOfRange",
        )
    return value


def database_version(store: Any) -> int:
    return int(getattr(store, "format_version", 1))


def resource_document(store: Any, level: Level, resource_id: str) -> dict[str, Any]:
    """
    Build the Orthanc JSON object of one resource.

    @raise RestError: 404 if the store has no such resource.
    """
    record = store.get(level, resource_id)
    if record is None:
        raise unknown_resource(level, resource_id)
    document: dict[str, Any] = {
        "ID": resource_id,
        "Type": level.orthanc_type,
        "MainDicomTags": dict(record.get("MainDicomTags", {})),
        "Labels": [],
    }
    parent = record.get("ParentID")
    if level in _PARENT_FIELD:
        document[_PARENT_FIELD[level]] = parent
    if level in _CHILDREN_FIELD:
        document[_CHILDREN_FIELD[level]] = store.children(level, resource_id)
        document["IsStable"] = True
        document["LastUpdate"] = record.get("CreationDate", "")
    if level is Level.STUDY and parent is not None:
        patient = store.get(Level.PATIENT, parent) or {}
        document["PatientMainDicomTags"] = dict(patient.get("MainDicomTags", {}))
    if level is Level.SERIES:
        document["ExpectedNumberOfInstances"] = None
        document["Status"] = "Unknown"
    if level is Level.INSTANCE:
        document["FileSize"] = record.get("FileSize", 0)
        document["FileUuid"] = resource_id
        document["IndexInSeries"] = record.get("IndexInSeries")
    return document


def list_level(store: Any, level: Level, request: IRequest) -> list[Any]:
    since = integer_argument(request, b"since", 0)
    limit = integer_argument(request, b"limit", 0)
    ids = store.list_ids(level, since, limit)
    if has_flag(request, b"expand"):
        return [resource_document(store, level, resource_id) for resource_id in ids]
    return ids


def _descendant_ids(
    store: Any, level: Level, resource_id: str, target: Level
) -> list[str]:
    ids = [resource_id]
    current = level
    while current is not target:
        assert current.child is not None
        ids = [child for parent in ids for child in store.children(current, parent)]
        current = current.child
    return ids


def _ancestor_id(store: Any, level: Level, resource_id: str, target: Level) -> str:
    current, current_id = level, resource_id
    while current is not target:
        record = store.get(current, current_id)
        if record is None or current.parent is None:
            raise unknown_resource(current, current_id)
        current, current_id = current.parent, record["ParentID"]
    return current_id


def descendants(store: Any, level: Level, resource_id: str, relation: str) -> Any:
    """
    Return the body of C{/{level}/{id}/{relation}}. That is the list of
    descendants at a lower level, as in C{/patients/{id}/instances}, or the
    ancestor at a higher level, as in C{/instances/{id}/study}.
    """
    if store.get(level, resource_id) is None:
        raise unknown_resource(level, resource_id)
    order = list(LEVELS)
    if relation in _PLURAL and order.index(_PLURAL[relation]) > order.index(level):
        target = _PLURAL[relation]
        ids = _descendant_ids(store, level, resource_id, target)
        # Orthanc always expands these lists, unlike the top-level lists.
        return [resource_document(store, target, child) for child in ids]
    if relation in _SINGULAR and order.index(_SINGULAR[relation]) < order.index(level):
        target = _SINGULAR[relation]
        ancestor = _ancestor_id(store, level, resource_id, target)
        return resource_document(store, target, ancestor)
    raise RestError(
        404, f"Unknown URI /{level.value}/{resource_id}/{relation}", "", "UriSyntax"
    )


@inlineCallbacks
def instance_tags(
    store: Any, reactor: Any, instance_id: str, simplified: bool
) -> Deferred[dict[str, Any]]:
    """
    Read an instance and return its tags as Orthanc's C{/tags} JSON.

    The file is read and parsed in the thread pool, off the reactor.
    """
    data = yield store.read_file(instance_id)
    if data is None:
        raise unknown_resource(Level.INSTANCE, instance_id)
    convert = simplified_tags if simplified else dicom_tags
    try:
        document = yield deferToThreadPool(
            reactor, reactor.getThreadPool(), convert, data
        )
    except RecursionError:
        raise RestError(
            422,
            "Data set nested too deeply to convert to JSON",
            f"instance {instance_id}",
            "BadFileFormat",
        )
    return document
