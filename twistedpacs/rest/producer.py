"""
Streaming a stored instance to an HTTP client, chunk by chunk.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from zope.interface import implementer

from twistedpacs.model import StorageError


@implementer(IPushProducer)
class ChunkProducer:
    """
    Sends the chunks of a C{BlobReader}, reading the next one only when the
    client's transport can take it.

    Each chunk is read in the store's thread pool, so a slow disk never holds
    up the reactor.
    """

    log = Logger()

    def __init__(self, request: IRequest, reader: Any, instance_id: str) -> None:
        self._request = request
        self._reader = reader
        self._instance_id = instance_id
        self._paused = False
        self._reading = False
        self._stopped = False
        self.done: Deferred[bytes] = Deferred()

    def start(self) -> Deferred[bytes]:
        """
        Start sending. The result fires with C{b""} once every chunk is
        written, and klein then finishes the response.
        """
        self._request.registerProducer(self, True)
        self._request.notifyFinish().addErrback(lambda _: self.stopProducing())
        self._read_next()
        return self.done

    def _read_next(self) -> None:
        if self._paused or self._reading or self._stopped:
            return
        self._reading = True
        reading: Deferred[bytes | None] = self._reader.read_next()
        reading.addCallbacks(self._got_chunk, self._read_failed)

    def _got_chunk(self, chunk: bytes | None) -> None:
        self._reading = False
        if self._stopped:
            return
        if chunk is None:
            self._stopped = True
            self._request.unregisterProducer()
            self.done.callback(b"")
            return
        self._request.write(chunk)
        self._read_next()

    def _read_failed(self, failure: Failure) -> None:
        self._reading = False
        if failure.check(StorageError):
            # The instance was deleted or overwritten while it was sent.
            self.log.info(
                "Sending instance {instance_id} stopped: {error}",
                instance_id=self._instance_id,
                error=failure.value,
            )
        else:
            self.log.failure(
                "Reading instance {instance_id} failed",
                failure,
                instance_id=self._instance_id,
            )
        self._stopped = True
        self._request.unregisterProducer()
        # The status line has gone out already: closing is the only signal left.
        self._request.channel.transport.abortConnection()
        self.done.callback(b"")

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._read_next()

    def stopProducing(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.done.callback(b"")


def send_instance_file(
    request: IRequest, reader: Any, instance_id: str
) -> bytes | Deferred[bytes]:
    """
    Respond to C{GET /instances/{id}/file} with the stored Part 10 bytes.
    """
    request.setHeader(b"content-type", b"application/dicom")
    request.setHeader(b"content-length", str(reader.size).encode("ascii"))
    request.setHeader(
        b"content-disposition",
        f'attachment; filename="{instance_id}.dcm"'.encode("ascii"),
    )
    if request.method == b"HEAD":
        return b""
    return ChunkProducer(request, reader, instance_id).start()
