"""
Tests of the DICOM listener against hostile peers, on a fake transport: AE
titles that could forge log lines, aborts before the association, and peers
that never read the responses.
"""

from __future__ import annotations

from twisted.logger import LogEvent, LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from tests.pdu_streams import (
    CT_IMAGE_STORAGE,
    IMPLICIT_LE,
    RELEASE_RQ,
    VERIFICATION,
    dataset_of_length,
    echo_rq,
    pdata,
    pdv,
    store_rq,
)
from tests.pdu_streams import associate_rq as _associate_rq
from tests.test_ul_protocol import TIMEOUT, _Connection
from twistedpacs.config import Settings
from twistedpacs.ul.machine import State
from twistedpacs.ul.negotiation import is_valid_ae_title, shown_ae_title

# The A-ASSOCIATE-RJ PDUs: permanent, by the service user, with reason 3
# (calling AE title not recognized) or 7 (called AE title not recognized).
_REJECT_CALLING = bytes.fromhex("03000000000400010103")
_REJECT_CALLED = bytes.fromhex("03000000000400010107")

# The A-ABORT PDU with the service-user source and no reason (AA-1).
_ABORT_SERVICE_USER = bytes.fromhex("07000000000400000000")

# The offsets of the called and calling AE titles in an A-ASSOCIATE-RQ: after
# the 6-byte PDU header, the protocol version and 2 reserved bytes.
_CALLED_OFFSET = 10
_CALLING_OFFSET = 26


def _with_titles(called: bytes | None = None, calling: bytes | None = None) -> bytes:
    """
    Return an A-ASSOCIATE-RQ whose called or calling AE title fields hold
    C{called} or C{calling}, padded with spaces to 16 bytes.
    """
    data = bytearray(_associate_rq())
    for offset, raw in ((_CALLED_OFFSET, called), (_CALLING_OFFSET, calling)):
        if raw is not None:
            data[offset : offset + 16] = raw.ljust(16, b" ")
    return bytes(data)


def _control_characters(text: str) -> list[str]:
    return [
        character
        for character in text
        if ord(character) < 0x20 or ord(character) >= 0x7F
    ]


def _texts(events: list[LogEvent]) -> list[str]:
    texts = []
    for event in events:
        text = formatEvent(event)
        assert text is not None
        texts.append(text)
    return texts


class AETitleTests(SynchronousTestCase):
    """
    Tests of the AE title check of an A-ASSOCIATE-RQ.
    """

    def _reject(self, request: bytes) -> tuple[bytes, list[str]]:
        connection = _Connection()
        with capturedLogs() as events:
            connection.feed(request)
        self.assertIs(connection.protocol.machine.state, State.Sta13)
        return connection.take(), _texts(events)

    def test_calling_aet_forged_log_line(self) -> None:
        """
        A calling AE title with a newline and an escape sequence is rejected
        with reason 3, and the rejection is logged with both escaped.
        """
        output, texts = self._reject(_with_titles(calling=b"X\n2026 FAKE\x1b[31m"))
        self.assertEqual(output, _REJECT_CALLING)
        rejected = [text for text in texts if "rejected" in text]
        self.assertEqual(len(rejected), 1)
        self.assertIn("'X\\n2026 FAKE\\x1b[31m'", rejected[0])
        for text in texts:
            self.assertEqual(_control_characters(text), [])

    def test_calling_aet_refused(self) -> None:
        """
        A calling AE title with NUL, 0xFF, a backslash or a tab, or of spaces
        only, is rejected with reason 3, and no log line holds a control
        character.
        """
        for raw in (b"A\x00B", b"SCU\xff", b"A\\B", b"A\tB", b"", b" " * 16):
            output, texts = self._reject(_with_titles(calling=raw))
            self.assertEqual(output, _REJECT_CALLING, raw)
            for text in texts:
                self.assertEqual(_control_characters(text), [], raw)

    def test_called_aet_refused(self) -> None:
        """
        A called AE title with a control character is rejected with reason 7,
        even when called AE titles are not checked.
        """
        output, texts = self._reject(_with_titles(called=b"PACS\r\nX"))
        self.assertEqual(output, _REJECT_CALLED)
        for text in texts:
            self.assertEqual(_control_characters(text), [])

    def test_calling_aet_bad_before_called(self) -> None:
        """
        With both AE titles refused, the calling AE title's reason 3 is sent.
        """
        output, _ = self._reject(_with_titles(called=b"\x1b", calling=b"\x1b"))
        self.assertEqual(output, _REJECT_CALLING)

    def test_aet_padding_accepted(self) -> None:
        """
        Leading spaces are padding: the title without them is accepted, and
        matched against our own AE title.
        """
        settings = Settings(aet="TWISTEDPACS", dicom_check_called_aet=True)
        connection = _Connection(settings)
        connection.feed(_with_titles(called=b"  TWISTEDPACS", calling=b" A"))
        self.assertEqual(connection.take()[0], 0x02)
        self.assertEqual(connection.protocol.calling_ae_title, "A")

    def test_is_valid_ae_title(self) -> None:
        """
        An AE title has 1 to 16 characters between space and tilde, without
        backslash, once leading and trailing spaces are removed.
        """
        for title in ("A", "~" * 16, " QA_SCU ", "A B", "!#$%&'()*+,-./[]^_`{|}"[:16]):
            self.assertTrue(is_valid_ae_title(title), title)
        for title in ("", "   ", "A" * 17, "A\\B", "A\x7fB", "\u00e9", "A\x00"):
            self.assertFalse(is_valid_ae_title(title), title)

    def test_shown_ae_title(self) -> None:
        """
        A valid AE title is shown as it is, any other as its ASCII
        representation.
        """
        self.assertEqual(shown_ae_title("QA_SCU"), "QA_SCU")
        self.assertEqual(shown_ae_title(""), "''")
        self.assertEqual(shown_ae_title("A\n\xff"), "'A\\n\\xff'")


def _warnings(events: list[LogEvent]) -> list[str]:
    return _texts([event for event in events if event["log_level"] == LogLevel.warn])


class UnexpectedPDUTests(SynchronousTestCase):
    """
    Tests of the log line of an abort for a PDU unexpected in its state.
    """

    def _abort(self, *streams: bytes) -> tuple[_Connection, list[str]]:
        connection = _Connection()
        with capturedLogs() as events:
            for stream in streams:
                connection.feed(stream)
        self.assertIs(connection.protocol.machine.state, State.Sta13)
        return connection, _warnings(events)

    def test_pdata_before_association(self) -> None:
        """
        A P-DATA-TF in Sta2 is answered with an A-ABORT and logged once with
        the association ID, the peer, the state and the PDU.
        """
        connection, warnings = self._abort(pdata(pdv(1, 0x03, echo_rq())))
        self.assertEqual(connection.take(), _ABORT_SERVICE_USER)
        identifier = connection.protocol.association_id
        self.assertEqual(
            warnings,
            [
                (
                    f"Association {identifier}: aborting the connection from "
                    "127.0.0.1:40404 in Sta2 after an unexpected P-DATA-TF"
                )
            ],
        )

    def test_release_before_association(self) -> None:
        """
        An A-RELEASE-RQ in Sta2 is logged naming the PDU.
        """
        connection, warnings = self._abort(RELEASE_RQ, RELEASE_RQ)
        self.assertEqual(connection.take(), _ABORT_SERVICE_USER)
        self.assertEqual(len(warnings), 1)
        self.assertTrue(
            warnings[0].endswith("in Sta2 after an unexpected A-RELEASE-RQ")
        )

    def test_second_associate_rq(self) -> None:
        """
        An A-ASSOCIATE-RQ on an accepted association aborts with the
        service-provider source (AA-8), logged once naming Sta6.
        """
        connection = _Connection()
        connection.associate()
        with capturedLogs() as events:
            connection.feed(_associate_rq())
        self.assertEqual(connection.take(), bytes.fromhex("07000000000400000202"))
        warnings = _warnings(events)
        self.assertEqual(len(warnings), 1)
        self.assertTrue(
            warnings[0].endswith("in Sta6 after an unexpected A-ASSOCIATE-RQ")
        )

    def test_explained_abort_logged_once(self) -> None:
        """
        An abort whose reason is already logged, such as an unknown PDU type,
        adds no second line.
        """
        _, warnings = self._abort(b"\x99\x00\x00\x00\x00\x00")
        self.assertEqual(len(warnings), 1)
        self.assertIn("unknown PDU type 0x99", warnings[0])


_CONTEXTS = [(1, VERIFICATION, [IMPLICIT_LE]), (3, CT_IMAGE_STORAGE, [IMPLICIT_LE])]


class WriteBackpressureTests(SynchronousTestCase):
    """
    Tests of the producer that stops reading while the peer does not read our
    responses. L{StringTransport.abortConnection} sets C{disconnected}, which
    C{loseConnection} leaves false.
    """

    def _associated(self) -> _Connection:
        connection = _Connection()
        connection.associate(contexts=_CONTEXTS)
        self.assertTrue(connection.transport.streaming)
        return connection

    def test_full_write_buffer_pauses_reading(self) -> None:
        """
        The transport pausing the producer pauses the reading, and resuming it
        reads again.
        """
        connection = self._associated()
        producer = connection.transport.producer
        producer.pauseProducing()
        self.assertEqual(connection.transport.producerState, "paused")
        producer.resumeProducing()
        self.assertEqual(connection.transport.producerState, "producing")
        connection.feed(pdata(pdv(1, 0x03, echo_rq())))
        self.assertEqual(connection.take()[0], 0x04)

    def test_store_and_write_pauses_combine(self) -> None:
        """
        Reading resumes only once both the store and the peer caught up, in
        either order.
        """
        for first_store in (True, False):
            connection = self._associated()
            connection.store.pause_on_write = True
            connection.feed(pdata(pdv(3, 0x03, store_rq())))
            connection.feed(pdata(pdv(3, 0x00, dataset_of_length(1024))))
            producer = connection.transport.producer
            producer.pauseProducing()
            self.assertEqual(connection.transport.producerState, "paused")
            if first_store:
                connection.store.transfers[0].resume()
                self.assertEqual(connection.transport.producerState, "paused")
                producer.resumeProducing()
            else:
                producer.resumeProducing()
                self.assertEqual(connection.transport.producerState, "paused")
                connection.store.transfers[0].resume()
            self.assertEqual(connection.transport.producerState, "producing")

    def test_peer_not_reading_times_out(self) -> None:
        """
        A peer that does not read is aborted after the idle timeout: the
        producer is unregistered and the connection aborted, not closed after
        a flush that would never end.
        """
        connection = self._associated()
        connection.clock.advance(TIMEOUT - 1)
        connection.transport.producer.pauseProducing()
        connection.clock.advance(1)
        self.assertTrue(connection.transport.disconnected)
        self.assertIsNone(connection.transport.producer)
        self.assertTrue(
            connection.take().endswith(bytes.fromhex("07000000000400000000"))
        )

    def test_store_pause_holds_timeout(self) -> None:
        """
        While the store also holds the reading, the idle timer waits; once the
        store caught up, a peer that still does not read times out.
        """
        connection = self._associated()
        connection.store.pause_on_write = True
        connection.feed(pdata(pdv(3, 0x03, store_rq())))
        connection.feed(pdata(pdv(3, 0x00, dataset_of_length(1024))))
        connection.transport.producer.pauseProducing()
        connection.clock.advance(TIMEOUT * 3)
        self.assertFalse(connection.transport.disconnecting)
        connection.store.transfers[0].resume()
        connection.clock.advance(TIMEOUT)
        self.assertTrue(connection.transport.disconnected)

    def test_release_unregisters_producer(self) -> None:
        """
        After a release the producer is unregistered and the connection
        closed once its bytes are written, not aborted.
        """
        connection = self._associated()
        connection.feed(RELEASE_RQ)
        self.assertEqual(connection.take(), bytes.fromhex("060000000004 00000000"))
        connection.clock.advance(TIMEOUT)
        self.assertIsNone(connection.transport.producer)
        self.assertTrue(connection.transport.disconnecting)
        self.assertFalse(connection.transport.disconnected)
