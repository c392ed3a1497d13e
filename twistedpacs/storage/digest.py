"""
The MD5 of stored instances, computed off the reactor and off the path of
the acknowledgement.

An instance is acknowledged once the commit holding its bytes and index
entries has returned, and its record then lacks C{FileMD5}. The same commit
writes a mark into the C{unhashed} sub-database. The digest thread hashes the
instance while the writer waits for that commit's fsync, and hands the result
back to the writer as a L{DigestOp}. The writer records it in the next
transaction it commits and deletes the mark. At startup, the writer hashes
every instance still marked, so a crash between the two commits loses no
digest. A reader that finds no C{FileMD5} yet hashes the stored bytes itself.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lmdb
from twisted.logger import Logger

from twistedpacs.model import Level, StorageError
from twistedpacs.storage.index import (
    Databases,
    blob_key,
    decode_int,
    encode_record,
    get_record,
    stored_pieces,
)

log = Logger()


@dataclass
class DigestJob:
    """
    One instance to hash.

    @ivar pieces: the bytes after the prefix, in the buffers the writer put,
        or L{None} to read them back from the store once committed.
    @ivar release: the transfer and the bytes of C{pieces} that the flow
        control counts until the digest comes back, or L{None}.
    """

    instance_id: str
    blob_id: int
    prefix: bytes
    pieces: list[bytes] | None
    release: tuple[Any, int] | None = None


@dataclass
class DigestOp:
    """
    The MD5 of an instance, for the writer to record (or L{None} when its
    chunks were gone, because the instance was deleted or its commit failed).

    @ivar attempts: the failed commits this digest took part in.
    @ivar release: the job's C{release}, which the writer hands back to the
        flow control with its next batch.
    @ivar keep_mark: the hashing failed, so the mark stays for the next
        startup and nothing is recorded.
    """

    instance_id: str
    blob_id: int
    md5: str | None
    attempts: int = 0
    release: tuple[Any, int] | None = None
    keep_mark: bool = False


class _Stop:
    pass


def hash_stored(txn: lmdb.Transaction, dbs: Databases, record: dict[str, Any]) -> str:
    """
    Return the hex MD5 of the stored prefix and chunks of an instance record.

    @raise StorageError: if the prefix or a chunk is missing.
    """
    digest = hashlib.md5()
    for piece in stored_pieces(txn, dbs, record):
        digest.update(piece)
    return digest.hexdigest()


def record_digest(txn: lmdb.Transaction, dbs: Databases, op: DigestOp) -> None:
    """
    Write the MD5 into the instance record, if the record still names the
    same blob, and delete the mark.
    """
    if op.keep_mark:
        return
    txn.delete(blob_key(op.blob_id), db=dbs.unhashed)
    if op.md5 is None:
        return
    record = get_record(txn, dbs, Level.INSTANCE, op.instance_id)
    if record is None or record.get("BlobId") != op.blob_id:
        return
    if record.get("FileMD5"):
        return
    record["FileMD5"] = op.md5
    key = op.instance_id.encode("ascii")
    txn.put(key, encode_record(record), db=dbs.levels[Level.INSTANCE])


def sweep_unhashed(txn: lmdb.Transaction, dbs: Databases) -> int:
    """
    Hash every instance whose MD5 was not recorded before the store last
    stopped. The cost is proportional to the marked instances only.

    @return: the number of instances hashed.
    """
    cursor = txn.cursor(db=dbs.unhashed)
    marks = [
        (decode_int(key), bytes(value).decode("ascii"))
        for key, value in cursor.iternext(keys=True, values=True)
    ]
    hashed = 0
    for blob_id, instance_id in marks:
        record = get_record(txn, dbs, Level.INSTANCE, instance_id)
        md5 = None
        if record is not None and record.get("BlobId") == blob_id:
            try:
                md5 = hash_stored(txn, dbs, record)
            except StorageError as error:
                # A damaged instance must not keep the store from opening.
                log.error(
                    "Cannot hash instance {instance_id}: {error}",
                    instance_id=instance_id,
                    error=error,
                )
            else:
                hashed += 1
        record_digest(txn, dbs, DigestOp(instance_id, blob_id, md5))
    if marks:
        log.info("Recorded the MD5 of {count} instances", count=hashed)
    return hashed


class Digester:
    """
    The digest thread. Jobs are hashed in the order they were submitted and
    each result goes to C{deliver}, from this thread.

    hashlib releases the GIL while it hashes more than 2 KiB, so the thread
    runs beside the writer's fsync and the reactor.
    """

    def __init__(
        self,
        env: lmdb.Environment,
        dbs: Databases,
        deliver: Callable[[DigestOp], None],
    ) -> None:
        self._env = env
        self._dbs = dbs
        self._deliver = deliver
        self._jobs: queue.SimpleQueue[DigestJob | _Stop] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, name="twistedpacs-digest", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: DigestJob) -> None:
        self._jobs.put(job)

    def stop(self) -> None:
        """
        Hash every job submitted so far, then end the thread; blocks.
        """
        self._jobs.put(_Stop())
        self._thread.join()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if isinstance(job, _Stop):
                return
            digest = DigestOp(job.instance_id, job.blob_id, None, release=job.release)
            try:
                digest.md5 = self._hash(job)
            # The mark stays, so the next startup hashes the instance.
            except (lmdb.Error, StorageError) as error:
                log.warn(
                    "Hashing instance {instance_id} failed: {error}",
                    instance_id=job.instance_id,
                    error=error,
                )
                digest.keep_mark = True
            self._deliver(digest)

    def _hash(self, job: DigestJob) -> str | None:
        if job.pieces is not None:
            digest = hashlib.md5(job.prefix)
            for piece in job.pieces:
                digest.update(piece)
            return digest.hexdigest()
        with self._env.begin(buffers=True) as txn:
            record = get_record(txn, self._dbs, Level.INSTANCE, job.instance_id)
            if record is None or record.get("BlobId") != job.blob_id:
                return None
            return hash_stored(txn, self._dbs, record)
