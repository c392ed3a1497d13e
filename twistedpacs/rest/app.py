"""
The REST API: routes, in Orthanc's shapes, on one klein application.
"""

from __future__ import annotations

import json
import os
from typing import Any

from klein import Klein
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.static import File
from twisted.web.util import Redirect
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import RequestRedirect

from twistedpacs import __version__
from twistedpacs.config import Settings
from twistedpacs.dicom.scan import InvalidInstanceError
from twistedpacs.ingest import InstanceTooLargeError
from twistedpacs.model import LEVELS, Level, StorageError, StorageFullError, StoreResult
from twistedpacs.rest import resources
from twistedpacs.rest.archive import EntryOutcome, store_archive
from twistedpacs.rest.errors import RestError, error_body
from twistedpacs.rest.form import PartOutcome
from twistedpacs.rest.modalities import add_routes as add_modality_routes
from twistedpacs.rest.producer import send_instance_file
from twistedpacs.rest.upload import ZipSpool, finish_upload

EXPLORER_DIRECTORY = os.path.join(
    os.path.dirname(os.path.dirname(__file__)), "explorer"
)
_LEVEL_BY_NAME = {level.value: level for level in LEVELS}


def json_response(request: IRequest, document: Any, status: int = 200) -> bytes:
    body = json.dumps(document, indent=2).encode("utf-8") + b"\n"
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"content-length", b"%d" % len(body))
    return body


def instance_answer(result: StoreResult) -> dict[str, str]:
    ids = result.ids
    return {
        "ID": ids.instance,
        "ParentPatient": ids.patient,
        "ParentSeries": ids.series,
        "ParentStudy": ids.study,
        "Path": f"/instances/{ids.instance}",
        "Status": result.status.value,
    }


def part_answer(part: PartOutcome | EntryOutcome) -> dict[str, Any]:
    """
    Describe one part of a multipart upload or one entry of a ZIP archive:
    its instance, or its error.
    """
    if part.result is not None:
        return {"Filename": part.filename, **instance_answer(part.result)}
    error = part.error
    assert error is not None
    return {
        "Filename": part.filename,
        "Status": "Rejected",
        "HttpStatus": error.status,
        "Message": error.message,
        "Details": error.details,
    }


class _JSONNotFound(Resource):
    isLeaf = True

    def render(self, request: IRequest) -> bytes:
        error = RestError(404, f"Unknown file {request.path.decode('latin-1')}")
        body = error_body(error, request.method, request.uri)
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        return body


class ExplorerFiles(File):
    """
    The Explorer's static files, without directory listings and with JSON
    404 responses like every other route.
    """

    childNotFound = _JSONNotFound()

    def directoryListing(self) -> Resource:
        return Redirect(b"/app/explorer.html")


class RestApi:
    """
    The klein application of the REST API and the Explorer's static files.
    """

    app = Klein()
    log = Logger()
    add_modality_routes(app)

    def __init__(self, store: Any, settings: Settings, reactor: Any) -> None:
        self.store = store
        self.settings = settings
        self.reactor = reactor

    # Errors

    @app.handle_errors(RestError)
    def handle_rest_error(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        return self._error(request, error)

    @app.handle_errors(InvalidInstanceError)
    def handle_invalid_instance(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        status = 413 if isinstance(error, InstanceTooLargeError) else 400
        return self._error(
            request, RestError(status, error.message, error.details, "BadFileFormat")
        )

    @app.handle_errors(StorageFullError)
    def handle_storage_full(self, request: IRequest, failure: Failure) -> bytes:
        return self._error(
            request,
            RestError(507, "The storage is full", str(failure.value), "FullStorage"),
        )

    @app.handle_errors(StorageError)
    def handle_storage_error(self, request: IRequest, failure: Failure) -> bytes:
        self.log.failure("Storage failed for {uri}", failure, uri=request.uri)
        return self._error(
            request,
            RestError(507, "The storage failed", str(failure.value), "FullStorage"),
        )

    @app.handle_errors(HTTPException)
    def handle_routing_error(self, request: IRequest, failure: Failure) -> bytes:
        # Unknown routes (404), methods (405) and redirects (a missing
        # trailing slash, 308) found by klein's URL map.
        error = failure.value
        if isinstance(error, RequestRedirect):
            request.setResponseCode(error.code)
            request.setHeader(b"location", error.new_url.encode("utf-8"))
            return b""
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            request.setHeader(b"allow", ", ".join(error.valid_methods).encode("ascii"))
        return self._error(
            request,
            RestError(
                error.code,
                f"{error.name}: {request.uri.decode('latin-1')}",
                error.description or "",
                "UnknownResource" if error.code == 404 else "BadRequest",
            ),
        )

    @app.handle_errors(Exception)
    def handle_unexpected(self, request: IRequest, failure: Failure) -> bytes:
        # An unexpected exception is a bug. Log it with its traceback, but
        # respond with JSON that has no traceback.
        self.log.failure(
            "Request {method} {uri} failed",
            failure,
            method=request.method,
            uri=request.uri,
        )
        return self._error(
            request,
            RestError(500, "Internal error", "see the server log", "InternalError"),
        )

    def _error(self, request: IRequest, error: RestError) -> bytes:
        body = error_body(error, request.method, request.uri)
        request.setResponseCode(error.status)
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        request.setHeader(b"content-length", b"%d" % len(body))
        return body

    # Upload

    @app.route("/instances", methods=["POST"])
    @inlineCallbacks
    def post_instances(self, request: IRequest) -> Deferred[bytes]:
        outcome = yield (
            request.upload_outcome
            if request.upload_outcome is not None
            else finish_upload(request.upload_body)
        )
        if isinstance(outcome, ZipSpool):
            outcome = yield store_archive(
                outcome,
                self.store,
                request.provenance(),
                self.reactor,
                self.settings.maximum_instance_size,
            )
        if isinstance(outcome, list):
            for part in outcome:
                if part.result is not None:
                    self._log_received(part.result, part.filename)
            return json_response(request, [part_answer(part) for part in outcome])
        self._log_received(outcome)
        return json_response(request, instance_answer(outcome))

    def _log_received(self, result: StoreResult, filename: str = "") -> None:
        """
        Log a received instance at the debug level, with C{--verbose} only,
        because building the event costs tens of microseconds per instance.
        """
        if not self.settings.verbose:
            return
        self.log.debug(
            "Received instance {instance_id}{part}: {status}",
            instance_id=result.ids.instance,
            part=f" from {filename!r}" if filename else "",
            status=result.status.value,
        )

    # Server

    @app.route("/system", methods=["GET"])
    def get_system(self, request: IRequest) -> bytes:
        settings = self.settings
        return json_response(
            request,
            {
                "Name": settings.name,
                "Version": __version__,
                "ApiVersion": 1,
                "DicomAet": settings.aet,
                "DicomPort": settings.dicom_port,
                "HttpPort": settings.http_port,
                "StorageAreaPlugin": None,
                "DatabaseBackendPlugin": None,
                "DatabaseVersion": resources.database_version(self.store),
                "IsHttpServerSecure": False,
                "OverwriteInstances": settings.overwrite_instances,
                "MaximumStorageSize": settings.maximum_storage_size // (1024 * 1024),
                "CheckRevisions": False,
            },
        )

    @app.route("/statistics", methods=["GET"])
    def get_statistics(self, request: IRequest) -> bytes:
        return json_response(request, self.store.statistics())

    @app.route("/changes", methods=["GET"])
    def get_changes(self, request: IRequest) -> bytes:
        since = resources.integer_argument(request, b"since", 0)
        limit = resources.integer_argument(request, b"limit", 100)
        return json_response(request, self.store.changes(since, limit))

    # Resources

    @app.route("/<any(patients,studies,series,instances):level_name>", methods=["GET"])
    def list_resources(self, request: IRequest, level_name: str) -> bytes:
        level = self._level(level_name)
        return json_response(request, resources.list_level(self.store, level, request))

    @app.route(
        "/<any(patients,studies,series,instances):level_name>/<string:resource_id>",
        methods=["GET"],
    )
    def get_resource(
        self, request: IRequest, level_name: str, resource_id: str
    ) -> bytes:
        level = self._level(level_name)
        return json_response(
            request, resources.resource_document(self.store, level, resource_id)
        )

    @app.route(
        "/<any(patients,studies,series,instances):level_name>/<string:resource_id>",
        methods=["DELETE"],
    )
    @inlineCallbacks
    def delete_resource(
        self, request: IRequest, level_name: str, resource_id: str
    ) -> Deferred[bytes]:
        level = self._level(level_name)
        outcome = yield self.store.delete(level, resource_id)
        if outcome is None:
            raise resources.unknown_resource(level, resource_id)
        self.log.info(
            "Deleted {resource_level} {resource_id}",
            resource_level=level.value,
            resource_id=resource_id,
        )
        return json_response(request, outcome)

    @app.route("/instances/<string:instance_id>/file", methods=["GET"])
    def get_instance_file(self, request: IRequest, instance_id: str) -> Any:
        reader = self.store.open_reader(instance_id)
        if reader is None:
            raise resources.unknown_resource(Level.INSTANCE, instance_id)
        return send_instance_file(request, reader, instance_id)

    @app.route("/instances/<string:instance_id>/metadata", methods=["GET"])
    @inlineCallbacks
    def get_instance_metadata(
        self, request: IRequest, instance_id: str
    ) -> Deferred[bytes]:
        metadata = yield self.store.metadata_with_md5(instance_id)
        if metadata is None:
            raise resources.unknown_resource(Level.INSTANCE, instance_id)
        if resources.has_flag(request, b"expand"):
            return json_response(request, metadata)
        return json_response(request, sorted(metadata))

    @app.route(
        "/instances/<string:instance_id>/metadata/<string:name>", methods=["GET"]
    )
    @inlineCallbacks
    def get_instance_metadata_item(
        self, request: IRequest, instance_id: str, name: str
    ) -> Deferred[bytes]:
        metadata = yield self.store.metadata_with_md5(instance_id)
        if metadata is None:
            raise resources.unknown_resource(Level.INSTANCE, instance_id)
        if name not in metadata:
            raise RestError(404, f"Unknown metadata {name}", "", "InexistentItem")
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return str(metadata[name]).encode("utf-8")

    @app.route("/instances/<string:instance_id>/simplified-tags", methods=["GET"])
    @inlineCallbacks
    def get_simplified_tags(
        self, request: IRequest, instance_id: str
    ) -> Deferred[bytes]:
        document = yield resources.instance_tags(
            self.store, self.reactor, instance_id, simplified=True
        )
        return json_response(request, document)

    @app.route("/instances/<string:instance_id>/tags", methods=["GET"])
    @inlineCallbacks
    def get_tags(self, request: IRequest, instance_id: str) -> Deferred[bytes]:
        simplified = resources.has_flag(request, b"simplify")
        document = yield resources.instance_tags(
            self.store, self.reactor, instance_id, simplified=simplified
        )
        return json_response(request, document)

    @app.route(
        "/<any(patients,studies,series,instances):level_name>/<string:resource_id>/<string:child_level>",
        methods=["GET"],
    )
    def get_children(
        self, request: IRequest, level_name: str, resource_id: str, child_level: str
    ) -> bytes:
        level = self._level(level_name)
        return json_response(
            request,
            resources.descendants(self.store, level, resource_id, child_level),
        )

    # Explorer

    @app.route("/", methods=["GET"])
    def root(self, request: IRequest) -> bytes:
        request.redirect(b"/app/explorer.html")
        return b""

    @app.route("/app/", branch=True)
    def explorer(self, request: IRequest) -> File:
        return ExplorerFiles(EXPLORER_DIRECTORY)

    def _level(self, name: str) -> Level:
        level = _LEVEL_BY_NAME.get(name)
        if level is None:
            raise RestError(404, f"Unknown URI /{name}", "", "UnknownResource")
        return level
