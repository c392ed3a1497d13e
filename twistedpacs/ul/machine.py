# -*- test-case-name: tests.test_machine -*-
"""
The DICOM Upper Layer state machine of PS3.8 section 9.2.

L{TRANSITIONS} is Table 9-10 as data: each (state, event) cell names the action
of Tables 9-6 to 9-9 and the next state. L{AssociationMachine} runs it for one
transport connection. It reaches the network, the ARTIM timer and the service
user only through an L{IAssociationActions} provider, so this module does no
I/O and imports no reactor.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from twisted.logger import Logger

from twistedpacs.ul.pdu import (
    ABORT_REASON_NOT_SPECIFIED,
    ABORT_REASON_UNEXPECTED_PDU,
    ABORT_REASON_UNRECOGNIZED_PDU,
    ABORT_SOURCE_SERVICE_PROVIDER,
    ABORT_SOURCE_SERVICE_USER,
    AAbort,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    AReleaseRP,
    AReleaseRQ,
    PDataTF,
)

log = Logger()


class State(enum.Enum):
    """
    A state of the Upper Layer state machine (PS3.8 Tables 9-1 to 9-5).
    """

    #: Idle.
    Sta1 = 1
    #: Transport connection open (awaiting A-ASSOCIATE-RQ PDU).
    Sta2 = 2
    #: Awaiting local A-ASSOCIATE response primitive (from local user).
    Sta3 = 3
    #: Awaiting transport connection opening to complete (from local transport
    #: service).
    Sta4 = 4
    #: Awaiting A-ASSOCIATE-AC or A-ASSOCIATE-RJ PDU.
    Sta5 = 5
    #: Association established and ready for data transfer.
    Sta6 = 6
    #: Awaiting A-RELEASE-RP PDU.
    Sta7 = 7
    #: Awaiting local A-RELEASE response primitive (from local user).
    Sta8 = 8
    #: Release collision requestor side; awaiting A-RELEASE response (from
    #: local user).
    Sta9 = 9
    #: Release collision acceptor side; awaiting A-RELEASE-RP PDU.
    Sta10 = 10
    #: Release collision requestor side; awaiting A-RELEASE-RP PDU.
    Sta11 = 11
    #: Release collision acceptor side; awaiting A-RELEASE response primitive
    #: (from local user).
    Sta12 = 12
    #: Awaiting transport connection close indication (association no longer
    #: exists).
    Sta13 = 13


class Event(enum.Enum):
    """
    An event of the Upper Layer state machine (PS3.8 Table 9-10, first column).
    """

    #: A-ASSOCIATE request (local user).
    Evt1 = 1
    #: Transport connection confirm (local transport service).
    Evt2 = 2
    #: A-ASSOCIATE-AC PDU (received on transport connection).
    Evt3 = 3
    #: A-ASSOCIATE-RJ PDU (received on transport connection).
    Evt4 = 4
    #: Transport connection indication (local transport service).
    Evt5 = 5
    #: A-ASSOCIATE-RQ PDU (received on transport connection).
    Evt6 = 6
    #: A-ASSOCIATE response primitive (accept).
    Evt7 = 7
    #: A-ASSOCIATE response primitive (reject).
    Evt8 = 8
    #: P-DATA request primitive.
    Evt9 = 9
    #: P-DATA-TF PDU (received on transport connection).
    Evt10 = 10
    #: A-RELEASE request primitive.
    Evt11 = 11
    #: A-RELEASE-RQ PDU (received on transport connection).
    Evt12 = 12
    #: A-RELEASE-RP PDU (received on transport connection).
    Evt13 = 13
    #: A-RELEASE response primitive.
    Evt14 = 14
    #: A-ABORT request primitive.
    Evt15 = 15
    #: A-ABORT PDU (received on transport connection).
    Evt16 = 16
    #: Transport connection closed indication (local transport service).
    Evt17 = 17
    #: ARTIM timer expired (association reject/release timer).
    Evt18 = 18
    #: Unrecognized or invalid PDU received.
    Evt19 = 19


def _build_transitions() -> dict[tuple[State, Event], tuple[str, State | None]]:
    """
    Build L{TRANSITIONS} from Table 9-10, one event row at a time.
    """
    S = State
    table: dict[tuple[State, Event], tuple[str, State | None]] = {}

    def row(event: Event, cells: dict[State, tuple[str, State | None]]) -> None:
        for state, cell in cells.items():
            table[state, event] = cell

    # The PDU events share one pattern outside the states that expect them:
    # AA-1 in Sta2, AA-8 from Sta3 to Sta12, and AA-6 (ignore) in Sta13. No PDU
    # can arrive in Sta1 or Sta4, where no transport connection is open.
    def unexpected_pdu(sta13: str = "AA-6") -> dict[State, tuple[str, State | None]]:
        cells: dict[State, tuple[str, State | None]] = {S.Sta2: ("AA-1", S.Sta13)}
        for number in (3, 5, 6, 7, 8, 9, 10, 11, 12):
            cells[S(number)] = ("AA-8", S.Sta13)
        cells[S.Sta13] = (sta13, S.Sta13)
        return cells

    row(Event.Evt1, {S.Sta1: ("AE-1", S.Sta4)})
    row(Event.Evt2, {S.Sta4: ("AE-2", S.Sta5)})
    row(Event.Evt3, {**unexpected_pdu(), S.Sta5: ("AE-3", S.Sta6)})
    row(Event.Evt4, {**unexpected_pdu(), S.Sta5: ("AE-4", S.Sta1)})
    row(Event.Evt5, {S.Sta1: ("AE-5", S.Sta2)})
    # AE-6 chooses Sta3 or Sta13 by whether the request is acceptable.
    row(Event.Evt6, {**unexpected_pdu("AA-7"), S.Sta2: ("AE-6", None)})
    row(Event.Evt7, {S.Sta3: ("AE-7", S.Sta6)})
    row(Event.Evt8, {S.Sta3: ("AE-8", S.Sta13)})
    row(Event.Evt9, {S.Sta6: ("DT-1", S.Sta6), S.Sta8: ("AR-7", S.Sta8)})
    row(
        Event.Evt10,
        {**unexpected_pdu(), S.Sta6: ("DT-2", S.Sta6), S.Sta7: ("AR-6", S.Sta7)},
    )
    row(Event.Evt11, {S.Sta6: ("AR-1", S.Sta7)})
    # AR-8 chooses Sta9 on the association requestor and Sta10 on the acceptor.
    row(
        Event.Evt12,
        {**unexpected_pdu(), S.Sta6: ("AR-2", S.Sta8), S.Sta7: ("AR-8", None)},
    )
    row(
        Event.Evt13,
        {
            **unexpected_pdu(),
            S.Sta7: ("AR-3", S.Sta1),
            S.Sta10: ("AR-10", S.Sta12),
            S.Sta11: ("AR-3", S.Sta1),
        },
    )
    row(
        Event.Evt14,
        {
            S.Sta8: ("AR-4", S.Sta13),
            S.Sta9: ("AR-9", S.Sta11),
            S.Sta12: ("AR-4", S.Sta13),
        },
    )
    abort_request = {S(number): ("AA-1", S.Sta13) for number in range(3, 13)}
    row(Event.Evt15, {**abort_request, S.Sta4: ("AA-2", S.Sta1)})
    abort_pdu = {S(number): ("AA-3", S.Sta1) for number in (3, *range(5, 13))}
    row(Event.Evt16, {**abort_pdu, S.Sta2: ("AA-2", S.Sta1), S.Sta13: ("AA-2", S.Sta1)})
    closed = {S(number): ("AA-4", S.Sta1) for number in range(3, 13)}
    row(Event.Evt17, {**closed, S.Sta2: ("AA-5", S.Sta1), S.Sta13: ("AR-5", S.Sta1)})
    row(Event.Evt18, {S.Sta2: ("AA-2", S.Sta1), S.Sta13: ("AA-2", S.Sta1)})
    row(Event.Evt19, unexpected_pdu("AA-7"))
    return table


#: PS3.8 Table 9-10: (state, event) to (action, next state). The next state is
#: L{None} for AE-6 and AR-8, whose definitions choose it. A pair missing here
#: is a cell the table leaves empty, see L{UNLISTED}.
TRANSITIONS: dict[tuple[State, Event], tuple[str, State | None]] = _build_transitions()

#: The reaction to an event in a state whose cell Table 9-10 leaves empty. The
#: standard defines none. Every such event is local (a primitive from our own
#: service user at the wrong time, or a transport or timer event that cannot
#: occur in that state), or a PDU in a state without a transport connection.
#: Each state takes the table's own reaction to a protocol error there. That is
#: AA-8 while an association is set up, in use or being released, and AA-1 in
#: Sta2, as for an unexpected PDU. Sta13 ignores the event (AA-6), and Sta4
#: abandons the connection attempt (AA-2, as for an A-ABORT request). Sta1 has
#: no connection to act on, so it drops the event, which covers the transport
#: closed indication that follows our own close.
UNLISTED: dict[State, tuple[str, State]] = {
    State.Sta1: ("ignore", State.Sta1),
    State.Sta2: ("AA-1", State.Sta13),
    State.Sta4: ("AA-2", State.Sta1),
    State.Sta13: ("AA-6", State.Sta13),
    **{State(number): ("AA-8", State.Sta13) for number in (3, *range(5, 13))},
}

# Events that carry a received PDU. AA-7 and AA-8 give reason "unexpected PDU"
# for these, the reason passed with Evt19 for an invalid PDU, and "not
# specified" for local events.
_PDU_EVENTS = frozenset(
    {Event.Evt3, Event.Evt4, Event.Evt6, Event.Evt10, Event.Evt12, Event.Evt13}
)

_EVENT_BY_PDU_TYPE: dict[type, Event] = {
    AAssociateAC: Event.Evt3,
    AAssociateRJ: Event.Evt4,
    AAssociateRQ: Event.Evt6,
    PDataTF: Event.Evt10,
    AReleaseRQ: Event.Evt12,
    AReleaseRP: Event.Evt13,
    AAbort: Event.Evt16,
}


class IAssociationActions(Protocol):
    """
    The primitives an L{AssociationMachine} issues: to the transport, to the
    ARTIM timer and to the local service user.

    The machine calls these from inside a transition. A method may issue a new
    event to the machine at once (for example a service user responding to an
    A-ASSOCIATE indication, or a transport reporting its close), and the
    machine runs that event after the current transition has finished.
    """

    def send_pdu(self, pdu: Any) -> None:
        """
        Write one PDU to the transport connection.
        """

    def open_transport(self) -> None:
        """
        Issue a TRANSPORT CONNECT request (association requestor). Success is
        reported with L{AssociationMachine.transport_connected} and failure
        with L{AssociationMachine.transport_closed}.
        """

    def close_transport(self) -> None:
        """
        Close the transport connection, after any queued PDUs are written.
        """

    def start_artim(self) -> None:
        """
        Start the ARTIM timer, or restart it if it is running. On expiry the
        provider calls L{AssociationMachine.artim_expired}.
        """

    def stop_artim(self) -> None:
        """
        Stop the ARTIM timer if it is running.
        """

    def check_associate_rq(self, rq: AAssociateRQ) -> AAssociateRJ | None:
        """
        Decide whether the service provider accepts an A-ASSOCIATE-RQ (AE-6),
        for example by its protocol version and called AE title.

        @return: L{None} to pass the request to the service user, or the
            A-ASSOCIATE-RJ PDU to send instead.
        """

    def associate_indication(self, rq: AAssociateRQ) -> None:
        """
        Issue an A-ASSOCIATE indication. The user responds with
        L{AssociationMachine.associate_response_accept} or
        L{AssociationMachine.associate_response_reject}.
        """

    def associate_confirm_accept(self, ac: AAssociateAC) -> None:
        """
        Issue an A-ASSOCIATE confirmation (accept).
        """

    def associate_confirm_reject(self, rj: AAssociateRJ) -> None:
        """
        Issue an A-ASSOCIATE confirmation (reject).
        """

    def data_indication(self, pdata: PDataTF) -> None:
        """
        Issue a P-DATA indication.
        """

    def release_indication(self) -> None:
        """
        Issue an A-RELEASE indication, also on a release collision. The user
        responds with L{AssociationMachine.release_response}.
        """

    def release_confirm(self) -> None:
        """
        Issue an A-RELEASE confirmation.
        """

    def abort_indication(self, source: int, reason: int) -> None:
        """
        Issue an A-ABORT indication: the peer's service user aborted.
        """

    def provider_abort_indication(self, reason: int) -> None:
        """
        Issue an A-P-ABORT indication: a service provider aborted, or the
        transport connection closed under an association.

        @param reason: an A-ABORT reason value (PS3.8 Table 9-26).
        """


_Action = Callable[["AssociationMachine", Event, Any], "State | None"]
_ACTIONS: dict[str, _Action] = {}


def _action(name: str) -> Callable[[_Action], _Action]:
    """
    Register a method as the implementation of the action C{name}.
    """

    def register(function: _Action) -> _Action:
        _ACTIONS[name] = function
        return function

    return register


class AssociationMachine:
    """
    The Upper Layer state machine of one transport connection, on either side
    of an association.

    Every event goes through L{handle}, or through the helper named after its
    primitive. An event issued while a transition runs (from inside an
    L{IAssociationActions} method) is queued and runs once that transition has
    set its next state, so callbacks may respond at once.

    @ivar last_action: the name of the action the latest event ran (C{"AE-2"},
        C{"AA-8"}, or C{"ignore"} for an event dropped in Sta1), L{None} before
        the first event.
    """

    def __init__(self, actions: IAssociationActions) -> None:
        """
        @param actions: the provider of transport, timer and service-user
            primitives.
        """
        self._actions = actions
        self._state = State.Sta1
        self._requestor = False
        self._pending_rq: AAssociateRQ | None = None
        self._queue: deque[tuple[Event, Any]] = deque()
        self._running = False
        self.last_action: str | None = None

    @property
    def state(self) -> State:
        """
        The current state.
        """
        return self._state

    @property
    def is_requestor(self) -> bool:
        """
        Whether this side requested the association (Evt1) rather than accepted
        a transport connection (Evt5). AR-8 uses it on a release collision.
        """
        return self._requestor

    def handle(self, event: Event, argument: Any = None) -> None:
        """
        Run one event through Table 9-10.

        @param argument: the event's PDU for Evt1, Evt3, Evt4, Evt6 to Evt10,
            Evt12, Evt13 and Evt16, the A-ABORT reason for Evt19, or L{None}
            for the other events.
        """
        self._queue.append((event, argument))
        if self._running:
            return
        self._running = True
        try:
            while self._queue:
                queued_event, queued_argument = self._queue.popleft()
                self._run(queued_event, queued_argument)
        finally:
            self._running = False
            self._queue.clear()

    def _run(self, event: Event, argument: Any) -> None:
        cell = TRANSITIONS.get((self._state, event))
        if cell is None:
            cell = UNLISTED[self._state]
            self._log_unlisted(event, cell[0])
        name, next_state = cell
        self.last_action = name
        chosen = _ACTIONS[name](self, event, argument)
        if next_state is None:
            # AE-6 and AR-8 return the state their definitions choose.
            next_state = chosen
        assert next_state is not None, name
        self._state = next_state

    def _log_unlisted(self, event: Event, action: str) -> None:
        if self._state in (State.Sta1, State.Sta13):
            # Benign: the association is gone, as after our own close.
            log.debug(
                "Dropping {event} in {state}", event=event.name, state=self._state.name
            )
        else:
            log.warn(  # noqa: G010 (twisted.logger has no warning method)
                "Unexpected {event} in {state}, running {action}",
                event=event.name,
                state=self._state.name,
                action=action,
            )

    def associate_request(self, rq: AAssociateRQ) -> None:
        """
        Issue an A-ASSOCIATE request primitive (Evt1): connect, then send C{rq}.
        """
        self.handle(Event.Evt1, rq)

    def transport_connected(self) -> None:
        """
        Report that the requested transport connection is open (Evt2).
        """
        self.handle(Event.Evt2)

    def transport_accepted(self) -> None:
        """
        Report an incoming transport connection (Evt5).
        """
        self.handle(Event.Evt5)

    def received_pdu(self, pdu: object) -> None:
        """
        Report a decoded PDU from the peer (Evt3, Evt4, Evt6, Evt10, Evt12,
        Evt13 or Evt16 by its type). Any other object is an unrecognized PDU
        (Evt19).
        """
        event = _EVENT_BY_PDU_TYPE.get(type(pdu))
        if event is None:
            self.handle(Event.Evt19, ABORT_REASON_UNRECOGNIZED_PDU)
        else:
            self.handle(event, pdu)

    def associate_response_accept(self, ac: AAssociateAC) -> None:
        """
        Issue an A-ASSOCIATE response primitive that accepts (Evt7).
        """
        self.handle(Event.Evt7, ac)

    def associate_response_reject(self, rj: AAssociateRJ) -> None:
        """
        Issue an A-ASSOCIATE response primitive that rejects (Evt8).
        """
        self.handle(Event.Evt8, rj)

    def data_request(self, pdata: PDataTF) -> None:
        """
        Issue a P-DATA request primitive (Evt9).
        """
        self.handle(Event.Evt9, pdata)

    def release_request(self) -> None:
        """
        Issue an A-RELEASE request primitive (Evt11).
        """
        self.handle(Event.Evt11)

    def release_response(self) -> None:
        """
        Issue an A-RELEASE response primitive (Evt14).
        """
        self.handle(Event.Evt14)

    def abort_request(self) -> None:
        """
        Issue an A-ABORT request primitive (Evt15).
        """
        self.handle(Event.Evt15)

    def transport_closed(self) -> None:
        """
        Report that the transport connection closed or failed to open (Evt17).
        """
        self.handle(Event.Evt17)

    def artim_expired(self) -> None:
        """
        Report that the ARTIM timer expired (Evt18).
        """
        self.handle(Event.Evt18)

    def invalid_pdu(self, reason: int = ABORT_REASON_NOT_SPECIFIED) -> None:
        """
        Report bytes from the peer that are not a valid PDU (Evt19).

        @param reason: the A-ABORT reason to send (PS3.8 Table 9-26), such as
            L{ABORT_REASON_UNRECOGNIZED_PDU}.
        """
        self.handle(Event.Evt19, reason)

    def _abort_reason(self, event: Event, argument: Any) -> int:
        """
        Return the A-ABORT reason a service-provider abort gives for C{event}.
        """
        if event is Event.Evt19 and isinstance(argument, int):
            return argument
        if event in _PDU_EVENTS:
            return ABORT_REASON_UNEXPECTED_PDU
        return ABORT_REASON_NOT_SPECIFIED

    # Table 9-6, association establishment.

    @_action("AE-1")
    def _ae_1(self, event: Event, rq: Any) -> None:
        """
        Issue a TRANSPORT CONNECT request and keep C{rq} for AE-2.
        """
        self._requestor = True
        self._pending_rq = rq
        self._actions.open_transport()

    @_action("AE-2")
    def _ae_2(self, event: Event, argument: Any) -> None:
        """
        Send the A-ASSOCIATE-RQ PDU kept by AE-1.
        """
        rq, self._pending_rq = self._pending_rq, None
        self._actions.send_pdu(rq)

    @_action("AE-3")
    def _ae_3(self, event: Event, ac: Any) -> None:
        """
        Issue an A-ASSOCIATE confirmation (accept).
        """
        self._actions.associate_confirm_accept(ac)

    @_action("AE-4")
    def _ae_4(self, event: Event, rj: Any) -> None:
        """
        Issue an A-ASSOCIATE confirmation (reject) and close the transport.
        """
        self._actions.associate_confirm_reject(rj)
        self._actions.close_transport()

    @_action("AE-5")
    def _ae_5(self, event: Event, argument: Any) -> None:
        """
        Start ARTIM for an accepted transport connection. The transport
        connection response needs no call, because the connection is open
        once it is reported.
        """
        self._requestor = False
        self._actions.start_artim()

    @_action("AE-6")
    def _ae_6(self, event: Event, rq: Any) -> State:
        """
        Stop ARTIM, then issue an A-ASSOCIATE indication if the service
        provider accepts C{rq}, or send its A-ASSOCIATE-RJ and start ARTIM.
        """
        self._actions.stop_artim()
        rejection = self._actions.check_associate_rq(rq)
        if rejection is None:
            self._actions.associate_indication(rq)
            return State.Sta3
        self._actions.send_pdu(rejection)
        self._actions.start_artim()
        return State.Sta13

    @_action("AE-7")
    def _ae_7(self, event: Event, ac: Any) -> None:
        """
        Send the A-ASSOCIATE-AC PDU.
        """
        self._actions.send_pdu(ac)

    @_action("AE-8")
    def _ae_8(self, event: Event, rj: Any) -> None:
        """
        Send the A-ASSOCIATE-RJ PDU and start ARTIM.
        """
        self._actions.send_pdu(rj)
        self._actions.start_artim()

    # Table 9-7, data transfer.

    @_action("DT-1")
    def _dt_1(self, event: Event, pdata: Any) -> None:
        """
        Send the P-DATA-TF PDU.
        """
        self._actions.send_pdu(pdata)

    @_action("DT-2")
    def _dt_2(self, event: Event, pdata: Any) -> None:
        """
        Issue a P-DATA indication.
        """
        self._actions.data_indication(pdata)

    # Table 9-8, association release.

    @_action("AR-1")
    def _ar_1(self, event: Event, argument: Any) -> None:
        """
        Send an A-RELEASE-RQ PDU.
        """
        self._actions.send_pdu(AReleaseRQ())

    @_action("AR-2")
    def _ar_2(self, event: Event, argument: Any) -> None:
        """
        Issue an A-RELEASE indication.
        """
        self._actions.release_indication()

    @_action("AR-3")
    def _ar_3(self, event: Event, argument: Any) -> None:
        """
        Issue an A-RELEASE confirmation and close the transport.
        """
        self._actions.release_confirm()
        self._actions.close_transport()

    @_action("AR-4")
    def _ar_4(self, event: Event, argument: Any) -> None:
        """
        Send an A-RELEASE-RP PDU and start ARTIM.
        """
        self._actions.send_pdu(AReleaseRP())
        self._actions.start_artim()

    @_action("AR-5")
    def _ar_5(self, event: Event, argument: Any) -> None:
        """
        Stop ARTIM.
        """
        self._actions.stop_artim()

    @_action("AR-6")
    def _ar_6(self, event: Event, pdata: Any) -> None:
        """
        Issue a P-DATA indication while awaiting the A-RELEASE-RP.
        """
        self._actions.data_indication(pdata)

    @_action("AR-7")
    def _ar_7(self, event: Event, pdata: Any) -> None:
        """
        Send a P-DATA-TF PDU while awaiting the local A-RELEASE response.
        """
        self._actions.send_pdu(pdata)

    @_action("AR-8")
    def _ar_8(self, event: Event, argument: Any) -> State:
        """
        Issue an A-RELEASE indication on a release collision.
        """
        self._actions.release_indication()
        return State.Sta9 if self._requestor else State.Sta10

    @_action("AR-9")
    def _ar_9(self, event: Event, argument: Any) -> None:
        """
        Send an A-RELEASE-RP PDU (release collision, requestor side).
        """
        self._actions.send_pdu(AReleaseRP())

    @_action("AR-10")
    def _ar_10(self, event: Event, argument: Any) -> None:
        """
        Issue an A-RELEASE confirmation (release collision, acceptor side).
        """
        self._actions.release_confirm()

    # Table 9-9, association abort.

    @_action("AA-1")
    def _aa_1(self, event: Event, argument: Any) -> None:
        """
        Send an A-ABORT PDU with the service-user source and start or restart
        ARTIM. The standard names this source also where Table 9-10 runs AA-1
        for an unexpected PDU in Sta2.
        """
        abort = AAbort(
            source=ABORT_SOURCE_SERVICE_USER, reason=ABORT_REASON_NOT_SPECIFIED
        )
        self._actions.send_pdu(abort)
        self._actions.start_artim()

    @_action("AA-2")
    def _aa_2(self, event: Event, argument: Any) -> None:
        """
        Stop ARTIM if it is running and close the transport.
        """
        self._actions.stop_artim()
        self._actions.close_transport()

    @_action("AA-3")
    def _aa_3(self, event: Event, abort: Any) -> None:
        """
        Issue an A-ABORT indication if the peer's service user aborted, an
        A-P-ABORT indication otherwise, and close the transport.
        """
        if abort.source == ABORT_SOURCE_SERVICE_USER:
            self._actions.abort_indication(abort.source, abort.reason)
        else:
            self._actions.provider_abort_indication(abort.reason)
        self._actions.close_transport()

    @_action("AA-4")
    def _aa_4(self, event: Event, argument: Any) -> None:
        """
        Issue an A-P-ABORT indication.
        """
        self._actions.provider_abort_indication(ABORT_REASON_NOT_SPECIFIED)

    @_action("AA-5")
    def _aa_5(self, event: Event, argument: Any) -> None:
        """
        Stop ARTIM.
        """
        self._actions.stop_artim()

    @_action("AA-6")
    def _aa_6(self, event: Event, argument: Any) -> None:
        """
        Ignore the PDU.
        """

    @_action("AA-7")
    def _aa_7(self, event: Event, argument: Any) -> None:
        """
        Send an A-ABORT PDU with the service-provider source.
        """
        reason = self._abort_reason(event, argument)
        self._actions.send_pdu(
            AAbort(source=ABORT_SOURCE_SERVICE_PROVIDER, reason=reason)
        )

    @_action("AA-8")
    def _aa_8(self, event: Event, argument: Any) -> None:
        """
        Send an A-ABORT PDU with the service-provider source, issue an
        A-P-ABORT indication and start ARTIM.
        """
        reason = self._abort_reason(event, argument)
        self._actions.send_pdu(
            AAbort(source=ABORT_SOURCE_SERVICE_PROVIDER, reason=reason)
        )
        self._actions.provider_abort_indication(reason)
        self._actions.start_artim()

    @_action("ignore")
    def _ignore(self, event: Event, argument: Any) -> None:
        """
        Drop an event in Sta1, where no connection exists to act on.
        """
