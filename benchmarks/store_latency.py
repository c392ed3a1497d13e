"""
Time one instance at a time through the store, as a single association
does, beside the MD5 of the same bytes (which the digest thread computes
while the commit is flushed) and a bare LMDB put and synced commit.

Run from the repository root: C{python -m benchmarks.store_latency [COUNT]}.
It writes to temporary directories under /tmp and prints milliseconds per
instance of 526 KiB, the size of a SMALL instance.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace

import lmdb
from twisted.internet import defer, reactor

from twistedpacs.config import Settings
from twistedpacs.dicom.ids import resource_ids
from twistedpacs.model import IndexEntry, InstanceHeader, Level, Provenance
from twistedpacs.storage.store import Store

SIZE = 526 * 1024


def entry(index: int) -> IndexEntry:
    sop = f"2.25.{index + 1}"
    header = InstanceHeader(
        transfer_syntax="1.2.840.10008.1.2.1",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        sop_instance_uid=sop,
        study_instance_uid="2.25.7",
        series_instance_uid="2.25.8",
        patient_id="LATENCY",
        has_file_meta=True,
        main_tags={level: {} for level in Level},
    )
    ids = resource_ids("LATENCY", "2.25.7", "2.25.8", sop)
    return IndexEntry(ids, header, Provenance("DicomProtocol"))


@defer.inlineCallbacks
def measure(count: int) -> defer.Deferred[None]:
    data = os.urandom(SIZE)
    directory = tempfile.mkdtemp(prefix="twistedpacs-latency-")
    try:
        store = Store(
            replace(Settings(), storage_directory=directory + "/store"), reactor
        )
        store.open()
        start = time.perf_counter()
        for index in range(count):
            transfer = store.begin_transfer(lambda: None, lambda: None)
            transfer.write(data)
            yield transfer.finish(entry(index))
        store_ms = (time.perf_counter() - start) / count * 1000
        yield store.close()

        start = time.perf_counter()
        for _ in range(count):
            hashlib.md5(data).digest()
        md5_ms = (time.perf_counter() - start) / count * 1000

        env = lmdb.open(directory + "/raw", map_size=1 << 34, sync=True, metasync=True)
        start = time.perf_counter()
        for index in range(count):
            with env.begin(write=True) as txn:
                txn.put(b"%d" % index, data)
        raw_ms = (time.perf_counter() - start) / count * 1000
        env.close()
        print(
            f"store, one instance at a time: {store_ms:.2f} ms ({1000 / store_ms:.0f}/s)"
        )
        print(f"MD5 of the same bytes:          {md5_ms:.2f} ms")
        print(
            f"bare LMDB put + synced commit:  {raw_ms:.2f} ms ({1000 / raw_ms:.0f}/s)"
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        reactor.stop()


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    reactor.callWhenRunning(measure, count)
    reactor.run()


if __name__ == "__main__":
    main()
