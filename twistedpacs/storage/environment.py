"""
Opening the LMDB environment, checking its recorded versions and sweeping
the blobs of transfers that never finished.
"""

from __future__ import annotations

import os

import lmdb
from twisted.logger import Logger

from twistedpacs.model import Level, StorageError
from twistedpacs.storage.index import (
    FORMAT_VERSION_KEY,
    LMDB_ENGINE_KEY,
    LMDB_PACKAGE_KEY,
    Databases,
    decode_int,
    delete_blob,
    encode_int,
)

log = Logger()

# Version of the layout described in twistedpacs.storage.index. A store
# written with another version is refused rather than misread.
FORMAT_VERSION = 1

# Twelve sub-databases are used; the rest is headroom for later indexes.
MAX_DBS = 24

_NAMES = (
    "chunks",
    "children",
    "lookups",
    "order",
    "changes",
    "pending",
    "unhashed",
    "meta",
)


def open_environment(directory: str, map_size: int) -> lmdb.Environment:
    """
    Open (creating if needed) the environment in C{directory}.

    Every commit is flushed to disk twice (C{sync} and C{metasync}). The
    environment never uses C{writemap}, with which a full disk raises SIGBUS
    instead of an error.

    @raise StorageError: if LMDB cannot open the directory.
    """
    os.makedirs(directory, exist_ok=True)
    try:
        return lmdb.open(
            directory,
            map_size=map_size,
            subdir=True,
            sync=True,
            metasync=True,
            writemap=False,
            map_async=False,
            lock=True,
            max_dbs=MAX_DBS,
        )
    except lmdb.Error as error:
        raise StorageError(f"cannot open the LMDB store in {directory}: {error}")


def engine_version() -> str:
    return ".".join(str(part) for part in lmdb.version())


def open_databases(env: lmdb.Environment, txn: lmdb.Transaction) -> Databases:
    """
    Open or create every sub-database inside the write transaction C{txn}.
    """
    handles = {name: env.open_db(name.encode(), txn=txn) for name in _NAMES}
    levels = {level: env.open_db(level.value.encode(), txn=txn) for level in Level}
    return Databases(env=env, levels=levels, **handles)


def check_versions(txn: lmdb.Transaction, dbs: Databases) -> None:
    """
    Record the format and LMDB versions in a new store, or check them in an
    existing one.

    @raise StorageError: if the store was written with another format version.
    """
    stored = txn.get(FORMAT_VERSION_KEY, db=dbs.meta)
    package, engine = lmdb.__version__, engine_version()
    if stored is None:
        txn.put(FORMAT_VERSION_KEY, encode_int(FORMAT_VERSION), db=dbs.meta)
        txn.put(LMDB_PACKAGE_KEY, package.encode(), db=dbs.meta)
        txn.put(LMDB_ENGINE_KEY, engine.encode(), db=dbs.meta)
        log.info(
            "Created store format {format_version} with lmdb {package} "
            "(LMDB {engine})",
            format_version=FORMAT_VERSION,
            package=package,
            engine=engine,
        )
        return
    version = decode_int(stored)
    if version != FORMAT_VERSION:
        raise StorageError(
            f"the store has format version {version}, but this server reads "
            f"only version {FORMAT_VERSION}; open it with a matching release"
        )
    created_package = bytes(txn.get(LMDB_PACKAGE_KEY, b"", db=dbs.meta)).decode()
    created_engine = bytes(txn.get(LMDB_ENGINE_KEY, b"", db=dbs.meta)).decode()
    if (created_package, created_engine) != (package, engine):
        log.warn(
            "Store created with lmdb {created_package} (LMDB {created_engine}) "
            "is opened with lmdb {package} (LMDB {engine})",
            created_package=created_package,
            created_engine=created_engine,
            package=package,
            engine=engine,
        )


def sweep_pending(txn: lmdb.Transaction, dbs: Databases) -> int:
    """
    Delete the chunks of every transfer that was in flight when the store
    last stopped. The cost is proportional to the pending transfers only.

    @return: the number of blobs deleted.
    """
    cursor = txn.cursor(db=dbs.pending)
    blob_ids = [decode_int(key) for key in cursor.iternext(keys=True, values=False)]
    for blob_id in blob_ids:
        delete_blob(txn, dbs, blob_id)
    if blob_ids:
        log.info("Deleted {count} unfinished transfers", count=len(blob_ids))
    return len(blob_ids)
