"""
The physical ceiling of the machine for the same bytes: files written and
synced one by one, LMDB transactions synced one per file or per 16 MiB, and
one loopback TCP stream.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

import lmdb

from benchmarks.data import DataSet

CHUNK = 512 * 1024
BATCH_BYTES = 16 * 1024 * 1024


def _rate(data: DataSet, seconds: float) -> dict[str, Any]:
    return {
        "seconds": seconds,
        "instances_per_second": data.count / seconds,
        "mb_per_second": data.total_bytes / seconds / 1e6,
    }


def _read_all(data: DataSet) -> list[bytes]:
    contents = []
    for path in data.files:
        with open(path, "rb") as stream:
            contents.append(stream.read())
    return contents


def file_fsync(data: DataSet, workdir: Path) -> dict[str, Any]:
    """
    Write each file to a new file and C{fsync} it before the next one.
    """
    contents = _read_all(data)
    target = workdir / "fsync"
    target.mkdir()
    started = time.perf_counter()
    for index, content in enumerate(contents):
        descriptor = os.open(target / f"{index}.dcm", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, content)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    seconds = time.perf_counter() - started
    shutil.rmtree(target)
    return _rate(data, seconds)


def _lmdb(data: DataSet, workdir: Path, batch_bytes: int) -> dict[str, Any]:
    contents = _read_all(data)
    target = workdir / "lmdb"
    environment = lmdb.open(
        str(target), map_size=1 << 36, sync=True, metasync=True, max_dbs=2
    )
    chunks = environment.open_db(b"chunks")
    started = time.perf_counter()
    pending = 0
    transaction = environment.begin(write=True, db=chunks)
    for index, content in enumerate(contents):
        for offset in range(0, len(content), CHUNK):
            key = index.to_bytes(8, "big") + (offset // CHUNK).to_bytes(4, "big")
            transaction.put(key, content[offset : offset + CHUNK])
        pending += len(content)
        if pending >= batch_bytes:
            transaction.commit()
            transaction = environment.begin(write=True, db=chunks)
            pending = 0
    transaction.commit()
    seconds = time.perf_counter() - started
    environment.close()
    shutil.rmtree(target)
    return _rate(data, seconds)


def lmdb_per_file(data: DataSet, workdir: Path) -> dict[str, Any]:
    """
    One LMDB write transaction per file (512 KiB values), committed with
    C{sync} and C{metasync}.
    """
    return _lmdb(data, workdir, 1)


def lmdb_group(data: DataSet, workdir: Path) -> dict[str, Any]:
    """
    LMDB transactions of about 16 MiB each, committed with C{sync}: the
    group commit an ingest can reach when many instances wait.
    """
    return _lmdb(data, workdir, BATCH_BYTES)


def loopback(data: DataSet, workdir: Path) -> dict[str, Any]:
    """
    Send every file's bytes over one loopback TCP connection to a thread that
    reads and discards them.
    """
    contents = _read_all(data)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    received = [0]

    def drain() -> None:
        connection, _ = listener.accept()
        buffer = bytearray(1 << 20)
        with connection:
            while True:
                count = connection.recv_into(buffer)
                if not count:
                    return
                received[0] += count

    reader = threading.Thread(target=drain)
    reader.start()
    sender = socket.create_connection(listener.getsockname())
    started = time.perf_counter()
    for content in contents:
        sender.sendall(content)
    sender.shutdown(socket.SHUT_WR)
    reader.join(timeout=300)
    seconds = time.perf_counter() - started
    sender.close()
    listener.close()
    if received[0] != data.total_bytes:
        raise RuntimeError(f"loopback got {received[0]} of {data.total_bytes} bytes")
    return _rate(data, seconds)


CEILINGS = {
    "write+fsync per file": file_fsync,
    "LMDB put+sync per file": lmdb_per_file,
    "LMDB put+sync per 16 MiB": lmdb_group,
    "loopback TCP, one stream": loopback,
}

LARGE_CEILINGS = {
    "write+fsync per file": file_fsync,
    "LMDB put+sync per 16 MiB": lmdb_group,
}
