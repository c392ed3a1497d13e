"""
The churn run: fill TwistedPACS, delete half, fill again with new instances,
and measure how much the LMDB file grew for the new bytes.
"""

from __future__ import annotations

import http.client
import os
from pathlib import Path
from typing import Any

from benchmarks.data import DataSet
from benchmarks.receivers import TwistedPACS, http_json
from benchmarks.scenarios import cstore_one


def _store_file(storage: Path) -> Path:
    for root, _, names in os.walk(storage):
        if "data.mdb" in names:
            return Path(root) / "data.mdb"
    raise RuntimeError(f"no data.mdb under {storage}")


def _sizes(path: Path) -> dict[str, int]:
    status = path.stat()
    return {"file_bytes": status.st_size, "allocated_bytes": status.st_blocks * 512}


def _delete(port: int, identifiers: list[str]) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    deleted = 0
    for identifier in identifiers:
        connection.request("DELETE", f"/instances/{identifier}")
        answer = connection.getresponse()
        answer.read()
        if answer.status == 200:
            deleted += 1
    connection.close()
    return deleted


def run_churn(
    small: DataSet, churn: DataSet, workdir: Path, settings: dict[str, Any]
) -> dict[str, Any]:
    """
    Ingest C{small}, delete every other instance over REST, ingest as many
    instances of C{churn}, and report the store's growth in the last step.

    @raise RuntimeError: if any step stores or deletes fewer instances than
        asked.
    """
    receiver = TwistedPACS(workdir, settings)
    receiver.start()
    try:
        first = cstore_one(receiver, small, settings)
        if first.acknowledged != small.count:
            raise RuntimeError(
                f"churn fill stored {first.acknowledged}: {first.detail}"
            )
        path = _store_file(receiver.storage)
        filled = _sizes(path)
        identifiers = http_json(receiver.http_port, "GET", "/instances")
        victims = identifiers[::2]
        deleted = _delete(receiver.http_port, victims)
        if deleted != len(victims):
            raise RuntimeError(f"churn deleted {deleted} of {len(victims)}")
        after_delete = _sizes(path)
        refill_files = churn.files[:deleted]
        refill = DataSet(
            "churn",
            refill_files,
            sum(os.path.getsize(name) for name in refill_files),
        )
        second = cstore_one(receiver, refill, settings)
        if second.acknowledged != refill.count:
            raise RuntimeError(f"churn refill stored {second.acknowledged}")
        refilled = _sizes(path)
        count = receiver.count()
    finally:
        receiver.stop()
    growth = refilled["file_bytes"] - after_delete["file_bytes"]
    return {
        "filled": filled,
        "after_delete": after_delete,
        "refilled": refilled,
        "first_bytes": small.total_bytes,
        "deleted": deleted,
        "new_bytes": refill.total_bytes,
        "growth_bytes": growth,
        "growth_per_new_byte": growth / refill.total_bytes,
        "final_count": count,
        "expected_count": small.count,
    }
