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
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from twistedpacs.dicom.scan import InvalidInstanceError, NotDicomError
from twistedpacs.ingest import IngestSession
from twistedpacs.model import Provenance, StoreResult
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


@inlineCallbacks
def store_archive(
    spool: ZipSpool,
    store: Any,
    provenance: Provenance,
    reactor: Any,
    maximum_instance_size: int = 0,
) -> Deferred[list[tuple[str, StoreResult]]]:
    """
    Store every DICOM entry of the archive in C{spool}, then delete the spool.

    DICOMDIR entries, directories and entries that are not DICOM are skipped.

    @return: a Deferred firing with (entry name, result) pairs of the stored
        entries, in archive order.
    """
    pool = reactor.getThreadPool()
    results: list[tuple[str, StoreResult]] = []
    try:
        archive, entries = yield deferToThreadPool(
            reactor, pool, _open_archive, spool.path
        )
        try:
            for entry in entries:
                if entry.is_dir() or is_dicomdir_name(entry.filename):
                    continue
                result = yield _store_entry(
                    archive, entry, store, provenance, reactor, maximum_instance_size
                )
                if result is not None:
                    results.append((entry.filename, result))
        finally:
            archive.close()
    finally:
        spool.remove()
    return results


@inlineCallbacks
def _store_entry(
    archive: zipfile.ZipFile,
    entry: zipfile.ZipInfo,
    store: Any,
    provenance: Provenance,
    reactor: Any,
    maximum_instance_size: int,
) -> Deferred[StoreResult | None]:
    pool = reactor.getThreadPool()
    try:
        stream = yield deferToThreadPool(reactor, pool, archive.open, entry)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as error:
        log.info("Skipped ZIP entry {name}: {error}", name=entry.filename, error=error)
        return None
    session = IngestSession(store, provenance, maximum_size=maximum_instance_size)
    try:
        while True:
            try:
                block = yield deferToThreadPool(reactor, pool, stream.read, READ_BLOCK)
            except (zipfile.BadZipFile, OSError, EOFError) as error:
                session.abort()
                raise RestError(
                    400,
                    "Invalid ZIP archive",
                    f"cannot read entry {entry.filename}: {error}",
                    "BadFileFormat",
                )
            if not block:
                break
            session.feed(block)
    finally:
        stream.close()
    try:
        result = yield session.finish()
    except NotDicomError:
        log.info("Skipped ZIP entry {name}: not DICOM", name=entry.filename)
        return None
    except InvalidInstanceError as error:
        log.info(
            "Skipped ZIP entry {name}: {message}",
            name=entry.filename,
            message=error.message,
        )
        return None
    return result
