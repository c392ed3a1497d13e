# -*- test-case-name: tests.test_rest_timeouts -*-
"""
A deadline for the head of each HTTP request.

twisted.web's idle timeout restarts at every byte received, so a client that
sends one header byte every few seconds keeps its connection open for as long
as it likes. L{HeaderDeadline} gives each request head a fixed time from its
first byte to its blank line, and responds with C{408 Request Timeout} when
that time runs out.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from twistedpacs.rest.errors import RestError, raw_error_response

__all__ = ["HEADER_TIMEOUT", "HeaderDeadline"]

#: The seconds a client has, from the first byte of a request, to send the
#: request line and all its headers.
HEADER_TIMEOUT = 30.0


class HeaderDeadline:
    """
    A mixin for a subclass of L{twisted.web.http.HTTPChannel}, listed before
    it among the bases, that closes a connection whose request head is not
    complete C{header_timeout} seconds after it started.

    The deadline of the first head starts with the connection. The deadline
    of each later head starts with the first byte received once the previous
    request has its response. Bytes that arrive while a request is handled
    wait in the channel and start the next deadline when it reads them. On
    expiry the client gets a C{408} JSON response and the connection closes,
    or is aborted after the channel's C{abortTimeout} if the response cannot
    be written.

    @ivar header_timeout: The seconds allowed for a request head, or 0 for
        no limit.
    """

    header_timeout: float = HEADER_TIMEOUT
    _header_call: IDelayedCall | None = None
    _awaiting_head = False
    _head_expired = False
    _deadline_log = Logger()

    def connectionMade(self) -> None:
        """
        Start the deadline of the first request head.
        """
        channel: Any = super()
        channel.connectionMade()
        self._start_header_deadline()

    def dataReceived(self, data: bytes) -> None:
        """
        Start the deadline at the first byte of a later request head, and drop
        what arrives after a deadline expired.
        """
        if self._head_expired:
            return
        handling = getattr(self, "_handlingRequest", False)
        if self._awaiting_head and data and not handling:
            self._start_header_deadline()
        channel: Any = super()
        channel.dataReceived(data)

    def allHeadersReceived(self) -> None:
        """
        Stop the deadline: the head is complete.
        """
        self._stop_header_deadline()
        channel: Any = super()
        channel.allHeadersReceived()

    def allContentReceived(self) -> None:
        """
        Wait for the first byte of the next request head.
        """
        channel: Any = super()
        channel.allContentReceived()
        self._awaiting_head = True

    def connectionLost(self, reason: Failure) -> None:
        """
        Stop the deadline with the connection.
        """
        self._stop_header_deadline()
        channel: Any = super()
        channel.connectionLost(reason)

    def _start_header_deadline(self) -> None:
        self._awaiting_head = False
        self._stop_header_deadline()
        if self.header_timeout:
            channel: Any = self
            self._header_call = channel.callLater(
                self.header_timeout, self._header_deadline_expired
            )

    def _stop_header_deadline(self) -> None:
        if self._header_call is not None and self._header_call.active():
            self._header_call.cancel()
        self._header_call = None

    def _header_deadline_expired(self) -> None:
        self._header_call = None
        self._head_expired = True
        channel: Any = self
        transport = channel.transport
        self._deadline_log.warn(
            "Request head from {peer} not complete after {timeout} s, closing "
            "the connection",
            peer=str(transport.getPeer()),
            timeout=self.header_timeout,
        )
        error = RestError(
            408,
            "Request headers too slow",
            f"the request line and headers were not complete within "
            f"{self.header_timeout:g} seconds",
            "BadRequest",
        )
        transport.write(
            raw_error_response(
                error,
                getattr(channel, "_command", b""),
                getattr(channel, "_path", b""),
            )
        )
        # HTTPChannel's own timeout: close, and abort if that does not end it.
        channel.timeoutConnection()
