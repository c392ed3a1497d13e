# -*- test-case-name: tests.test_ul_protocol -*-
"""
The Twisted protocol of one DICOM connection on the acceptor side.

L{DICOMServerProtocol} frames PDUs from the byte stream, feeds them to an
L{AssociationMachine} and carries out the machine's actions on the transport,
the clock and the L{DIMSEServiceProvider}. It is the only module of the upper
layer that touches a transport or a timer.
"""

from __future__ import annotations

import socket
from typing import Any, Protocol as TypingProtocol, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twistedpacs.config import Settings
from twistedpacs.dimse.commands import Command, encode_command
from twistedpacs.dimse.services import DIMSEServiceProvider
from twistedpacs.ul.machine import AssociationMachine, State
from twistedpacs.ul.negotiation import check_request, negotiate, shown_ae_title
from twistedpacs.ul.pdu import (
    ABORT_REASON_INVALID_PDU_PARAMETER_VALUE,
    ABORT_REASON_UNRECOGNIZED_PDU,
    P_DATA_TF,
    PDU_HEADER,
    PDU_HEADER_LENGTH,
    PDU_NAMES,
    PDV_COMMAND,
    PDV_ITEM_OVERHEAD,
    PDV_LAST_FRAGMENT,
    AAbort,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    PDataTF,
    PDUDecodeError,
    PresentationDataValue,
    decode_pdu,
    encode_pdata_tf_parts,
)

__all__ = [
    "MAXIMUM_ASSOCIATE_PDU_LENGTH",
    "AssociationRegistry",
    "DICOMServerProtocol",
]

#: The cap on the length of every PDU but P-DATA-TF. An A-ASSOCIATE-RQ with
#: 128 presentation contexts of many transfer syntaxes each is legitimately
#: tens of kilobytes; the other PDUs are 4 bytes long.
MAXIMUM_ASSOCIATE_PDU_LENGTH = 1 << 20

# Bytes asked for per read from a DICOM connection. Twisted's default of 64 KiB
# splits every P-DATA-TF of the default 128 KiB maximum across two reads, and
# each split PDU is joined, a copy of its bytes.
READ_SIZE = 1024 * 1024

# The PDU length field is 32 bits, so an advertised maximum of 0 (unlimited)
# lets a P-DATA-TF be this long.
_UNLIMITED_PDU_LENGTH = 0xFFFFFFFF

# The reasons to stop reading from the peer; reading resumes once none is left.
# The store has not caught up with a transfer:
_PAUSED_FOR_STORE = "store"
# The peer does not read our responses, and Twisted's write buffer is full:
_PAUSED_FOR_WRITES = "writes"

_REJECT_REASONS = {
    (1, 2): "application context name not supported",
    (1, 3): "calling AE title not recognized",
    (1, 7): "called AE title not recognized",
    (2, 2): "protocol version not supported",
    (3, 1): "temporary congestion",
    (3, 2): "local limit exceeded (maximum associations)",
}


class AssociationRegistry(TypingProtocol):
    """
    The count of associations a listener shares among its connections.
    """

    active_associations: int

    def association_accepted(self) -> None:
        """
        Count one more accepted association.
        """

    def association_ended(self) -> None:
        """
        Count one accepted association less.
        """


@implementer(IPushProducer)
class _WriteBackpressure:
    """
    The producer a connection registers with its transport, so that a full
    write buffer stops the reading of more requests.
    """

    def __init__(self, protocol: DICOMServerProtocol) -> None:
        self._protocol = protocol

    def pauseProducing(self) -> None:
        """
        Stop reading: the peer does not read what we write.
        """
        self._protocol.pause_reading(_PAUSED_FOR_WRITES)

    def resumeProducing(self) -> None:
        """
        Read again unless another reason still pauses reading, and let a
        C-GET send its next piece.
        """
        self._protocol.resume_reading(_PAUSED_FOR_WRITES)
        self._protocol.wake_writers()

    def stopProducing(self) -> None:
        """
        Do nothing: C{connectionLost} follows and ends the association.
        """


class DICOMServerProtocol(Protocol):
    """
    One transport connection accepted by the DICOM listener, and the
    association on it.

    Reading from the peer stops while the store catches up with a transfer
    (L{pause_peer}) and while Twisted's write buffer is full because the peer
    does not read our responses (the registered producer), and resumes once
    neither holds. The idle timer stops only for the first reason, so a peer
    that sends requests and never reads the responses is aborted after
    C{dicom_scp_timeout} seconds, and its unwritten bytes are dropped.

    @ivar association_id: The number that identifies this connection in logs.
    @ivar machine: The PS3.8 state machine of the connection.
    @ivar provider: The DIMSE service provider, once the association is
        accepted.
    """

    log = Logger()

    def __init__(
        self,
        store: Any,
        settings: Settings,
        clock: IReactorTime,
        registry: AssociationRegistry,
        association_id: int,
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._registry = registry
        self.association_id = association_id
        self.machine = AssociationMachine(self)
        self.provider: DIMSEServiceProvider | None = None
        self.calling_ae_title = ""
        self.called_ae_title = ""
        self.peer_host = ""
        self._peer = ""
        self._pdata_limit = settings.maximum_pdu_length or _UNLIMITED_PDU_LENGTH
        self._peer_maximum_length = 0
        self._write_waiters: list[Deferred[None]] = []
        self._accepted = False
        self._release_pending = False
        self._pause_reasons: set[str] = set()
        self._producer_registered = False
        # Whether the reason for an abort has been logged, and the name of the
        # last PDU received, which an unexpected-PDU abort names.
        self._abort_logged = False
        self._last_pdu_name = ""
        self._stopped = False
        self._artim: IDelayedCall | None = None
        self._idle: IDelayedCall | None = None
        self._quickack_socket: Any = None
        # Bytes of an incomplete PDU: views of received chunks, joined once
        # the PDU is complete. _needed is its whole length, or 0 while its
        # header is incomplete.
        self._pending: list[bytes | memoryview] = []
        self._pending_length = 0
        self._needed = 0

    # Twisted callbacks

    def connectionMade(self) -> None:
        """
        Set the socket options and start the machine (Evt5, which starts
        ARTIM until the A-ASSOCIATE-RQ arrives).
        """
        transport: Any = self.transport
        if hasattr(transport, "bufferSize"):
            transport.bufferSize = READ_SIZE
        set_no_delay = getattr(transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        get_handle = getattr(transport, "getHandle", None)
        if get_handle is not None and hasattr(socket, "TCP_QUICKACK"):
            handle = get_handle()
            if hasattr(handle, "setsockopt"):
                self._quickack_socket = handle
        register = getattr(transport, "registerProducer", None)
        if register is not None:
            register(_WriteBackpressure(self), True)
            self._producer_registered = True
        peer = transport.getPeer()
        self.peer_host = str(getattr(peer, "host", ""))
        self._peer = f"{self.peer_host}:{getattr(peer, 'port', '')}"
        self.log.info(
            "Association {association_id}: connection from {peer}",
            association_id=self.association_id,
            peer=self._peer,
        )
        self.machine.transport_accepted()

    def dataReceived(self, data: bytes) -> None:
        """
        Frame PDUs from C{data}, which may hold any part of any number of them.

        The 6-byte header of each PDU is checked against the length caps as
        soon as it is complete, before its body is buffered.
        """
        self._rearm_quickack()
        if self._stopped:
            return
        if self._accepted and not self._pause_reasons:
            self._arm_idle()
        if self._pending:
            self._pending.append(data)
            self._pending_length += len(data)
            if not self._needed:
                if self._pending_length < PDU_HEADER_LENGTH:
                    return
                pdu_type, _, length = PDU_HEADER.unpack(self._peek_header())
                if not self._length_allowed(pdu_type, length):
                    return
                self._needed = PDU_HEADER_LENGTH + length
            if self._pending_length < self._needed:
                return
            data = b"".join(self._pending)
            self._pending = []
            self._pending_length = 0
            self._needed = 0
        self._process(data)

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:
        """
        Report the closed connection to the machine (Evt17) and drop any
        message in progress.
        """
        self._stopped = True
        self._pending = []
        self._cancel_idle()
        self.stop_artim()
        self.machine.transport_closed()
        if self.provider is not None:
            self.provider.connection_ended()
        self.wake_writers()
        if self._accepted:
            self._accepted = False
            self._registry.association_ended()
        self.log.info(
            "Association {association_id}: connection from {peer} closed",
            association_id=self.association_id,
            peer=self._peer,
        )

    # Framing

    def _peek_header(self) -> bytes:
        head = b""
        for piece in self._pending:
            head += bytes(piece[: PDU_HEADER_LENGTH - len(head)])
            if len(head) == PDU_HEADER_LENGTH:
                break
        return head

    def _process(self, data: bytes) -> None:
        view = memoryview(data)
        size = len(data)
        offset = 0
        needed = 0
        while not self._stopped and size - offset >= PDU_HEADER_LENGTH:
            pdu_type, _, length = PDU_HEADER.unpack_from(data, offset)
            if not self._length_allowed(pdu_type, length):
                return
            end = offset + PDU_HEADER_LENGTH + length
            if end > size:
                needed = PDU_HEADER_LENGTH + length
                break
            self._pdu_received(pdu_type, view[offset + PDU_HEADER_LENGTH : end])
            offset = end
        if offset < size and not self._stopped:
            tail = view[offset:]
            self._pending = [tail]
            self._pending_length = len(tail)
            self._needed = needed

    def _length_allowed(self, pdu_type: int, length: int) -> bool:
        """
        Check a PDU header, and abort the association if it is not allowed.
        """
        if pdu_type not in PDU_NAMES:
            self._framing_failed(
                ABORT_REASON_UNRECOGNIZED_PDU, f"unknown PDU type 0x{pdu_type:02X}"
            )
            return False
        limit = (
            self._pdata_limit if pdu_type == P_DATA_TF else MAXIMUM_ASSOCIATE_PDU_LENGTH
        )
        if length > limit:
            self._framing_failed(
                ABORT_REASON_INVALID_PDU_PARAMETER_VALUE,
                f"{PDU_NAMES[pdu_type]} of {length} bytes is longer than the "
                f"maximum of {limit}",
            )
            return False
        return True

    def _framing_failed(self, reason: int, message: str) -> None:
        """
        Stop reading from the peer and abort: the stream cannot be framed.
        """
        self._stopped = True
        self._pending = []
        self._pending_length = 0
        self._log_failure(message)
        self.machine.invalid_pdu(reason)

    def _pdu_received(self, pdu_type: int, body: memoryview) -> None:
        self._last_pdu_name = PDU_NAMES[pdu_type]
        try:
            pdu = decode_pdu(pdu_type, body)
        except PDUDecodeError as error:
            self._log_failure(f"invalid PDU: {error}")
            self.machine.invalid_pdu(ABORT_REASON_INVALID_PDU_PARAMETER_VALUE)
            return
        if isinstance(pdu, AAbort):
            self.log.info(
                "Association {association_id}: A-ABORT received from "
                "{calling_aet} at {peer} (source {source}, reason {reason})",
                association_id=self.association_id,
                calling_aet=self._calling_shown(),
                peer=self._peer,
                source=pdu.source,
                reason=pdu.reason,
            )
        self.machine.received_pdu(pdu)

    def _calling_shown(self) -> str:
        """
        Return the calling AE title for a log line, or a placeholder before
        an A-ASSOCIATE-RQ named one.
        """
        return self.calling_ae_title or "(no AE title yet)"

    def _log_failure(self, message: str) -> None:
        self._abort_logged = True
        self.log.warn(  # noqa: G010 (twisted.logger has no warning method)
            "Association {association_id} from {calling_aet} at {peer} "
            "aborted: {problem}",
            association_id=self.association_id,
            calling_aet=self._calling_shown(),
            peer=self._peer,
            # Not "message": a legacy observer replaces that key with ().
            problem=message,
        )

    def _rearm_quickack(self) -> None:
        # Linux clears TCP_QUICKACK after some ACKs, so it is set again after
        # every read, and a C-STORE-RSP does not wait for a delayed ACK.
        sock = self._quickack_socket
        if sock is None:
            return
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        except OSError:
            self._quickack_socket = None

    # Timers

    def _arm_idle(self) -> None:
        timeout = self._settings.dicom_scp_timeout
        if not timeout:
            return
        if self._idle is not None and self._idle.active():
            self._idle.reset(timeout)
        else:
            self._idle = self._clock.callLater(timeout, self._idle_expired)

    def _cancel_idle(self) -> None:
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None

    def _idle_expired(self) -> None:
        self._idle = None
        if self.provider is not None and self.provider.committing:
            # The peer waits for our response, which waits for the commit.
            self._arm_idle()
            return
        self.log.info(
            "Association {association_id} from {calling_aet} at {peer} timed "
            "out after {timeout} s without data, aborting",
            association_id=self.association_id,
            calling_aet=self._calling_shown(),
            peer=self._peer,
            timeout=self._settings.dicom_scp_timeout,
        )
        self._abort_logged = True
        self._stopped = True
        if self.provider is not None:
            self.provider.connection_ended()
        self.machine.abort_request()
        self._close()

    def _close(self) -> None:
        """
        Close the connection once queued PDUs are written, or at once when the
        peer does not read them: they would never be written.
        """
        transport: Any = self.transport
        if self._producer_registered:
            # Twisted keeps a connection whose paused producer is registered
            # open after its buffer drains.
            self._producer_registered = False
            transport.unregisterProducer()
        if _PAUSED_FOR_WRITES in self._pause_reasons:
            transport.abortConnection()
        else:
            transport.loseConnection()

    def _artim_expired(self) -> None:
        self._artim = None
        self.log.info(
            "Association {association_id}: ARTIM timer expired, closing the "
            "connection from {peer}",
            association_id=self.association_id,
            peer=self._peer,
        )
        self.machine.artim_expired()

    # IAssociationActions

    def send_pdu(self, pdu: Any) -> None:
        """
        Write one PDU, a P-DATA-TF without copying its payloads.
        """
        transport: Any = self.transport
        if isinstance(pdu, PDataTF):
            transport.writeSequence(encode_pdata_tf_parts(pdu.pdvs))
            return
        if isinstance(pdu, AAbort) and not self._abort_logged:
            # AA-1 in Sta2 and AA-8 for a PDU unexpected in its state.
            self._abort_logged = True
            self.log.warn(  # noqa: G010 (twisted.logger has no warning method)
                "Association {association_id}: aborting the connection from "
                "{peer} in {state} after an unexpected {pdu}",
                association_id=self.association_id,
                peer=self._peer,
                state=self.machine.state.name,
                pdu=self._last_pdu_name or "event",
                calling_aet=self._calling_shown(),
            )
        transport.write(pdu.encode())

    def open_transport(self) -> None:
        """
        Never called: this protocol only accepts connections.
        """
        raise NotImplementedError("DICOMServerProtocol does not connect out")

    def close_transport(self) -> None:
        """
        Close the connection once queued PDUs are written, or at once when the
        peer does not read them.
        """
        self._close()

    def start_artim(self) -> None:
        """
        Start or restart ARTIM, with the DIMSE timeout as its duration.
        """
        self.stop_artim()
        timeout = self._settings.dicom_scp_timeout or 30.0
        self._artim = self._clock.callLater(timeout, self._artim_expired)

    def stop_artim(self) -> None:
        """
        Stop ARTIM if it is running.
        """
        if self._artim is not None and self._artim.active():
            self._artim.cancel()
        self._artim = None

    def check_associate_rq(self, rq: AAssociateRQ) -> AAssociateRJ | None:
        """
        Reject an A-ASSOCIATE-RQ for its version, context name, called AE
        title or the association limit.
        """
        rejection = check_request(
            rq, self._settings, self._registry.active_associations
        )
        # The titles of a rejected request may hold control characters, which
        # later log lines of this connection show escaped.
        self.calling_ae_title = shown_ae_title(rq.calling_ae_title)
        self.called_ae_title = shown_ae_title(rq.called_ae_title)
        if rejection is not None:
            self.log.info(
                "Association {association_id} from {calling_aet} at {peer} to "
                "{called_aet} rejected: {reason} (result {result}, source "
                "{source}, reason {reason_code})",
                association_id=self.association_id,
                calling_aet=self._calling_shown(),
                called_aet=self.called_ae_title,
                peer=self._peer,
                reason=_REJECT_REASONS.get(
                    (rejection.source, rejection.reason), "not specified"
                ),
                result=rejection.result,
                source=rejection.source,
                reason_code=rejection.reason,
            )
        return rejection

    def associate_indication(self, rq: AAssociateRQ) -> None:
        """
        Negotiate the presentation contexts and accept the association.
        """
        negotiation = negotiate(rq, self._settings)
        self._peer_maximum_length = negotiation.peer_maximum_length
        self._accepted = True
        self._registry.association_accepted()
        self.provider = DIMSEServiceProvider(
            self,
            negotiation.contexts,
            self._store,
            self._settings,
            self._clock,
            negotiation.requestor_scp_classes,
        )
        self.log.info(
            "Association {association_id} from {calling_aet} at {peer} to "
            "{called_aet} accepted: {accepted} of {proposed} presentation "
            "contexts, peer maximum PDU length {peer_maximum_length}",
            association_id=self.association_id,
            calling_aet=rq.calling_ae_title,
            called_aet=rq.called_ae_title,
            peer=self._peer,
            accepted=len(negotiation.contexts),
            proposed=len(rq.presentation_contexts),
            peer_maximum_length=self._peer_maximum_length,
        )
        self.machine.associate_response_accept(negotiation.ac)
        self._arm_idle()

    def associate_confirm_accept(self, ac: AAssociateAC) -> None:
        """
        Never called: only an association requestor receives confirmations.
        """

    def associate_confirm_reject(self, rj: AAssociateRJ) -> None:
        """
        Never called: only an association requestor receives confirmations.
        """

    def data_indication(self, pdata: PDataTF) -> None:
        """
        Pass each PDV to the service provider, stopping if it aborts.
        """
        provider = self.provider
        if provider is None:
            return
        for pdv in pdata.pdvs:
            data = pdv.data
            if not isinstance(data, memoryview):
                data = memoryview(data)
            provider.pdv_received(pdv.context_id, pdv.message_control_header, data)
            if self.machine.state is not State.Sta6:
                return

    def release_indication(self) -> None:
        """
        Answer an A-RELEASE-RQ, after any response still owed to the peer.
        A message still incomplete is dropped.
        """
        self.log.info(
            "Association {association_id} from {calling_aet} at {peer} " "released",
            association_id=self.association_id,
            calling_aet=self._calling_shown(),
            peer=self._peer,
        )
        provider = self.provider
        if provider is not None and provider.receiving:
            # The rest of the message cannot follow a release request.
            provider.connection_ended()
        elif provider is not None and provider.busy:
            # The idle timer stays armed, and it waits while a commit runs.
            self._release_pending = True
            return
        self._cancel_idle()
        self.machine.release_response()

    def release_confirm(self) -> None:
        """
        Never called: this side never requests a release.
        """

    def abort_indication(self, source: int, reason: int) -> None:
        """
        Drop any message in progress: the peer aborted.
        """
        self._cancel_idle()
        if self.provider is not None:
            self.provider.connection_ended()

    def provider_abort_indication(self, reason: int) -> None:
        """
        Drop any message in progress: the association was aborted by a
        service provider or lost with its connection.
        """
        self._cancel_idle()
        if self.provider is not None:
            self.provider.connection_ended()

    # AssociationContext, for the service provider

    def send_command(self, context_id: int, command: Command) -> None:
        """
        Send a command set in as many P-DATA-TF PDUs as the peer's maximum
        length requires.
        """
        self.send_message(context_id, command, None)

    def send_message(
        self, context_id: int, command: Command, dataset: bytes | None
    ) -> None:
        """
        Send a command set, then C{dataset} unless it is L{None}, in as many
        P-DATA-TF PDUs as the peer's maximum length requires.
        """
        encoded = encode_command(command)
        step = len(encoded)
        if self._peer_maximum_length:
            step = max(self._peer_maximum_length - PDV_ITEM_OVERHEAD, 2) & ~1
        self._send_fragments(context_id, encoded, step, PDV_COMMAND)
        if dataset is not None:
            step = max(len(dataset), 2)
            if self._peer_maximum_length:
                step = max(self._peer_maximum_length - PDV_ITEM_OVERHEAD, 2) & ~1
            self._send_fragments(context_id, dataset, step, 0)
        if self._accepted and not self._pause_reasons:
            self._arm_idle()

    def _send_fragments(
        self, context_id: int, payload: bytes, step: int, flags: int
    ) -> None:
        for start in range(0, max(len(payload), 1), step):
            header = flags
            if start + step >= len(payload):
                header |= PDV_LAST_FRAGMENT
            pdv = PresentationDataValue(
                context_id, header, payload[start : start + step]
            )
            self.machine.data_request(PDataTF((pdv,)))

    @property
    def peer_maximum_length(self) -> int:
        """
        The requestor's Maximum Length, or 0 for unlimited.
        """
        return self._peer_maximum_length

    def send_pdata(self, pdata: PDataTF) -> None:
        """
        Send one P-DATA-TF PDU, for the C-STOREs of a C-GET.
        """
        if not self._stopped:
            self.machine.data_request(pdata)

    def writable(self) -> Deferred[None]:
        """
        Return a L{Deferred} that fires once the transport's write buffer has
        room again (at once when it has), or when the connection is gone.
        """
        waiter: Deferred[None] = Deferred()
        if _PAUSED_FOR_WRITES in self._pause_reasons and not self._stopped:
            self._write_waiters.append(waiter)
        else:
            waiter.callback(None)
        return waiter

    def wake_writers(self) -> None:
        """
        Fire the Deferreds of L{writable}.
        """
        waiters, self._write_waiters = self._write_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def provider_abort(self, reason: int, message: str) -> None:
        """
        Abort with an A-ABORT PDU of the service-provider source (AA-8).
        """
        self._log_failure(message)
        self._stopped = True
        self._pending = []
        self.machine.invalid_pdu(reason)

    def pause_peer(self) -> None:
        """
        Stop reading while the store catches up, and the idle timer with it.
        """
        self.pause_reading(_PAUSED_FOR_STORE)

    def resume_peer(self) -> None:
        """
        Read again, unless the peer does not read our responses, and restart
        the idle timer.
        """
        self.resume_reading(_PAUSED_FOR_STORE)

    def pause_reading(self, reason: str) -> None:
        """
        Stop reading from the peer for C{reason}. The idle timer stops while
        the store catches up, and runs on while the peer does not read.
        """
        if reason in self._pause_reasons:
            return
        first = not self._pause_reasons
        self._pause_reasons.add(reason)
        if reason == _PAUSED_FOR_STORE:
            self._cancel_idle()
        if first and not self._stopped:
            cast(Any, self.transport).pauseProducing()

    def resume_reading(self, reason: str) -> None:
        """
        Drop C{reason}, and read again once no reason is left.
        """
        if reason not in self._pause_reasons:
            return
        self._pause_reasons.discard(reason)
        if self._stopped:
            return
        if self._accepted and _PAUSED_FOR_STORE not in self._pause_reasons:
            self._arm_idle()
        if not self._pause_reasons:
            cast(Any, self.transport).resumeProducing()

    def responses_sent(self) -> None:
        """
        Send the A-RELEASE-RP that waited for the last response.
        """
        if self._release_pending:
            self._release_pending = False
            self.machine.release_response()
