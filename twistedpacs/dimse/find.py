# -*- test-case-name: tests.test_dimse_query -*-
"""
The C-FIND SCP of the Patient Root and Study Root Query/Retrieve Information
Models (PS3.4 section C.4.1).

A L{FindOperation} handles one C-FIND-RQ. It parses the identifier in the
context's transfer syntax and searches the index in bounded slices on the
reactor, as a cooperative task, so other associations and HTTP requests go
on during a long scan. It sends one Pending (0xFF00) C-FIND-RSP with an
identifier per match, then a final 0x0000, or 0xFE00 after a C-CANCEL-RQ.

Responses are encoded in the Specific Character Set of the query when it can
encode every returned value, and in ISO_IR 192 (UTF-8) otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from twisted.internet.task import Cooperator
from twisted.logger import Logger
from twisted.python.failure import Failure

from twistedpacs.dimse.commands import CFindRQ, CFindRSP, Command
from twistedpacs.dimse.query import (
    FIND_SOP_CLASSES,
    Query,
    QueryError,
    build_response,
    decode_identifier,
    encode_identifier,
    parse_query,
    search,
)
from twistedpacs.dimse.status import CANCEL, PENDING, PROCESSING_FAILURE, SUCCESS
from twistedpacs.ul.negotiation import AcceptedContext

__all__ = ["FindOperation", "OperationHost"]


class OperationHost(Protocol):
    """
    The service provider that runs a C-FIND or C-MOVE operation.
    """

    association_id: int
    calling_ae_title: str

    def send_response(
        self, context_id: int, command: Command, dataset: bytes | None
    ) -> None:
        """
        Send a response, with a data set if C{dataset} is not L{None}.
        """

    def operation_finished(self, operation: Any) -> None:
        """
        Learn that the operation sent its final response.
        """


class FindOperation:
    """
    The handling of one C-FIND-RQ, from its identifier to its final response.
    """

    log = Logger()

    def __init__(
        self,
        host: OperationHost,
        context: AcceptedContext,
        request: CFindRQ,
        identifier: bytes,
        store: Any,
        aet: str,
        cooperator: Cooperator,
    ) -> None:
        self._host = host
        self._context = context
        self.request = request
        self._identifier = identifier
        self._store = store
        self._aet = aet
        self._cooperator = cooperator
        self._cancelled = False
        self._stopped = False
        self._task: Any = None
        self.matches = 0

    def start(self) -> None:
        """
        Parse the identifier and start the search, or send the failure
        response if the identifier is not a valid query.
        """
        model = FIND_SOP_CLASSES[self._context.abstract_syntax]
        try:
            dataset = decode_identifier(self._identifier, self._context.transfer_syntax)
            query = parse_query(dataset, model)
        except QueryError as error:
            self.log.info(
                "Association {association_id}: C-FIND rejected with "
                "0x{status:04X}: {problem}",
                association_id=self._host.association_id,
                status=error.status,
                problem=error.message,
            )
            self._finish(error.status, error.message)
            return
        self.log.debug(
            "Association {association_id}: C-FIND at level {query_level}",
            association_id=self._host.association_id,
            query_level=query.level.value,
        )
        self._task = self._cooperator.cooperate(self._steps(query))
        done = self._task.whenDone()
        done.addCallbacks(self._searched, self._search_failed)

    def cancel(self) -> None:
        """
        Stop after the current match and respond with 0xFE00 (C-CANCEL-RQ).
        """
        self._cancelled = True

    def stop(self) -> None:
        """
        Stop at once without any response: the association ended.
        """
        self._stopped = True
        self._cancelled = True

    def _steps(self, query: Query) -> Iterator[None]:
        for match in search(self._store, query):
            if self._cancelled:
                return
            if match is not None:
                self.matches += 1
                response = build_response(query, match, self._aet)
                data = encode_identifier(response, self._context.transfer_syntax)
                self._send(PENDING, None, data)
            yield None

    def _searched(self, _: object) -> None:
        if self._stopped:
            return
        self.log.info(
            "Association {association_id}: C-FIND from {calling_aet} "
            "returned {matches} matches{cancelled}",
            association_id=self._host.association_id,
            calling_aet=self._host.calling_ae_title,
            matches=self.matches,
            cancelled=" (cancelled)" if self._cancelled else "",
        )
        self._finish(CANCEL if self._cancelled else SUCCESS)

    def _search_failed(self, reason: Failure) -> None:
        if self._stopped:
            return
        self.log.failure(
            "Association {association_id}: C-FIND failed",
            reason,
            association_id=self._host.association_id,
        )
        self._finish(PROCESSING_FAILURE, "Processing failure")

    def _send(self, status: int, comment: str | None, data: bytes | None) -> None:
        response = CFindRSP(
            message_id_being_responded_to=self.request.message_id,
            status=status,
            affected_sop_class_uid=self.request.affected_sop_class_uid,
            error_comment=None if comment is None else comment[:64],
            has_dataset=data is not None,
        )
        self._host.send_response(self._context.context_id, response, data)

    def _finish(self, status: int, comment: str | None = None) -> None:
        if self._stopped:
            return
        self._send(status, comment, None)
        self._host.operation_finished(self)
