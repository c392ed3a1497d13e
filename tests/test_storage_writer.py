"""
Tests for L{twistedpacs.storage.writer}: failures inside the writer, the
quota, aborts, the order of commits and results, and backpressure.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase

from tests.test_storage import (
    Recorder,
    barrier,
    keys_of,
    make_entry,
    open_store,
    payload,
    store_bytes,
)
from twistedpacs.config import MIB
from twistedpacs.model import (
    IndexEntry,
    Level,
    StorageError,
    StorageFullError,
    StoreStatus,
)
from twistedpacs.storage.index import CHUNK_SIZE
from twistedpacs.storage.store import Store

_TRACES = ("chunks", "pending", "children", "lookups", "order", "changes")


def assert_empty(case: TestCase, store: Store) -> None:
    """
    Assert that the store contains no instance and no trace of one.
    """
    for name in _TRACES:
        case.assertEqual(keys_of(store, name), [], name)
    for level in Level:
        case.assertEqual(store.count(level), 0, level)
    case.assertEqual(store.statistics()["TotalDiskSize"], "0")


class FailureTests(TestCase):
    """
    A failure in the writer fails only what it should and leaves nothing.
    """

    async def test_failing_finish_fails_alone(self) -> None:
        """
        A finish that raises inside its nested transaction fails alone while
        the others of the same batch are stored.
        """
        store = open_store(self)
        bad = make_entry(patient="BAD")

        def hook(entry: IndexEntry) -> None:
            if entry is bad:
                raise RuntimeError("injected indexing failure")

        store.writer.finish_hook = hook
        entries = [make_entry(sop="1"), bad, make_entry(sop="2")]
        transfers = [store.begin_transfer(lambda: None, lambda: None) for _ in entries]
        for transfer in transfers:
            transfer.write(b"data")
        finishes = [t.finish(e) for t, e in zip(transfers, entries)]
        first = await finishes[0]
        with self.assertRaises(StorageError) as caught:
            await finishes[1]
        third = await finishes[2]
        self.assertEqual(first.status, StoreStatus.SUCCESS)
        self.assertEqual(third.status, StoreStatus.SUCCESS)
        self.assertIn("injected indexing failure", str(caught.exception))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertIsNone(store.get(Level.PATIENT, bad.ids.patient))
        self.assertEqual(store.lookup(Level.PATIENT, "BAD"), [])
        self.assertEqual(store.count(Level.INSTANCE), 2)
        self.assertEqual(store.count(Level.PATIENT), 1)
        self.assertEqual(len(keys_of(store, "chunks")), 2)
        changed = {change["ID"] for change in store.changes()["Changes"]}
        self.assertNotIn(bad.ids.patient, changed)

    async def test_failing_streamed_finish_deletes_chunks(self) -> None:
        """
        A streamed transfer whose finish fails leaves no chunk and no pending
        mark behind.
        """
        store = open_store(self, in_memory_threshold=CHUNK_SIZE)

        def hook(entry: IndexEntry) -> None:
            raise RuntimeError("injected indexing failure")

        store.writer.finish_hook = hook
        with self.assertRaises(StorageError):
            await store_bytes(store, payload(3 * MIB), make_entry(), piece=100_000)
        self.flushLoggedErrors(RuntimeError)
        assert_empty(self, store)

    async def test_map_full_in_memory(self) -> None:
        """
        An instance that does not fit the map fails with L{StorageError},
        leaves nothing, and the store goes on storing.
        """
        store = open_store(self, lmdb_map_size=2 * MIB)
        with self.assertRaises(StorageError):
            await store_bytes(store, payload(4 * MIB), make_entry())
        assert_empty(self, store)
        small = make_entry(sop="small")
        result = await store_bytes(store, b"fits", small)
        self.assertEqual(result.status, StoreStatus.SUCCESS)
        self.assertEqual(await store.read_file(small.ids.instance), b"fits")

    async def test_map_full_streamed(self) -> None:
        """
        A streamed transfer that fills the map fails its whole batch, and its
        chunks of earlier batches are deleted.
        """
        store = open_store(self, lmdb_map_size=2 * MIB, in_memory_threshold=0)
        transfer = store.begin_transfer(lambda: None, lambda: None)
        transfer.write(payload(CHUNK_SIZE))
        await barrier(store)
        self.assertEqual(len(keys_of(store, "chunks")), 1)
        transfer.write(payload(4 * MIB))
        with self.assertRaises(StorageError):
            await transfer.finish(make_entry())
        await barrier(store)
        assert_empty(self, store)
        result = await store_bytes(store, b"fits", make_entry(sop="small"))
        self.assertEqual(result.status, StoreStatus.SUCCESS)

    async def test_quota_exceeded(self) -> None:
        """
        An instance that would exceed the maximum storage size fails with
        L{StorageFullError} and nothing of it is stored.
        """
        store = open_store(self, maximum_storage_size=1000)
        kept = make_entry(sop="1")
        await store_bytes(store, payload(600), kept)
        with self.assertRaises(StorageFullError):
            await store_bytes(store, payload(600), make_entry(patient="P2"))
        self.assertEqual(store.count(Level.INSTANCE), 1)
        self.assertEqual(store.count(Level.PATIENT), 1)
        self.assertEqual(store.statistics()["TotalDiskSize"], "600")
        self.assertEqual(len(keys_of(store, "chunks")), 1)
        result = await store_bytes(store, payload(400), make_entry(sop="2"))
        self.assertEqual(result.status, StoreStatus.SUCCESS)

    async def test_quota_exceeded_streamed(self) -> None:
        """
        A streamed instance over the quota leaves no chunk and no pending mark.
        """
        store = open_store(self, maximum_storage_size=MIB, in_memory_threshold=0)
        with self.assertRaises(StorageFullError):
            await store_bytes(store, payload(2 * MIB), make_entry(), piece=300_000)
        assert_empty(self, store)

    async def test_duplicate_ignores_quota(self) -> None:
        """
        A duplicate returns AlreadyStored even when the store is full.
        """
        store = open_store(self, maximum_storage_size=1000)
        entry = make_entry()
        await store_bytes(store, payload(900), entry)
        result = await store_bytes(store, payload(900), entry)
        self.assertEqual(result.status, StoreStatus.ALREADY_STORED)


class AbortTests(TestCase):
    """
    An aborted transfer leaves nothing behind.
    """

    async def test_abort_mid_transfer(self) -> None:
        """
        Aborting a streamed transfer after chunks were committed deletes them
        and the pending mark.
        """
        store = open_store(self, in_memory_threshold=CHUNK_SIZE)
        transfer = store.begin_transfer(lambda: None, lambda: None)
        transfer.write(payload(3 * CHUNK_SIZE + 17))
        await barrier(store)
        self.assertEqual(len(keys_of(store, "chunks")), 3)
        self.assertEqual(len(keys_of(store, "pending")), 1)
        transfer.abort()
        await barrier(store)
        assert_empty(self, store)

    async def test_abort_in_memory(self) -> None:
        """
        Aborting a small transfer sends nothing to the writer.
        """
        store = open_store(self)
        transfer = store.begin_transfer(lambda: None, lambda: None)
        transfer.write(b"abc")
        transfer.abort()
        transfer.abort()
        await barrier(store)
        assert_empty(self, store)
        self.assertRaises(StorageError, transfer.write, b"more")


class OrderTests(TestCase):
    """
    Every result fires after the commit containing it has returned.
    """

    async def test_answer_after_commit(self) -> None:
        """
        Each finish fires after a commit returned, and what it acknowledges is
        visible to a new read transaction at that moment.
        """
        store = open_store(self)
        events: list[str] = []
        store.writer.commit_observer = lambda: events.append("commit")
        entries = [make_entry(sop=str(n)) for n in range(20)]
        visible: list[bool] = []

        def answered(result: object, entry: IndexEntry) -> object:
            events.append("answer")
            visible.append(store.get(Level.INSTANCE, entry.ids.instance) is not None)
            return result

        finishes: list[Deferred[object]] = []
        for entry in entries:
            transfer = store.begin_transfer(lambda: None, lambda: None)
            transfer.write(payload(50_000))
            finishes.append(transfer.finish(entry).addCallback(answered, entry))
            if len(finishes) % 7 == 0:
                await finishes[-1]
        await gatherResults(finishes)
        self.assertEqual(visible, [True] * 20)
        self.assertEqual(events[0], "commit")
        commits = events.count("commit")
        self.assertGreaterEqual(commits, 3)
        self.assertLess(commits, 20 + 1)

    async def test_group_commit_batches(self) -> None:
        """
        Finishes queued together are committed together.
        """
        store = open_store(self)
        commits: list[int] = []
        store.writer.commit_observer = lambda: commits.append(1)
        transfers = [
            store.begin_transfer(lambda: None, lambda: None) for _ in range(50)
        ]
        for transfer in transfers:
            transfer.write(b"x" * 100)
        finishes = [t.finish(make_entry(sop=str(n))) for n, t in enumerate(transfers)]
        await gatherResults(finishes)
        self.assertLess(len(commits), 50)
        self.assertEqual(store.count(Level.INSTANCE), 50)

    async def test_commit_batch_bytes_bound(self) -> None:
        """
        A batch commits once it contains C{commit_batch_bytes}.
        """
        store = open_store(self, commit_batch_bytes=MIB)
        commits: list[int] = []
        store.writer.commit_observer = lambda: commits.append(1)
        transfers = [store.begin_transfer(lambda: None, lambda: None) for _ in range(8)]
        for transfer in transfers:
            transfer.write(payload(MIB))
        finishes = [t.finish(make_entry(sop=str(n))) for n, t in enumerate(transfers)]
        await gatherResults(finishes)
        self.assertEqual(len(commits), 8)


class BackpressureTests(TestCase):
    """
    Transfers are paused while too many of their bytes wait for the writer.
    """

    async def test_transfer_bound_pauses(self) -> None:
        """
        A transfer over its bound is paused once, and resumed once the writer
        has caught up.
        """
        store = open_store(self, in_memory_threshold=0, transfer_queue_bound=MIB)
        recorder = Recorder()
        transfer = store.begin_transfer(recorder.pause, recorder.resume)
        transfer.write(payload(4 * MIB))
        self.assertEqual(recorder.pauses, 1)
        self.assertEqual(recorder.resumes, 0)
        await barrier(store)
        self.assertEqual(recorder.resumes, 1)
        await transfer.finish(make_entry())
        self.assertEqual(recorder.pauses, 1)

    async def test_global_bound_pauses(self) -> None:
        """
        When all queued bytes exceed the global bound, the transfer writing
        is paused even below its own bound.
        """
        store = open_store(
            self,
            in_memory_threshold=0,
            transfer_queue_bound=64 * MIB,
            global_queue_bound=2 * MIB,
        )
        first, second = Recorder(), Recorder()
        one = store.begin_transfer(first.pause, first.resume)
        two = store.begin_transfer(second.pause, second.resume)
        one.write(payload(3 * CHUNK_SIZE))
        two.write(payload(2 * CHUNK_SIZE))
        self.assertEqual(first.pauses, 0)
        self.assertEqual(second.pauses, 1)
        await barrier(store)
        self.assertEqual(second.resumes, 1)
        await gatherResults(
            [one.finish(make_entry(sop="1")), two.finish(make_entry(sop="2"))]
        )
        self.assertEqual(store.count(Level.INSTANCE), 2)

    async def test_below_bound_never_pauses(self) -> None:
        """
        A transfer below both bounds is never paused.
        """
        store = open_store(self, in_memory_threshold=0)
        recorder = Recorder()
        await store_bytes(store, payload(3 * MIB), make_entry(), piece=CHUNK_SIZE)
        transfer = store.begin_transfer(recorder.pause, recorder.resume)
        transfer.write(payload(MIB))
        await transfer.finish(make_entry(sop="2"))
        self.assertEqual((recorder.pauses, recorder.resumes), (0, 0))
