# -*- test-case-name: tests.test_ul_protocol -*-
"""
The DIMSE service provider of one accepted association: the C-ECHO SCP, the
C-STORE SCP (PS3.4 Annexes A and B, PS3.7 sections 9.1.1 and 9.1.5), and the
C-FIND, C-MOVE and C-GET SCPs of L{twistedpacs.dimse.find} and
L{twistedpacs.dimse.move}.

L{DIMSEServiceProvider} takes the PDVs of every P-DATA-TF, assembles the
messages with a L{MessageAssembler} and feeds each C-STORE data set to an
L{IngestSession} fragment by fragment, so a data set is never held whole
here. A C-STORE-RSP goes out only when the session's C{finish} has fired,
that is after the commit holding the instance has returned. Responses go out
in the order of their requests.

A C-FIND, C-MOVE or C-GET identifier is buffered whole, up to
L{MAXIMUM_IDENTIFIER_LENGTH}. Its operation starts once every earlier
request is answered, and later responses wait for its final response.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol, Union

from twisted.internet.defer import fail
from twisted.internet.task import Cooperator
from twisted.logger import Logger
from twisted.python.failure import Failure

from twistedpacs.config import Settings
from twistedpacs.dicom.scan import InvalidInstanceError
from twistedpacs.dimse.assembly import DIMSEProtocolError, MessageAssembler
from twistedpacs.dimse.find import FindOperation
from twistedpacs.dimse.move import GetOperation, MoveOperation
from twistedpacs.dimse.query import (
    FIND_SOP_CLASSES,
    GET_SOP_CLASSES,
    MAXIMUM_IDENTIFIER_LENGTH,
    MOVE_SOP_CLASSES,
)
from twistedpacs.dimse.commands import (
    CCancelRQ,
    CEchoRQ,
    CEchoRSP,
    CFindRQ,
    CFindRSP,
    CGetRQ,
    CGetRSP,
    CMoveRQ,
    CMoveRSP,
    Command,
    CStoreRQ,
    CStoreRSP,
    RESPONSE_BIT,
    NRequest,
    NResponse,
)
from twistedpacs.dimse.status import (
    CANNOT_UNDERSTAND,
    DATASET_DOES_NOT_MATCH_SOP_CLASS,
    PROCESSING_FAILURE,
    REFUSED_OUT_OF_RESOURCES,
    SUCCESS,
    UNRECOGNIZED_OPERATION,
)
from twistedpacs.ingest import IngestSession, UIDMismatchError
from twistedpacs.model import (
    Provenance,
    StorageError,
    StorageFullError,
    StoreResult,
)
from twistedpacs.ul.negotiation import AcceptedContext
from twistedpacs.ul.pdu import ABORT_REASON_INVALID_PDU_PARAMETER_VALUE

__all__ = [
    "AssociationContext",
    "DIMSEServiceProvider",
    "UIDMismatchError",
]

# Error Comment (0000,0902) is an LO value of at most 64 characters.
_ERROR_COMMENT_LENGTH = 64


class AssociationContext(Protocol):
    """
    The interface of the association that carries a service provider.
    """

    association_id: int
    calling_ae_title: str
    called_ae_title: str
    peer_host: str

    def send_command(self, context_id: int, command: Command) -> None:
        """
        Send a command set without a data set on presentation context
        C{context_id}.
        """

    def send_message(
        self, context_id: int, command: Command, dataset: bytes | None
    ) -> None:
        """
        Send a command set followed by C{dataset}, if it is not L{None}.
        """

    def provider_abort(self, reason: int, message: str) -> None:
        """
        Abort the association with an A-ABORT PDU of the service-provider
        source and C{reason}, logging C{message}.
        """

    def pause_peer(self) -> None:
        """
        Stop reading from the peer until L{resume_peer}.
        """

    def resume_peer(self) -> None:
        """
        Read from the peer again.
        """

    def responses_sent(self) -> None:
        """
        Learn that every request received so far has been answered.
        """

    peer_maximum_length: int

    def send_pdata(self, pdata: Any) -> None:
        """
        Send one P-DATA-TF PDU, for the C-STOREs of a C-GET.
        """

    def writable(self) -> Any:
        """
        Return a L{Deferred} that fires once the write buffer has room.
        """


class _Response:
    """
    A slot in the queue of responses, filled when its request is answered.
    """

    __slots__ = ("command", "context_id")

    def __init__(self, context_id: int) -> None:
        self.context_id = context_id
        self.command: Command | None = None


_UNSUPPORTED_RESPONSES: dict[type, type] = {
    CFindRQ: CFindRSP,
    CGetRQ: CGetRSP,
    CMoveRQ: CMoveRSP,
}

_Operation = Union[FindOperation, MoveOperation, GetOperation]
_QUERY_MODELS: dict[type, dict[str, str]] = {
    CFindRQ: FIND_SOP_CLASSES,
    CMoveRQ: MOVE_SOP_CLASSES,
    CGetRQ: GET_SOP_CLASSES,
}


def _truncate(text: str) -> str:
    return text[:_ERROR_COMMENT_LENGTH]


class DIMSEServiceProvider:
    """
    The C-ECHO, C-STORE, C-FIND, C-MOVE and C-GET SCPs of one association.

    @ivar stored: The number of C-STORE requests answered with success.
    """

    log = Logger()

    def __init__(
        self,
        association: AssociationContext,
        contexts: dict[int, AcceptedContext],
        store: Any,
        settings: Settings,
        reactor: Any = None,
        requestor_scp_classes: frozenset[str] = frozenset(),
    ) -> None:
        """
        @param reactor: The reactor that runs searches in slices and opens
            C-MOVE sub-associations; the global reactor by default.
        @param requestor_scp_classes: The storage SOP classes for which the
            requestor took the SCP role, whose contexts carry the C-STOREs
            of a C-GET.
        """
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self._reactor = reactor
        self._cooperator = Cooperator(scheduler=lambda step: reactor.callLater(0, step))
        self._association = association
        self._contexts = contexts
        self._storage_contexts = {
            context_id: context
            for context_id, context in contexts.items()
            if context.abstract_syntax in requestor_scp_classes
        }
        self._store = store
        self._settings = settings
        self._assembler = MessageAssembler(self)
        self._responses: deque[_Response] = deque()
        self._session: IngestSession | None = None
        self._request: CStoreRQ | None = None
        self._discarding: Command | None = None
        self._current_slot: _Response | None = None
        self._closed = False
        self._committing = 0
        self._identifier: bytearray | None = None
        self._identifier_request: CFindRQ | CMoveRQ | CGetRQ | None = None
        self._identifier_context = 0
        self._identifier_too_long = False
        self._operation: _Operation | None = None
        self._waiting: deque[_Operation] = deque()
        self.stored = 0

    @property
    def committing(self) -> bool:
        """
        Whether a received data set waits for its commit, or a C-FIND or
        C-MOVE or C-GET runs, so that the peer waits for us.
        """
        return self._committing > 0 or self._operation is not None

    @property
    def busy(self) -> bool:
        """
        Whether a message is being received or a response is outstanding.
        """
        return (
            bool(self._responses)
            or not self._assembler.idle
            or self._operation is not None
            or bool(self._waiting)
        )

    @property
    def receiving(self) -> bool:
        """
        Whether part of a message has been received and the rest is missing.
        """
        return not self._closed and not self._assembler.idle

    def pdv_received(
        self, context_id: int, message_control_header: int, data: memoryview
    ) -> None:
        """
        Process one PDV of a P-DATA-TF PDU.

        A PDV on a context that was not accepted, or one that breaks the
        fragmentation rules, aborts the association with reason 6 (invalid
        PDU parameter value).
        """
        if self._closed:
            return
        if context_id not in self._contexts:
            self._abort(
                f"PDV on presentation context {context_id}, which was not accepted"
            )
            return
        try:
            self._assembler.feed_pdv(context_id, message_control_header, data)
        except DIMSEProtocolError as error:
            self._abort(str(error))

    def connection_ended(self) -> None:
        """
        Drop the message in progress: the association was aborted or the
        connection lost, so nothing of a partial data set is stored.
        """
        if self._closed:
            return
        self._closed = True
        operation, self._operation = self._operation, None
        if operation is not None:
            operation.stop()
        self._waiting.clear()
        session, self._session = self._session, None
        if session is not None:
            session.abort()
            self.log.info(
                "Association {association_id}: C-STORE of {sop_instance_uid} "
                "dropped, the association ended during its data set",
                association_id=self._association.association_id,
                sop_instance_uid=self._request_uid(),
            )

    def _abort(self, message: str) -> None:
        self.connection_ended()
        self._association.provider_abort(
            ABORT_REASON_INVALID_PDU_PARAMETER_VALUE, message
        )

    def _request_uid(self) -> str:
        return self._request.affected_sop_instance_uid if self._request else ""

    # MessageReceiver

    def command_received(self, context_id: int, command: Command) -> None:
        """
        Start answering a request, or note a command we do not answer.
        """
        if isinstance(command, CStoreRQ):
            self._begin_store(context_id, command)
        elif isinstance(command, CEchoRQ):
            slot = self._reserve(context_id)
            self._answer(
                slot,
                CEchoRSP(
                    message_id_being_responded_to=command.message_id,
                    status=SUCCESS,
                    affected_sop_class_uid=command.affected_sop_class_uid,
                ),
            )
        elif isinstance(command, (CFindRQ, CMoveRQ, CGetRQ)) and self._is_query_context(
            context_id, command
        ):
            self._identifier = bytearray()
            self._identifier_request = command
            self._identifier_context = context_id
            self._identifier_too_long = False
        elif type(command) in _UNSUPPORTED_RESPONSES or isinstance(command, NRequest):
            # The data set that follows, if any, is dropped, and then the
            # request gets a failure response.
            self._current_slot = self._reserve(context_id)
            if command.has_dataset:
                self._discarding = command
            else:
                self._answer_unsupported(command)
        elif isinstance(command, CCancelRQ):
            self._cancel(command)
        elif isinstance(command, CStoreRSP) and isinstance(
            self._operation, GetOperation
        ):
            if not self._operation.store_response(context_id, command):
                self._unexpected(command)
        else:
            self._unexpected(command)

    def _unexpected(self, command: Command) -> None:
        self.log.warn(  # noqa: G010 (twisted.logger has no warning method)
            "Association {association_id}: unexpected {command} from the "
            "requestor ignored",
            association_id=self._association.association_id,
            command=command.name,
        )

    def dataset_fragment(self, context_id: int, data: memoryview) -> None:
        """
        Feed the next fragment of a C-STORE data set to its ingest session,
        or buffer a C-FIND, C-MOVE or C-GET identifier.
        """
        identifier = self._identifier
        if identifier is not None:
            if len(identifier) + len(data) <= MAXIMUM_IDENTIFIER_LENGTH:
                identifier += data
            else:
                # Too long: the rest is dropped and the request fails.
                self._identifier_too_long = True
            return
        if self._session is not None:
            self._session.feed(data)

    def dataset_complete(self, context_id: int) -> None:
        """
        Finish a C-STORE data set, or answer a request whose identifier was
        dropped.
        """
        if self._discarding is not None:
            self._answer_unsupported(self._discarding)
            self._discarding = None
            return
        if self._identifier is not None:
            self._identifier_complete()
            return
        session, self._session = self._session, None
        request, self._request = self._request, None
        slot, self._current_slot = self._current_slot, None
        if session is None or request is None or slot is None:
            return
        try:
            finished = session.finish()
        except Exception:
            # A bug in the ingest path; the session has dropped its transfer.
            finished = fail()
        self._committing += 1
        finished.addBoth(self._committed)
        finished.addCallbacks(
            self._stored,
            self._store_failed,
            callbackArgs=(slot, request, session),
            errbackArgs=(slot, request),
        )

    # C-STORE

    def _begin_store(self, context_id: int, request: CStoreRQ) -> None:
        context = self._contexts[context_id]
        association = self._association
        provenance = Provenance(
            origin="DicomProtocol",
            remote_aet=association.calling_ae_title,
            called_aet=association.called_ae_title,
            remote_ip=association.peer_host,
        )
        self._current_slot = self._reserve(context_id)
        self._request = request
        self._session = IngestSession(
            self._store,
            provenance,
            transfer_syntax=context.transfer_syntax,
            pause=association.pause_peer,
            resume=association.resume_peer,
            maximum_size=self._settings.maximum_instance_size,
            source_aet=association.calling_ae_title,
            expected_sop_class_uid=request.affected_sop_class_uid,
            expected_sop_instance_uid=request.affected_sop_instance_uid,
        )

    def _committed(self, result: object) -> object:
        self._committing -= 1
        return result

    def _stored(
        self,
        result: StoreResult,
        slot: _Response,
        request: CStoreRQ,
        session: IngestSession,
    ) -> None:
        self.stored += 1
        # Building the event costs tens of microseconds per instance, so it
        # is built only with --verbose.
        if self._settings.verbose:
            self.log.debug(
                "Association {association_id}: received {sop_instance_uid} as "
                "{instance_id}: {status}, {size} bytes",
                association_id=self._association.association_id,
                sop_instance_uid=request.affected_sop_instance_uid,
                instance_id=result.ids.instance,
                status=result.status.value,
                size=result.size,
            )
        self._answer(slot, self._store_response(request, SUCCESS))

    def _store_failed(
        self, reason: Failure, slot: _Response, request: CStoreRQ
    ) -> None:
        error = reason.value
        comment: str | None
        if isinstance(error, UIDMismatchError):
            status, comment = DATASET_DOES_NOT_MATCH_SOP_CLASS, error.message
        elif isinstance(error, InvalidInstanceError):
            status, comment = CANNOT_UNDERSTAND, error.message
        elif isinstance(error, (StorageFullError, StorageError)):
            status, comment = REFUSED_OUT_OF_RESOURCES, "Out of resources"
        else:
            self.log.failure(
                "Association {association_id}: storing {sop_instance_uid} failed",
                reason,
                association_id=self._association.association_id,
                sop_instance_uid=request.affected_sop_instance_uid,
            )
            status, comment = PROCESSING_FAILURE, "Processing failure"
        if status != PROCESSING_FAILURE:
            self.log.info(
                "Association {association_id}: C-STORE of {sop_instance_uid} "
                "failed with status 0x{status:04X}: {error}",
                association_id=self._association.association_id,
                sop_instance_uid=request.affected_sop_instance_uid,
                status=status,
                error=str(error),
            )
        self._answer(slot, self._store_response(request, status, comment))

    @staticmethod
    def _store_response(
        request: CStoreRQ, status: int, comment: str | None = None
    ) -> CStoreRSP:
        return CStoreRSP(
            message_id_being_responded_to=request.message_id,
            status=status,
            affected_sop_class_uid=request.affected_sop_class_uid,
            affected_sop_instance_uid=request.affected_sop_instance_uid,
            error_comment=None if comment is None else _truncate(comment),
        )

    # Responses

    def _answer_unsupported(self, request: Command) -> None:
        slot, self._current_slot = self._current_slot, None
        assert slot is not None
        self.log.info(
            "Association {association_id}: {command} answered with "
            "0x0211, this server does not provide it",
            association_id=self._association.association_id,
            command=request.name,
        )
        response: Command
        if isinstance(request, NRequest):
            response = NResponse(
                command_field=request.command_field | RESPONSE_BIT,
                message_id_being_responded_to=request.message_id,
                status=UNRECOGNIZED_OPERATION,
                affected_sop_class_uid=(
                    request.affected_sop_class_uid or request.requested_sop_class_uid
                ),
                affected_sop_instance_uid=(
                    request.affected_sop_instance_uid
                    or request.requested_sop_instance_uid
                ),
            )
        else:
            response = _UNSUPPORTED_RESPONSES[type(request)](
                message_id_being_responded_to=request.message_id,  # type: ignore[union-attr]
                status=UNRECOGNIZED_OPERATION,
                affected_sop_class_uid=request.affected_sop_class_uid,  # type: ignore[union-attr]
            )
        self._answer(slot, response)

    def _reserve(self, context_id: int) -> _Response:
        slot = _Response(context_id)
        self._responses.append(slot)
        return slot

    def _answer(self, slot: _Response, command: Command) -> None:
        """
        Fill C{slot} and send every filled response at the head of the queue.
        """
        slot.command = command
        self._flush()

    def _flush(self) -> None:
        """
        Send every filled response at the head of the queue, unless a C-FIND,
        C-MOVE or C-GET is running, then start the next waiting operation.
        """
        if self._closed:
            self._responses.clear()
            return
        if self._operation is not None:
            return
        sent = False
        while self._responses and self._responses[0].command is not None:
            head = self._responses.popleft()
            assert head.command is not None
            self._association.send_command(head.context_id, head.command)
            sent = True
        if not self._responses and self._waiting:
            self._operation = self._waiting.popleft()
            self._operation.start()
            return
        if sent and not self.busy:
            self._association.responses_sent()

    # C-FIND, C-MOVE and C-GET

    def _is_query_context(
        self, context_id: int, command: CFindRQ | CMoveRQ | CGetRQ
    ) -> bool:
        abstract_syntax = self._contexts[context_id].abstract_syntax
        return abstract_syntax in _QUERY_MODELS[type(command)]

    def _identifier_complete(self) -> None:
        identifier, self._identifier = self._identifier, None
        request, self._identifier_request = self._identifier_request, None
        context = self._contexts[self._identifier_context]
        assert identifier is not None and request is not None
        if self._identifier_too_long:
            self.log.info(
                "Association {association_id}: {command} identifier longer "
                "than {limit} bytes rejected with 0xC000",
                association_id=self._association.association_id,
                command=request.name,
                limit=MAXIMUM_IDENTIFIER_LENGTH,
            )
            response_type = _UNSUPPORTED_RESPONSES[type(request)]
            self._answer(
                self._reserve(context.context_id),
                response_type(
                    message_id_being_responded_to=request.message_id,
                    status=CANNOT_UNDERSTAND,
                    affected_sop_class_uid=request.affected_sop_class_uid,
                    error_comment="Identifier too long",
                ),
            )
            return
        operation: _Operation
        shared = (self, context, request, bytes(identifier), self._store)
        if isinstance(request, CFindRQ):
            operation = FindOperation(*shared, self._settings.aet, self._cooperator)
        else:
            retrieve = (*shared, self._settings, self._reactor, self._cooperator)
            if isinstance(request, CMoveRQ):
                operation = MoveOperation(*retrieve)
            else:
                operation = GetOperation(
                    *retrieve, self._association, self._storage_contexts
                )
        self._waiting.append(operation)
        self._flush()

    def _cancel(self, command: CCancelRQ) -> None:
        message_id = command.message_id_being_responded_to
        for operation in (self._operation, *self._waiting):
            if operation is not None and operation.request.message_id == message_id:
                operation.cancel()
                return
        self.log.debug(
            "Association {association_id}: C-CANCEL-RQ for message "
            "{message_id} ignored, no such C-FIND, C-MOVE or C-GET is running",
            association_id=self._association.association_id,
            message_id=message_id,
        )

    # OperationHost

    @property
    def association_id(self) -> int:
        """
        The number of the association in logs.
        """
        return self._association.association_id

    @property
    def calling_ae_title(self) -> str:
        """
        The AE title of the requestor, the Move Originator of C-MOVEs.
        """
        return self._association.calling_ae_title

    def send_response(
        self, context_id: int, command: Command, dataset: bytes | None
    ) -> None:
        """
        Send a response of the running C-FIND, C-MOVE or C-GET.
        """
        if not self._closed:
            self._association.send_message(context_id, command, dataset)

    def operation_finished(self, operation: Any) -> None:
        """
        Send the responses that waited for the operation's final response.
        """
        if operation is not self._operation:
            return
        self._operation = None
        self._flush()
        if not self.busy and not self._closed:
            self._association.responses_sent()
