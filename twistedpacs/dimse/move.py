# -*- test-case-name: tests.test_dimse_query -*-
"""
The C-MOVE and C-GET SCPs of the Patient Root and Study Root Query/Retrieve
Information Models (PS3.4 sections C.4.2 and C.4.3).

A L{MoveOperation} answers one C-MOVE-RQ. It resolves the identifier to
stored instances with the C-FIND matcher, looks the Move Destination up by
AE title in C{DicomModalities}, opens one sub-association to it as SCU and
sends every instance with a C-STORE-RQ carrying the Move Originator AE title
and Message ID. A Pending C-MOVE-RSP with the sub-operation counts follows
each sub-operation, then the final one: 0x0000, 0xB000 when any failed or
had a warning, 0xA702 when the destination could not be reached, 0xA801 for
an unknown destination and 0xFE00 after a C-CANCEL-RQ.

A L{GetOperation} handles a C-GET-RQ the same way, except that it sends the
C-STORE-RQs back on the association the C-GET-RQ arrived on. It uses the
storage contexts for which the requestor took the SCP role, and responds with
C-GET-RSPs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol as TypingProtocol

from pydicom.dataset import Dataset
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.task import Cooperator
from twisted.logger import Logger
from twisted.python.failure import Failure

from twistedpacs.config import Settings
from twistedpacs.dimse.commands import CGetRQ, CGetRSP, CMoveRQ, CMoveRSP, CStoreRSP
from twistedpacs.dimse.find import OperationHost
from twistedpacs.dimse.query import (
    GET_SOP_CLASSES,
    MOVE_SOP_CLASSES,
    QueryError,
    decode_identifier,
    encode_identifier,
    instances_of,
    parse_query,
    search,
)
from twistedpacs.dimse.outgoing import (
    choose_context,
    proposed_contexts,
    send_stored_instance,
)
from twistedpacs.dimse.scu import ServiceUser, associate
from twistedpacs.dimse.status import (
    CANCEL,
    PENDING,
    PROCESSING_FAILURE,
    REFUSED_MOVE_DESTINATION_UNKNOWN,
    REFUSED_OUT_OF_RESOURCES_SUBOPERATIONS,
    SUBOPERATIONS_COMPLETE_WITH_FAILURES,
    SUCCESS,
    StatusCategory,
    status_category,
)
from twistedpacs.model import Level
from twistedpacs.ul.client import AssociationAborted
from twistedpacs.ul.negotiation import AcceptedContext
from twistedpacs.ul.pdu import ABORT_REASON_NOT_SPECIFIED

__all__ = [
    "GetOperation",
    "MoveOperation",
    "RequestorAsSCP",
    "SubOperations",
    "find_modality",
]

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"


def find_modality(settings: Settings, aet: str) -> tuple[str, str, int] | None:
    """
    Return the C{DicomModalities} entry (AE title, host, port) whose AE title
    is C{aet}, or L{None}.
    """
    for entry in settings.dicom_modalities.values():
        if entry[0] == aet:
            return entry
    return None


@dataclass
class SubOperations:
    """
    The sub-operation counts of a C-MOVE or C-GET (PS3.4 sections C.4.2.1.4
    and C.4.3.1.4).
    """

    remaining: int = 0
    completed: int = 0
    failed: int = 0
    warning: int = 0
    failed_uids: list[str] = field(default_factory=list)

    def record(self, sop_instance_uid: str, status: int | None) -> None:
        """
        Count one finished sub-operation by its status. A status of L{None}
        means the sub-operation could not be sent at all.
        """
        self.remaining -= 1
        category = StatusCategory.FAILURE if status is None else status_category(status)
        if category is StatusCategory.SUCCESS:
            self.completed += 1
        elif category is StatusCategory.WARNING:
            self.warning += 1
        else:
            self.failed += 1
            self.failed_uids.append(sop_instance_uid)

    def fail_remaining(self, uids: list[str]) -> None:
        """
        Count every remaining sub-operation failed.
        """
        self.failed += self.remaining
        self.failed_uids.extend(uids)
        self.remaining = 0

    def final_status(self, cancelled: bool) -> int:
        """
        Return the status of the final C-MOVE-RSP or C-GET-RSP.
        """
        if cancelled:
            return CANCEL
        if self.failed or self.warning:
            return SUBOPERATIONS_COMPLETE_WITH_FAILURES
        return SUCCESS

    def response(
        self, request: CMoveRQ | CGetRQ, status: int, final: bool
    ) -> CMoveRSP | CGetRSP:
        """
        Build a C-MOVE-RSP, or a C-GET-RSP for a C-GET-RQ, with these counts.
        A final response has no remaining count except after a cancel (PS3.4
        Tables C.4-2 and C.4-3).
        """
        remaining: int | None = self.remaining
        if final and status != CANCEL:
            remaining = None
        response_type = CGetRSP if isinstance(request, CGetRQ) else CMoveRSP
        return response_type(
            message_id_being_responded_to=request.message_id,
            status=status,
            affected_sop_class_uid=request.affected_sop_class_uid,
            number_of_remaining_suboperations=remaining,
            number_of_completed_suboperations=self.completed,
            number_of_failed_suboperations=self.failed,
            number_of_warning_suboperations=self.warning,
            has_dataset=final and bool(self.failed_uids),
        )


class MoveOperation:
    """
    The handling of one C-MOVE-RQ, from its identifier to its final response.

    @ivar counts: The sub-operation counts.
    """

    log = Logger()

    def __init__(
        self,
        host: OperationHost,
        context: AcceptedContext,
        request: CMoveRQ | CGetRQ,
        identifier: bytes,
        store: Any,
        settings: Settings,
        reactor: Any,
        cooperator: Cooperator,
        connect: Callable[..., Deferred[ServiceUser]] = associate,
    ) -> None:
        self._host = host
        self._context = context
        self.request = request
        self._identifier = identifier
        self._store = store
        self._settings = settings
        self._reactor = reactor
        self._cooperator = cooperator
        self._connect = connect
        self._cancelled = False
        self._stopped = False
        self._user: ServiceUser | None = None
        self._destination: tuple[str, str, int] | None = None
        self.counts = SubOperations()

    service = "C-MOVE"
    _models = MOVE_SOP_CLASSES

    def start(self) -> None:
        """
        Resolve the identifier and the destination, then run the
        sub-operations.
        """
        model = self._models[self._context.abstract_syntax]
        try:
            dataset = decode_identifier(self._identifier, self._context.transfer_syntax)
            query = parse_query(dataset, model)
        except QueryError as error:
            self._finish(error.status, error.message)
            return
        if not self._prepare():
            return
        instance_ids: list[str] = []
        task = self._cooperator.cooperate(self._collect(query, instance_ids))
        done = task.whenDone()
        done.addCallback(lambda _: self._run(instance_ids))
        done.addErrback(self._failed)

    def _prepare(self) -> bool:
        """
        Look the Move Destination up, or respond 0xA801 and return C{False}.
        """
        request = self.request
        assert isinstance(request, CMoveRQ)
        self._destination = find_modality(self._settings, request.move_destination)
        if self._destination is None:
            self.log.info(
                "Association {association_id}: C-MOVE to unknown destination "
                "{destination} refused with 0xA801",
                association_id=self._host.association_id,
                destination=request.move_destination,
            )
            self._finish(REFUSED_MOVE_DESTINATION_UNKNOWN, "Move destination unknown")
            return False
        return True

    def cancel(self) -> None:
        """
        Stop after the current sub-operation and respond with 0xFE00.
        """
        self._cancelled = True

    def stop(self) -> None:
        """
        Stop without any response: the association ended.
        """
        self._stopped = True
        self._cancelled = True
        if self._user is not None:
            self._user.abort()

    def _collect(self, query: Any, instance_ids: list[str]) -> Iterator[None]:
        for match in search(self._store, query, requested=[]):
            if self._cancelled:
                return
            if match is not None:
                instance_ids.extend(instances_of(self._store, match))
            yield None

    @inlineCallbacks
    def _run(self, instance_ids: list[str]) -> Iterator[Deferred[Any]]:
        if self._stopped:
            return
        counts = self.counts
        counts.remaining = len(instance_ids)
        if self._cancelled or not instance_ids:
            self._finish(counts.final_status(self._cancelled))
            return
        stored: list[tuple[str, str, str, str]] = []
        for instance_id in instance_ids:
            metadata = self._store.metadata(instance_id) or {}
            record = self._store.get(Level.INSTANCE, instance_id) or {}
            uid = record.get("MainDicomTags", {}).get("SOPInstanceUID", "")
            sop_class = str(metadata.get("SopClassUid", ""))
            syntax = str(metadata.get("TransferSyntax", IMPLICIT_VR_LITTLE_ENDIAN))
            stored.append((instance_id, uid, sop_class, syntax))
        self._user = yield self._open_user(stored)
        if self._user is None:
            return
        for item in stored:
            if self._cancelled:
                break
            status = yield self._suboperation(*item)
            if self._stopped:
                return
            counts.record(item[1], status)
            if counts.remaining:
                self._host.send_response(
                    self._context.context_id,
                    counts.response(self.request, PENDING, final=False),
                    None,
                )
        user, self._user = self._user, None
        yield self._close_user(user)
        self._finish(counts.final_status(self._cancelled))

    @inlineCallbacks
    def _open_user(
        self, stored: list[tuple[str, str, str, str]]
    ) -> Iterator[Deferred[Any]]:
        """
        Open the sub-association to the destination. When it fails, count
        every sub-operation failed, respond 0xA702 and return L{None}.
        """
        assert self._destination is not None
        aet, host, port = self._destination
        self.log.info(
            "Association {association_id}: C-MOVE of {count} instances to "
            "{destination} at {host}:{port}",
            association_id=self._host.association_id,
            count=len(stored),
            destination=aet,
            host=host,
            port=port,
        )
        try:
            contexts = proposed_contexts({(item[2], item[3]) for item in stored})
            user = yield self._connect(
                self._reactor,
                host,
                port,
                self._settings.aet,
                aet,
                contexts,
                self._settings.maximum_pdu_length,
            )
        except Exception as error:
            self.log.info(
                "Association {association_id}: C-MOVE destination {destination} "
                "unreachable: {error}",
                association_id=self._host.association_id,
                destination=aet,
                error=str(error),
            )
            self.counts.fail_remaining([item[1] for item in stored])
            self._finish(
                REFUSED_OUT_OF_RESOURCES_SUBOPERATIONS, "Destination unreachable"
            )
            return None
        return user

    @inlineCallbacks
    def _close_user(self, user: ServiceUser) -> Iterator[Deferred[Any]]:
        """
        Release the sub-association.
        """
        try:
            yield user.release()
        except Exception as error:
            self.log.info(
                "C-MOVE sub-association release failed: {error}", error=str(error)
            )

    def _originator(self) -> dict[str, Any]:
        return {
            "move_originator_aet": self._host.calling_ae_title,
            "move_originator_message_id": self.request.message_id,
        }

    @inlineCallbacks
    def _suboperation(
        self, instance_id: str, uid: str, sop_class: str, syntax: str
    ) -> Iterator[Deferred[Any]]:
        user = self._user
        assert user is not None
        context = choose_context(user, sop_class, syntax)
        if context is None:
            self.log.info(
                "Association {association_id}: {service} of {sop_instance_uid} "
                "failed, no accepted presentation context fits {sop_class_uid} "
                "in {transfer_syntax}",
                association_id=self._host.association_id,
                service=self.service,
                sop_instance_uid=uid,
                sop_class_uid=sop_class,
                transfer_syntax=syntax,
            )
            return None
        try:
            response = yield send_stored_instance(
                self._store,
                user,
                context,
                instance_id,
                uid,
                syntax,
                **self._originator(),
            )
            if response is None:
                return None
        except Exception as error:
            self.log.info(
                "{service}: sending {sop_instance_uid} failed: {error}",
                service=self.service,
                sop_instance_uid=uid,
                error=str(error),
            )
            return None
        return response.status

    def _failed(self, reason: Failure) -> None:
        self.log.failure(
            "Association {association_id}: {service} failed",
            reason,
            association_id=self._host.association_id,
            service=self.service,
        )
        self._finish(PROCESSING_FAILURE, "Processing failure")

    def _finish(self, status: int, comment: str | None = None) -> None:
        if self._stopped:
            return
        response = self.counts.response(self.request, status, final=True)
        data = None
        if response.has_dataset:
            identifier = Dataset()
            identifier.FailedSOPInstanceUIDList = self.counts.failed_uids
            data = encode_identifier(identifier, self._context.transfer_syntax)
        if comment is not None:
            from dataclasses import replace

            response = replace(response, error_comment=comment[:64])
        self._host.send_response(self._context.context_id, response, data)
        self._host.operation_finished(self)


class RequestorAsSCP(TypingProtocol):
    """
    The association a C-GET arrived on, as the C-GET uses it to send
    C-STOREs back: methods of L{twistedpacs.ul.protocol.DICOMServerProtocol}.
    """

    peer_maximum_length: int

    def send_pdata(self, pdata: Any) -> None:
        """
        Send one P-DATA-TF PDU.
        """

    def writable(self) -> Deferred[None]:
        """
        Return a L{Deferred} that fires once the write buffer has room.
        """

    def provider_abort(self, reason: int, message: str) -> None:
        """
        Abort the association with an A-ABORT of the service-provider source.
        """


class _SameAssociation:
    """
    The requestor connection that L{ServiceUser} sends on for a C-GET: the
    association the C-GET-RQ arrived on.
    """

    def __init__(self, association: RequestorAsSCP) -> None:
        self._association = association
        self.peer_maximum_length = association.peer_maximum_length
        self.receiver: Any = None

    def send_pdata(self, pdata: Any) -> None:
        self._association.send_pdata(pdata)

    def writable(self) -> Deferred[None]:
        return self._association.writable()

    def abort(self) -> None:
        self._association.provider_abort(
            ABORT_REASON_NOT_SPECIFIED, "a C-GET sub-operation could not be sent"
        )


class GetOperation(MoveOperation):
    """
    The handling of one C-GET-RQ (PS3.4 section C.4.3): the matching
    instances go back to the requestor as C-STORE-RQs on the same
    association, on the storage contexts for which it took the SCP role.
    """

    service = "C-GET"
    _models = GET_SOP_CLASSES

    def __init__(
        self,
        host: OperationHost,
        context: AcceptedContext,
        request: CGetRQ,
        identifier: bytes,
        store: Any,
        settings: Settings,
        reactor: Any,
        cooperator: Cooperator,
        association: RequestorAsSCP,
        storage_contexts: dict[int, AcceptedContext],
    ) -> None:
        super().__init__(
            host, context, request, identifier, store, settings, reactor, cooperator
        )
        self._association = association
        self._storage_contexts = storage_contexts

    def _prepare(self) -> bool:
        return True

    def stop(self) -> None:
        """
        Stop without any response: the association ended, so the C-STORE in
        progress, if any, fails.
        """
        self._stopped = True
        self._cancelled = True
        user = self._user
        if user is not None:
            user.association_ended(AssociationAborted("the association ended"))

    def _open_user(
        self, stored: list[tuple[str, str, str, str]]
    ) -> Deferred[ServiceUser]:
        self.log.info(
            "Association {association_id}: C-GET of {count} instances on "
            "{contexts} storage contexts",
            association_id=self._host.association_id,
            count=len(stored),
            contexts=len(self._storage_contexts),
        )
        user = ServiceUser(_SameAssociation(self._association), self._storage_contexts)
        return succeed(user)

    def _close_user(self, user: ServiceUser) -> Deferred[None]:
        return succeed(None)

    def _originator(self) -> dict[str, Any]:
        return {}

    def store_response(self, context_id: int, response: CStoreRSP) -> bool:
        """
        Take a C-STORE-RSP from the requestor.

        @return: whether a C-STORE-RQ of this operation was waiting for it.
        """
        user = self._user
        if user is None:
            return False
        user.command_received(context_id, response)
        return True
