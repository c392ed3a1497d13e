"""
Streaming request bodies for C{POST /instances}.

twisted.web normally collects a body in memory or a temporary file and parses
C{multipart/form-data} whole before any resource sees it. L{UploadRequest}
instead decides from the headers, in C{gotLength}, whether a body is accepted,
and then streams it chunk by chunk into the ingest path (a DICOM instance),
into a spool file in the store's directory (a ZIP archive), or through the
streaming multipart parser into one ingest path per part.
"""

from __future__ import annotations

import os
import tempfile
from typing import IO, Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.web import http
from twisted.web.server import Request, Site

from twistedpacs.config import Settings
from twistedpacs.ingest import IngestSession
from twistedpacs.model import Provenance, StorageError
from twistedpacs.rest.errors import RestError, raw_error_response
from twistedpacs.rest.form import MultipartBody
from twistedpacs.rest.multipart import MultipartError
from twistedpacs.rest.timeouts import HeaderDeadline

# Bodies of other routes are small JSON documents.
MAXIMUM_OTHER_BODY = 1024 * 1024
ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")
UPLOAD_PATHS = {b"/instances"}
# Bytes asked for per read. Twisted's 64 KiB default takes eight trips
# through the reactor, and through twisted.web's parser, per 0.5 MB upload.
READ_SIZE = 1024 * 1024
# A read longer than this that contains the end of a request head is split
# after the head before it reaches twisted.web's line parser.
HEAD_SPLIT_SIZE = 64 * 1024


class _DiscardedContent:
    """
    A stand-in for C{Request.content} while the body streams elsewhere.
    """

    def write(self, data: bytes) -> None:
        pass

    def tell(self) -> int:
        return 0

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def read(self, size: int = -1) -> bytes:
        return b""

    def close(self) -> None:
        pass


class ZipSpool:
    """
    A ZIP body written to a temporary file inside the store's directory.

    A ZIP archive's directory sits at its end, so the archive cannot be
    read until the whole body is there.
    """

    def __init__(self, directory: str, maximum_size: int) -> None:
        os.makedirs(directory, exist_ok=True)
        self.file: IO[bytes] = tempfile.NamedTemporaryFile(
            dir=directory, prefix="upload-", suffix=".zip", delete=False
        )
        self.path = self.file.name
        self.size = 0
        self.maximum_size = maximum_size

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.maximum_size and self.size > self.maximum_size:
            raise RestError(
                413,
                "Request body too large",
                f"the ZIP archive exceeds MaximumInstanceSize ({self.maximum_size} bytes)",
            )
        # NOTE: a spool write goes to the page cache on the reactor thread. The
        # LMDB writes of the entries happen later on the writer thread.
        self.file.write(data)

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()

    def remove(self) -> None:
        self.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class UploadBody:
    """
    The body of one C{POST /instances}, routed by its first bytes.

    @ivar session: the ingest session of a DICOM body.
    @ivar spool: the spool of a ZIP body.
    @ivar error: the reason the body was rejected while it streamed.
    """

    def __init__(self, request: UploadRequest, store: Any, settings: Settings) -> None:
        self._request = request
        self._store = store
        self._settings = settings
        self._head = b""
        self.size = 0
        self.session: IngestSession | None = None
        self.spool: ZipSpool | None = None
        self.error: RestError | None = None
        self.finished = False

    def feed(self, data: bytes) -> None:
        if self.error is not None or self.finished:
            return
        self.size += len(data)
        if self.session is None and self.spool is None:
            self._head += data
            if len(self._head) < 4:
                return
            data, self._head = self._head, b""
            try:
                self._choose_sink(data)
            except StorageError as error:
                self._reject(RestError(503, "The server is shutting down", str(error)))
                return
        try:
            if self.spool is not None:
                self.spool.write(data)
            elif self.session is not None:
                self.session.feed(data)
        except RestError as error:
            self._reject(error)
        except StorageError as error:
            # The store is closing: the server is shutting down.
            self._reject(RestError(503, "The server is shutting down", str(error)))

    def _choose_sink(self, head: bytes) -> None:
        if head[:4] in ZIP_SIGNATURES:
            directory = os.path.join(self._settings.storage_directory, "spool")
            self.spool = ZipSpool(directory, self._settings.maximum_instance_size)
            return
        transport = self._request.channel.transport
        self.session = IngestSession(
            self._store,
            self._request.provenance(),
            pause=transport.pauseProducing,
            resume=transport.resumeProducing,
            maximum_size=self._settings.maximum_instance_size,
        )

    def _reject(self, error: RestError) -> None:
        self.error = error
        self.abort()

    def finish_head(self) -> None:
        """
        Route a body shorter than a signature once it has fully arrived.
        """
        if self.session is None and self.spool is None and self._head:
            head, self._head = self._head, b""
            self._choose_sink(head)
            if self.session is not None:
                self.session.feed(head)
            elif self.spool is not None:
                self.spool.write(head)

    def abort(self) -> None:
        """
        Drop whatever the body left behind: the transfer or the spool file.
        """
        if self.session is not None:
            self.session.abort()
        if self.spool is not None:
            self.spool.remove()


def _media_type(content_type: bytes) -> bytes:
    return content_type.split(b";", 1)[0].strip().lower()


class UploadRequest(Request):
    """
    A request whose upload body streams into the store as it arrives.
    """

    log = Logger()

    def __init__(self, channel: http.HTTPChannel, *args: Any, **kwargs: Any) -> None:
        # Multipart bodies are rejected in gotLength rather than parsed whole.
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(channel, *args, **kwargs)
        self.upload_body: UploadBody | MultipartBody | None = None
        # The outcome of the body, started before the request is routed.
        self.upload_outcome: Deferred[Any] | None = None
        self._rejected = False

    @property
    def _site(self) -> UploadSite:
        return self.channel.site  # type: ignore[attr-defined, no-any-return]

    def provenance(self) -> Provenance:
        peer = self.getClientAddress()
        return Provenance(
            origin="RestApi",
            remote_ip=getattr(peer, "host", ""),
            http_username=(self.getUser() or b"").decode("utf-8", "replace"),
        )

    def gotLength(self, length: int | None) -> None:
        method, path = self.method, self.path
        settings = self._site.settings
        if method == b"POST" and path in UPLOAD_PATHS:
            error = self._check_upload_headers(length, settings)
            if error is not None:
                self._reject_before_body(error)
                return
            self.content = _DiscardedContent()  # type: ignore[assignment]
            content_type = self.getHeader(b"content-type") or b""
            if _media_type(content_type) == b"multipart/form-data":
                try:
                    self.upload_body = MultipartBody(
                        self, self._site.store, settings, content_type
                    )
                except MultipartError as error:
                    self._reject_before_body(
                        RestError(400, "Invalid multipart/form-data body", str(error))
                    )
                return
            self.upload_body = UploadBody(self, self._site.store, settings)
            return
        if length is not None and length > MAXIMUM_OTHER_BODY:
            self._reject_before_body(
                RestError(
                    413,
                    "Request body too large",
                    f"bodies of {method.decode('latin-1')} "
                    f"{path.decode('latin-1')} are limited to {MAXIMUM_OTHER_BODY} bytes",
                )
            )
            return
        super().gotLength(length)

    def _check_upload_headers(
        self, length: int | None, settings: Settings
    ) -> RestError | None:
        content_type = self.getHeader(b"content-type") or b""
        maximum = settings.maximum_instance_size
        # A multipart envelope may carry several files: the limit applies to
        # each part as it streams.
        multipart = _media_type(content_type) == b"multipart/form-data"
        if maximum and length is not None and length > maximum and not multipart:
            return RestError(
                413,
                "Request body too large",
                f"Content-Length {length} exceeds MaximumInstanceSize ({maximum} bytes)",
            )
        return None

    def _reject_before_body(self, error: RestError) -> None:
        """
        Respond from the headers alone and close, without reading the body.

        Removing C{Expect} keeps twisted.web from sending C{100 Continue}
        after this returns, so a client waiting for it never sends the body.
        """
        self._rejected = True
        self.requestHeaders.removeHeader(b"expect")
        self.content = _DiscardedContent()  # type: ignore[assignment]
        self.log.info(
            "Rejected {method} {uri} before its body: {problem}",
            method=self.method.decode("latin-1"),
            uri=self.uri.decode("latin-1"),
            problem=error.message,
        )
        transport = self.channel.transport
        transport.write(raw_error_response(error, self.method, self.uri))
        transport.loseConnection()

    def handleContentChunk(self, data: bytes) -> None:
        if self._rejected:
            return
        if self.upload_body is not None:
            self.upload_body.feed(data)
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._rejected:
            return
        if self.upload_body is not None:
            self.upload_body.finish_head()
            # The writer stores the instance while twisted.web and klein route
            # the request to its handler, which then waits for this outcome.
            self.upload_outcome = finish_upload(self.upload_body)
        super().requestReceived(command, path, version)

    def connectionLost(self, reason: Any) -> None:
        body = self.upload_body
        if body is not None and not body.finished:
            self.log.info(
                "Connection lost during upload {uri} after {size} bytes, "
                "so the unfinished instance, archive or part was dropped",
                uri=self.uri.decode("latin-1"),
                size=body.size,
            )
            body.abort()
            body.finished = True
        super().connectionLost(reason)


class UploadChannel(HeaderDeadline, http.HTTPChannel):
    """
    An HTTP channel that sets each request's method and path before the body
    arrives and turns Nagle's algorithm off. It responds with 408 to a client
    that takes longer than C{HEADER_TIMEOUT} to send a request head.
    """

    def connectionMade(self) -> None:
        super().connectionMade()
        if hasattr(self.transport, "bufferSize"):
            self.transport.bufferSize = READ_SIZE
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)

    def dataReceived(self, data: bytes) -> None:
        """
        Hand the head of a request and the body that arrived with it to the
        parser separately.

        In line mode, twisted.web's parser splits its whole buffer at each
        header line, so a 0.5 MB body read together with its head was copied
        once per header line: 0.3 ms of the 0.7 ms that the reactor spent on
        one upload (C{python -m benchmarks.reactor_cpu}).
        """
        if self.line_mode and len(data) > HEAD_SPLIT_SIZE:
            end = data.find(b"\r\n\r\n")
            if 0 <= end < len(data) - 4:
                super().dataReceived(data[: end + 4])
                if self.transport is not None and not self.transport.disconnecting:
                    self.dataReceived(data[end + 4 :])
                return
        super().dataReceived(data)

    def allHeadersReceived(self) -> None:
        request = self.requests[-1]
        request.method = self._command
        request.uri = self._path
        request.path = self._path.split(b"?", 1)[0]
        super().allHeadersReceived()

    # When its send buffer filled up during a request, twisted.web goes on
    # reading pipelined requests and writing their responses although the
    # client reads none, so the responses pile up in memory. The channel
    # therefore delays the end of a request, and stops reading, until the
    # send buffer has drained.
    _held_request: Any = None

    def requestDone(self, request: Any) -> None:
        """
        End C{request}, or hold its end back while the client does not read.
        """
        if self._waitingForTransport and self._held_request is None:
            self._held_request = request
            self._networkProducer.pauseProducing()
            return
        super().requestDone(request)

    def resumeProducing(self) -> None:
        """
        Resume after the send buffer drained, ending a held request first so
        that the next pipelined request is read.
        """
        super().resumeProducing()
        request, self._held_request = self._held_request, None
        if request is not None and self.transport is not None:
            super().requestDone(request)


class UploadSite(Site):
    """
    A site whose requests stream upload bodies into C{store}.
    """

    protocol = UploadChannel  # type: ignore[assignment]
    requestFactory = UploadRequest

    def __init__(
        self, resource: Any, store: Any, settings: Settings, **kwargs: Any
    ) -> None:
        super().__init__(resource, **kwargs)
        self.store = store
        self.settings = settings

    def log(self, request: Any) -> None:
        """
        Write no access log line. Orthanc writes none by default, and
        formatting one took about 5 % of the reactor's time per upload.
        """


def finish_upload(body: UploadBody | MultipartBody | None) -> Deferred[Any]:
    """
    Complete a streamed body: store its instance, return its ZIP spool, or
    the outcomes of its multipart parts.
    """
    if body is None or body.size == 0:
        return fail(
            RestError(
                400,
                "Empty request body",
                "POST /instances needs a DICOM file or a ZIP archive as its body",
                "BadFileFormat",
            )
        )
    if isinstance(body, MultipartBody):
        return body.outcomes()
    body.finished = True
    if body.error is not None:
        return fail(body.error)
    if body.spool is not None:
        body.spool.close()
        return succeed(body.spool)
    assert body.session is not None
    return body.session.finish()
