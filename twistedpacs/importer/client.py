"""
Send files to C{POST /instances} over keep-alive HTTP connections and sort the
server's responses into outcomes.
"""

from __future__ import annotations

import base64
import http.client
import json
import select
import tarfile
from dataclasses import dataclass
from enum import Enum
from typing import IO, Protocol

from twistedpacs.importer.sources import PREFIX_SIZE

SEND_BLOCK_SIZE = 64 * 1024

# Errors of a connection the server dropped, after which the file is sent
# once more on a new connection.
_DROPPED_CONNECTION_ERRORS = (
    ConnectionError,
    http.client.BadStatusLine,
    http.client.IncompleteRead,
)


class Readable(Protocol):
    """
    A binary stream that an upload body is read from.
    """

    def read(self, size: int = -1, /) -> bytes:
        """
        Read up to C{size} bytes, or all remaining bytes when C{size} is -1.
        """


@dataclass(frozen=True)
class Target:
    """
    The server to upload to.

    @ivar url: The base URL as shown in messages.
    @ivar path: The request path of the C{/instances} resource.
    @ivar authorization: The value of the C{Authorization} header, or
        L{None} to send none.
    """

    url: str
    host: str
    port: int
    path: str
    authorization: str | None = None


@dataclass(frozen=True)
class UploadResponse:
    """
    The HTTP response to one upload.
    """

    status: int
    reason: str
    body: bytes


class OutcomeKind(Enum):
    """
    The kind of result for one source.
    """

    STORED = "stored"
    ALREADY_STORED = "already stored"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    """
    The result for one source.

    @ivar message: The reason for a skipped or failed source, else empty.
    @ivar sent: The number of body bytes sent to the server.
    """

    kind: OutcomeKind
    name: str
    size: int
    message: str = ""
    sent: int = 0

    def describe(self) -> str:
        """
        Format the outcome as one output line.
        """
        if self.kind is OutcomeKind.SKIPPED:
            return f"skipped {self.name} ({self.message})"
        if self.kind is OutcomeKind.FAILED:
            return f"failed {self.name}: {self.message}"
        return f"{self.kind.value} {self.name}"


class ServerUnreachable(Exception):
    """
    A new connection to the server could not be opened.
    """


def basic_authorization(username: str, password: str) -> str:
    """
    Return the C{Authorization} header value for HTTP basic authentication.
    """
    credentials = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(credentials).decode("ascii")


def upload(
    connection: http.client.HTTPConnection,
    target: Target,
    body: bytes | Readable,
    size: int,
) -> UploadResponse:
    """
    Send one file as the body of C{POST /instances} and read the response.

    A file object body is sent in blocks as it is read, and C{size} is sent
    as the C{Content-Length}. The response is read whole, so the connection
    can carry the next request.
    """
    headers = {
        "Content-Type": "application/dicom",
        "Content-Length": str(size),
        "Accept": "application/json",
    }
    if target.authorization is not None:
        headers["Authorization"] = target.authorization
    try:
        connection.request("POST", target.path, body=body, headers=headers)
    except ConnectionError:
        # A server that rejects a body early (413 or 401, for example) may
        # respond and close before reading all of it. Read that response.
        response = _read_early_response(connection)
        if response is None:
            raise
        return response
    http_response = connection.getresponse()
    return UploadResponse(
        http_response.status, http_response.reason, http_response.read()
    )


def _read_early_response(
    connection: http.client.HTTPConnection,
) -> UploadResponse | None:
    try:
        http_response = connection.getresponse()
        return UploadResponse(
            http_response.status, http_response.reason, http_response.read()
        )
    except (OSError, http.client.HTTPException):
        return None


def _json_text(body: bytes, key: str) -> str | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    value = document.get(key)
    return value if isinstance(value, str) and value else None


def classify_response(response: UploadResponse) -> tuple[OutcomeKind, str]:
    """
    Turn the server's response into an outcome kind and a failure message.

    A 2xx response with C{Status} C{Success} means stored and
    C{AlreadyStored} means already stored. Any other response is a failure,
    described by the server's JSON C{Message} and C{Details}, or by the HTTP
    reason when the body has none.
    """
    if 200 <= response.status < 300:
        status = _json_text(response.body, "Status")
        if status == "Success":
            return OutcomeKind.STORED, ""
        if status == "AlreadyStored":
            return OutcomeKind.ALREADY_STORED, ""
        return (
            OutcomeKind.FAILED,
            f"unexpected response: HTTP {response.status} with Status {status!r}",
        )
    message = _json_text(response.body, "Message") or response.reason
    details = _json_text(response.body, "Details")
    if details is not None:
        message = f"{message}: {details}"
    return OutcomeKind.FAILED, f"{message} (HTTP {response.status})"


class _PrefixedReader:
    """
    A file object that returns C{prefix} and then the rest of C{file}.
    """

    def __init__(self, prefix: bytes, file: IO[bytes]) -> None:
        self._prefix = prefix
        self._file = file

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size < 0:
                data = self._prefix + self._file.read()
                self._prefix = b""
                return data
            data = self._prefix[:size]
            self._prefix = self._prefix[size:]
            return data
        return self._file.read(size)


class Payload:
    """
    The bytes of one source, read once for the sniff and then sent.

    @ivar prefix: The first L{PREFIX_SIZE} bytes, or all of a shorter file.
    @ivar can_resend: Whether the body can be sent once more after a dropped
        connection. A streamed archive member cannot, because tar members
        read as a stream cannot seek back.
    """

    def __init__(
        self, size: int, data: bytes | None = None, file: IO[bytes] | None = None
    ) -> None:
        self.size = size
        self._data = data
        self._file = file
        self._sent = False
        if data is not None:
            self.prefix = data[:PREFIX_SIZE]
            self._seekable = True
        else:
            assert file is not None
            self.prefix = _read_prefix(file)
            self._seekable = _try_seek_start(file)
        self.can_resend = self._seekable

    def body(self) -> bytes | Readable:
        """
        Return the whole body, from its first byte.
        """
        if self._data is not None:
            return self._data
        assert self._file is not None
        if self._seekable:
            self._file.seek(0)
            return self._file
        if self._sent:
            raise OSError("the archive member cannot be read a second time")
        self._sent = True
        return _PrefixedReader(self.prefix, self._file)


def _read_prefix(file: IO[bytes]) -> bytes:
    prefix = b""
    while len(prefix) < PREFIX_SIZE:
        block = file.read(PREFIX_SIZE - len(prefix))
        if not block:
            break
        prefix += block
    return prefix


def _try_seek_start(file: IO[bytes]) -> bool:
    try:
        file.seek(0)
    except (OSError, AttributeError, tarfile.StreamError):
        return False
    return True


class Uploader:
    """
    Send files to one server over one keep-alive connection.

    A connection that the server closed between requests is replaced before
    the next upload. One that fails during an upload is replaced too, and the
    file is sent once more on the new connection when its body can be read
    again. A body that can be read only once goes on a new connection, so no
    idle connection that the server is about to close can lose it.

    @ivar connections_opened: The number of connections opened so far.
    @ivar resends: The number of files sent a second time after a dropped
        connection.
    """

    def __init__(self, target: Target, timeout: float) -> None:
        self._target = target
        self._timeout = timeout
        self._connection: http.client.HTTPConnection | None = None
        self.connections_opened = 0
        self.resends = 0

    def _connect(self) -> http.client.HTTPConnection:
        connection = self._connection
        if connection is None:
            connection = http.client.HTTPConnection(
                self._target.host,
                self._target.port,
                timeout=self._timeout,
                blocksize=SEND_BLOCK_SIZE,
            )
            self._connection = connection
        if connection.sock is None:
            try:
                connection.connect()
            except OSError as error:
                self.close()
                raise ServerUnreachable(describe_error(error)) from error
            self.connections_opened += 1
        return connection

    def send(self, payload: Payload) -> UploadResponse:
        """
        Upload C{payload} and return the server's response.

        @raise ServerUnreachable: If no connection could be opened.
        @raise OSError: If the upload failed on the connection, twice for a
            body that can be sent again.
        """
        if payload.can_resend:
            self._close_if_dropped()
        else:
            self.close()
        try:
            return upload(self._connect(), self._target, payload.body(), payload.size)
        except _DROPPED_CONNECTION_ERRORS:
            self.close()
            if not payload.can_resend:
                raise
            self.resends += 1
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        try:
            return upload(self._connect(), self._target, payload.body(), payload.size)
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def _close_if_dropped(self) -> None:
        connection = self._connection
        if connection is None or connection.sock is None:
            return
        readable, _, _ = select.select([connection.sock], [], [], 0)
        if readable:
            # An idle keep-alive connection has nothing to read, so a readable
            # socket means that the server closed it.
            self.close()

    def close(self) -> None:
        """
        Close the connection, if one is open.
        """
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def describe_error(error: BaseException) -> str:
    """
    Describe a connection or read error in one line.
    """
    if isinstance(error, TimeoutError):
        return "timed out"
    text = str(error)
    if isinstance(error, OSError) and error.strerror:
        text = error.strerror
    return text or type(error).__name__
