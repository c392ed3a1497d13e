# -*- test-case-name: tests.test_query_retrieve -*-
"""
Orthanc's routes for remote modalities: C-ECHO, C-STORE, C-FIND and C-MOVE
as SCU to the peers of C{DicomModalities}, and the C{/queries} answers.

L{add_routes} registers them on the klein application of
L{twistedpacs.rest.app.RestApi}. Query answers live in memory until the
server stops, as in Orthanc, and the oldest are dropped beyond
L{MAXIMUM_QUERIES}.
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from klein import Klein
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from twistedpacs.dicom.tags import _tags_json
from twistedpacs.dimse.outgoing import (
    choose_context,
    proposed_contexts,
    send_stored_instance,
)
from twistedpacs.dimse.query import (
    PATIENT_ROOT_FIND,
    PATIENT_ROOT_MOVE,
    STUDY_ROOT_FIND,
    STUDY_ROOT_MOVE,
    UNIQUE_KEYS,
    decode_identifier,
    encode_identifier,
)
from twistedpacs.dimse.scu import ProposedContext, ServiceUser, associate
from twistedpacs.dimse.status import StatusCategory, status_category
from twistedpacs.model import LEVELS, Level
from twistedpacs.rest.errors import RestError
from twistedpacs.rest.resources import has_flag

__all__ = ["MAXIMUM_QUERIES", "add_routes"]

#: The maximum number of queries kept for C{/queries}, each with all its
#: answers. Beyond it the oldest query is dropped.
MAXIMUM_QUERIES = 100

_LEVELS = {
    "patient": Level.PATIENT,
    "study": Level.STUDY,
    "series": Level.SERIES,
    "instance": Level.INSTANCE,
    "image": Level.INSTANCE,
}
_DICOM_LEVEL_NAMES = {
    Level.PATIENT: "PATIENT",
    Level.STUDY: "STUDY",
    Level.SERIES: "SERIES",
    Level.INSTANCE: "IMAGE",
}

log = Logger()


@dataclass
class _QueryAnswers:
    modality: str
    level: Level
    query: dict[str, str]
    answers: list[Dataset] = field(default_factory=list)


def _json(request: IRequest, document: Any) -> bytes:
    body = json.dumps(document, indent=2).encode("utf-8") + b"\n"
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    return body


def _body(request: IRequest) -> Any:
    raw = request.content.read() if request.content is not None else b""
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        text = raw.decode("utf-8", "replace").strip()
        return text


def _level(name: Any) -> Level:
    level = _LEVELS.get(str(name).lower())
    if level is None:
        raise RestError(400, f"Invalid Level {name!r}", "", "ParameterOutOfRange")
    return level


def _network_error(name: str, error: Exception) -> RestError:
    return RestError(
        500, f"DICOM network error with modality {name}", str(error), "InternalError"
    )


def _identifier(level: Level, keys: dict[str, str]) -> Dataset:
    dataset = Dataset()
    dataset.SpecificCharacterSet = "ISO_IR 192"
    dataset.QueryRetrieveLevel = _DICOM_LEVEL_NAMES[level]
    for keyword, value in keys.items():
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise RestError(400, f"Unknown DICOM tag {keyword}", "", "BadRequest")
        dataset.add_new(tag, dictionary_VR(tag), str(value) if value else None)
    for upper in LEVELS[: LEVELS.index(level) + 1]:
        keyword = UNIQUE_KEYS[upper]
        if keyword not in dataset:
            dataset.add_new(tag_for_keyword(keyword), dictionary_VR(keyword), None)
    return dataset


def _models(level: Level) -> tuple[str, str]:
    if level is Level.PATIENT:
        return PATIENT_ROOT_FIND, PATIENT_ROOT_MOVE
    return STUDY_ROOT_FIND, STUDY_ROOT_MOVE


class ModalityService:
    """
    The SCU work behind the routes, for one server.
    """

    def __init__(self, api: Any) -> None:
        self._api = api
        self.queries: OrderedDict[str, _QueryAnswers] = OrderedDict()

    @property
    def _settings(self) -> Any:
        return self._api.settings

    def modality(self, name: str) -> tuple[str, str, int]:
        entry = self._settings.dicom_modalities.get(name)
        if entry is None:
            raise RestError(404, f"Unknown modality {name}", "", "UnknownResource")
        return entry

    def connect(
        self, name: str, contexts: list[ProposedContext]
    ) -> Deferred[ServiceUser]:
        aet, host, port = self.modality(name)
        settings = self._settings
        return associate(
            self._api.reactor,
            host,
            port,
            settings.aet,
            aet,
            contexts,
            settings.maximum_pdu_length,
        )

    def instances_of(self, resource_id: str) -> list[str]:
        store = self._api.store
        for level in LEVELS:
            if store.get(level, resource_id) is None:
                continue
            ids = [resource_id]
            while level is not Level.INSTANCE:
                ids = [
                    child for parent in ids for child in store.children(level, parent)
                ]
                child_level = level.child
                assert child_level is not None
                level = child_level
            return ids
        raise RestError(404, f"Unknown resource {resource_id}", "", "UnknownResource")

    @inlineCallbacks
    def store_to(self, name: str, resource_ids: list[str]) -> Iterator[Deferred[Any]]:
        store = self._api.store
        instances = [
            i for resource in resource_ids for i in self.instances_of(resource)
        ]
        stored = []
        for instance_id in instances:
            metadata = store.metadata(instance_id) or {}
            record = store.get(Level.INSTANCE, instance_id) or {}
            stored.append(
                (
                    instance_id,
                    record.get("MainDicomTags", {}).get("SOPInstanceUID", ""),
                    str(metadata.get("SopClassUid", "")),
                    str(metadata.get("TransferSyntax", "1.2.840.10008.1.2")),
                )
            )
        failed = 0
        if stored:
            contexts = proposed_contexts({(item[2], item[3]) for item in stored})
            try:
                user = yield self.connect(name, contexts)
            except Exception as error:
                raise _network_error(name, error)
            try:
                for instance_id, uid, sop_class, syntax in stored:
                    ok = yield self._store_one(
                        user, instance_id, uid, sop_class, syntax
                    )
                    failed += 0 if ok else 1
            finally:
                yield user.release()
        return {
            "Description": "REST API",
            "FailedInstancesCount": failed,
            "InstancesCount": len(stored),
            "LocalAet": self._settings.aet,
            "ParentResources": resource_ids,
            "RemoteAet": self.modality(name)[0],
        }

    @inlineCallbacks
    def _store_one(
        self, user: ServiceUser, instance_id: str, uid: str, sop_class: str, syntax: str
    ) -> Iterator[Deferred[Any]]:
        context = choose_context(user, sop_class, syntax)
        if context is None:
            return False
        try:
            response = yield send_stored_instance(
                self._api.store, user, context, instance_id, uid, syntax
            )
        except Exception as error:
            log.info("C-STORE of {uid} failed: {error}", uid=uid, error=str(error))
            return False
        if response is None:
            return False
        return status_category(response.status) is not StatusCategory.FAILURE

    @inlineCallbacks
    def echo(self, name: str) -> Iterator[Deferred[Any]]:
        self.modality(name)
        try:
            user = yield self.connect(name, [ProposedContext("1.2.840.10008.1.1")])
            response = yield user.echo()
            yield user.release()
        except Exception as error:
            raise _network_error(name, error)
        if response.status != 0:
            raise RestError(
                500, f"C-ECHO to {name} failed with 0x{response.status:04X}"
            )
        return {}

    @inlineCallbacks
    def query(
        self, name: str, level: Level, keys: dict[str, str]
    ) -> Iterator[Deferred[Any]]:
        find_model, _ = _models(level)
        identifier = _identifier(level, keys)
        answers: list[Dataset] = []

        def on_match(data: bytes, transfer_syntax: str) -> None:
            answers.append(decode_identifier(data, transfer_syntax))

        try:
            user = yield self.connect(name, [ProposedContext(find_model)])
            response = yield user.find(
                find_model,
                lambda syntax: encode_identifier(identifier, syntax),
                on_match,
            )
            yield user.release()
        except RestError:
            raise
        except Exception as error:
            raise _network_error(name, error)
        if status_category(response.status) is StatusCategory.FAILURE:
            raise RestError(
                500, f"C-FIND to {name} failed with 0x{response.status:04X}"
            )
        query_id = str(uuid.uuid4())
        self.queries[query_id] = _QueryAnswers(name, level, keys, answers)
        while len(self.queries) > MAXIMUM_QUERIES:
            self.queries.popitem(last=False)
        return {"ID": query_id, "Path": f"/queries/{query_id}"}

    def answers(self, query_id: str) -> _QueryAnswers:
        found = self.queries.get(query_id)
        if found is None:
            raise RestError(404, f"Unknown query {query_id}", "", "UnknownResource")
        return found

    def answer(self, query_id: str, index: str) -> Dataset:
        answers = self.answers(query_id).answers
        if not index.isdigit() or int(index) >= len(answers):
            raise RestError(
                404,
                f"Query {query_id} has no answer {index!r}",
                f"the query has {len(answers)} answers, numbered from 0",
                "InexistentItem",
            )
        return answers[int(index)]

    @inlineCallbacks
    def move(
        self, name: str, level: Level, resources: list[dict[str, str]], target: str
    ) -> Iterator[Deferred[Any]]:
        _, move_model = _models(level)
        results = []
        self.modality(name)
        try:
            user = yield self.connect(name, [ProposedContext(move_model)])
        except Exception as error:
            raise _network_error(name, error)
        try:
            for keys in resources:
                identifier = _identifier(level, keys)
                response = yield user.move(
                    move_model,
                    target,
                    lambda syntax: encode_identifier(identifier, syntax),
                )
                results.append(response)
        finally:
            yield user.release()
        for response in results:
            if status_category(response.status) is StatusCategory.FAILURE:
                raise RestError(
                    500, f"C-MOVE from {name} failed with 0x{response.status:04X}"
                )
        return {
            "Description": "REST API",
            "LocalAet": self._settings.aet,
            "RemoteAet": self.modality(name)[0],
            "TargetAet": target,
            "Query": resources,
            "CompletedCount": sum(
                r.number_of_completed_suboperations or 0 for r in results
            ),
            "FailedCount": sum(r.number_of_failed_suboperations or 0 for r in results),
        }


def _service(api: Any) -> ModalityService:
    service = getattr(api, "_modality_service", None)
    if service is None:
        service = ModalityService(api)
        api._modality_service = service
    return service


def _retrieve_keys(level: Level, answer: Dataset) -> dict[str, str]:
    keys = {}
    for upper in LEVELS[: LEVELS.index(level) + 1]:
        keyword = UNIQUE_KEYS[upper]
        value = answer.get(keyword)
        if value:
            keys[keyword] = str(value)
    return keys


def _target(api: Any, body: Any) -> str:
    if isinstance(body, dict) and body.get("TargetAet"):
        return str(body["TargetAet"])
    if isinstance(body, str) and body:
        return body
    return str(api.settings.aet)


def add_routes(app: Klein) -> None:
    """
    Register the C{/modalities} and C{/queries} routes on C{app}, whose
    handlers receive the L{RestApi} instance as their first argument.
    """

    @app.route("/modalities", methods=["GET"])
    def list_modalities(api: Any, request: IRequest) -> bytes:
        names = sorted(api.settings.dicom_modalities)
        if has_flag(request, b"expand"):
            expanded = {
                name: {"AET": aet, "Host": host, "Port": port}
                for name, (aet, host, port) in api.settings.dicom_modalities.items()
            }
            return _json(request, expanded)
        return _json(request, names)

    @app.route("/modalities/<string:name>/echo", methods=["POST"])
    @inlineCallbacks
    def echo(api: Any, request: IRequest, name: str) -> Iterator[Deferred[Any]]:
        document = yield _service(api).echo(name)
        return _json(request, document)

    @app.route("/modalities/<string:name>/store", methods=["POST"])
    @inlineCallbacks
    def store(api: Any, request: IRequest, name: str) -> Iterator[Deferred[Any]]:
        body = _body(request)
        if isinstance(body, dict):
            body = body.get("Resources", [])
        if isinstance(body, str):
            body = [body]
        if not isinstance(body, list) or not all(isinstance(i, str) for i in body):
            raise RestError(400, "Expected a resource id or a list of ids")
        _service(api).modality(name)
        document = yield _service(api).store_to(name, body)
        return _json(request, document)

    @app.route("/modalities/<string:name>/query", methods=["POST"])
    @inlineCallbacks
    def query(api: Any, request: IRequest, name: str) -> Iterator[Deferred[Any]]:
        body = _body(request)
        if not isinstance(body, dict):
            raise RestError(
                400, 'Expected {"Level": ..., "Query": {...}}', "", "BadJson"
            )
        level = _level(body.get("Level", ""))
        keys = body.get("Query", {})
        if not isinstance(keys, dict):
            raise RestError(400, "Query must be an object of tag names", "", "BadJson")
        document = yield _service(api).query(name, level, keys)
        return _json(request, document)

    @app.route("/modalities/<string:name>/move", methods=["POST"])
    @inlineCallbacks
    def move(api: Any, request: IRequest, name: str) -> Iterator[Deferred[Any]]:
        body = _body(request)
        if not isinstance(body, dict) or not isinstance(body.get("Resources"), list):
            raise RestError(
                400, 'Expected {"Level", "Resources": [...]}', "", "BadJson"
            )
        level = _level(body.get("Level", ""))
        document = yield _service(api).move(
            name, level, body["Resources"], _target(api, body)
        )
        return _json(request, document)

    @app.route("/queries", methods=["GET"])
    def list_queries(api: Any, request: IRequest) -> bytes:
        return _json(request, list(_service(api).queries))

    @app.route("/queries/<string:query_id>", methods=["GET"])
    def get_query(api: Any, request: IRequest, query_id: str) -> bytes:
        _service(api).answers(query_id)
        return _json(request, ["answers", "level", "modality", "query", "retrieve"])

    @app.route("/queries/<string:query_id>/answers", methods=["GET"])
    def list_answers(api: Any, request: IRequest, query_id: str) -> bytes:
        answers = _service(api).answers(query_id).answers
        return _json(request, [str(index) for index in range(len(answers))])

    @app.route("/queries/<string:query_id>/level", methods=["GET"])
    def get_level(api: Any, request: IRequest, query_id: str) -> bytes:
        level = _service(api).answers(query_id).level
        request.setHeader(b"content-type", b"text/plain")
        return level.orthanc_type.encode("ascii")

    @app.route("/queries/<string:query_id>/modality", methods=["GET"])
    def get_modality(api: Any, request: IRequest, query_id: str) -> bytes:
        request.setHeader(b"content-type", b"text/plain")
        return _service(api).answers(query_id).modality.encode("utf-8")

    @app.route(
        "/queries/<string:query_id>/answers/<string:index>/content", methods=["GET"]
    )
    def answer_content(api: Any, request: IRequest, query_id: str, index: str) -> bytes:
        return _json(request, _tags_json(_service(api).answer(query_id, index)))

    @app.route(
        "/queries/<string:query_id>/answers/<string:index>/retrieve", methods=["POST"]
    )
    @inlineCallbacks
    def retrieve_answer(
        api: Any, request: IRequest, query_id: str, index: str
    ) -> Iterator[Deferred[Any]]:
        service = _service(api)
        found = service.answers(query_id)
        keys = _retrieve_keys(found.level, service.answer(query_id, index))
        document = yield service.move(
            found.modality, found.level, [keys], _target(api, _body(request))
        )
        return _json(request, document)

    @app.route("/queries/<string:query_id>/retrieve", methods=["POST"])
    @inlineCallbacks
    def retrieve_all(
        api: Any, request: IRequest, query_id: str
    ) -> Iterator[Deferred[Any]]:
        service = _service(api)
        found = service.answers(query_id)
        resources = [_retrieve_keys(found.level, answer) for answer in found.answers]
        document = yield service.move(
            found.modality, found.level, resources, _target(api, _body(request))
        )
        return _json(request, document)
