# -*- test-case-name: tests.test_dimse_query -*-
"""
The C-MOVE SCP of the Patient Root and Study Root Query/Retrieve Information
Models (PS3.4 section C.4.2).

A L{MoveOperation} answers one C-MOVE-RQ. It resolves the identifier to
stored instances with the C-FIND matcher, looks the Move Destination up by
AE title in C{DicomModalities}, opens one sub-association to it as SCU and
sends every instance with a C-STORE-RQ carrying the Move Originator AE title
and Message ID. A Pending C-MOVE-RSP with the sub-operation counts follows
each sub-operation, then the final one: 0x0000, 0xB000 when any failed or
had a warning, 0xA702 when the destination could not be reached, 0xA801 for
an unknown destination and 0xFE00 after a C-CANCEL-RQ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import Cooperator
from twisted.logger import Logger
from twisted.python.failure import Failure

from twistedpacs.config import Settings
from twistedpacs.dimse.commands import CMoveRQ, CMoveRSP
from twistedpacs.dimse.find import OperationHost
from twistedpacs.dimse.query import (
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
from twistedpacs.ul.negotiation import AcceptedContext

__all__ = [
    "MoveOperation",
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
    The sub-operation counts of a C-MOVE (PS3.4 section C.4.2.1.4).
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
        Return the status of the final C-MOVE-RSP.
        """
        if cancelled:
            return CANCEL
        if self.failed or self.warning:
            return SUBOPERATIONS_COMPLETE_WITH_FAILURES
        return SUCCESS

    def response(self, request: CMoveRQ, status: int, final: bool) -> CMoveRSP:
        """
        Build a C-MOVE-RSP with these counts. A final response has no
        remaining count except after a cancel (PS3.4 Table C.4-2).
        """
        remaining: int | None = self.remaining
        if final and status != CANCEL:
            remaining = None
        return CMoveRSP(
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
        request: CMoveRQ,
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
        self.counts = SubOperations()

    def start(self) -> None:
        """
        Resolve the identifier and the destination, then run the
        sub-operations.
        """
        model = MOVE_SOP_CLASSES[self._context.abstract_syntax]
        try:
            dataset = decode_identifier(self._identifier, self._context.transfer_syntax)
            query = parse_query(dataset, model)
        except QueryError as error:
            self._finish(error.status, error.message)
            return
        destination = find_modality(self._settings, self.request.move_destination)
        if destination is None:
            self.log.info(
                "Association {association_id}: C-MOVE to unknown destination "
                "{destination} refused with 0xA801",
                association_id=self._host.association_id,
                destination=self.request.move_destination,
            )
            self._finish(REFUSED_MOVE_DESTINATION_UNKNOWN, "Move destination unknown")
            return
        instance_ids: list[str] = []
        task = self._cooperator.cooperate(self._collect(query, instance_ids))
        done = task.whenDone()
        done.addCallback(lambda _: self._run(destination, instance_ids))
        done.addErrback(self._failed)

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
    def _run(
        self, destination: tuple[str, str, int], instance_ids: list[str]
    ) -> Iterator[Deferred[Any]]:
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
        aet, host, port = destination
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
            self._user = yield self._connect(
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
            counts.fail_remaining([item[1] for item in stored])
            self._finish(
                REFUSED_OUT_OF_RESOURCES_SUBOPERATIONS, "Destination unreachable"
            )
            return
        for index, item in enumerate(stored):
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
        if user is not None:
            try:
                yield user.release()
            except Exception as error:
                self.log.info(
                    "C-MOVE sub-association release failed: {error}", error=str(error)
                )
        self._finish(counts.final_status(self._cancelled))

    @inlineCallbacks
    def _suboperation(
        self, instance_id: str, uid: str, sop_class: str, syntax: str
    ) -> Iterator[Deferred[Any]]:
        user = self._user
        assert user is not None
        context = choose_context(user, sop_class, syntax)
        if context is None:
            self.log.info(
                "C-MOVE: {sop_instance_uid} not sent, the destination accepted "
                "no context for {sop_class_uid} in {transfer_syntax}",
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
                move_originator_aet=self._host.calling_ae_title,
                move_originator_message_id=self.request.message_id,
            )
            if response is None:
                return None
        except Exception as error:
            self.log.info(
                "C-MOVE: sending {sop_instance_uid} failed: {error}",
                sop_instance_uid=uid,
                error=str(error),
            )
            return None
        return response.status

    def _failed(self, reason: Failure) -> None:
        self.log.failure(
            "Association {association_id}: C-MOVE failed",
            reason,
            association_id=self._host.association_id,
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
