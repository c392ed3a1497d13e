"""
Storing every DICOM entry of an uploaded ZIP archive.

Entries are read from the spool file in the reactor's thread pool, one block at
a time, and fed to the same ingest path as a single upload. Nothing is ever
extracted to disk, so entry names (absolute, or with C{..}) cannot write
outside the store.
"""

from __future__ import annotations

import posixpath
import zipfile
import zlib
from dataclasses import dataclass
from typing import IO, Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from twistedpacs.dicom.scan import InvalidInstanceError, NotDicomError
from twistedpacs.ingest import IngestSession, InstanceTooLargeError
from twistedpacs.model import (
    Provenance,
    StorageError,
    StorageFullError,
    StoreResult,
)
from twistedpacs.rest.errors import RestError
from twistedpacs.rest.upload import ZipSpool

log = Logger()

READ_BLOCK = 1024 * 1024


def _open_archive(path: str) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise RestError(400, "Invalid ZIP archive", str(error), "BadFileFormat")
    return archive, archive.infolist()


def is_dicomdir_name(name: str) -> bool:
    return posixpath.basename(name.replace("\\", "/")).upper() == "DICOMDIR"


@dataclass
class EntryOutcome:
    """
    The outcome of one archive entry: stored, or rejected with an error.
    """

    filename: str
    result: StoreResult | None = None
    error: RestError | None = None


@inlineCallbacks
def store_archive(
    spool: ZipSpool,
    store: Any,
    provenance: Provenance,
    reactor: Any,
    maximum_instance_size: int = 0,
) -> Deferred[list[EntryOutcome]]:
    """
    Store every DICOM entry of the archive in C{spool}, then delete the spool.

    Directories, DICOMDIR entries and entries that are not DICOM are skipped.
    An entry that cannot be read (bad CRC, broken compressed data,
    encryption) or is an invalid instance is rejected on its own, and the
    entries around it are still stored.

    @return: a Deferred firing with the outcome of each entry that was DICOM
        or unreadable, in archive order.
    @raise RestError: (in the Deferred) 400 when the archive itself cannot be
        read or lists no entry; nothing is stored then.
    """
    pool = reactor.getThreadPool()
    outcomes: list[EntryOutcome] = []
    try:
        archive, entries = yield deferToThreadPool(
            reactor, pool, _open_archive, spool.path
        )
        try:
            if not entries:
                raise RestError(
                    400,
                    "Invalid ZIP archive",
                    "the archive's central directory lists no entry",
                    "BadFileFormat",
                )
            for entry in entries:
                if entry.is_dir() or is_dicomdir_name(entry.filename):
                    continue
                outcome = yield _store_entry(
                    archive, entry, store, provenance, reactor, maximum_instance_size
                )
                if outcome is not None:
                    outcomes.append(outcome)
        finally:
            archive.close()
    finally:
        spool.remove()
    return outcomes


# Errors zipfile and zlib raise for an entry that cannot be read.
_ENTRY_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,
    RuntimeError,
    EOFError,
    OSError,
    ValueError,
)


def _read_block(stream: IO[bytes]) -> bytes:
    return stream.read(READ_BLOCK)


@inlineCallbacks
def _store_entry(
    archive: zipfile.ZipFile,
    entry: zipfile.ZipInfo,
    store: Any,
    provenance: Provenance,
    reactor: Any,
    maximum_instance_size: int,
) -> Deferred[EntryOutcome | None]:
    pool = reactor.getThreadPool()
    name = entry.filename
    try:
        stream = yield deferToThreadPool(reactor, pool, archive.open, entry)
    except _ENTRY_READ_ERRORS as error:
        return _unreadable(name, error)
    session = IngestSession(store, provenance, maximum_size=maximum_instance_size)
    try:
        while True:
            try:
                block = yield deferToThreadPool(reactor, pool, _read_block, stream)
            except _ENTRY_READ_ERRORS as error:
                session.abort()
                return _unreadable(name, error)
            if not block:
                break
            session.feed(block)
    finally:
        stream.close()
    try:
        result = yield session.finish()
    except NotDicomError:
        log.info("Skipped ZIP entry {name}: not DICOM", name=name)
        return None
    except InvalidInstanceError as error:
        log.info(
            "Rejected ZIP entry {name}: {problem}", name=name, problem=error.message
        )
        status = 413 if isinstance(error, InstanceTooLargeError) else 400
        return EntryOutcome(
            name, error=RestError(status, error.message, error.details, "BadFileFormat")
        )
    except StorageFullError as error:
        return EntryOutcome(
            name, error=RestError(507, "The storage is full", str(error), "FullStorage")
        )
    except StorageError as error:
        log.failure("Storing ZIP entry {name} failed", name=name)
        return EntryOutcome(
            name, error=RestError(507, "The storage failed", str(error), "FullStorage")
        )
    return EntryOutcome(name, result=result)


def _unreadable(name: str, error: Exception) -> EntryOutcome:
    log.info("Rejected ZIP entry {name}: {error}", name=name, error=error)
    return EntryOutcome(
        name,
        error=RestError(
            400,
            "Unreadable ZIP entry",
            f"cannot read entry {name}: {error}",
            "BadFileFormat",
        ),
    )
