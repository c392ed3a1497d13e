"""
The one ingest path: bytes of an instance in, a durable stored instance out.

REST uploads, C-STORE and C-MOVE retrieves all feed an L{IngestSession} chunk by
chunk. The session walks the bytes with the structural scanner while the store's
transfer keeps them, then computes the Orthanc ids and hands the index entry to
the writer. The result fires only after the commit that contains the instance has
returned.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.defer import Deferred, fail

from twistedpacs.dicom.ids import resource_ids
from twistedpacs.dicom.part10 import file_meta_prefix
from twistedpacs.dicom.scan import InstanceScanner, InvalidInstanceError
from twistedpacs.model import (
    IndexEntry,
    InstanceHeader,
    Provenance,
    StorageError,
    StoreResult,
)


class InstanceTooLargeError(InvalidInstanceError):
    """
    An instance is larger than C{MaximumInstanceSize}.
    """


class UIDMismatchError(InvalidInstanceError):
    """
    The SOP Class or SOP Instance UID of a data set differs from the one its
    C-STORE-RQ announced.
    """


# A UID is at most 64 characters of digits and dots (PS3.5 section 9).
_UID_CHARACTERS = frozenset("0123456789.")


def check_uid(keyword: str, value: str) -> None:
    """
    Reject a UID that cannot be written to a File Meta group or an index.

    @raise InvalidInstanceError: if C{value} is longer than 64 characters or
        contains anything but digits and dots.
    """
    if len(value) > 64 or not _UID_CHARACTERS.issuperset(value):
        raise InvalidInstanceError(
            f"Invalid {keyword}",
            f"{keyword} {value[:80]!r} is not a UID of at most 64 digits and dots",
        )


class IngestSession:
    """
    One instance on its way into the store.

    @ivar size: bytes fed so far.
    @ivar header: the scanned header, once L{finish} has scanned it.
    """

    def __init__(
        self,
        store: object,
        provenance: Provenance,
        *,
        transfer_syntax: str | None = None,
        pause: Callable[[], None] = lambda: None,
        resume: Callable[[], None] = lambda: None,
        maximum_size: int = 0,
        source_aet: str = "",
        expected_sop_class_uid: str | None = None,
        expected_sop_instance_uid: str | None = None,
    ) -> None:
        """
        @param transfer_syntax: C{None} for an upload (a Part 10 file or a bare
            data set, detected), or the negotiated transfer syntax of a data set
            received over DIMSE, which then gets a generated File Meta group.
        @param pause: called when the store's queue for this transfer is full.
        @param maximum_size: bytes, 0 for unlimited.
        @param expected_sop_class_uid: the Affected SOP Class UID of a
            C-STORE-RQ; a data set with another SOP Class UID fails with
            L{UIDMismatchError}.
        @param expected_sop_instance_uid: the Affected SOP Instance UID, with
            the same meaning.
        """
        self._scanner = InstanceScanner(transfer_syntax)
        self._transfer = store.begin_transfer(pause, resume)  # type: ignore[attr-defined]
        self._provenance = provenance
        self._maximum_size = maximum_size
        self._source_aet = source_aet
        self._expected_class = expected_sop_class_uid
        self._expected_instance = expected_sop_instance_uid
        self._failure: InvalidInstanceError | StorageError | None = None
        # The index entry built from the header while the rest arrives.
        self._early_entry: IndexEntry | None = None
        self._done = False
        self.size = 0
        self.header: InstanceHeader | None = None

    @property
    def failed(self) -> bool:
        return self._failure is not None

    def feed(self, data: bytes | memoryview) -> None:
        """
        Scan and keep the next bytes of the instance.

        Bytes after a scan error are dropped: the instance is already rejected,
        and its transfer is aborted so the store keeps nothing of it.
        """
        if self._failure is not None or self._done:
            return
        self.size += len(data)
        try:
            if self._maximum_size and self.size > self._maximum_size:
                raise InstanceTooLargeError(
                    "Instance too large",
                    f"the instance exceeds MaximumInstanceSize "
                    f"({self._maximum_size} bytes)",
                )
            self._scanner.feed(data)
        except InvalidInstanceError as error:
            self._fail(error)
            return
        if self._early_entry is None:
            self._prepare_entry()
        try:
            self._transfer.write(data)
        except StorageError as error:
            # The store closed under us (a shutdown aborts transfers in
            # flight); the rest of the body is dropped and finish fails.
            self._failure = error

    def finish(self) -> Deferred[StoreResult]:
        """
        Scan the end of the instance, index it and store it durably.

        @return: a Deferred firing with the L{StoreResult} after the commit, or
            failing with L{InvalidInstanceError}, L{StorageFullError} or
            L{StorageError}; in every failure nothing of it is stored.
        """
        if self._done:
            raise RuntimeError("IngestSession.finish called twice")
        self._done = True
        if self._failure is not None:
            return fail(self._failure)
        try:
            entry = self._index_entry()
        except InvalidInstanceError as error:
            self._transfer.abort()
            return fail(error)
        except BaseException:
            # A bug: drop the transfer so nothing is left half-stored.
            self._transfer.abort()
            raise
        return self._transfer.finish(entry)

    def _prepare_entry(self) -> None:
        """
        Build the index entry as soon as the scanner has the header, so that
        only the check of the last bytes remains when the instance ends.
        """
        header = self._scanner.early_header()
        if header is None:
            return
        try:
            self._early_entry = self._entry_for(header)
        except InvalidInstanceError:
            # finish raises it, after the checks of the whole instance.
            return

    def _index_entry(self) -> IndexEntry:
        header = self._scanner.finish()
        self.header = header
        early = self._early_entry
        if early is not None and early.header is header:
            return early
        return self._entry_for(header)

    def _entry_for(self, header: InstanceHeader) -> IndexEntry:
        for keyword, value in (
            ("SOPClassUID", header.sop_class_uid),
            ("SOPInstanceUID", header.sop_instance_uid),
            ("StudyInstanceUID", header.study_instance_uid),
            ("SeriesInstanceUID", header.series_instance_uid),
        ):
            check_uid(keyword, value)
        self._check_expected(header)
        prefix = b""
        if not header.has_file_meta:
            prefix = file_meta_prefix(
                header.sop_class_uid,
                header.sop_instance_uid,
                header.transfer_syntax,
                self._source_aet,
            )
        ids = resource_ids(
            header.patient_id,
            header.study_instance_uid,
            header.series_instance_uid,
            header.sop_instance_uid,
        )
        return IndexEntry(ids, header, self._provenance, prefix)

    def _check_expected(self, header: InstanceHeader) -> None:
        for keyword, expected, found in (
            ("SOP Class UID", self._expected_class, header.sop_class_uid),
            ("SOP Instance UID", self._expected_instance, header.sop_instance_uid),
        ):
            if expected is not None and found != expected:
                raise UIDMismatchError(
                    "Data set UIDs differ from command",
                    f"{keyword} {found!r} differs from the command's {expected!r}",
                )

    def abort(self) -> None:
        """
        Drop the instance: the peer went away or the message was cancelled.
        """
        if not self._done and self._failure is None:
            self._transfer.abort()
        self._done = True

    def _fail(self, error: InvalidInstanceError | StorageError) -> None:
        self._failure = error
        self._transfer.abort()
