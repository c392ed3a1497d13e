# -*- test-case-name: tests.test_scu -*-
"""
DIMSE service user on a requestor association: C-ECHO, C-STORE, C-FIND and
C-MOVE as SCU, each returning a L{Deferred}.

One request is outstanding at a time (an asynchronous operations window of
1), so requests issued together run one after the other. Messages are
fragmented for the Maximum Length the acceptor announced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol as TypingProtocol

from twisted.internet.defer import Deferred, DeferredLock, inlineCallbacks
from twisted.logger import Logger
from twisted.python.failure import Failure

from twistedpacs.dicom.part10 import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
)
from twistedpacs.dimse.assembly import (
    PDU_LENGTH_FOR_UNLIMITED_PEER,
    DIMSEProtocolError,
    MessageAssembler,
)
from twistedpacs.dimse.commands import (
    CCancelRQ,
    CEchoRQ,
    CEchoRSP,
    CFindRQ,
    CFindRSP,
    CMoveRQ,
    CMoveRSP,
    Command,
    CStoreRQ,
    CStoreRSP,
    encode_command,
)
from twistedpacs.dimse.status import StatusCategory, status_category
from twistedpacs.ul.client import AssociationAborted, request_association
from twistedpacs.ul.negotiation import AcceptedContext
from twistedpacs.ul.pdu import (
    CONTEXT_ACCEPTANCE,
    PDV_COMMAND,
    PDV_ITEM_OVERHEAD,
    PDV_LAST_FRAGMENT,
    AAssociateRQ,
    ImplementationClassUID,
    ImplementationVersionName,
    MaximumLength,
    PDataTF,
    PresentationContextRQ,
    UserInformation,
)

__all__ = [
    "DIMSEFailure",
    "DataSetSource",
    "ProposedContext",
    "ServiceUser",
    "associate",
]

VERIFICATION_SOP_CLASS = "1.2.840.10008.1.1"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"

# The cap on one received data set: C-FIND identifiers are small, and no
# other response carries a large one.
_MAXIMUM_RESPONSE_DATASET = 16 * 1024 * 1024


class DIMSEFailure(Exception):
    """
    A request could not be sent: no accepted presentation context fits it.
    """


@dataclass(frozen=True)
class ProposedContext:
    """
    A presentation context to propose.

    @ivar abstract_syntax: The SOP class UID.
    @ivar transfer_syntaxes: The transfer syntaxes, preferred first.
    """

    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...] = (
        EXPLICIT_VR_LITTLE_ENDIAN,
        IMPLICIT_VR_LITTLE_ENDIAN,
    )


class DataSetSource(TypingProtocol):
    """
    A data set read piece by piece, such as a stored instance.
    """

    def read_next(self) -> Deferred[bytes | memoryview | None]:
        """
        Return a L{Deferred} firing with the next piece, or with L{None}
        after the last one.
        """


class _Request:
    """
    The outstanding request and what its responses feed.
    """

    def __init__(
        self,
        message_id: int,
        on_pending: Callable[[Command, bytes | None], None] | None,
    ) -> None:
        self.message_id = message_id
        self.on_pending = on_pending
        self.done: Deferred[tuple[Command, bytes | None]] = Deferred()
        self.response: Command | None = None
        self.dataset = bytearray()


class ServiceUser:
    """
    The DIMSE service user of one accepted requestor association.

    @ivar contexts: The accepted presentation contexts by context ID.
    @ivar peer_maximum_length: The acceptor's Maximum Length.
    """

    log = Logger()

    def __init__(self, protocol: Any, contexts: dict[int, AcceptedContext]) -> None:
        self._protocol = protocol
        self.contexts = contexts
        self.peer_maximum_length: int = protocol.peer_maximum_length
        self._assembler = MessageAssembler(self)
        self._lock = DeferredLock()
        self._next_id = 1
        self._current: _Request | None = None
        self._ended: Exception | None = None
        protocol.receiver = self

    # Contexts

    def context_for(
        self, sop_class_uid: str, transfer_syntax: str | None = None
    ) -> AcceptedContext | None:
        """
        Return an accepted context of a SOP class, with a given transfer
        syntax if C{transfer_syntax} is set.
        """
        for context in self.contexts.values():
            if context.abstract_syntax != sop_class_uid:
                continue
            if transfer_syntax is None or context.transfer_syntax == transfer_syntax:
                return context
        return None

    def _require_context(self, sop_class_uid: str) -> AcceptedContext:
        context = self.context_for(sop_class_uid)
        if context is None:
            raise DIMSEFailure(f"no accepted presentation context for {sop_class_uid}")
        return context

    # Operations

    def echo(self) -> Deferred[CEchoRSP]:
        """
        Send a C-ECHO-RQ and return a Deferred that fires with the C-ECHO-RSP.
        """
        context = self._require_context(VERIFICATION_SOP_CLASS)
        return self._exchange(
            context, lambda message_id: CEchoRQ(message_id=message_id), None
        )

    def store(
        self,
        context: AcceptedContext,
        sop_instance_uid: str,
        dataset: bytes | DataSetSource,
        move_originator_aet: str | None = None,
        move_originator_message_id: int | None = None,
    ) -> Deferred[CStoreRSP]:
        """
        Send a C-STORE-RQ with C{dataset}, encoded in the context's transfer
        syntax, and return a Deferred that fires with the C-STORE-RSP.

        @param dataset: the data set, whole or as a L{DataSetSource}, which
            is sent piece by piece as the transport drains. A source that
            fails aborts the association, since the peer cannot tell a
            half-sent data set from a whole one.
        """
        return self._exchange(
            context,
            lambda message_id: CStoreRQ(
                message_id=message_id,
                affected_sop_class_uid=context.abstract_syntax,
                affected_sop_instance_uid=sop_instance_uid,
                move_originator_aet=move_originator_aet,
                move_originator_message_id=move_originator_message_id,
            ),
            dataset,
        )

    def find(
        self,
        sop_class_uid: str,
        identifier: Callable[[str], bytes],
        on_match: Callable[[bytes, str], None],
    ) -> Deferred[CFindRSP]:
        """
        Send a C-FIND-RQ and call C{on_match} with each pending identifier
        and the context's transfer syntax. The returned Deferred fires with
        the final C-FIND-RSP.

        @param identifier: Encodes the identifier in a transfer syntax.
        """
        context = self._require_context(sop_class_uid)

        def pending(response: Command, dataset: bytes | None) -> None:
            if dataset is not None:
                on_match(dataset, context.transfer_syntax)

        return self._exchange(
            context,
            lambda message_id: CFindRQ(
                message_id=message_id, affected_sop_class_uid=sop_class_uid
            ),
            identifier(context.transfer_syntax),
            pending,
        )

    def move(
        self,
        sop_class_uid: str,
        destination: str,
        identifier: Callable[[str], bytes],
        on_pending: Callable[[CMoveRSP], None] | None = None,
    ) -> Deferred[CMoveRSP]:
        """
        Send a C-MOVE-RQ to C{destination} and return a Deferred that fires
        with the final C-MOVE-RSP.
        """
        context = self._require_context(sop_class_uid)

        def pending(response: Command, dataset: bytes | None) -> None:
            if on_pending is not None and isinstance(response, CMoveRSP):
                on_pending(response)

        return self._exchange(
            context,
            lambda message_id: CMoveRQ(
                message_id=message_id,
                affected_sop_class_uid=sop_class_uid,
                move_destination=destination,
            ),
            identifier(context.transfer_syntax),
            pending,
        )

    def cancel(self) -> None:
        """
        Send a C-CANCEL-RQ for the outstanding C-FIND or C-MOVE, if any.
        """
        current = self._current
        if current is None or self._ended is not None:
            return
        for context in self.contexts.values():
            self._send(
                context.context_id,
                CCancelRQ(message_id_being_responded_to=current.message_id),
                None,
            )
            return

    def release(self) -> Deferred[None]:
        """
        Release the association once every outstanding request has its final
        response.
        """
        released = self._lock.acquire()
        released.addCallback(lambda lock: self._protocol.release())
        return released

    def abort(self) -> None:
        """
        Abort the association.
        """
        self._protocol.abort()

    # Sending

    def _exchange(
        self,
        context: AcceptedContext,
        build: Callable[[int], Any],
        dataset: bytes | DataSetSource | None,
        on_pending: Callable[[Command, bytes | None], None] | None = None,
    ) -> Deferred[Any]:
        def run(lock: Any) -> Deferred[Any]:
            if self._ended is not None:
                raise self._ended
            message_id = self._next_id
            self._next_id = self._next_id % 0xFFFF + 1
            request = _Request(message_id, on_pending)
            self._current = request
            if dataset is None or isinstance(dataset, bytes):
                self._send(context.context_id, build(message_id), dataset)
                return request.done
            self._send(context.context_id, build(message_id), None)
            sending = self._send_source(context.context_id, dataset)
            # The lock is held until the last fragment is out, even when the
            # peer responds early, so no other message interleaves with it.
            sending.addCallbacks(
                lambda _: request.done, self._source_failed, errbackArgs=(request,)
            )
            return sending

        def finished(result: tuple[Command, bytes | None]) -> Command:
            return result[0]

        running = self._lock.run(run, None)
        running.addCallback(finished)
        return running

    def _send(self, context_id: int, command: Any, dataset: bytes | None) -> None:
        step = self._step()
        self._send_fragments(context_id, encode_command(command), step, PDV_COMMAND)
        if dataset is not None:
            self._send_fragments(context_id, dataset, step, 0)

    def _step(self) -> int:
        limit = self.peer_maximum_length or PDU_LENGTH_FOR_UNLIMITED_PEER
        return max(limit - PDV_ITEM_OVERHEAD, 2) & ~1

    @inlineCallbacks
    def _send_source(
        self, context_id: int, source: DataSetSource
    ) -> Iterator[Deferred[Any]]:
        step = self._step()
        piece = yield source.read_next()
        if piece is None:
            raise DIMSEFailure("the data set to send is empty")
        while piece is not None:
            # The next piece shows whether this one ends the data set. It is
            # read while the transport sends the previous one.
            following = yield source.read_next()
            yield self._protocol.writable()
            if self._ended is not None:
                raise self._ended
            self._send_fragments(context_id, piece, step, 0, last=following is None)
            piece = following

    def _source_failed(self, reason: Failure, request: _Request) -> Failure:
        request.done.addErrback(lambda _: None)
        if self._ended is None:
            self.log.warn(  # noqa: G010 (twisted.logger has no warning method)
                "Sending a data set failed, aborting the association: {error}",
                error=reason.getErrorMessage(),
            )
            self.abort()
        return reason

    def _send_fragments(
        self,
        context_id: int,
        payload: bytes | memoryview,
        step: int,
        flags: int,
        last: bool = True,
    ) -> None:
        from twistedpacs.ul.pdu import PresentationDataValue

        view = memoryview(payload)
        size = len(payload)
        offset = 0
        while True:
            end = min(offset + step, size)
            header = flags | (PDV_LAST_FRAGMENT if last and end == size else 0)
            fragment = bytes(view[offset:end])
            pdv = PresentationDataValue(context_id, header, fragment)
            self._protocol.send_pdata(PDataTF((pdv,)))
            offset = end
            if offset >= size:
                return

    # MessageReceiver and PDVReceiver

    def pdv_received(
        self, context_id: int, message_control_header: int, data: memoryview
    ) -> None:
        if context_id not in self.contexts:
            self.log.warn(  # noqa: G010 (twisted.logger has no warning method)
                "PDV on unknown presentation context {context_id}, aborting",
                context_id=context_id,
            )
            self.abort()
            return
        try:
            self._assembler.feed_pdv(context_id, message_control_header, data)
        except DIMSEProtocolError as error:
            self.log.warn(  # noqa: G010 (twisted.logger has no warning method)
                "Invalid DIMSE message from the peer, aborting: {error}",
                error=str(error),
            )
            self.abort()

    def command_received(self, context_id: int, command: Command) -> None:
        current = self._current
        responded = getattr(command, "message_id_being_responded_to", None)
        if current is None or responded != current.message_id:
            self.log.warn(  # noqa: G010 (twisted.logger has no warning method)
                "Unexpected {command} from the peer ignored",
                command=command.name,
            )
            return
        current.response = command
        current.dataset = bytearray()
        if not command.has_dataset:
            self._response_complete(current, None)

    def dataset_fragment(self, context_id: int, data: memoryview) -> None:
        current = self._current
        if current is None:
            return
        if len(current.dataset) + len(data) > _MAXIMUM_RESPONSE_DATASET:
            self.log.warn(  # noqa: G010 (twisted.logger has no warning method)
                "Response data set longer than {limit} bytes, aborting",
                limit=_MAXIMUM_RESPONSE_DATASET,
            )
            self.abort()
            return
        current.dataset += data

    def dataset_complete(self, context_id: int) -> None:
        current = self._current
        if current is not None and current.response is not None:
            self._response_complete(current, bytes(current.dataset))

    def _response_complete(self, current: _Request, dataset: bytes | None) -> None:
        response = current.response
        assert response is not None
        status = getattr(response, "status", 0)
        if status_category(status) is StatusCategory.PENDING:
            if current.on_pending is not None:
                current.on_pending(response, dataset)
            return
        self._current = None
        current.done.callback((response, dataset))

    def association_ended(self, reason: Exception) -> None:
        self._ended = reason
        current, self._current = self._current, None
        if current is not None:
            current.done.errback(reason)


def _build_rq(
    calling_ae_title: str,
    called_ae_title: str,
    contexts: list[ProposedContext],
    maximum_length: int,
) -> AAssociateRQ:
    if not 1 <= len(contexts) <= 128:
        raise ValueError(f"{len(contexts)} presentation contexts; 1 to 128 allowed")
    proposed = tuple(
        PresentationContextRQ(
            2 * index + 1, context.abstract_syntax, context.transfer_syntaxes
        )
        for index, context in enumerate(contexts)
    )
    information = UserInformation(
        (
            MaximumLength(maximum_length),
            ImplementationClassUID(IMPLEMENTATION_CLASS_UID),
            ImplementationVersionName(IMPLEMENTATION_VERSION_NAME),
        )
    )
    return AAssociateRQ(
        called_ae_title=called_ae_title,
        calling_ae_title=calling_ae_title,
        presentation_contexts=proposed,
        user_information=information,
    )


def associate(
    reactor: Any,
    host: str,
    port: int,
    calling_ae_title: str,
    called_ae_title: str,
    contexts: list[ProposedContext],
    maximum_length: int = 131072,
    timeout: float = 30.0,
) -> Deferred[ServiceUser]:
    """
    Request an association and fire with its L{ServiceUser} once accepted.

    @param maximum_length: Our Maximum Length, announced to the acceptor.
    @return: A L{Deferred} that fails with L{AssociationRejected} or
        L{AssociationAborted} (connection refused, timed out or aborted).
    """
    rq = _build_rq(calling_ae_title, called_ae_title, contexts, maximum_length)
    protocol = request_association(reactor, host, port, rq, timeout, maximum_length)

    def accepted(ac: Any) -> ServiceUser:
        proposed = {context.context_id: context for context in rq.presentation_contexts}
        accepted_contexts = {}
        for answer in ac.presentation_contexts:
            context = proposed.get(answer.context_id)
            if context is None or answer.result != CONTEXT_ACCEPTANCE:
                continue
            if answer.transfer_syntax not in context.transfer_syntaxes:
                continue
            accepted_contexts[answer.context_id] = AcceptedContext(
                answer.context_id, context.abstract_syntax, answer.transfer_syntax
            )
        if not accepted_contexts:
            protocol.abort()
            raise AssociationAborted(
                f"{called_ae_title} accepted none of the proposed presentation contexts"
            )
        return ServiceUser(protocol, accepted_contexts)

    return protocol.accepted.addCallback(accepted)
