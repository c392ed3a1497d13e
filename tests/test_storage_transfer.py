"""
Tests for L{twistedpacs.storage.transfer} and L{twistedpacs.storage.null},
without a writer thread.
"""

from __future__ import annotations

import gc
import tracemalloc

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.test_storage import PREFIX, Recorder, make_entry, payload
from twistedpacs.config import Settings
from twistedpacs.model import Level, StorageError, StoreStatus
from twistedpacs.storage.index import CHUNK_SIZE
from twistedpacs.storage.null import NullStore
from twistedpacs.storage.transfer import FlowControl, Transfer
from twistedpacs.storage.writer import (
    AbortOp,
    ChunkOp,
    FinishOp,
    Operation,
    TransferState,
)


def make_transfer(
    threshold: int, flow: FlowControl | None = None, recorder: Recorder | None = None
) -> tuple[Transfer, list[Operation], TransferState]:
    """
    Build a transfer whose operations are collected in a list.
    """
    recorder = recorder or Recorder()
    state = TransferState(recorder.pause, recorder.resume)
    operations: list[Operation] = []
    transfer = Transfer(
        state,
        operations.append,
        flow or FlowControl(1 << 40, 1 << 40),
        Clock().seconds,
        threshold,
        lambda transfer: None,
    )
    return transfer, operations, state


def sent_bytes(operations: list[Operation]) -> bytes:
    pieces: list[bytes] = []
    for operation in operations:
        if isinstance(operation, ChunkOp):
            pieces.append(bytes(operation.data))
        elif isinstance(operation, FinishOp):
            pieces.extend(bytes(piece) for piece in operation.data)
    return b"".join(pieces)


class TransferTests(SynchronousTestCase):
    """
    The reactor side of a transfer: buffering, chunking and hashing.
    """

    @given(
        size=st.integers(min_value=0, max_value=3 * CHUNK_SIZE + 100),
        piece=st.integers(min_value=1, max_value=CHUNK_SIZE + 7),
        threshold=st.sampled_from([0, 1000, CHUNK_SIZE, 4 * CHUNK_SIZE]),
    )
    def test_chunks_any_pieces(self, size: int, piece: int, threshold: int) -> None:
        """
        Whatever the piece sizes, the writer gets full chunks while streaming
        and the rest at finish, which together equal the bytes written.
        """
        data = payload(size, seed=size)
        transfer, operations, _ = make_transfer(threshold)
        for start in range(0, size, piece):
            transfer.write(data[start : start + piece])
        transfer.finish(make_entry())
        chunks = [op for op in operations if isinstance(op, ChunkOp)]
        finish = operations[-1]
        assert isinstance(finish, FinishOp)
        self.assertTrue(all(len(op.data) == CHUNK_SIZE for op in chunks))
        self.assertTrue(all(len(piece) == CHUNK_SIZE for piece in finish.data[:-1]))
        self.assertEqual(sent_bytes(operations), data)
        self.assertEqual(finish.size, size)
        if size <= threshold:
            self.assertEqual(chunks, [])

    def test_buffers_copied(self) -> None:
        """
        The transfer copies what it keeps, so the caller may reuse a buffer.
        """
        transfer, operations, _ = make_transfer(1 << 20)
        buffer = bytearray(b"abc")
        transfer.write(memoryview(buffer))
        buffer[:] = b"xyz"
        transfer.finish(make_entry())
        self.assertEqual(sent_bytes(operations), b"abc")

    def test_bytearray_copied(self) -> None:
        """
        A bytearray handed over whole is copied at once.
        """
        transfer, operations, _ = make_transfer(1 << 20)
        buffer = bytearray(b"abc")
        transfer.write(buffer)
        buffer[:] = b"xyz"
        transfer.finish(make_entry())
        self.assertEqual(sent_bytes(operations), b"abc")

    def test_read_only_view_of_bytearray_copied(self) -> None:
        """
        A read-only view of a bytearray is copied, because the bytearray may
        still change.
        """
        transfer, operations, _ = make_transfer(1 << 20)
        buffer = bytearray(b"abc" * 10000)
        transfer.write(memoryview(buffer).toreadonly())
        buffer[:3] = b"xyz"
        transfer.finish(make_entry())
        self.assertEqual(sent_bytes(operations), b"abc" * 10000)

    def test_tiny_pieces_bounded(self) -> None:
        """
        One-byte pieces, such as one-byte PDVs or HTTP chunks, cost about
        their own size while they wait for their chunk.
        """
        transfer, _, _ = make_transfer(1 << 30)
        tracemalloc.start()
        try:
            for _ in range(100_000):
                transfer.write(memoryview(bytes(2))[:1])
            gc.collect()
            retained, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        self.assertEqual(transfer.size, 100_000)
        self.assertLess(retained, 1 << 20)

    def test_pinned_buffers_bounded(self) -> None:
        """
        Views of many large receive buffers keep at most 2 MiB of them
        alive, and the rest of their bytes are copied.
        """
        transfer, _, _ = make_transfer(1 << 30)
        tracemalloc.start()
        try:
            for _ in range(30):
                transfer.write(memoryview(bytes(1 << 20))[:17_000])
            gc.collect()
            retained, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        self.assertEqual(transfer.size, 30 * 17_000)
        self.assertLess(retained, 3 << 20)

    def test_large_pieces_kept_uncopied(self) -> None:
        """
        Large pieces of received bytes wait for their chunk by reference, and
        are joined into C{bytes} chunks. The last chunk contains only its own
        bytes.
        """
        data = payload(CHUNK_SIZE + 1000, seed=7)
        pieces = [data[start : start + 65536] for start in range(0, len(data), 65536)]
        transfer, operations, _ = make_transfer(1 << 30)
        tracemalloc.start()
        try:
            for piece in pieces[:7]:
                transfer.write(piece)
            pending, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        for piece in pieces[7:]:
            transfer.write(piece)
        transfer.finish(make_entry())
        finish = operations[-1]
        assert isinstance(finish, FinishOp)
        self.assertLess(pending, 65536)
        self.assertEqual([len(piece) for piece in finish.data], [CHUNK_SIZE, 1000])
        self.assertEqual([type(piece) for piece in finish.data], [bytes, bytes])
        self.assertEqual(b"".join(finish.data), data)

    def test_streamed_chunks_are_bytes(self) -> None:
        """
        Past the threshold each chunk leaves as one C{bytes} of a chunk's
        length as soon as its last byte is written.
        """
        data = payload(2 * CHUNK_SIZE, seed=8)
        transfer, operations, _ = make_transfer(0)
        transfer.write(data[: CHUNK_SIZE - 1])
        self.assertEqual(operations, [])
        transfer.write(data[CHUNK_SIZE - 1 :])
        chunks = [op.data for op in operations if isinstance(op, ChunkOp)]
        self.assertEqual([len(chunk) for chunk in chunks], [CHUNK_SIZE, CHUNK_SIZE])
        self.assertEqual([type(chunk) for chunk in chunks], [bytes, bytes])
        self.assertEqual(b"".join(chunks), data)

    def test_finish_twice_refused(self) -> None:
        """
        A second finish, or a write after finish, raises L{StorageError}.
        """
        transfer, _, _ = make_transfer(100)
        transfer.finish(make_entry())
        self.assertRaises(StorageError, transfer.finish, make_entry())
        self.assertRaises(StorageError, transfer.write, b"x")

    def test_abort_streamed(self) -> None:
        """
        Aborting a streamed transfer queues an abort for the writer, but
        aborting an in-memory one queues nothing.
        """
        transfer, operations, state = make_transfer(0)
        transfer.write(payload(CHUNK_SIZE))
        transfer.abort()
        self.assertIsInstance(operations[-1], AbortOp)
        self.assertTrue(state.aborted)
        small, small_operations, _ = make_transfer(1000)
        small.write(b"x")
        small.abort()
        self.assertEqual(small_operations, [])

    def test_failed_transfer_fails_finish(self) -> None:
        """
        A transfer the writer has failed fails its finish with that error.
        """
        transfer, operations, state = make_transfer(0)
        transfer.write(payload(CHUNK_SIZE))
        state.failed = StorageError("the commit failed")
        transfer.write(b"dropped")
        failure = self.failureResultOf(transfer.finish(make_entry()), StorageError)
        self.assertEqual(str(failure.value), "the commit failed")
        self.assertIsInstance(operations[-1], AbortOp)


class FlowControlTests(SynchronousTestCase):
    """
    Pausing and resuming by queued bytes.
    """

    def test_pause_resume_transfer_bound(self) -> None:
        """
        A transfer over its bound is paused once and resumed once released.
        """
        flow = FlowControl(transfer_bound=CHUNK_SIZE, global_bound=1 << 40)
        recorder = Recorder()
        transfer, _, state = make_transfer(0, flow, recorder)
        transfer.write(payload(3 * CHUNK_SIZE))
        self.assertEqual((recorder.pauses, recorder.resumes), (1, 0))
        self.assertEqual(state.queued, 3 * CHUNK_SIZE)
        flow.release([(state, CHUNK_SIZE)])
        self.assertEqual(recorder.resumes, 0)
        flow.release([(state, CHUNK_SIZE)])
        self.assertEqual((recorder.pauses, recorder.resumes), (1, 1))
        self.assertEqual(flow.queued, CHUNK_SIZE)

    def test_global_bound_resumes_all(self) -> None:
        """
        Transfers paused by the global bound all resume once it is met.
        """
        flow = FlowControl(transfer_bound=1 << 40, global_bound=CHUNK_SIZE)
        recorders = [Recorder(), Recorder(), Recorder()]
        states = []
        for recorder in recorders:
            transfer, _, state = make_transfer(0, flow, recorder)
            transfer.write(payload(CHUNK_SIZE))
            states.append(state)
        self.assertEqual([r.pauses for r in recorders], [0, 1, 1])
        flow.release([(state, CHUNK_SIZE) for state in states])
        self.assertEqual([r.resumes for r in recorders], [0, 1, 1])
        self.assertEqual(flow.queued, 0)


class NullStoreTests(SynchronousTestCase):
    """
    The benchmark store succeeds at once and keeps nothing.
    """

    def test_finish_succeeds_at_once(self) -> None:
        """
        A finish returns Success with the ids and the size at once.
        """
        store = NullStore(Settings(), Clock())
        store.open()
        transfer = store.begin_transfer(lambda: None, lambda: None)
        transfer.write(b"12345")
        entry = make_entry(prefix=PREFIX)
        result = self.successResultOf(transfer.finish(entry))
        self.assertEqual(result.status, StoreStatus.SUCCESS)
        self.assertEqual(result.ids, entry.ids)
        self.assertEqual(result.size, len(PREFIX) + 5)
        self.assertIsNone(store.get(Level.INSTANCE, entry.ids.instance))
        self.assertEqual(store.statistics()["CountInstances"], 0)
        self.assertIsNone(self.successResultOf(store.delete(Level.PATIENT, "x")))
        self.successResultOf(store.close())
