"""
Uploads sent as C{multipart/form-data}: each file part is streamed into its own
ingest session, and the response lists every part's outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, fail
from twisted.logger import Logger
from twisted.python.failure import Failure

from twistedpacs.config import Settings
from twistedpacs.dicom.scan import InvalidInstanceError
from twistedpacs.ingest import IngestSession, InstanceTooLargeError
from twistedpacs.model import StorageError, StorageFullError, StoreResult
from twistedpacs.rest.errors import RestError
from twistedpacs.rest.multipart import (
    MultipartError,
    MultipartParser,
    PartHeaders,
    boundary_of,
)

log = Logger()


@dataclass
class PartOutcome:
    """
    The outcome of one part: a stored result, or the error that rejected it.
    """

    filename: str
    result: StoreResult | None = None
    error: RestError | None = None


class _DiscardedPart:
    def feed(self, data: bytes) -> None:
        pass


class MultipartBody:
    """
    The body of a C{multipart/form-data} upload, parsed as it streams.

    Parts without a file name (plain form fields) are ignored.
    """

    def __init__(
        self, request: Any, store: Any, settings: Settings, content_type: bytes
    ) -> None:
        self._request = request
        self._store = store
        self._settings = settings
        self._parser = MultipartParser(
            boundary_of(content_type), self._start_part, self._end_part
        )
        self._session: IngestSession | None = None
        self._filename = ""
        self._pending: list[tuple[str, Deferred[StoreResult]]] = []
        self.size = 0
        self.error: RestError | None = None
        self.finished = False

    def feed(self, data: bytes) -> None:
        if self.error is not None or self.finished:
            return
        self.size += len(data)
        try:
            self._parser.feed(data)
        except MultipartError as error:
            self.error = RestError(
                400, "Invalid multipart/form-data body", str(error), "BadRequest"
            )
            self.abort()

    def finish_head(self) -> None:
        pass

    def _start_part(self, headers: PartHeaders) -> Any:
        self._filename = headers.filename
        if not self._filename:
            self._session = None
            return _DiscardedPart()
        transport = self._request.channel.transport
        self._session = IngestSession(
            self._store,
            self._request.provenance(),
            pause=transport.pauseProducing,
            resume=transport.resumeProducing,
            maximum_size=self._settings.maximum_instance_size,
        )
        return self._session

    def _end_part(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        if session.size == 0:
            # A file input left empty sends a part with a name and no bytes.
            session.abort()
            return
        try:
            finished = session.finish()
        except Exception:
            finished = fail()
        self._pending.append((self._filename, finished))

    def abort(self) -> None:
        if self._session is not None:
            self._session.abort()
            self._session = None

    def outcomes(self) -> Deferred[list[PartOutcome]]:
        """
        Wait for every part's commit and return the outcomes in body order.

        @raise RestError: (in the Deferred) if the envelope was invalid.
        """
        self.finished = True
        error = self.error
        if error is None:
            try:
                self._parser.finish()
            except MultipartError as invalid:
                self.abort()
                error = RestError(400, "Invalid multipart/form-data body", str(invalid))
        names = [name for name, _ in self._pending]
        waiting = DeferredList(
            [deferred for _, deferred in self._pending], consumeErrors=True
        )
        waiting.addCallback(self._collect, names)
        if error is not None:
            waiting.addCallback(self._fail_envelope, error)
        return waiting

    @staticmethod
    def _fail_envelope(outcomes: list[PartOutcome], error: RestError) -> None:
        # Parts that were complete before the envelope broke are stored whole,
        # and the error names them so the client can tell which.
        stored = [
            f"{outcome.filename} as {outcome.result.ids.instance}"
            for outcome in outcomes
            if outcome.result is not None
        ]
        if stored:
            error.details += "; parts stored before the error: " + ", ".join(stored)
        raise error

    def _collect(
        self, results: list[tuple[bool, Any]], names: list[str]
    ) -> list[PartOutcome]:
        outcomes = []
        for name, (succeeded, value) in zip(names, results):
            if succeeded:
                outcomes.append(PartOutcome(name, result=value))
            else:
                outcomes.append(PartOutcome(name, error=_part_error(name, value)))
        return outcomes


def _part_error(name: str, failure: Failure) -> RestError:
    error = failure.value
    if isinstance(error, InstanceTooLargeError):
        return RestError(413, error.message, error.details, "BadFileFormat")
    if isinstance(error, InvalidInstanceError):
        return RestError(400, error.message, error.details, "BadFileFormat")
    if isinstance(error, StorageFullError):
        return RestError(507, "The storage is full", str(error), "FullStorage")
    if isinstance(error, StorageError):
        return RestError(507, "The storage failed", str(error), "FullStorage")
    log.failure("Storing multipart part {name} failed", failure, name=name)
    return RestError(500, "Internal error", "see the server log", "InternalError")
