"""
The ingest session on a fake store: failures after the scan and a store that
closes mid-transfer.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import succeed
from twisted.trial.unittest import SynchronousTestCase

from tests import fixtures
from twistedpacs.dicom.scan import InvalidInstanceError
from twistedpacs.ingest import IngestSession, UIDMismatchError
from twistedpacs.model import IndexEntry, Provenance, StorageError


class _ClosingTransfer:
    """
    A transfer whose store closes after C{writes} writes.
    """

    def __init__(self, writes: int) -> None:
        self.writes_left = writes
        self.aborted = 0
        self.finished: list[IndexEntry] = []

    def write(self, data: bytes | memoryview) -> None:
        if self.writes_left == 0:
            raise StorageError("cannot write to a finished or aborted transfer")
        self.writes_left -= 1

    def abort(self) -> None:
        self.aborted += 1

    def finish(self, entry: IndexEntry) -> Any:
        self.finished.append(entry)
        raise AssertionError("finish must not be reached")


class _Store:
    def __init__(self, transfer: _ClosingTransfer) -> None:
        self.transfer = transfer

    def begin_transfer(
        self, pause: Callable[[], None], resume: Callable[[], None]
    ) -> Any:
        return self.transfer


class IngestSessionTests(SynchronousTestCase):
    """
    Every failure ends in a failed Deferred with nothing finished.
    """

    def test_store_closing_mid_transfer(self) -> None:
        """
        A store that closes under a transfer makes later feeds no-ops and
        finish fail with StorageError, without raising out of feed.
        """
        transfer = _ClosingTransfer(writes=1)
        session = IngestSession(_Store(transfer), Provenance("RestApi"))
        data = fixtures.part10_bytes(fixtures.make_dataset())
        session.feed(data[:200])
        session.feed(data[200:400])
        session.feed(data[400:])
        failure = self.failureResultOf(session.finish(), StorageError)
        self.assertIn("aborted transfer", str(failure.value))
        self.assertEqual(transfer.finished, [])

    def test_command_uid_mismatch(self) -> None:
        """
        A data set whose SOP Instance UID differs from the command's fails
        with UIDMismatchError and aborts its transfer.
        """
        transfer = _ClosingTransfer(writes=10)
        dataset = fixtures.make_dataset()
        session = IngestSession(
            _Store(transfer),
            Provenance("DicomProtocol"),
            transfer_syntax=fixtures.ImplicitVRLittleEndian,
            expected_sop_class_uid=dataset.SOPClassUID,
            expected_sop_instance_uid="2.25.1",
        )
        session.feed(fixtures.bare_dataset_bytes(dataset))
        self.failureResultOf(session.finish(), UIDMismatchError)
        self.assertEqual(transfer.aborted, 1)

    def test_non_ascii_uid_rejected(self) -> None:
        """
        A UID with characters other than digits and dots is an invalid
        instance, not a crash of the File Meta builder.
        """
        transfer = _ClosingTransfer(writes=10)
        dataset = fixtures.make_dataset(sop_uid="1.2.3.\u00e4")
        session = IngestSession(
            _Store(transfer),
            Provenance("RestApi"),
        )
        session.feed(fixtures.bare_dataset_bytes(dataset))
        failure = self.failureResultOf(session.finish(), InvalidInstanceError)
        self.assertIn("SOPInstanceUID", failure.value.message)
        self.assertEqual(transfer.aborted, 1)


class _RecordingTransfer:
    def __init__(self) -> None:
        self.finished: list[IndexEntry] = []

    def write(self, data: bytes | memoryview) -> None:
        pass

    def abort(self) -> None:
        raise AssertionError("the transfer must not be aborted")

    def finish(self, entry: IndexEntry) -> Any:
        self.finished.append(entry)
        return succeed(entry)


class EarlyEntryTests(SynchronousTestCase):
    """
    The index entry is built while the pixel data still arrives.
    """

    def test_entry_built_before_last_bytes(self) -> None:
        """
        With all but the last byte fed, the entry exists, and finish hands
        that entry to the transfer.
        """
        transfer = _RecordingTransfer()
        store: Any = _Store(transfer)  # type: ignore[arg-type]
        session = IngestSession(store, Provenance("RestApi"))
        data = fixtures.part10_bytes(fixtures.make_dataset(rows=64, columns=64))
        session.feed(data[:-1])
        early = session._early_entry
        self.assertIsNotNone(early)
        session.feed(data[-1:])
        self.assertIs(self.successResultOf(session.finish()), early)
        self.assertEqual(transfer.finished, [early])
