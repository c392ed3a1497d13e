"""
Tests for the MD5 that the digest thread records after the acknowledgement.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time

from typing import Any

import lmdb
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from twistedpacs.config import MIB
from twistedpacs.model import IndexEntry, Level, StorageError, StoreStatus
from twistedpacs.storage import writer as writer_module
from twistedpacs.storage.digest import Digester
from twistedpacs.storage.index import blob_key
from twistedpacs.storage.store import Store
from tests.test_storage import (
    PREFIX,
    Recorder,
    barrier,
    keys_of,
    make_entry,
    open_store,
    payload,
    store_bytes,
)


def recorded_md5(store: Store, instance_id: str) -> str | None:
    record = store.get(Level.INSTANCE, instance_id)
    assert record is not None
    md5: str | None = record.get("FileMD5")
    return md5


def forget_md5(directory: str, instance_id: str, mark: bool) -> None:
    """
    Make a closed store look as if it stopped before the MD5 of an instance
    was recorded: drop C{FileMD5} from its record, and write the mark the
    writer leaves until then when C{mark} is true.
    """
    env = lmdb.open(directory, max_dbs=24)
    try:
        instances = env.open_db(b"instances")
        unhashed = env.open_db(b"unhashed")
        with env.begin(write=True) as txn:
            key = instance_id.encode("ascii")
            record = json.loads(txn.get(key, db=instances))
            del record["FileMD5"]
            txn.put(key, json.dumps(record).encode(), db=instances)
            if mark:
                txn.put(blob_key(record["BlobId"]), key, db=unhashed)
    finally:
        env.close()


async def store_without_md5(
    case: TestCase, directory: str, data: bytes, entry: IndexEntry, mark: bool
) -> None:
    """
    Store C{data} in a fresh store in C{directory}, close it, and make it look
    as if it stopped before the MD5 was recorded (see L{forget_md5}).
    """
    store = open_store(case, directory)
    await store_bytes(store, data, entry)
    await store.close()
    forget_md5(directory, entry.ids.instance, mark)


class _FailingCommit:
    """
    A write transaction whose commit raises, as on a full or failing disk.
    """

    def __init__(self, txn: lmdb.Transaction) -> None:
        self.txn = txn

    def commit(self) -> None:
        raise lmdb.DiskError("injected commit failure")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.txn, name)


class _FailingEnvironment:
    """
    The writer's environment, whose next C{failures} top-level write
    transactions fail to commit.
    """

    def __init__(self, env: lmdb.Environment) -> None:
        self.env = env
        self.failures = 0

    def begin(self, **arguments: Any) -> Any:
        parent = arguments.get("parent")
        if isinstance(parent, _FailingCommit):
            arguments["parent"] = parent.txn
        txn = self.env.begin(**arguments)
        if arguments.get("write") and parent is None and self.failures:
            self.failures -= 1
            return _FailingCommit(txn)
        return txn

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)


class DigestTests(TestCase):
    """
    The MD5 is computed off the reactor and recorded after the commit that
    acknowledged the instance, and never lost.
    """

    async def wait_for_md5(self, store: Store, instance_id: str) -> str:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            md5 = recorded_md5(store, instance_id)
            if md5 is not None:
                return md5
            await deferLater(reactor, 0.01, lambda: None)
        self.fail("the MD5 was never recorded")

    async def test_recorded_when_idle(self) -> None:
        """
        With nothing else to commit, the MD5 is recorded on its own shortly
        after the instance, and its mark is deleted.
        """
        store = open_store(self)
        data = payload(700_000)
        entry = make_entry(prefix=PREFIX)
        await store_bytes(store, data, entry)
        md5 = await self.wait_for_md5(store, entry.ids.instance)
        self.assertEqual(md5, hashlib.md5(PREFIX + data).hexdigest())
        self.assertEqual(keys_of(store, "unhashed"), [])

    async def test_streamed_instance(self) -> None:
        """
        An instance streamed in chunks is hashed from the committed chunks,
        with the prefix known only at finish.
        """
        store = open_store(self, in_memory_threshold=256 * 1024)
        data = payload(2 * MIB + 1, seed=2)
        entry = make_entry(prefix=PREFIX)
        await store_bytes(store, data, entry, piece=100_000)
        md5 = await self.wait_for_md5(store, entry.ids.instance)
        self.assertEqual(md5, hashlib.md5(PREFIX + data).hexdigest())

    async def test_rides_with_next_commit(self) -> None:
        """
        A digest waits for the next batch instead of forcing a commit: two
        instances stored one after the other take two commits, and the
        second records the MD5 of the first.
        """
        self.patch(writer_module, "DIGEST_DELAY", 30.0)
        store = open_store(self)
        commits: list[int] = []
        store.writer.commit_observer = lambda: commits.append(1)
        first, second = make_entry(), make_entry(sop="1.2.3.4.6")
        first_data, second_data = payload(1000, seed=1), payload(1000, seed=2)
        await store_bytes(store, first_data, first)
        # Give the digest thread time to hand the first MD5 back.
        await deferLater(reactor, 0.2, lambda: None)
        self.assertEqual(len(commits), 1)
        self.assertIsNone(recorded_md5(store, first.ids.instance))
        await store_bytes(store, second_data, second)
        self.assertEqual(len(commits), 2)
        self.assertEqual(
            recorded_md5(store, first.ids.instance),
            hashlib.md5(first_data).hexdigest(),
        )
        self.assertIsNone(recorded_md5(store, second.ids.instance))

    async def test_recorded_at_close(self) -> None:
        """
        Closing the store records every MD5 still outstanding.
        """
        self.patch(writer_module, "DIGEST_DELAY", 30.0)
        directory = self.mktemp()
        store = open_store(self, directory)
        entries = [make_entry(sop=f"1.2.3.4.{n}") for n in range(5)]
        for number, entry in enumerate(entries):
            await store_bytes(store, payload(10_000, seed=number), entry)
        await store.close()
        store = open_store(self, directory)
        for number, entry in enumerate(entries):
            self.assertEqual(
                recorded_md5(store, entry.ids.instance),
                hashlib.md5(payload(10_000, seed=number)).hexdigest(),
            )
        self.assertEqual(keys_of(store, "unhashed"), [])

    async def test_swept_at_startup(self) -> None:
        """
        An instance whose MD5 was not recorded when the store stopped is
        hashed when the store opens again.
        """
        directory = self.mktemp()
        data = payload(1_500_000, seed=4)
        entry = make_entry(prefix=PREFIX)
        await store_without_md5(self, directory, data, entry, mark=True)
        store = open_store(self, directory)
        self.assertEqual(
            recorded_md5(store, entry.ids.instance),
            hashlib.md5(PREFIX + data).hexdigest(),
        )
        self.assertEqual(keys_of(store, "unhashed"), [])

    async def test_mark_of_deleted_instance(self) -> None:
        """
        An instance deleted before its MD5 is recorded leaves no mark and no
        record behind.
        """
        self.patch(writer_module, "DIGEST_DELAY", 30.0)
        directory = self.mktemp()
        store = open_store(self, directory)
        entry = make_entry()
        await store_bytes(store, payload(5000), entry)
        await store.delete(Level.INSTANCE, entry.ids.instance)
        await store.close()
        store = open_store(self, directory)
        self.assertIsNone(store.get(Level.INSTANCE, entry.ids.instance))
        self.assertEqual(keys_of(store, "unhashed"), [])
        self.assertEqual(keys_of(store, "chunks"), [])

    async def test_overwritten_instance(self) -> None:
        """
        The MD5 of a replaced copy never lands on the copy that replaced it.
        """
        self.patch(writer_module, "DIGEST_DELAY", 30.0)
        directory = self.mktemp()
        store = open_store(self, directory, overwrite_instances=True)
        entry = make_entry()
        await store_bytes(store, b"first copy", entry)
        result = await store_bytes(store, b"second copy", entry)
        self.assertEqual(result.status, StoreStatus.SUCCESS)
        await store.close()
        store = open_store(self, directory)
        self.assertEqual(
            recorded_md5(store, entry.ids.instance),
            hashlib.md5(b"second copy").hexdigest(),
        )
        self.assertEqual(keys_of(store, "unhashed"), [])

    async def test_metadata_before_recorded(self) -> None:
        """
        Metadata read before the MD5 is recorded carries the MD5 of the
        stored bytes all the same.
        """
        directory = self.mktemp()
        data = payload(600_000, seed=7)
        entry = make_entry(prefix=PREFIX)
        await store_without_md5(self, directory, data, entry, mark=False)
        store = open_store(self, directory)
        self.assertNotIn("FileMD5", store.metadata(entry.ids.instance) or {})
        metadata = await store.metadata_with_md5(entry.ids.instance)
        assert metadata is not None
        self.assertEqual(metadata["FileMD5"], hashlib.md5(PREFIX + data).hexdigest())
        self.assertIsNone(await store.metadata_with_md5("nope"))

    async def fail_commit_after_store(self, store: Store) -> tuple[IndexEntry, bytes]:
        """
        Store one instance, wait until its MD5 is set aside for the next
        batch, then make that batch's commit fail with a second instance.

        @return: the first instance's entry and bytes.
        """
        environment = _FailingEnvironment(store.writer._env)
        store.writer._env = environment  # type: ignore[assignment]
        first, data = make_entry(sop="1.2.3.4.1"), payload(2000, seed=1)
        await store_bytes(store, data, first)
        # Give the digest thread time to hand the MD5 back.
        await deferLater(reactor, 0.2, lambda: None)
        environment.failures = 1
        with self.assertRaises(StorageError):
            await store_bytes(store, payload(2000, seed=2), make_entry(sop="1.2.3.4.2"))
        return first, data

    async def test_kept_after_failed_commit(self) -> None:
        """
        The MD5 of an instance committed earlier survives a later batch
        whose commit fails, and the next commit records it.
        """
        self.patch(writer_module, "DIGEST_DELAY", 30.0)
        store = open_store(self)
        first, data = await self.fail_commit_after_store(store)
        self.assertIsNone(recorded_md5(store, first.ids.instance))
        await store_bytes(store, payload(2000, seed=3), make_entry(sop="1.2.3.4.3"))
        self.assertEqual(
            recorded_md5(store, first.ids.instance), hashlib.md5(data).hexdigest()
        )

    async def test_dropped_after_attempts(self) -> None:
        """
        A digest whose batches keep failing is dropped, and the next startup
        hashes its instance.
        """
        self.patch(writer_module, "DIGEST_DELAY", 30.0)
        self.patch(writer_module, "DIGEST_ATTEMPTS", 1)
        directory = self.mktemp()
        store = open_store(self, directory)
        first, data = await self.fail_commit_after_store(store)
        await store_bytes(store, payload(2000, seed=3), make_entry(sop="1.2.3.4.3"))
        self.assertIsNone(recorded_md5(store, first.ids.instance))
        await store.close()
        store = open_store(self, directory)
        self.assertEqual(
            recorded_md5(store, first.ids.instance), hashlib.md5(data).hexdigest()
        )
        self.assertEqual(keys_of(store, "unhashed"), [])

    async def test_metadata_fields_of_hashed_copy(self) -> None:
        """
        Metadata whose MD5 is computed on demand takes every field from the
        record it hashes, even when the first read saw a copy that an
        overwrite has replaced since.
        """
        self.patch(writer_module, "DIGEST_DELAY", 30.0)
        store = open_store(self, overwrite_instances=True)
        entry = make_entry()
        await store_bytes(store, b"first copy", entry)
        stale = store.metadata(entry.ids.instance)
        assert stale is not None
        stale.pop("FileMD5", None)
        await store_bytes(store, b"the second, longer copy", entry)
        self.patch(store, "metadata", lambda instance_id: dict(stale))
        metadata = await store.metadata_with_md5(entry.ids.instance)
        assert metadata is not None
        self.assertEqual(metadata["FileSize"], "23")
        self.assertEqual(
            metadata["FileMD5"], hashlib.md5(b"the second, longer copy").hexdigest()
        )

    async def test_damaged_instance_at_startup(self) -> None:
        """
        A marked instance whose chunks are gone is logged at startup and does
        not keep the store from opening.
        """
        directory = self.mktemp()
        entry = make_entry()
        data = payload(3000, seed=8)
        await store_without_md5(self, directory, data, entry, mark=True)
        env = lmdb.open(directory, max_dbs=24)
        try:
            chunks = env.open_db(b"chunks")
            with env.begin(write=True) as txn:
                cursor = txn.cursor(db=chunks)
                while cursor.first():
                    cursor.delete()
        finally:
            env.close()
        store = open_store(self, directory)
        self.assertIsNone(recorded_md5(store, entry.ids.instance))
        self.assertEqual(keys_of(store, "unhashed"), [])

    async def test_held_buffers_count_in_global_bound(self) -> None:
        """
        The bytes of an instance stay in the global bound until its digest
        comes back, so a slow digest thread pauses other transfers instead of
        holding unbounded buffers.
        """
        released = threading.Event()
        original = Digester._hash

        def slow_hash(digester: Digester, job: Any) -> str | None:
            released.wait(10)
            return original(digester, job)

        self.patch(Digester, "_hash", slow_hash)
        self.addCleanup(released.set)
        store = open_store(self, in_memory_threshold=MIB, global_queue_bound=MIB)
        await store_bytes(store, payload(700_000), make_entry(sop="1.2.3.4.1"))
        recorder = Recorder()
        transfer = store.begin_transfer(recorder.pause, recorder.resume)
        transfer.write(payload(MIB + 1, seed=2))
        self.assertEqual(recorder.pauses, 1)
        released.set()
        deadline = time.monotonic() + 10
        while not recorder.resumes and time.monotonic() < deadline:
            await deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(recorder.resumes, 1)
        await transfer.finish(make_entry(sop="1.2.3.4.2"))
        await deferLater(reactor, 0.2, lambda: None)
        await barrier(store)
        self.assertEqual(store._flow.queued, 0)
