"""
The writer thread: the only thread that begins LMDB write transactions.

The reactor hands it operations through a queue. The thread takes every
operation queued, applies them in one transaction (each finish and delete in
a nested transaction of its own, so one failure stays alone), commits when the
queue is empty or the batch contains C{commit_batch_bytes}, and then fires the
Deferreds of the whole batch with one C{callFromThread}. That is the group
commit, and no Deferred fires before the commit containing its work returned.

The MD5 of each new instance is computed by the digest thread while the
commit that stores the instance is flushed, and recorded in a later
transaction (see L{twistedpacs.storage.digest}). A digest alone never starts a
commit while other work is on its way: it waits up to C{DIGEST_DELAY} seconds
for a batch to join.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lmdb
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads
from twisted.logger import Logger

from twistedpacs.model import (
    IndexEntry,
    Level,
    StorageError,
    StorageFullError,
    StoreResult,
    StoreStatus,
)
from twistedpacs.storage.digest import (
    Digester,
    DigestJob,
    DigestOp,
    record_digest,
    sweep_unhashed,
)
from twistedpacs.storage.environment import (
    check_versions,
    open_databases,
    sweep_pending,
)
from twistedpacs.storage.index import (
    DISK_BYTES_KEY,
    Databases,
    IndexWriter,
    blob_key,
    chunk_key,
    delete_blob,
    get_record,
    orthanc_date,
    read_int,
    write_chunks,
)

log = Logger()

# Seconds a computed MD5 waits for other work to share its commit.
DIGEST_DELAY = 0.05

# Batches a digest may take part in before a failing commit drops it. Its
# mark stays, so the next startup hashes the instance again.
DIGEST_ATTEMPTS = 3


@dataclass(eq=False)
class TransferState:
    """
    The state of one transfer shared by the reactor and the writer.

    The reactor sets C{aborted} and keeps C{queued} and C{paused}. The writer
    sets C{blob_id}, C{chunks_written} and C{failed}. Each attribute is written
    by one thread only.

    @ivar queued: bytes handed to the writer and not yet committed.
    @ivar failed: the error that ended the transfer inside the writer.
    """

    pause: Callable[[], None]
    resume: Callable[[], None]
    blob_id: int | None = None
    chunks_written: int = 0
    queued: int = 0
    paused: bool = False
    aborted: bool = False
    failed: StorageError | None = None


@dataclass
class ChunkOp:
    state: TransferState
    data: bytes


@dataclass
class FinishOp:
    """
    The end of a transfer: its remaining bytes and what to index.

    @ivar data: the bytes not yet stored, in buffers of at most one chunk;
        every buffer but the last is a full chunk. The writer and the digest
        thread only read them.
    """

    state: TransferState
    entry: IndexEntry
    data: list[bytes]
    size: int
    timestamp: float
    deferred: Deferred[StoreResult]


@dataclass
class AbortOp:
    state: TransferState


@dataclass
class DeleteOp:
    level: Level
    resource_id: str
    timestamp: float
    deferred: Deferred[dict[str, Any] | None]


class StopOp:
    pass


Operation = ChunkOp | FinishOp | AbortOp | DeleteOp | DigestOp | StopOp


@dataclass
class _Answer:
    deferred: Deferred[Any]
    result: Any = None
    error: StorageError | None = None


@dataclass
class _Batch:
    size: int = 0
    answers: list[_Answer] = field(default_factory=list)
    released: list[tuple[TransferState, int]] = field(default_factory=list)
    touched: dict[int, TransferState] = field(default_factory=dict)
    # Instances to hash while this batch commits, and once it has committed.
    hash_during: list[DigestJob] = field(default_factory=list)
    hash_after: list[DigestJob] = field(default_factory=list)
    # Digests applied in this batch, set aside again if its commit fails.
    digests: list[DigestOp] = field(default_factory=list)

    def answer(self, deferred: Deferred[Any]) -> _Answer:
        answer = _Answer(deferred)
        self.answers.append(answer)
        return answer

    def account(self, state: TransferState, size: int, release: bool = True) -> None:
        self.size += size
        if release:
            self.released.append((state, size))
        self.touched[id(state)] = state

    def add_digest(self, digest: DigestOp) -> None:
        self.digests.append(digest)
        if digest.release is not None:
            self.released.append(digest.release)
            digest.release = None


class Writer:
    """
    The writer thread and its queue.

    @ivar commit_observer: called on the writer thread right after each
        successful commit returned and before its Deferreds fire. Tests use it
        to record the order of commits and results.
    @ivar finish_hook: called inside the nested transaction of each finish
        after its index records are written; an exception it raises fails that
        finish. Tests use it to inject failures.
    """

    def __init__(
        self,
        env: lmdb.Environment,
        reactor: IReactorThreads,
        batch_bytes: int,
        maximum_storage_size: int,
        overwrite: bool,
        on_released: Callable[[list[tuple[TransferState, int]]], None],
    ) -> None:
        self._env = env
        self._reactor = reactor
        self._batch_bytes = max(batch_bytes, 1)
        self._quota = maximum_storage_size
        self._overwrite = overwrite
        self._on_released = on_released
        self._queue: queue.SimpleQueue[Operation] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, name="twistedpacs-writer", daemon=True
        )
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._stopped: Deferred[None] = Deferred()
        self._dbs: Databases | None = None
        self._index: IndexWriter | None = None
        self._digester: Digester | None = None
        # Computed digests not yet applied to a transaction.
        self._digests: list[DigestOp] = []
        self.commit_observer: Callable[[], None] | None = None
        self.finish_hook: Callable[[IndexEntry], None] | None = None

    def start(self) -> Databases:
        """
        Start the thread and wait until it has opened the sub-databases,
        checked the recorded versions and swept unfinished transfers.

        @raise StorageError: if any of these steps failed.
        """
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            if isinstance(self._startup_error, StorageError):
                raise self._startup_error
            raise StorageError(f"cannot prepare the store: {self._startup_error}")
        assert self._dbs is not None
        return self._dbs

    def submit(self, operation: Operation) -> None:
        self._queue.put(operation)

    def stop(self) -> Deferred[None]:
        """
        Apply everything queued, then end the thread.

        @return: a L{Deferred} that fires once the thread has ended.
        """
        self._queue.put(StopOp())
        return self._stopped

    def _run(self) -> None:
        try:
            self._startup()
        # The error is handed to start(), which raises it on the reactor.
        except BaseException as error:  # noqa: BLE001
            self._startup_error = error
            self._ready.set()
            return
        self._ready.set()
        stopping = False
        while not stopping:
            stopping = self._run_batch(self._next_operation())
        self._record_last_digests()
        self._reactor.callFromThread(self._joined)

    def _next_operation(self) -> Operation | None:
        """
        Wait for the operation that starts the next batch, setting computed
        digests aside.

        @return: the operation, or L{None} when digests waited
            C{DIGEST_DELAY} seconds and nothing else came.
        """
        while True:
            timeout = DIGEST_DELAY if self._digests else None
            try:
                operation = self._queue.get(timeout=timeout)
            except queue.Empty:
                return None
            if not isinstance(operation, DigestOp):
                return operation
            self._digests.append(operation)

    def _record_last_digests(self) -> None:
        """
        Once the last batch has committed, wait for the digest thread to hash
        what it was given and record those digests in one last commit.
        """
        assert self._digester is not None and self._dbs is not None
        self._digester.stop()
        while True:
            try:
                operation = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(operation, DigestOp):
                self._digests.append(operation)
        if not self._digests:
            return
        try:
            with self._env.begin(write=True) as txn:
                for digest in self._digests:
                    record_digest(txn, self._dbs, digest)
        except lmdb.Error as error:
            # The marks stay, so the next startup hashes these instances.
            log.error(
                "Recording {count} digests failed: {error}",
                count=len(self._digests),
                error=error,
            )
        self._digests = []

    def _joined(self) -> None:
        self._thread.join()
        self._stopped.callback(None)

    def _startup(self) -> None:
        with self._env.begin(write=True) as txn:
            dbs = open_databases(self._env, txn)
            check_versions(txn, dbs)
            sweep_pending(txn, dbs)
            sweep_unhashed(txn, dbs)
            self._index = IndexWriter(dbs, txn)
        self._dbs = dbs
        self._digester = Digester(self._env, dbs, self.submit)
        self._digester.start()

    def _run_batch(self, operation: Operation | None) -> bool:
        """
        Apply the digests set aside, C{operation} and everything queued after
        it in one transaction, commit, and fire the Deferreds of the batch.

        @return: whether a stop was requested.
        """
        assert self._digester is not None and self._dbs is not None
        batch = _Batch()
        stopping = False
        txn = self._env.begin(write=True)
        try:
            digests, self._digests = self._digests, []
            for digest in digests:
                batch.add_digest(digest)
                record_digest(txn, self._dbs, digest)
            while operation is not None:
                if isinstance(operation, StopOp):
                    stopping = True
                    break
                self._apply(txn, operation, batch)
                if batch.size >= self._batch_bytes:
                    break
                try:
                    operation = self._queue.get_nowait()
                except queue.Empty:
                    break
            for job in batch.hash_during:
                self._digester.submit(job)
            txn.commit()
        # Whatever went wrong, every Deferred of the batch must fire, or its
        # callers would wait forever. A bug is also logged as a failure.
        except Exception as error:  # noqa: BLE001
            txn.abort()
            if not isinstance(error, lmdb.Error):
                log.failure("Writer batch failed", count=len(batch.answers))
            self._fail_batch(batch, error)
            self._retry_digests(batch.digests)
        else:
            if self.commit_observer is not None:
                self.commit_observer()
            for job in batch.hash_after:
                self._digester.submit(job)
        self._reactor.callFromThread(self._deliver, batch)
        return stopping

    def _apply(
        self, txn: lmdb.Transaction, operation: Operation, batch: _Batch
    ) -> None:
        if isinstance(operation, ChunkOp):
            self._apply_chunk(txn, operation, batch)
        elif isinstance(operation, FinishOp):
            self._apply_finish(txn, operation, batch)
        elif isinstance(operation, AbortOp):
            self._apply_abort(txn, operation, batch)
        elif isinstance(operation, DeleteOp):
            self._apply_delete(txn, operation, batch)
        elif isinstance(operation, DigestOp):
            assert self._dbs is not None
            batch.add_digest(operation)
            record_digest(txn, self._dbs, operation)

    def _apply_chunk(self, txn: lmdb.Transaction, op: ChunkOp, batch: _Batch) -> None:
        assert self._dbs is not None and self._index is not None
        state = op.state
        batch.account(state, len(op.data))
        if state.aborted or state.failed is not None:
            return
        if state.blob_id is None:
            state.blob_id = self._index.allocate_blob(txn)
            txn.put(blob_key(state.blob_id), b"", db=self._dbs.pending)
        key = chunk_key(state.blob_id, state.chunks_written)
        txn.put(key, op.data, db=self._dbs.chunks)
        state.chunks_written += 1

    def _apply_abort(self, txn: lmdb.Transaction, op: AbortOp, batch: _Batch) -> None:
        assert self._dbs is not None
        batch.touched[id(op.state)] = op.state
        if op.state.blob_id is not None:
            delete_blob(txn, self._dbs, op.state.blob_id)

    def _apply_finish(self, txn: lmdb.Transaction, op: FinishOp, batch: _Batch) -> None:
        assert self._dbs is not None
        answer = batch.answer(op.deferred)
        state = op.state
        size = sum(len(piece) for piece in op.data)
        if state.failed is not None:
            batch.account(state, size)
            answer.error = state.failed
            self._discard(txn, state)
            return
        streamed = state.chunks_written
        buffers_kept = False
        child = self._env.begin(write=True, parent=txn)
        try:
            answer.result = self._finish(child, op)
            child.commit()
        except StorageError as error:
            child.abort()
            answer.error = error
        except lmdb.Error as error:
            child.abort()
            answer.error = StorageError(f"storing the instance failed: {error}")
        except Exception as error:  # noqa: BLE001
            child.abort()
            log.failure(
                "Indexing {instance_id} failed", instance_id=op.entry.ids.instance
            )
            answer.error = StorageError(f"indexing the instance failed: {error!r}")
        if answer.error is not None:
            log.warn(
                "Storing instance {instance_id} failed: {error}",
                instance_id=op.entry.ids.instance,
                error=answer.error,
            )
            answer.result = None
            state.failed = answer.error
            self._discard(txn, state)
        else:
            buffers_kept = self._plan_digest(op, answer.result, streamed, size, batch)
        # Buffers that the digest thread still reads stay counted in the flow
        # control until their digest comes back, so the global bound covers
        # them too.
        batch.account(state, size, release=not buffers_kept)

    def _plan_digest(
        self,
        op: FinishOp,
        result: StoreResult,
        streamed: int,
        size: int,
        batch: _Batch,
    ) -> bool:
        """
        Plan the hashing of a stored instance.

        @return: whether the digest thread keeps the buffers of C{op}.
        """
        if result.status is not StoreStatus.SUCCESS:
            return False
        state = op.state
        assert state.blob_id is not None
        instance_id, prefix = op.entry.ids.instance, op.entry.prefix
        if streamed:
            # Earlier chunks left the reactor's buffers as they filled, so
            # the bytes are read back once the commit contains them.
            job = DigestJob(instance_id, state.blob_id, prefix, None)
            batch.hash_after.append(job)
            return False
        job = DigestJob(instance_id, state.blob_id, prefix, op.data, (state, size))
        batch.hash_during.append(job)
        return True

    def _discard(self, txn: lmdb.Transaction, state: TransferState) -> None:
        assert self._dbs is not None
        if state.blob_id is not None:
            delete_blob(txn, self._dbs, state.blob_id)

    def _finish(self, txn: lmdb.Transaction, op: FinishOp) -> StoreResult:
        assert self._dbs is not None and self._index is not None
        dbs, index, state, entry = self._dbs, self._index, op.state, op.entry
        ids = entry.ids
        existing = get_record(txn, dbs, Level.INSTANCE, ids.instance)
        if existing is not None and not self._overwrite:
            self._discard(txn, state)
            return StoreResult(ids, StoreStatus.ALREADY_STORED, existing["FileSize"])
        freed = existing["FileSize"] if existing is not None else 0
        total = read_int(txn, dbs, DISK_BYTES_KEY)
        if self._quota and total - freed + op.size > self._quota:
            raise StorageFullError(
                f"storing {op.size} bytes would exceed the maximum storage size "
                f"of {self._quota} bytes ({total} bytes are used)"
            )
        date = orthanc_date(op.timestamp)
        if existing is not None:
            index.delete_resource(txn, Level.INSTANCE, ids.instance, date)
        if state.blob_id is None:
            state.blob_id = index.allocate_blob(txn)
        blob_id = state.blob_id
        if entry.prefix:
            txn.put(blob_key(blob_id), entry.prefix, db=dbs.chunks)
        written = write_chunks(txn, dbs, blob_id, state.chunks_written, op.data)
        state.chunks_written += written
        index.insert_instance(txn, entry, self._instance_record(op), date)
        if self.finish_hook is not None:
            self.finish_hook(entry)
        txn.delete(blob_key(blob_id), db=dbs.pending)
        txn.put(blob_key(blob_id), ids.instance.encode("ascii"), db=dbs.unhashed)
        return StoreResult(ids, StoreStatus.SUCCESS, op.size)

    def _instance_record(self, op: FinishOp) -> dict[str, Any]:
        entry = op.entry
        provenance = entry.provenance
        return {
            "BlobId": op.state.blob_id,
            "PrefixSize": len(entry.prefix),
            "FileSize": op.size,
            "ReceptionDate": orthanc_date(op.timestamp),
            "Origin": provenance.origin,
            "RemoteAET": provenance.remote_aet,
            "CalledAET": provenance.called_aet,
            "RemoteIP": provenance.remote_ip,
            "HttpUsername": provenance.http_username,
            "TransferSyntax": entry.header.transfer_syntax,
            "SopClassUid": entry.header.sop_class_uid,
        }

    def _apply_delete(self, txn: lmdb.Transaction, op: DeleteOp, batch: _Batch) -> None:
        assert self._index is not None
        answer = batch.answer(op.deferred)
        child = self._env.begin(write=True, parent=txn)
        date = orthanc_date(op.timestamp)
        try:
            remaining = self._index.delete_resource(
                child, op.level, op.resource_id, date
            )
        except KeyError:
            child.abort()
        except lmdb.Error as error:
            child.abort()
            answer.error = StorageError(f"deleting {op.resource_id} failed: {error}")
        else:
            child.commit()
            answer.result = {"RemainingAncestor": remaining}

    def _retry_digests(self, digests: list[DigestOp]) -> None:
        """
        Set aside again the digests of a batch whose commit failed, because
        their instances were committed by earlier batches.
        """
        dropped = 0
        for digest in digests:
            digest.attempts += 1
            if digest.attempts < DIGEST_ATTEMPTS:
                self._digests.append(digest)
            else:
                dropped += 1
        if dropped:
            log.error(
                "Dropped the MD5 of {count} instances after {attempts} failed "
                "commits; the next startup hashes them again",
                count=dropped,
                attempts=DIGEST_ATTEMPTS,
            )

    def _fail_batch(self, batch: _Batch, error: Exception) -> None:
        """
        Fail every answer of a batch whose transaction was aborted, and delete
        what earlier batches stored of its transfers.
        """
        failure = StorageError(f"the commit failed: {error}")
        for answer in batch.answers:
            answer.result = None
            answer.error = failure
        for state in batch.touched.values():
            if state.failed is None:
                state.failed = failure
        log.error(
            "Commit failed, so {answers} operations and {transfers} transfers "
            "failed: {error}",
            answers=len(batch.answers),
            transfers=len(batch.touched),
            error=error,
        )
        try:
            with self._env.begin(write=True) as txn:
                for state in batch.touched.values():
                    self._discard(txn, state)
        except lmdb.Error as cleanup_error:
            # The pending marks committed with the first chunks stay, so the
            # sweep at the next open deletes these blobs.
            log.error(
                "Deleting the chunks of failed transfers failed: {error}",
                error=cleanup_error,
            )

    def _deliver(self, batch: _Batch) -> None:
        self._on_released(batch.released)
        for answer in batch.answers:
            if answer.error is not None:
                answer.deferred.errback(answer.error)
            else:
                answer.deferred.callback(answer.result)
