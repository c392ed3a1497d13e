# -*- test-case-name: tests.test_scu -*-
"""
The Twisted protocol of one DICOM connection on the requestor side.

L{DICOMClientProtocol} runs the same L{AssociationMachine} as the acceptor,
from Evt1 (A-ASSOCIATE request): AE-1 opens the TCP connection, AE-2 sends
the A-ASSOCIATE-RQ, and the A-ASSOCIATE-AC or -RJ fires L{accepted}. P-DATA
indications go to a L{PDVReceiver}, which is the DIMSE service user.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol as TypingProtocol, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTCP, IReactorTime
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from twistedpacs.ul.machine import AssociationMachine, State
from twistedpacs.ul.pdu import (
    ABORT_REASON_INVALID_PDU_PARAMETER_VALUE,
    ABORT_REASON_UNRECOGNIZED_PDU,
    P_DATA_TF,
    PDU_HEADER,
    PDU_HEADER_LENGTH,
    PDU_NAMES,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    PDataTF,
    PDUDecodeError,
    decode_pdu,
    encode_pdata_tf_parts,
)

__all__ = [
    "AssociationAborted",
    "AssociationRejected",
    "DICOMClientProtocol",
    "PDVReceiver",
    "request_association",
]

# The cap on every received PDU but P-DATA-TF, as on the acceptor side.
_MAXIMUM_ASSOCIATE_PDU_LENGTH = 1 << 20


class AssociationRejected(Exception):
    """
    The peer rejected the A-ASSOCIATE-RQ with an A-ASSOCIATE-RJ.

    @ivar rejection: The A-ASSOCIATE-RJ PDU.
    """

    def __init__(self, rejection: AAssociateRJ) -> None:
        super().__init__(
            f"association rejected (result {rejection.result}, source "
            f"{rejection.source}, reason {rejection.reason})"
        )
        self.rejection = rejection


class AssociationAborted(Exception):
    """
    The association was aborted, or its connection failed or closed.
    """


class PDVReceiver(TypingProtocol):
    """
    The DIMSE service user of a requestor association.
    """

    def pdv_received(
        self, context_id: int, message_control_header: int, data: memoryview
    ) -> None:
        """
        Process one PDV of a P-DATA-TF PDU.
        """

    def association_ended(self, reason: Exception) -> None:
        """
        Learn that the association ended, by release or otherwise.
        """


class _SendWindow:
    """
    The producer a requestor connection registers with its transport, so
    that a sender of a large data set waits while the write buffer is full.
    """

    def __init__(self, protocol: DICOMClientProtocol) -> None:
        self._protocol = protocol

    def pauseProducing(self) -> None:
        """
        Hold senders back: the peer reads slower than we write.
        """
        self._protocol._set_write_paused(True)

    def resumeProducing(self) -> None:
        """
        Let senders go on: the write buffer has drained.
        """
        self._protocol._set_write_paused(False)

    def stopProducing(self) -> None:
        """
        Do nothing: C{connectionLost} follows and wakes the senders.
        """


class DICOMClientProtocol(Protocol):
    """
    One requestor connection and the association on it.

    @ivar machine: The PS3.8 state machine of the connection.
    @ivar accepted: Fires with the A-ASSOCIATE-AC, or fails with
        L{AssociationRejected} or L{AssociationAborted}.
    @ivar closed: Fires with L{None} once the connection has closed.
    @ivar peer_maximum_length: The Maximum Length the acceptor announced, or
        0 for unlimited.
    @ivar receiver: The receiver of PDVs, set once the association is
        accepted.
    """

    log = Logger()

    def __init__(
        self,
        rq: AAssociateRQ,
        clock: IReactorTime,
        connect: Callable[[DICOMClientProtocol], None],
        timeout: float = 30.0,
        maximum_length: int = 0,
    ) -> None:
        """
        @param connect: Opens the TCP connection for this protocol (AE-1), and
            reports a failure with L{connection_failed}.
        @param timeout: The ARTIM duration, in seconds.
        @param maximum_length: Our own Maximum Length, the cap on a received
            P-DATA-TF, or 0 for unlimited.
        """
        self.rq = rq
        self._clock = clock
        self._connect = connect
        self._timeout = timeout
        self._maximum_length = maximum_length or 0xFFFFFFFF
        self.machine = AssociationMachine(self)
        self.accepted: Deferred[AAssociateAC] = Deferred()
        self.closed: Deferred[None] = Deferred()
        self._released: Deferred[None] | None = None
        self.peer_maximum_length = 0
        self.receiver: PDVReceiver | None = None
        self._artim: IDelayedCall | None = None
        self._buffer = bytearray()
        self._ended = False
        self._release_confirmed = False
        self._end_reason: Exception = AssociationAborted("association ended")
        self._write_paused = False
        self._write_waiters: list[Deferred[None]] = []

    # Twisted callbacks

    def connectionMade(self) -> None:
        transport: Any = self.transport
        set_no_delay = getattr(transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        register = getattr(transport, "registerProducer", None)
        if register is not None:
            register(_SendWindow(self), True)
        self.machine.transport_connected()

    def writable(self) -> Deferred[None]:
        """
        Return a L{Deferred} that fires once the transport's write buffer has
        room again (at once when it has), or when the connection is gone.
        """
        waiter: Deferred[None] = Deferred()
        if self._write_paused and not self._ended:
            self._write_waiters.append(waiter)
        else:
            waiter.callback(None)
        return waiter

    def _set_write_paused(self, paused: bool) -> None:
        self._write_paused = paused
        if not paused:
            self._wake_writers()

    def _wake_writers(self) -> None:
        waiters, self._write_waiters = self._write_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def dataReceived(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= PDU_HEADER_LENGTH and not self._ended:
            pdu_type, _, length = PDU_HEADER.unpack_from(buffer)
            if pdu_type not in PDU_NAMES:
                self._invalid(ABORT_REASON_UNRECOGNIZED_PDU, f"PDU type {pdu_type}")
                return
            limit = (
                self._maximum_length
                if pdu_type == P_DATA_TF
                else _MAXIMUM_ASSOCIATE_PDU_LENGTH
            )
            if length > limit:
                self._invalid(
                    ABORT_REASON_INVALID_PDU_PARAMETER_VALUE,
                    f"{PDU_NAMES[pdu_type]} of {length} bytes exceeds {limit}",
                )
                return
            end = PDU_HEADER_LENGTH + length
            if len(buffer) < end:
                return
            body = bytes(buffer[PDU_HEADER_LENGTH:end])
            del buffer[:end]
            try:
                pdu = decode_pdu(pdu_type, body)
            except PDUDecodeError as error:
                self._invalid(ABORT_REASON_INVALID_PDU_PARAMETER_VALUE, str(error))
                return
            self.machine.received_pdu(pdu)

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:
        self.stop_artim()
        self.machine.transport_closed()
        self._end(AssociationAborted(f"connection closed: {reason.getErrorMessage()}"))
        if not self.closed.called:
            self.closed.callback(None)

    def connection_failed(self, reason: Failure) -> None:
        """
        Report that the TCP connection could not be opened.
        """
        self._end_reason = AssociationAborted(
            f"connection failed: {reason.getErrorMessage()}"
        )
        self.machine.transport_closed()
        self._end(self._end_reason)
        if not self.closed.called:
            self.closed.callback(None)

    def _invalid(self, reason: int, message: str) -> None:
        self.log.warn(  # noqa: G010 (twisted.logger has no warning method)
            "Association to {called_aet} aborted: invalid PDU: {problem}",
            called_aet=self.rq.called_ae_title,
            problem=message,
        )
        self._buffer.clear()
        self.machine.invalid_pdu(reason)

    def _end(self, reason: Exception) -> None:
        if self._ended:
            return
        self._ended = True
        self._wake_writers()
        if not self.accepted.called:
            self.accepted.errback(reason)
        if self.receiver is not None:
            self.receiver.association_ended(reason)
        released, self._released = self._released, None
        if released is not None:
            if isinstance(reason, AssociationAborted) and self._release_confirmed:
                released.callback(None)
            else:
                released.errback(reason)

    # Requests from the service user

    def send_pdata(self, pdata: PDataTF) -> None:
        """
        Send one P-DATA-TF PDU (Evt9).
        """
        self.machine.data_request(pdata)

    def release(self) -> Deferred[None]:
        """
        Release the association (Evt11). The returned Deferred fires once the
        A-RELEASE-RP has arrived and the connection has closed.
        """
        released: Deferred[None] = Deferred()
        if self._ended or self.machine.state is not State.Sta6:
            released.callback(None)
            return released
        self._released = released
        self.machine.release_request()
        return released

    def abort(self) -> None:
        """
        Abort the association with an A-ABORT of the service-user source.
        """
        if not self._ended:
            self.machine.abort_request()

    # IAssociationActions

    def send_pdu(self, pdu: Any) -> None:
        transport: Any = self.transport
        if transport is None:
            return
        if isinstance(pdu, PDataTF):
            transport.writeSequence(encode_pdata_tf_parts(pdu.pdvs))
        else:
            transport.write(pdu.encode())

    def open_transport(self) -> None:
        self._connect(self)

    def close_transport(self) -> None:
        if self.transport is not None:
            cast(Any, self.transport).loseConnection()

    def start_artim(self) -> None:
        self.stop_artim()
        self._artim = self._clock.callLater(self._timeout, self.machine.artim_expired)

    def stop_artim(self) -> None:
        if self._artim is not None and self._artim.active():
            self._artim.cancel()
        self._artim = None

    def check_associate_rq(self, rq: AAssociateRQ) -> AAssociateRJ | None:
        """
        Never called: this protocol only requests associations.
        """
        return None

    def associate_indication(self, rq: AAssociateRQ) -> None:
        """
        Never called: this protocol only requests associations.
        """

    def associate_confirm_accept(self, ac: AAssociateAC) -> None:
        information = ac.user_information
        self.peer_maximum_length = (
            information.maximum_length or 0 if information is not None else 0
        )
        self.accepted.callback(ac)

    def associate_confirm_reject(self, rj: AAssociateRJ) -> None:
        self._end_reason = AssociationRejected(rj)
        self._ended = True
        self.accepted.errback(self._end_reason)

    def data_indication(self, pdata: PDataTF) -> None:
        receiver = self.receiver
        if receiver is None:
            return
        for pdv in pdata.pdvs:
            data = pdv.data
            if not isinstance(data, memoryview):
                data = memoryview(data)
            receiver.pdv_received(pdv.context_id, pdv.message_control_header, data)
            if self.machine.state not in (State.Sta6, State.Sta7):
                return

    def release_indication(self) -> None:
        # The acceptor asked for a release (or a collision): agree.
        self.machine.release_response()

    def release_confirm(self) -> None:
        self._release_confirmed = True

    def abort_indication(self, source: int, reason: int) -> None:
        self._end(AssociationAborted(f"aborted by the peer (reason {reason})"))

    def provider_abort_indication(self, reason: int) -> None:
        self._end(self._end_reason)


class _ClientFactory(ClientFactory):
    noisy = False

    def __init__(self, protocol: DICOMClientProtocol) -> None:
        self._protocol = protocol

    def buildProtocol(self, addr: Any) -> DICOMClientProtocol:
        return self._protocol

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self._protocol.connection_failed(reason)


def request_association(
    reactor: Any,
    host: str,
    port: int,
    rq: AAssociateRQ,
    timeout: float = 30.0,
    maximum_length: int = 0,
) -> DICOMClientProtocol:
    """
    Start an association: connect to C{host}:C{port} and send C{rq}.

    @param reactor: Provides C{IReactorTCP} and C{IReactorTime}.
    @return: The protocol, whose C{accepted} fires with the A-ASSOCIATE-AC.
    """

    def connect(protocol: DICOMClientProtocol) -> None:
        cast(IReactorTCP, reactor).connectTCP(
            host, port, _ClientFactory(protocol), timeout=timeout
        )

    protocol = DICOMClientProtocol(rq, reactor, connect, timeout, maximum_length)
    protocol.machine.associate_request(rq)
    return protocol
