"""
The one ingest path: bytes of an instance in, a durable stored instance out.

REST uploads, C-STORE and C-MOVE retrieves all feed an L{IngestSession} chunk by
chunk. The session walks the bytes with the structural scanner while the store's
transfer keeps them, then computes the Orthanc ids and hands the index entry to
the writer. The result fires only after the commit that holds the instance has
returned.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.defer import Deferred, fail

from twistedpacs.dicom.ids import resource_ids
from twistedpacs.dicom.part10 import file_meta_prefix
from twistedpacs.dicom.scan import InstanceScanner, InvalidInstanceError
from twistedpacs.model import IndexEntry, InstanceHeader, Provenance, StoreResult


class InstanceTooLargeError(InvalidInstanceError):
    """
    An instance is larger than C{MaximumInstanceSize}.
    """


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
    ) -> None:
        """
        @param transfer_syntax: C{None} for an upload (a Part 10 file or a bare
            data set, detected), or the negotiated transfer syntax of a data set
            received over DIMSE, which then gets a generated File Meta group.
        @param pause: called when the store's queue for this transfer is full.
        @param maximum_size: bytes, 0 for unlimited.
        """
        self._scanner = InstanceScanner(transfer_syntax)
        self._transfer = store.begin_transfer(pause, resume)  # type: ignore[attr-defined]
        self._provenance = provenance
        self._network_syntax = transfer_syntax
        self._maximum_size = maximum_size
        self._source_aet = source_aet
        self._failure: InvalidInstanceError | None = None
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
        and its transfer is aborted so the store holds nothing of it.
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
        self._transfer.write(data)

    def finish(self) -> Deferred[StoreResult]:
        """
        Scan the end of the instance, index it and store it durably.

        @return: a Deferred firing with the L{StoreResult} after the commit, or
            failing with L{InvalidInstanceError}, L{StorageFullError} or
            L{StorageError}; in every failure nothing of it is stored.
        """
        if self._done:
            raise RuntimeError("IngestSession.finish called twice")
        if self._failure is not None:
            self._done = True
            return fail(self._failure)
        self._done = True
        try:
            header = self._scanner.finish()
        except InvalidInstanceError as error:
            self._transfer.abort()
            return fail(error)
        self.header = header
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
        entry = IndexEntry(ids, header, self._provenance, prefix)
        return self._transfer.finish(entry)

    def abort(self) -> None:
        """
        Drop the instance: the peer went away or the message was cancelled.
        """
        if not self._done and self._failure is None:
            self._transfer.abort()
        self._done = True

    def _fail(self, error: InvalidInstanceError) -> None:
        self._failure = error
        self._transfer.abort()
