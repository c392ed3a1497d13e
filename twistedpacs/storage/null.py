"""
A store that keeps nothing, for benchmarks of the network and ingest code
without disk costs. Never use it to serve: every instance it acknowledges is
thrown away.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed

from twistedpacs.config import Settings
from twistedpacs.model import IndexEntry, Level, StorageError, StoreResult, StoreStatus


class NullTransfer:
    """
    A transfer that counts its bytes and drops them.
    """

    def __init__(self) -> None:
        self.size = 0
        self._done = False

    def write(self, data: bytes | memoryview) -> None:
        if self._done:
            raise StorageError("cannot write to a finished or aborted transfer")
        self.size += len(data)

    def finish(self, entry: IndexEntry) -> Deferred[StoreResult]:
        if self._done:
            raise StorageError("the transfer is already finished or aborted")
        self._done = True
        size = len(entry.prefix) + self.size
        return succeed(StoreResult(entry.ids, StoreStatus.SUCCESS, size))

    def abort(self) -> None:
        self._done = True


class NullStore:
    """
    The interface of L{twistedpacs.storage.store.Store}, storing nothing.
    """

    def __init__(self, settings: Settings, reactor: Any) -> None:
        self._settings = settings

    def open(self) -> None:
        pass

    def close(self) -> Deferred[None]:
        return succeed(None)

    def begin_transfer(
        self, pause: Callable[[], None], resume: Callable[[], None]
    ) -> NullTransfer:
        return NullTransfer()

    def get(self, level: Level, resource_id: str) -> dict[str, Any] | None:
        return None

    def list_ids(self, level: Level, since: int = 0, limit: int = 0) -> list[str]:
        return []

    def children(self, level: Level, resource_id: str) -> list[str]:
        return []

    def lookup(self, level: Level, value: str) -> list[str]:
        return []

    def count(self, level: Level) -> int:
        return 0

    def statistics(self) -> dict[str, Any]:
        return {
            "CountPatients": 0,
            "CountStudies": 0,
            "CountSeries": 0,
            "CountInstances": 0,
            "TotalDiskSize": "0",
            "TotalDiskSizeMB": 0,
            "TotalUncompressedSize": "0",
            "TotalUncompressedSizeMB": 0,
        }

    def metadata(self, instance_id: str) -> dict[str, str] | None:
        return None

    def changes(self, since: int = 0, limit: int = 100) -> dict[str, Any]:
        return {"Changes": [], "Done": True, "Last": 0}

    def open_reader(self, instance_id: str) -> None:
        return None

    def read_file(self, instance_id: str) -> Deferred[bytes | None]:
        return succeed(None)

    def delete(self, level: Level, resource_id: str) -> Deferred[dict[str, Any] | None]:
        return succeed(None)
