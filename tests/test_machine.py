"""
Tests for L{twistedpacs.ul.machine}.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from twisted.trial.unittest import SynchronousTestCase

from twistedpacs.ul.machine import (
    TRANSITIONS,
    AssociationMachine,
    Event,
    State,
)
from twistedpacs.ul.pdu import (
    ABORT_REASON_INVALID_PDU_PARAMETER_VALUE,
    ABORT_REASON_NOT_SPECIFIED,
    ABORT_REASON_UNEXPECTED_PDU,
    ABORT_REASON_UNRECOGNIZED_PDU,
    ABORT_SOURCE_SERVICE_PROVIDER,
    ABORT_SOURCE_SERVICE_USER,
    REJECT_ACSE_PROTOCOL_VERSION_NOT_SUPPORTED,
    REJECT_RESULT_PERMANENT,
    REJECT_SOURCE_SERVICE_PROVIDER_ACSE,
    REJECT_SOURCE_SERVICE_USER,
    REJECT_USER_NO_REASON_GIVEN,
    AAbort,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    AReleaseRP,
    AReleaseRQ,
    PDataTF,
    PresentationDataValue,
)

# PS3.8 Table 9-10, transcribed from the standard: one row per event, one
# column per state from Sta1 to Sta13, "." where the table leaves the cell
# empty.
TABLE_9_10 = """
Evt1  AE-1  .     .     .     .     .     .     .     .     .     .     .     .
Evt2  .     .     .     AE-2  .     .     .     .     .     .     .     .     .
Evt3  .     AA-1  AA-8  .     AE-3  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-6
Evt4  .     AA-1  AA-8  .     AE-4  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-6
Evt5  AE-5  .     .     .     .     .     .     .     .     .     .     .     .
Evt6  .     AE-6  AA-8  .     AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-7
Evt7  .     .     AE-7  .     .     .     .     .     .     .     .     .     .
Evt8  .     .     AE-8  .     .     .     .     .     .     .     .     .     .
Evt9  .     .     .     .     .     DT-1  .     AR-7  .     .     .     .     .
Evt10 .     AA-1  AA-8  .     AA-8  DT-2  AR-6  AA-8  AA-8  AA-8  AA-8  AA-8  AA-6
Evt11 .     .     .     .     .     AR-1  .     .     .     .     .     .     .
Evt12 .     AA-1  AA-8  .     AA-8  AR-2  AR-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-6
Evt13 .     AA-1  AA-8  .     AA-8  AA-8  AR-3  AA-8  AA-8  AR-10 AR-3  AA-8  AA-6
Evt14 .     .     .     .     .     .     .     AR-4  AR-9  .     .     AR-4  .
Evt15 .     .     AA-1  AA-2  AA-1  AA-1  AA-1  AA-1  AA-1  AA-1  AA-1  AA-1  .
Evt16 .     AA-2  AA-3  .     AA-3  AA-3  AA-3  AA-3  AA-3  AA-3  AA-3  AA-3  AA-2
Evt17 .     AA-5  AA-4  AA-4  AA-4  AA-4  AA-4  AA-4  AA-4  AA-4  AA-4  AA-4  AR-5
Evt18 .     AA-2  .     .     .     .     .     .     .     .     .     .     AA-2
Evt19 .     AA-1  AA-8  .     AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-7
"""

# The next states from the action definitions of PS3.8 Tables 9-6 to 9-9.
# AE-6 goes to Sta3 or Sta13 and AR-8 to Sta9 or Sta10.
NEXT_STATES = {
    "AE-1": {4},
    "AE-2": {5},
    "AE-3": {6},
    "AE-4": {1},
    "AE-5": {2},
    "AE-6": {3, 13},
    "AE-7": {6},
    "AE-8": {13},
    "DT-1": {6},
    "DT-2": {6},
    "AR-1": {7},
    "AR-2": {8},
    "AR-3": {1},
    "AR-4": {13},
    "AR-5": {1},
    "AR-6": {7},
    "AR-7": {8},
    "AR-8": {9, 10},
    "AR-9": {11},
    "AR-10": {12},
    "AA-1": {13},
    "AA-2": {1},
    "AA-3": {1},
    "AA-4": {1},
    "AA-5": {1},
    "AA-6": {13},
    "AA-7": {13},
    "AA-8": {13},
}

# Our choice for the empty cells, which the standard does not fill: nothing in
# Sta1, AA-1 in Sta2, AA-2 in Sta4, AA-6 in Sta13 and AA-8 elsewhere.
UNLISTED_ACTIONS = {1: "ignore", 2: "AA-1", 4: "AA-2", 13: "AA-6"}
UNLISTED_NEXT_STATES = {"ignore": {1}}


def parse_table(text: str) -> dict[tuple[State, Event], str]:
    """
    Parse L{TABLE_9_10} into a mapping of its non-empty cells.
    """
    cells = {}
    for line in text.strip().splitlines():
        event_name, *row = line.split()
        assert len(row) == 13, line
        for number, cell in enumerate(row, start=1):
            if cell != ".":
                cells[State(number), Event[event_name]] = cell
    return cells


TABLE = parse_table(TABLE_9_10)

RQ = AAssociateRQ(
    called_ae_title="STORESCP",
    calling_ae_title="STORESCU",
    presentation_contexts=(),
    user_information=None,
)
AC = AAssociateAC(
    called_ae_title="STORESCP",
    calling_ae_title="STORESCU",
    presentation_contexts=(),
    user_information=None,
)
RJ = AAssociateRJ(
    result=REJECT_RESULT_PERMANENT,
    source=REJECT_SOURCE_SERVICE_USER,
    reason=REJECT_USER_NO_REASON_GIVEN,
)
PROVIDER_RJ = AAssociateRJ(
    result=REJECT_RESULT_PERMANENT,
    source=REJECT_SOURCE_SERVICE_PROVIDER_ACSE,
    reason=REJECT_ACSE_PROTOCOL_VERSION_NOT_SUPPORTED,
)
PDATA_IN = PDataTF(pdvs=(PresentationDataValue(1, 0x03, b"\x01\x02"),))
PDATA_OUT = PDataTF(pdvs=(PresentationDataValue(3, 0x02, b"\x03\x04"),))
USER_ABORT = AAbort(source=ABORT_SOURCE_SERVICE_USER, reason=0)
INVALID_REASON = ABORT_REASON_INVALID_PDU_PARAMETER_VALUE

# The argument each event carries in the table-driven test.
ARGUMENTS: dict[Event, Any] = {
    Event.Evt1: RQ,
    Event.Evt3: AC,
    Event.Evt4: RJ,
    Event.Evt6: RQ,
    Event.Evt7: AC,
    Event.Evt8: RJ,
    Event.Evt9: PDATA_OUT,
    Event.Evt10: PDATA_IN,
    Event.Evt12: AReleaseRQ(),
    Event.Evt13: AReleaseRP(),
    Event.Evt16: USER_ABORT,
    Event.Evt19: INVALID_REASON,
}

PDU_EVENTS = {
    Event.Evt3,
    Event.Evt4,
    Event.Evt6,
    Event.Evt10,
    Event.Evt12,
    Event.Evt13,
}


class RecordingActions:
    """
    An actions provider that records every call in order.

    @ivar calls: one tuple per call: the method name, then its arguments.
    @ivar rejection: what L{check_associate_rq} returns.
    @ivar artim_running: whether the last ARTIM call was a start.
    @ivar hooks: callables run after the method of that name is recorded.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.rejection: AAssociateRJ | None = None
        self.artim_running = False
        self.hooks: dict[str, Any] = {}

    def _record(self, name: str, *arguments: Any) -> None:
        self.calls.append((name, *arguments))
        hook = self.hooks.get(name)
        if hook is not None:
            hook()

    def send_pdu(self, pdu: Any) -> None:
        self._record("send_pdu", pdu)

    def open_transport(self) -> None:
        self._record("open_transport")

    def close_transport(self) -> None:
        self._record("close_transport")

    def start_artim(self) -> None:
        self.artim_running = True
        self._record("start_artim")

    def stop_artim(self) -> None:
        self.artim_running = False
        self._record("stop_artim")

    def check_associate_rq(self, rq: AAssociateRQ) -> AAssociateRJ | None:
        self._record("check_associate_rq", rq)
        return self.rejection

    def associate_indication(self, rq: AAssociateRQ) -> None:
        self._record("associate_indication", rq)

    def associate_confirm_accept(self, ac: AAssociateAC) -> None:
        self._record("associate_confirm_accept", ac)

    def associate_confirm_reject(self, rj: AAssociateRJ) -> None:
        self._record("associate_confirm_reject", rj)

    def data_indication(self, pdata: PDataTF) -> None:
        self._record("data_indication", pdata)

    def release_indication(self) -> None:
        self._record("release_indication")

    def release_confirm(self) -> None:
        self._record("release_confirm")

    def abort_indication(self, source: int, reason: int) -> None:
        self._record("abort_indication", source, reason)

    def provider_abort_indication(self, reason: int) -> None:
        self._record("provider_abort_indication", reason)


# Event sequences that lead a new machine to each state, on the requestor and
# on the acceptor side; together they reach all 13 states.
_REQUESTOR_SIX = [Event.Evt1, Event.Evt2, Event.Evt3]
_ACCEPTOR_SIX = [Event.Evt5, Event.Evt6, Event.Evt7]
REQUESTOR_PATHS = {
    State.Sta1: [],
    State.Sta4: [Event.Evt1],
    State.Sta5: [Event.Evt1, Event.Evt2],
    State.Sta6: _REQUESTOR_SIX,
    State.Sta7: [*_REQUESTOR_SIX, Event.Evt11],
    State.Sta8: [*_REQUESTOR_SIX, Event.Evt12],
    State.Sta9: [*_REQUESTOR_SIX, Event.Evt11, Event.Evt12],
    State.Sta11: [*_REQUESTOR_SIX, Event.Evt11, Event.Evt12, Event.Evt14],
    State.Sta13: [*_REQUESTOR_SIX, Event.Evt15],
}
ACCEPTOR_PATHS = {
    State.Sta1: [],
    State.Sta2: [Event.Evt5],
    State.Sta3: [Event.Evt5, Event.Evt6],
    State.Sta6: _ACCEPTOR_SIX,
    State.Sta7: [*_ACCEPTOR_SIX, Event.Evt11],
    State.Sta8: [*_ACCEPTOR_SIX, Event.Evt12],
    State.Sta10: [*_ACCEPTOR_SIX, Event.Evt11, Event.Evt12],
    State.Sta12: [*_ACCEPTOR_SIX, Event.Evt11, Event.Evt12, Event.Evt13],
    State.Sta13: [*_ACCEPTOR_SIX, Event.Evt15],
}


def machine_in(
    state: State, requestor: bool
) -> tuple[AssociationMachine, RecordingActions]:
    """
    Drive a new machine to C{state} on one side and clear its recorded calls.
    """
    actions = RecordingActions()
    machine = AssociationMachine(actions)
    paths = REQUESTOR_PATHS if requestor else ACCEPTOR_PATHS
    for event in paths[state]:
        machine.handle(event, ARGUMENTS.get(event))
    assert machine.state is state, (machine.state, state)
    actions.calls.clear()
    return machine, actions


def provider_abort(reason: int) -> AAbort:
    """
    Return the A-ABORT PDU a service provider sends with C{reason}.
    """
    return AAbort(source=ABORT_SOURCE_SERVICE_PROVIDER, reason=reason)


def expected_calls(action: str, event: Event) -> list[tuple[Any, ...]]:
    """
    Return the calls that C{action} makes when C{event} runs it with the
    argument from L{ARGUMENTS}, following the action's definition in PS3.8.
    """
    argument = ARGUMENTS.get(event)
    if event is Event.Evt19:
        reason = INVALID_REASON
    elif event in PDU_EVENTS:
        reason = ABORT_REASON_UNEXPECTED_PDU
    else:
        reason = ABORT_REASON_NOT_SPECIFIED
    calls: dict[str, list[tuple[Any, ...]]] = {
        "AE-1": [("open_transport",)],
        "AE-2": [("send_pdu", RQ)],
        "AE-3": [("associate_confirm_accept", argument)],
        "AE-4": [("associate_confirm_reject", argument), ("close_transport",)],
        "AE-5": [("start_artim",)],
        "AE-6": [
            ("stop_artim",),
            ("check_associate_rq", argument),
            ("associate_indication", argument),
        ],
        "AE-7": [("send_pdu", argument)],
        "AE-8": [("send_pdu", argument), ("start_artim",)],
        "DT-1": [("send_pdu", argument)],
        "DT-2": [("data_indication", argument)],
        "AR-1": [("send_pdu", AReleaseRQ())],
        "AR-2": [("release_indication",)],
        "AR-3": [("release_confirm",), ("close_transport",)],
        "AR-4": [("send_pdu", AReleaseRP()), ("start_artim",)],
        "AR-5": [("stop_artim",)],
        "AR-6": [("data_indication", argument)],
        "AR-7": [("send_pdu", argument)],
        "AR-8": [("release_indication",)],
        "AR-9": [("send_pdu", AReleaseRP())],
        "AR-10": [("release_confirm",)],
        "AA-1": [("send_pdu", USER_ABORT), ("start_artim",)],
        "AA-2": [("stop_artim",), ("close_transport",)],
        "AA-3": [
            ("abort_indication", ABORT_SOURCE_SERVICE_USER, 0),
            ("close_transport",),
        ],
        "AA-4": [("provider_abort_indication", ABORT_REASON_NOT_SPECIFIED)],
        "AA-5": [("stop_artim",)],
        "AA-6": [],
        "AA-7": [("send_pdu", provider_abort(reason))],
        "AA-8": [
            ("send_pdu", provider_abort(reason)),
            ("provider_abort_indication", reason),
            ("start_artim",),
        ],
        "ignore": [],
    }
    return calls[action]


class TransitionTableTests(SynchronousTestCase):
    """
    Tests for L{TRANSITIONS} and for every cell of it run on a machine.
    """

    def test_table_cells_match_standard(self) -> None:
        """
        Every cell of TRANSITIONS names the action Table 9-10 gives it.
        """
        for state in State:
            for event in Event:
                cell = TRANSITIONS.get((state, event))
                action = None if cell is None else cell[0]
                self.assertEqual(action, TABLE.get((state, event)), (state, event))

    def test_table_next_states_match_definitions(self) -> None:
        """
        Each next state is the one its action's definition gives, or None where
        the definition chooses between two.
        """
        for (state, event), (action, next_state) in TRANSITIONS.items():
            expected = NEXT_STATES[action]
            if len(expected) == 1:
                self.assertEqual(next_state, State(*expected), (state, event))
            else:
                self.assertIsNone(next_state, (state, event))

    def test_table_size(self) -> None:
        """
        Table 9-10 has 123 non-empty cells.
        """
        self.assertEqual(len(TABLE), 123)
        self.assertEqual(len(TRANSITIONS), 123)

    def test_machine_every_cell(self) -> None:
        """
        Each event in each state, on both sides where the state is reachable,
        runs the table's action, makes that action's calls and enters its next
        state.
        """
        sides = [(True, REQUESTOR_PATHS), (False, ACCEPTOR_PATHS)]
        checked = set()
        for requestor, paths in sides:
            for state in paths:
                for event in Event:
                    machine, actions = machine_in(state, requestor)
                    machine.handle(event, ARGUMENTS.get(event))
                    action = TABLE.get(
                        (state, event), UNLISTED_ACTIONS.get(state.value, "AA-8")
                    )
                    where = (state, event, requestor)
                    self.assertEqual(machine.last_action, action, where)
                    self.assertEqual(
                        actions.calls, expected_calls(action, event), where
                    )
                    next_states = (
                        NEXT_STATES.get(action) or UNLISTED_NEXT_STATES[action]
                    )
                    self.assertIn(machine.state.value, next_states, where)
                    checked.add((state, event))
        self.assertEqual(len(checked), 13 * 19)

    def test_ae_6_acceptable_sta3(self) -> None:
        """
        AE-6 enters Sta3 when the service provider accepts the request.
        """
        machine, actions = machine_in(State.Sta2, requestor=False)
        machine.received_pdu(RQ)
        self.assertEqual(
            actions.calls,
            [
                ("stop_artim",),
                ("check_associate_rq", RQ),
                ("associate_indication", RQ),
            ],
        )
        self.assertIs(machine.state, State.Sta3)

    def test_ae_6_rejected_sta13(self) -> None:
        """
        AE-6 sends the provider's A-ASSOCIATE-RJ, restarts ARTIM and enters
        Sta13 when the service provider rejects the request.
        """
        machine, actions = machine_in(State.Sta2, requestor=False)
        actions.rejection = PROVIDER_RJ
        machine.received_pdu(RQ)
        self.assertEqual(
            actions.calls,
            [
                ("stop_artim",),
                ("check_associate_rq", RQ),
                ("send_pdu", PROVIDER_RJ),
                ("start_artim",),
            ],
        )
        self.assertIs(machine.state, State.Sta13)

    def test_ar_8_side_chooses_state(self) -> None:
        """
        AR-8 enters Sta9 on the requestor and Sta10 on the acceptor.
        """
        requestor, _ = machine_in(State.Sta7, requestor=True)
        acceptor, _ = machine_in(State.Sta7, requestor=False)
        requestor.received_pdu(AReleaseRQ())
        acceptor.received_pdu(AReleaseRQ())
        self.assertIs(requestor.state, State.Sta9)
        self.assertIs(acceptor.state, State.Sta10)
        self.assertTrue(requestor.is_requestor)
        self.assertFalse(acceptor.is_requestor)


class LifecycleTests(SynchronousTestCase):
    """
    Tests for whole associations driven through the typed helpers.
    """

    def test_acceptor_lifecycle(self) -> None:
        """
        An acceptor runs ARTIM until the A-ASSOCIATE-RQ, accepts, exchanges
        data, responds to the peer's release and returns to Sta1 on the close.
        """
        actions = RecordingActions()
        machine = AssociationMachine(actions)
        machine.transport_accepted()
        self.assertIs(machine.state, State.Sta2)
        machine.received_pdu(RQ)
        self.assertIs(machine.state, State.Sta3)
        machine.associate_response_accept(AC)
        self.assertIs(machine.state, State.Sta6)
        machine.received_pdu(PDATA_IN)
        machine.data_request(PDATA_OUT)
        machine.received_pdu(AReleaseRQ())
        self.assertIs(machine.state, State.Sta8)
        machine.release_response()
        self.assertIs(machine.state, State.Sta13)
        machine.transport_closed()

        self.assertIs(machine.state, State.Sta1)
        self.assertFalse(machine.is_requestor)
        self.assertEqual(
            actions.calls,
            [
                ("start_artim",),
                ("stop_artim",),
                ("check_associate_rq", RQ),
                ("associate_indication", RQ),
                ("send_pdu", AC),
                ("data_indication", PDATA_IN),
                ("send_pdu", PDATA_OUT),
                ("release_indication",),
                ("send_pdu", AReleaseRP()),
                ("start_artim",),
                ("stop_artim",),
            ],
        )

    def test_acceptor_rejects_association(self) -> None:
        """
        An acceptor's user rejection sends the A-ASSOCIATE-RJ and waits in
        Sta13 with ARTIM running for the peer to close.
        """
        machine, actions = machine_in(State.Sta3, requestor=False)
        machine.associate_response_reject(RJ)
        self.assertEqual(actions.calls, [("send_pdu", RJ), ("start_artim",)])
        self.assertIs(machine.state, State.Sta13)

    def test_requestor_lifecycle(self) -> None:
        """
        A requestor connects, sends its A-ASSOCIATE-RQ once connected, sends
        data, releases and closes the transport on the A-RELEASE-RP.
        """
        actions = RecordingActions()
        machine = AssociationMachine(actions)
        machine.associate_request(RQ)
        self.assertIs(machine.state, State.Sta4)
        machine.transport_connected()
        self.assertIs(machine.state, State.Sta5)
        machine.received_pdu(AC)
        self.assertIs(machine.state, State.Sta6)
        machine.data_request(PDATA_OUT)
        machine.received_pdu(PDATA_IN)
        machine.release_request()
        self.assertIs(machine.state, State.Sta7)
        machine.received_pdu(PDATA_IN)
        machine.received_pdu(AReleaseRP())
        self.assertIs(machine.state, State.Sta1)
        machine.transport_closed()

        self.assertIs(machine.state, State.Sta1)
        self.assertTrue(machine.is_requestor)
        self.assertEqual(
            actions.calls,
            [
                ("open_transport",),
                ("send_pdu", RQ),
                ("associate_confirm_accept", AC),
                ("send_pdu", PDATA_OUT),
                ("data_indication", PDATA_IN),
                ("send_pdu", AReleaseRQ()),
                ("data_indication", PDATA_IN),
                ("release_confirm",),
                ("close_transport",),
            ],
        )

    def test_requestor_rejected(self) -> None:
        """
        An A-ASSOCIATE-RJ in Sta5 confirms the rejection, closes the transport
        and returns to Sta1.
        """
        machine, actions = machine_in(State.Sta5, requestor=True)
        machine.received_pdu(RJ)
        self.assertEqual(
            actions.calls, [("associate_confirm_reject", RJ), ("close_transport",)]
        )
        self.assertIs(machine.state, State.Sta1)

    def test_requestor_connect_fails(self) -> None:
        """
        A transport that fails to open in Sta4 gives an A-P-ABORT indication.
        """
        machine, actions = machine_in(State.Sta4, requestor=True)
        machine.transport_closed()
        self.assertEqual(
            actions.calls,
            [("provider_abort_indication", ABORT_REASON_NOT_SPECIFIED)],
        )
        self.assertIs(machine.state, State.Sta1)

    def test_release_collision_requestor(self) -> None:
        """
        On a release collision the requestor indicates the release, responds
        first with an A-RELEASE-RP, then closes on the peer's A-RELEASE-RP.
        """
        machine, actions = machine_in(State.Sta6, requestor=True)
        machine.release_request()
        machine.received_pdu(AReleaseRQ())
        self.assertIs(machine.state, State.Sta9)
        machine.release_response()
        self.assertIs(machine.state, State.Sta11)
        machine.received_pdu(AReleaseRP())
        self.assertIs(machine.state, State.Sta1)
        self.assertEqual(
            actions.calls,
            [
                ("send_pdu", AReleaseRQ()),
                ("release_indication",),
                ("send_pdu", AReleaseRP()),
                ("release_confirm",),
                ("close_transport",),
            ],
        )

    def test_release_collision_acceptor(self) -> None:
        """
        On a release collision the acceptor waits for the requestor's
        A-RELEASE-RP, confirms, then responds and waits in Sta13 for the close.
        """
        machine, actions = machine_in(State.Sta6, requestor=False)
        machine.release_request()
        machine.received_pdu(AReleaseRQ())
        self.assertIs(machine.state, State.Sta10)
        machine.received_pdu(AReleaseRP())
        self.assertIs(machine.state, State.Sta12)
        machine.release_response()
        self.assertIs(machine.state, State.Sta13)
        machine.transport_closed()
        self.assertIs(machine.state, State.Sta1)
        self.assertEqual(
            actions.calls,
            [
                ("send_pdu", AReleaseRQ()),
                ("release_indication",),
                ("release_confirm",),
                ("send_pdu", AReleaseRP()),
                ("start_artim",),
                ("stop_artim",),
            ],
        )

    def test_artim_expired_sta2(self) -> None:
        """
        ARTIM expiry before an A-ASSOCIATE-RQ closes the transport.
        """
        machine, actions = machine_in(State.Sta2, requestor=False)
        machine.artim_expired()
        self.assertEqual(actions.calls, [("stop_artim",), ("close_transport",)])
        self.assertIs(machine.state, State.Sta1)

    def test_artim_expired_sta13(self) -> None:
        """
        ARTIM expiry while awaiting the peer's close closes the transport.
        """
        machine, actions = machine_in(State.Sta13, requestor=False)
        machine.artim_expired()
        self.assertEqual(actions.calls, [("stop_artim",), ("close_transport",)])
        self.assertIs(machine.state, State.Sta1)

    def test_invalid_pdu_sta6_aa_8(self) -> None:
        """
        An invalid PDU in Sta6 sends an A-ABORT with the service-provider
        source, indicates an A-P-ABORT, starts ARTIM and enters Sta13.
        """
        machine, actions = machine_in(State.Sta6, requestor=False)
        machine.invalid_pdu(INVALID_REASON)
        self.assertEqual(machine.last_action, "AA-8")
        self.assertEqual(
            actions.calls,
            [
                ("send_pdu", AAbort(source=2, reason=INVALID_REASON)),
                ("provider_abort_indication", INVALID_REASON),
                ("start_artim",),
            ],
        )
        self.assertIs(machine.state, State.Sta13)
        self.assertTrue(actions.artim_running)

    def test_unknown_pdu_object_evt19(self) -> None:
        """
        An object of no PDU type is Evt19 with reason "unrecognized PDU".
        """
        machine, actions = machine_in(State.Sta6, requestor=True)
        machine.received_pdu(object())
        self.assertEqual(machine.last_action, "AA-8")
        self.assertEqual(
            actions.calls[0],
            ("send_pdu", provider_abort(ABORT_REASON_UNRECOGNIZED_PDU)),
        )

    def test_unexpected_pdu_reason(self) -> None:
        """
        A valid PDU the state does not expect aborts with "unexpected PDU".
        """
        machine, actions = machine_in(State.Sta6, requestor=False)
        machine.received_pdu(RQ)
        self.assertEqual(
            actions.calls[0],
            ("send_pdu", provider_abort(ABORT_REASON_UNEXPECTED_PDU)),
        )

    def test_peer_provider_abort_indication(self) -> None:
        """
        An A-ABORT PDU from the peer's service provider gives an A-P-ABORT
        indication with its reason.
        """
        machine, actions = machine_in(State.Sta6, requestor=True)
        machine.received_pdu(provider_abort(ABORT_REASON_UNEXPECTED_PDU))
        self.assertEqual(
            actions.calls,
            [
                ("provider_abort_indication", ABORT_REASON_UNEXPECTED_PDU),
                ("close_transport",),
            ],
        )
        self.assertIs(machine.state, State.Sta1)

    def test_user_abort_request(self) -> None:
        """
        A local A-ABORT request sends an A-ABORT with the service-user source
        and waits in Sta13 with ARTIM running.
        """
        machine, actions = machine_in(State.Sta6, requestor=True)
        machine.abort_request()
        self.assertEqual(actions.calls, [("send_pdu", USER_ABORT), ("start_artim",)])
        self.assertIs(machine.state, State.Sta13)

    def test_unlisted_local_primitive_sta6(self) -> None:
        """
        A primitive Table 9-10 does not allow in Sta6 aborts the association
        with reason "not specified".
        """
        machine, actions = machine_in(State.Sta6, requestor=True)
        machine.associate_request(RQ)
        self.assertEqual(
            actions.calls[0],
            ("send_pdu", provider_abort(ABORT_REASON_NOT_SPECIFIED)),
        )
        self.assertIs(machine.state, State.Sta13)


class ReentrancyTests(SynchronousTestCase):
    """
    Tests for events issued from inside a transition.
    """

    def test_user_answers_inside_indication(self) -> None:
        """
        A user that accepts from inside the A-ASSOCIATE indication is handled
        in Sta3, after AE-6 has finished.
        """
        actions = RecordingActions()
        machine = AssociationMachine(actions)
        actions.hooks["associate_indication"] = lambda: (
            machine.associate_response_accept(AC)
        )
        machine.transport_accepted()
        machine.received_pdu(RQ)
        self.assertIs(machine.state, State.Sta6)
        self.assertEqual(actions.calls[-1], ("send_pdu", AC))

    def test_close_reports_closed_at_once(self) -> None:
        """
        A transport that reports its close from inside close_transport reaches
        the machine in Sta1, so the release gives no A-P-ABORT indication.
        """
        machine, actions = machine_in(State.Sta7, requestor=True)
        actions.hooks["close_transport"] = machine.transport_closed
        machine.received_pdu(AReleaseRP())
        self.assertIs(machine.state, State.Sta1)
        self.assertEqual(machine.last_action, "ignore")
        self.assertEqual(actions.calls, [("release_confirm",), ("close_transport",)])

    def test_action_error_propagates(self) -> None:
        """
        An exception from an actions method reaches the caller, and the
        machine still runs later events.
        """
        machine, actions = machine_in(State.Sta6, requestor=True)

        def fail() -> None:
            raise RuntimeError("user bug")

        actions.hooks["data_indication"] = fail
        self.assertRaises(RuntimeError, machine.received_pdu, PDATA_IN)
        del actions.hooks["data_indication"]
        machine.received_pdu(PDATA_IN)
        self.assertEqual(actions.calls[-1], ("data_indication", PDATA_IN))
        self.assertIs(machine.state, State.Sta6)


class AssociationRules(RuleBasedStateMachine):
    """
    Random event sequences on one machine, with a service provider that
    accepts or rejects requests at random.
    """

    def __init__(self) -> None:
        super().__init__()
        self.actions = RecordingActions()
        self.machine = AssociationMachine(self.actions)

    @rule(requestor_side=st.booleans())
    def start_association(self, requestor_side: bool) -> None:
        if requestor_side:
            self.machine.associate_request(RQ)
        else:
            self.machine.transport_accepted()

    @rule()
    def transport_connected(self) -> None:
        self.machine.transport_connected()

    @rule(
        pdu=st.sampled_from(
            [RQ, AC, RJ, PDATA_IN, AReleaseRQ(), AReleaseRP(), USER_ABORT]
            + [provider_abort(ABORT_REASON_UNEXPECTED_PDU), object()]
        ),
        reject=st.booleans(),
    )
    def received_pdu(self, pdu: object, reject: bool) -> None:
        self.actions.rejection = PROVIDER_RJ if reject else None
        self.machine.received_pdu(pdu)

    @rule(accept=st.booleans())
    def associate_response(self, accept: bool) -> None:
        if accept:
            self.machine.associate_response_accept(AC)
        else:
            self.machine.associate_response_reject(RJ)

    @rule()
    def data_request(self) -> None:
        self.machine.data_request(PDATA_OUT)

    @rule()
    def release_request(self) -> None:
        self.machine.release_request()

    @rule()
    def release_response(self) -> None:
        self.machine.release_response()

    @rule()
    def abort_request(self) -> None:
        self.machine.abort_request()

    @rule()
    def artim_expired(self) -> None:
        self.machine.artim_expired()

    @rule(reason=st.sampled_from([0, 1, 2, 4, 5, 6]))
    def invalid_pdu(self, reason: int) -> None:
        self.machine.invalid_pdu(reason)

    @rule()
    def transport_closed(self) -> None:
        self.machine.transport_closed()
        assert self.machine.state is State.Sta1, self.machine.state

    @invariant()
    def state_defined(self) -> None:
        assert isinstance(self.machine.state, State), self.machine.state

    @invariant()
    def artim_only_in_sta2_and_sta13(self) -> None:
        # ARTIM starts only on the way into Sta2 or Sta13 and stops on every
        # way out of them.
        running = self.machine.state in (State.Sta2, State.Sta13)
        assert self.actions.artim_running == running, self.machine.state


class AssociationRulesTests(SynchronousTestCase):
    """
    Runs L{AssociationRules} under Hypothesis.
    """

    def test_machine_random_events(self) -> None:
        """
        No event sequence makes the machine raise or leave its states, and
        Evt17 always returns it to Sta1.
        """
        run_state_machine_as_test(AssociationRules)
