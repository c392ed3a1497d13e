"""
The store: one LMDB environment, its writer thread and its read pool, behind
the interface the ingest path and the REST API use.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import lmdb
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from twistedpacs.config import Settings
from twistedpacs.model import Level, StorageError
from twistedpacs.storage import reads
from twistedpacs.storage.environment import open_environment
from twistedpacs.storage.index import Databases, get_record
from twistedpacs.storage.reads import BlobReader
from twistedpacs.storage.transfer import FlowControl, Transfer
from twistedpacs.storage.writer import DeleteOp, Operation, TransferState, Writer

log = Logger()

# Threads that read chunks for /file and archives.
READ_THREADS = 4


class Store:
    """
    The LMDB store of one server.

    L{open} must run in the process that serves (in C{startService}), never
    before twistd forks, because an LMDB environment must not cross a fork.

    @param reactor: provides C{IReactorThreads} and C{IReactorTime}.
    """

    def __init__(self, settings: Settings, reactor: Any) -> None:
        self._settings = settings
        self._reactor = reactor
        self._env: lmdb.Environment | None = None
        self._dbs: Databases | None = None
        self._writer: Writer | None = None
        self._pool: ThreadPool | None = None
        self._flow = FlowControl(
            settings.transfer_queue_bound, settings.global_queue_bound
        )
        self._transfers: dict[int, Transfer] = {}
        self._closing = False
        self._close_waiters: list[Deferred[None]] = []

    @property
    def env(self) -> lmdb.Environment:
        """
        The open environment.
        """
        if self._env is None:
            raise StorageError("the store is not open")
        return self._env

    @property
    def writer(self) -> Writer:
        """
        The writer of the open store (tests set its hooks).
        """
        if self._writer is None:
            raise StorageError("the store is not open")
        return self._writer

    @property
    def directory(self) -> str:
        return os.path.abspath(self._settings.storage_directory)

    def open(self) -> None:
        """
        Open the environment, check or record its versions, delete the blobs
        of unfinished transfers, and start the writer and the read pool.

        Blocks until the writer thread has done its first transaction, which
        sweeps only the pending transfers.

        @raise StorageError: if the store cannot be opened.
        """
        settings = self._settings
        env = open_environment(settings.storage_directory, settings.lmdb_map_size)
        writer = Writer(
            env,
            self._reactor,
            batch_bytes=settings.commit_batch_bytes,
            maximum_storage_size=settings.maximum_storage_size,
            overwrite=settings.overwrite_instances,
            on_released=self._flow.release,
        )
        try:
            self._dbs = writer.start()
        except StorageError:
            env.close()
            raise
        self._env, self._writer = env, writer
        self._pool = ThreadPool(
            minthreads=0, maxthreads=READ_THREADS, name="store-read"
        )
        self._pool.start()
        self._closing = False
        log.info("Opened store in {directory}", directory=self.directory)

    def close(self) -> Deferred[None]:
        """
        Abort the transfers in flight, apply what is queued, end the writer,
        stop the read pool and close the environment.
        """
        if self._writer is None:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._close_waiters.append(waiter)
        if not self._closing:
            self._closing = True
            for transfer in list(self._transfers.values()):
                transfer.abort()
            self._writer.stop().addCallback(self._closed)
        return waiter

    def _closed(self, _: None) -> None:
        if self._pool is not None:
            self._pool.stop()
        if self._env is not None:
            self._env.close()
        self._env = self._dbs = self._writer = self._pool = None
        log.info("Closed store in {directory}", directory=self.directory)
        waiters, self._close_waiters = self._close_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _databases(self) -> Databases:
        if self._dbs is None:
            raise StorageError("the store is not open")
        return self._dbs

    def _submit(self, operation: Operation) -> None:
        self.writer.submit(operation)

    def begin_transfer(
        self, pause: Callable[[], None], resume: Callable[[], None]
    ) -> Transfer:
        """
        Start receiving one instance.

        @param pause: called when the bytes queued for this transfer, or for
            all transfers, exceed their bound; the caller stops reading.
        @param resume: called on the reactor once the writer has caught up.
        @raise StorageError: if the store is closed or closing.
        """
        if self._writer is None or self._closing:
            raise StorageError("the store is closed")
        transfer = Transfer(
            TransferState(pause, resume),
            self._submit,
            self._flow,
            self._reactor.seconds,
            self._settings.in_memory_threshold,
            self._transfer_done,
        )
        self._transfers[id(transfer)] = transfer
        return transfer

    def _transfer_done(self, transfer: Transfer) -> None:
        self._transfers.pop(id(transfer), None)

    def get(self, level: Level, resource_id: str) -> dict[str, Any] | None:
        """
        Return the index record of a resource, or L{None}.

        The record contains C{ID}, C{Type}, C{ParentID} (L{None} for
        patients), C{MainDicomTags} and C{CreationDate}. An instance record
        also contains C{FileSize}, C{FileMD5} and its provenance fields (see
        L{metadata}).
        """
        return reads.read_resource(self._databases(), level, resource_id)

    def list_ids(self, level: Level, since: int = 0, limit: int = 0) -> list[str]:
        """
        Return the ids of a level in insertion order; C{since} is an offset and
        a C{limit} of 0 returns all, as in Orthanc.
        """
        return reads.read_ids(self._databases(), level, since, limit)

    def children(self, level: Level, resource_id: str) -> list[str]:
        """
        Return the ids of the direct children of a resource, sorted by id, or
        an empty list for instances and unknown resources.
        """
        if level is Level.INSTANCE:
            return []
        return reads.read_children(self._databases(), resource_id)

    def lookup(self, level: Level, value: str) -> list[str]:
        """
        Return the ids of a level whose identifier equals C{value}:
        PatientID, StudyInstanceUID, SeriesInstanceUID or SOPInstanceUID.
        """
        return reads.read_lookup(self._databases(), level, value)

    def count(self, level: Level) -> int:
        return reads.read_count(self._databases(), level)

    def statistics(self) -> dict[str, Any]:
        """
        Return the body of Orthanc's C{/statistics}, read from the counters.
        """
        return reads.read_statistics(self._databases())

    def metadata(self, instance_id: str) -> dict[str, str] | None:
        """
        Return the provenance of an instance: C{ReceptionDate}, C{Origin},
        C{RemoteAET}, C{CalledAET}, C{RemoteIP}, C{TransferSyntax},
        C{SopClassUid}, C{HttpUsername}, C{FileSize} and C{FileMD5}, leaving out
        empty ones; or L{None} for an unknown instance. C{FileMD5} is missing
        for a moment after the instance is stored; L{metadata_with_md5} fills
        it in.
        """
        return reads.read_metadata(self._databases(), instance_id)

    def metadata_with_md5(self, instance_id: str) -> Deferred[dict[str, str] | None]:
        """
        Return L{metadata} with C{FileMD5} always present.

        The MD5 is recorded shortly after the instance is acknowledged (see
        L{twistedpacs.storage.digest}); until then it is computed here from
        the stored bytes, in the read pool.
        """
        metadata = self.metadata(instance_id)
        if metadata is None or "FileMD5" in metadata:
            return succeed(metadata)
        if self._pool is None:
            return fail(StorageError("the store is not open"))
        return deferToThreadPool(
            self._reactor,
            self._pool,
            reads.read_metadata_with_md5,
            self._databases(),
            instance_id,
        )

    def changes(self, since: int = 0, limit: int = 100) -> dict[str, Any]:
        """
        Return the change log after C{since} in the shape of Orthanc's
        C{/changes}: C{Changes}, C{Done} and C{Last}.
        """
        return reads.read_changes(self._databases(), since, limit)

    def open_reader(self, instance_id: str) -> BlobReader | None:
        """
        Return a reader of a stored instance file, or L{None} if unknown.
        """
        dbs = self._databases()
        with dbs.env.begin() as txn:
            record = get_record(txn, dbs, Level.INSTANCE, instance_id)
        if record is None or self._pool is None:
            return None
        return BlobReader(dbs, self._reactor, self._pool, instance_id, record)

    def read_file(self, instance_id: str) -> Deferred[bytes | None]:
        """
        Read a whole instance file in the read pool; for small reads.
        """
        dbs = self._databases()
        if self._pool is None:
            return fail(StorageError("the store is not open"))
        return deferToThreadPool(
            self._reactor, self._pool, reads.read_whole_file, dbs, instance_id
        )

    def delete(self, level: Level, resource_id: str) -> Deferred[dict[str, Any] | None]:
        """
        Delete a resource with its descendants, their files, and every
        ancestor it leaves empty.

        @return: a L{Deferred} firing after the commit with L{None} for an
            unknown resource, else with C{{"RemainingAncestor": ...}}, where the
            value is C{{"ID", "Path", "Type"}} or L{None}.
        """
        if self._writer is None or self._closing:
            return fail(StorageError("the store is closed"))
        deferred: Deferred[dict[str, Any] | None] = Deferred()
        timestamp = self._reactor.seconds()
        self._submit(DeleteOp(level, resource_id, timestamp, deferred))
        return deferred
