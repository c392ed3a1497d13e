"""
Per-transfer buffering on the reactor, and the backpressure that pauses a
sender while the writer catches up.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger

from twistedpacs.model import IndexEntry, StorageError, StoreResult
from twistedpacs.storage.index import CHUNK_SIZE
from twistedpacs.storage.writer import (
    AbortOp,
    ChunkOp,
    FinishOp,
    Operation,
    TransferState,
)

log = Logger()

# A view of received bytes waits for its chunk by reference only if it is at
# least _KEPT_MINIMUM bytes long, and if the bytes objects that the waiting
# views keep alive stay within _PINNED_LIMIT (two 1 MiB socket reads).
_KEPT_MINIMUM = 16 * 1024
_PINNED_LIMIT = 2 * 1024 * 1024


class FlowControl:
    """
    Accounting of the bytes queued to the writer, on the reactor thread.

    A transfer is paused when its own queued bytes exceed C{transfer_bound} or
    all queued bytes exceed C{global_bound}, and resumed once both are back
    within their bounds.
    """

    def __init__(self, transfer_bound: int, global_bound: int) -> None:
        self.transfer_bound = transfer_bound
        self.global_bound = global_bound
        self.queued = 0
        self._paused: dict[int, TransferState] = {}

    def add(self, state: TransferState, size: int) -> None:
        state.queued += size
        self.queued += size
        if state.paused or not self._over(state):
            return
        state.paused = True
        self._paused[id(state)] = state
        state.pause()

    def release(self, released: list[tuple[TransferState, int]]) -> None:
        for state, size in released:
            state.queued -= size
            self.queued -= size
        for key, state in list(self._paused.items()):
            if not self._over(state):
                del self._paused[key]
                state.paused = False
                state.resume()

    def forget(self, state: TransferState) -> None:
        self._paused.pop(id(state), None)

    def _over(self, state: TransferState) -> bool:
        return state.queued > self.transfer_bound or self.queued > self.global_bound


class Transfer:
    """
    The bytes of one instance on their way into the store.

    Written pieces wait until they add up to one chunk (512 KiB), and are
    then joined into that chunk, so the last chunk is only as long as its
    bytes and no buffer is zero-filled first. A view of received C{bytes}
    waits by reference, so its bytes are copied once, unless it is small or
    the receive buffers kept alive that way would exceed 2 MiB. Those
    views, and writable data, which its owner may change, are copied at
    once into a buffer of waiting bytes. Up to the in-memory threshold the chunks
    stay here and go to the writer at L{finish}. Past it each chunk goes to
    the writer as it fills, and the writer marks the blob as pending with the
    first chunk.
    """

    def __init__(
        self,
        state: TransferState,
        submit: Callable[[Operation], None],
        flow: FlowControl,
        seconds: Callable[[], float],
        in_memory_threshold: int,
        on_done: Callable[[Transfer], None],
    ) -> None:
        self._state = state
        self._submit = submit
        self._flow = flow
        self._seconds = seconds
        self._threshold = in_memory_threshold
        self._on_done = on_done
        # Full chunks kept until finish, and the pieces of the next chunk.
        self._chunks: list[bytes] = []
        self._pieces: deque[memoryview | bytearray] = deque()
        self._fill = 0
        self._size = 0
        self._streaming = False
        self._done = False

    @property
    def size(self) -> int:
        """
        Bytes written so far, without any prefix.
        """
        return self._size

    def write(self, data: bytes | memoryview) -> None:
        """
        Add bytes of the instance.

        @raise StorageError: if the transfer is finished or aborted.
        """
        if self._done:
            raise StorageError("cannot write to a finished or aborted transfer")
        if self._state.failed is not None or not data:
            return
        view = memoryview(data)
        size = len(view)
        self._size += size
        if self._fill + size < CHUNK_SIZE and not self._may_wait(view):
            self._copy(view)
            self._fill += size
        else:
            # Either the view completes a chunk, which reads it before this
            # call returns, or it may wait uncopied.
            self._pieces.append(view)
            self._fill += size
            while self._fill >= CHUNK_SIZE:
                self._chunk_filled(self._join(CHUNK_SIZE))
            rest = self._pieces[-1] if self._pieces else None
            if isinstance(rest, memoryview) and not self._may_wait(rest):
                self._pieces[-1] = bytearray(rest)
        if not self._streaming and self._size > self._threshold:
            self._start_streaming()

    def _may_wait(self, view: memoryview) -> bool:
        """
        Tell whether C{view} may wait for its chunk uncopied. It must view an
        immutable C{bytes} object and be at least C{_KEPT_MINIMUM} bytes long,
        and the receive buffers it and the waiting views keep alive must stay
        within C{_PINNED_LIMIT}.
        """
        base = view.obj
        if type(base) is not bytes or len(view) < _KEPT_MINIMUM:
            return False
        pinned = {id(base): len(base)}
        for piece in self._pieces:
            if isinstance(piece, memoryview):
                pinned[id(piece.obj)] = len(piece.obj)
        return sum(pinned.values()) <= _PINNED_LIMIT

    def _copy(self, view: memoryview) -> None:
        """
        Copy C{view} to the end of the waiting pieces.
        """
        if self._pieces and isinstance(self._pieces[-1], bytearray):
            self._pieces[-1] += view
        else:
            self._pieces.append(bytearray(view))

    def _join(self, size: int) -> bytes:
        """
        Join the first C{size} bytes of the pieces into one chunk.
        """
        pieces, selected, length = self._pieces, [], 0
        while length < size:
            piece = pieces[0]
            missing = size - length
            if len(piece) <= missing:
                selected.append(pieces.popleft())
                length += len(piece)
            elif isinstance(piece, bytearray):
                selected.append(piece[:missing])
                del piece[:missing]
                length = size
            else:
                selected.append(piece[:missing])
                pieces[0] = piece[missing:]
                length = size
        self._fill -= size
        return b"".join(selected)

    def _chunk_filled(self, chunk: bytes) -> None:
        if self._streaming:
            self._ship(chunk)
        else:
            self._chunks.append(chunk)

    def _start_streaming(self) -> None:
        self._streaming = True
        chunks, self._chunks = self._chunks, []
        for chunk in chunks:
            self._ship(chunk)

    def _ship(self, chunk: bytes) -> None:
        self._flow.add(self._state, CHUNK_SIZE)
        self._submit(ChunkOp(self._state, chunk))

    def finish(self, entry: IndexEntry) -> Deferred[StoreResult]:
        """
        Store and index the transfer.

        @return: a L{Deferred} that fires once the commit holding the instance
            has returned. It fails with L{StorageFullError} when the instance
            would exceed the maximum storage size, and with L{StorageError}
            when the commit failed; in both cases nothing of it is stored.
        """
        if self._done:
            raise StorageError("the transfer is already finished or aborted")
        self._done = True
        self._on_done(self)
        if self._state.failed is not None:
            self._submit(AbortOp(self._state))
            return fail(self._state.failed)
        data = self._chunks
        if self._fill:
            data.append(self._join(self._fill))
        self._chunks = []
        deferred: Deferred[StoreResult] = Deferred()
        op = FinishOp(
            state=self._state,
            entry=entry,
            data=data,
            size=len(entry.prefix) + self._size,
            timestamp=self._seconds(),
            deferred=deferred,
        )
        self._flow.add(self._state, sum(len(piece) for piece in data))
        self._submit(op)
        return deferred

    def abort(self) -> None:
        """
        Drop the transfer: the writer deletes any chunk it stored. Does
        nothing once the transfer is finished or aborted.
        """
        if self._done:
            return
        self._done = True
        self._on_done(self)
        self._state.aborted = True
        self._chunks = []
        self._pieces.clear()
        self._fill = 0
        self._flow.forget(self._state)
        if self._streaming:
            self._submit(AbortOp(self._state))
