"""
Reads of the index, which may run on the reactor in short read transactions,
and the chunk reader, which reads instance bytes in a thread pool.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

import lmdb
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from twistedpacs.model import Level, StorageError
from twistedpacs.storage.digest import hash_stored
from twistedpacs.storage.index import (
    CHANGE_COUNTER_KEY,
    CHUNK_SIZE,
    COUNT_KEYS,
    DISK_BYTES_KEY,
    LEVEL_CODES,
    UNCOMPRESSED_BYTES_KEY,
    Databases,
    blob_key,
    child_ids,
    chunk_key,
    decode_int,
    decode_record,
    encode_int,
    get_record,
    lookup_prefix,
    prefix_keys,
    read_int,
    stored_pieces,
)

MIB = 1024 * 1024

# Record fields that are internal to the store and not shown to callers.
_INTERNAL_FIELDS = ("Order", "LookupValue", "BlobId", "PrefixSize")

_METADATA_FIELDS = (
    "ReceptionDate",
    "Origin",
    "RemoteAET",
    "CalledAET",
    "RemoteIP",
    "TransferSyntax",
    "SopClassUid",
    "HttpUsername",
    "FileSize",
    "FileMD5",
)


def read_resource(
    dbs: Databases, level: Level, resource_id: str
) -> dict[str, Any] | None:
    """
    Return the index record of a resource with C{ID} and C{Type} added.
    """
    with dbs.env.begin() as txn:
        record = get_record(txn, dbs, level, resource_id)
    if record is None:
        return None
    for name in _INTERNAL_FIELDS:
        record.pop(name, None)
    record["ID"] = resource_id
    record["Type"] = level.orthanc_type
    return record


def read_ids(dbs: Databases, level: Level, since: int, limit: int) -> list[str]:
    """
    Return resource ids of a level in insertion order, skipping C{since} and
    returning at most C{limit} (all when C{limit} is 0).
    """
    # NOTE: skipping costs one cursor step per skipped key, so a deep offset
    # is linear in the offset (without decoding any record).
    prefix = LEVEL_CODES[level]
    stop = None if limit <= 0 else max(since, 0) + limit
    with dbs.env.begin() as txn:
        cursor = txn.cursor(db=dbs.order)
        if not cursor.set_range(prefix):
            return []
        items = cursor.iternext(keys=True, values=True)
        result = []
        for key, value in islice(items, max(since, 0), stop):
            if not bytes(key).startswith(prefix):
                break
            result.append(bytes(value).decode("ascii"))
        return result


def read_children(dbs: Databases, resource_id: str) -> list[str]:
    with dbs.env.begin() as txn:
        return child_ids(txn, dbs, resource_id)


def read_lookup(dbs: Databases, level: Level, value: str) -> list[str]:
    """
    Return the ids of a level whose identifier (PatientID, StudyInstanceUID,
    SeriesInstanceUID or SOPInstanceUID) equals C{value}.
    """
    prefix = lookup_prefix(level, value)
    with dbs.env.begin() as txn:
        keys = prefix_keys(txn, dbs.lookups, prefix)
    return [key[len(prefix) :].decode("ascii") for key in keys]


def read_count(dbs: Databases, level: Level) -> int:
    with dbs.env.begin() as txn:
        return read_int(txn, dbs, COUNT_KEYS[level])


def read_statistics(dbs: Databases) -> dict[str, Any]:
    """
    Return the counters in the shape of Orthanc's C{/statistics}, where the
    byte totals are strings and the megabyte totals integers.
    """
    with dbs.env.begin() as txn:
        counts = {level: read_int(txn, dbs, COUNT_KEYS[level]) for level in Level}
        disk = read_int(txn, dbs, DISK_BYTES_KEY)
        uncompressed = read_int(txn, dbs, UNCOMPRESSED_BYTES_KEY)
    return {
        "CountPatients": counts[Level.PATIENT],
        "CountStudies": counts[Level.STUDY],
        "CountSeries": counts[Level.SERIES],
        "CountInstances": counts[Level.INSTANCE],
        "TotalDiskSize": str(disk),
        "TotalDiskSizeMB": disk // MIB,
        "TotalUncompressedSize": str(uncompressed),
        "TotalUncompressedSizeMB": uncompressed // MIB,
    }


def read_metadata(dbs: Databases, instance_id: str) -> dict[str, str] | None:
    with dbs.env.begin() as txn:
        record = get_record(txn, dbs, Level.INSTANCE, instance_id)
    return None if record is None else _metadata_of(record)


def _metadata_of(record: dict[str, Any]) -> dict[str, str]:
    metadata = {}
    for name in _METADATA_FIELDS:
        value = record.get(name)
        if value is None or value == "":
            continue
        metadata[name] = str(value)
    return metadata


def read_metadata_with_md5(dbs: Databases, instance_id: str) -> dict[str, str] | None:
    """
    Return the metadata of an instance with C{FileMD5}, computing the MD5
    from the stored bytes when it is not recorded yet; runs in the pool.

    The record and the bytes come from one read transaction, so with
    overwrites the MD5 always belongs to the copy the other fields describe.

    @raise StorageError: if LMDB fails or a chunk is missing.
    """
    try:
        with dbs.env.begin(buffers=True) as txn:
            record = get_record(txn, dbs, Level.INSTANCE, instance_id)
            if record is None:
                return None
            if not record.get("FileMD5"):
                record["FileMD5"] = hash_stored(txn, dbs, record)
    except lmdb.Error as error:
        raise StorageError(f"reading instance {instance_id} failed: {error}")
    return _metadata_of(record)


def read_changes(dbs: Databases, since: int, limit: int) -> dict[str, Any]:
    """
    Return the change log after sequence number C{since} in the shape of
    Orthanc's C{/changes}.
    """
    changes: list[dict[str, Any]] = []
    done = True
    with dbs.env.begin() as txn:
        last_seq = read_int(txn, dbs, CHANGE_COUNTER_KEY)
        cursor = txn.cursor(db=dbs.changes)
        if cursor.set_range(encode_int(max(since, 0) + 1)):
            for key, value in cursor.iternext(keys=True, values=True):
                if len(changes) >= limit:
                    done = False
                    break
                event = decode_record(value)
                level = Level(_LEVEL_BY_TYPE[event["ResourceType"]])
                event["Seq"] = decode_int(key)
                event["Path"] = f"/{level.value}/{event['ID']}"
                changes.append(event)
    if changes:
        last = changes[-1]["Seq"]
    else:
        last = since if since > 0 else last_seq
    return {"Changes": changes, "Done": done, "Last": last}


_LEVEL_BY_TYPE = {level.orthanc_type: level.value for level in Level}


class BlobReader:
    """
    Sequential reader of one stored instance file, reading each chunk in one
    short read transaction on a thread pool.

    @ivar size: the file size, prefix included.
    """

    def __init__(
        self,
        dbs: Databases,
        reactor: IReactorFromThreads,
        pool: ThreadPool,
        instance_id: str,
        record: dict[str, Any],
    ) -> None:
        self._dbs = dbs
        self._reactor = reactor
        self._pool = pool
        self._instance_id = instance_id
        self._blob_id: int = record["BlobId"]
        self._has_prefix = bool(record["PrefixSize"])
        self.size: int = record["FileSize"]
        data_size = self.size - record["PrefixSize"]
        self._chunk_count = -(-data_size // CHUNK_SIZE)
        self._next = -1 if self._has_prefix else 0

    def read_next(self) -> Deferred[bytes | None]:
        """
        Read the next piece: the stored prefix first (if any), then each
        chunk.

        @return: a L{Deferred} firing with the bytes, or with L{None} after
            the last chunk. It fails with L{StorageError} when the instance
            was deleted or overwritten while it was read.
        """
        number = self._next
        if number >= self._chunk_count:
            return succeed(None)
        self._next += 1
        key = (
            blob_key(self._blob_id) if number < 0 else chunk_key(self._blob_id, number)
        )
        return deferToThreadPool(self._reactor, self._pool, self._read, key)

    def _read(self, key: bytes) -> bytes:
        try:
            with self._dbs.env.begin() as txn:
                value = txn.get(key, db=self._dbs.chunks)
        except lmdb.Error as error:
            raise StorageError(f"reading instance {self._instance_id} failed: {error}")
        if value is None:
            raise StorageError(
                f"instance {self._instance_id} was deleted while it was read"
            )
        return bytes(value)


def read_whole_file(dbs: Databases, instance_id: str) -> bytes | None:
    """
    Read a whole instance file in one read transaction; runs in the pool.

    @raise StorageError: if LMDB fails or a chunk is missing.
    """
    try:
        return _read_whole_file(dbs, instance_id)
    except lmdb.Error as error:
        raise StorageError(f"reading instance {instance_id} failed: {error}")


def _read_whole_file(dbs: Databases, instance_id: str) -> bytes | None:
    with dbs.env.begin() as txn:
        record = get_record(txn, dbs, Level.INSTANCE, instance_id)
        if record is None:
            return None
        try:
            return b"".join(stored_pieces(txn, dbs, record))
        except StorageError as error:
            raise StorageError(f"instance {instance_id} has missing chunks: {error}")
