"""
Tests of the DICOM listener against hostile peers, on a fake transport: AE
titles that could forge log lines, aborts before the association, and peers
that never read the responses.
"""

from __future__ import annotations

from twisted.logger import LogEvent, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from tests.pdu_streams import RELEASE_RQ, pdata, pdv
from tests.pdu_streams import associate_rq as _associate_rq
from tests.test_ul_protocol import _Connection
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
