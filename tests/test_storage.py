"""
Tests for L{twistedpacs.storage.store}: storing, reading, counters, duplicates,
overwrites, deletes and the change log, on a real LMDB environment.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import replace
from typing import Any

import lmdb
from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.trial.unittest import TestCase

from twistedpacs.config import MIB, Settings
from twistedpacs.model import (
    IndexEntry,
    InstanceHeader,
    Level,
    Provenance,
    ResourceIds,
    StorageError,
    StoreResult,
    StoreStatus,
)
from twistedpacs.storage.index import CHUNK_SIZE, blob_key, chunk_key, encode_int
from twistedpacs.storage.store import Store

PREFIX = b"\x00" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00\x10\x00\x00\x00"


def fake_id(*values: str) -> str:
    digest = hashlib.sha1("|".join(values).encode()).hexdigest()
    return "-".join(digest[i : i + 8] for i in range(0, 40, 8))


def make_entry(
    patient: str = "P1",
    study: str = "1.2.3",
    series: str = "1.2.3.4",
    sop: str = "1.2.3.4.5",
    prefix: bytes = b"",
    origin: str = "DicomProtocol",
) -> IndexEntry:
    """
    Build the index entry the ingest path would build for one instance.
    """
    ids = ResourceIds(
        patient=fake_id(patient),
        study=fake_id(patient, study),
        series=fake_id(patient, study, series),
        instance=fake_id(patient, study, series, sop),
    )
    header = InstanceHeader(
        transfer_syntax="1.2.840.10008.1.2.1",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.7",
        sop_instance_uid=sop,
        study_instance_uid=study,
        series_instance_uid=series,
        patient_id=patient,
        has_file_meta=not prefix,
        main_tags={
            Level.PATIENT: {"PatientID": patient, "PatientName": "DOE^" + patient},
            Level.STUDY: {"StudyInstanceUID": study, "StudyDate": "20240102"},
            Level.SERIES: {"SeriesInstanceUID": series, "Modality": "OT"},
            Level.INSTANCE: {"SOPInstanceUID": sop, "InstanceNumber": "1"},
        },
    )
    provenance = Provenance(
        origin=origin,
        remote_aet="STORESCU",
        called_aet="ORTHANC",
        remote_ip="127.0.0.1",
    )
    return IndexEntry(ids=ids, header=header, provenance=provenance, prefix=prefix)


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def open_store(case: TestCase, directory: str | None = None, **changes: Any) -> Store:
    """
    Open a store in a fresh directory, closed again when the test ends.
    """
    settings = replace(
        Settings(), storage_directory=directory or case.mktemp(), **changes
    )
    store = Store(settings, reactor)
    store.open()
    case.addCleanup(store.close)
    return store


class Recorder:
    """
    The pause and resume callbacks of a transfer, counting their calls.
    """

    def __init__(self) -> None:
        self.pauses = 0
        self.resumes = 0

    def pause(self) -> None:
        self.pauses += 1

    def resume(self) -> None:
        self.resumes += 1


async def store_bytes(
    store: Store, data: bytes, entry: IndexEntry, piece: int = 0
) -> StoreResult:
    """
    Send C{data} through one transfer in pieces of C{piece} bytes (whole when
    0) and finish it.
    """
    recorder = Recorder()
    transfer = store.begin_transfer(recorder.pause, recorder.resume)
    step = piece or max(len(data), 1)
    for start in range(0, len(data), step):
        transfer.write(memoryview(data)[start : start + step])
    return await transfer.finish(entry)


async def barrier(store: Store) -> None:
    """
    Wait until the writer has committed everything queued before this call.
    """
    await store.delete(Level.PATIENT, "no-such-patient")


def keys_of(store: Store, name: str) -> list[bytes]:
    db = store.env.open_db(name.encode(), create=False)
    with store.env.begin() as txn:
        return [bytes(key) for key in txn.cursor(db=db).iternext(values=False)]


async def read_all(store: Store, instance_id: str) -> list[bytes]:
    reader = store.open_reader(instance_id)
    assert reader is not None
    pieces: list[bytes] = []
    while True:
        piece = await reader.read_next()
        if piece is None:
            return pieces
        pieces.append(piece)


class StoreRoundTripTests(TestCase):
    """
    Bytes stored come back unchanged, with their size and MD5.
    """

    async def test_small_round_trip(self) -> None:
        """
        A small instance with a prefix reads back as prefix plus bytes.
        """
        store = open_store(self)
        data = payload(700_000)
        entry = make_entry(prefix=PREFIX)
        result = await store_bytes(store, data, entry, piece=1000)
        self.assertEqual(result.status, StoreStatus.SUCCESS)
        self.assertEqual(result.size, len(PREFIX) + len(data))
        self.assertEqual(await store.read_file(entry.ids.instance), PREFIX + data)
        pieces = await read_all(store, entry.ids.instance)
        self.assertEqual(pieces[0], PREFIX)
        self.assertEqual(len(pieces), 3)
        self.assertEqual(b"".join(pieces), PREFIX + data)
        reader = store.open_reader(entry.ids.instance)
        assert reader is not None
        self.assertEqual(reader.size, len(PREFIX) + len(data))
        metadata = await store.metadata_with_md5(entry.ids.instance)
        assert metadata is not None
        self.assertEqual(metadata["FileMD5"], hashlib.md5(PREFIX + data).hexdigest())
        self.assertEqual(metadata["FileSize"], str(len(PREFIX) + len(data)))

    async def test_streamed_odd_pieces(self) -> None:
        """
        An instance above the threshold, written in odd pieces, is streamed
        in chunks and reads back equal, with no pending mark left.
        """
        store = open_store(self, in_memory_threshold=1 * MIB)
        data = payload(3 * MIB + 12345, seed=1)
        entry = make_entry()
        result = await store_bytes(store, data, entry, piece=77_777)
        self.assertEqual(result.status, StoreStatus.SUCCESS)
        self.assertEqual(await store.read_file(entry.ids.instance), data)
        pieces = await read_all(store, entry.ids.instance)
        self.assertEqual([len(p) for p in pieces[:-1]], [CHUNK_SIZE] * 6)
        self.assertEqual(b"".join(pieces), data)
        self.assertEqual(keys_of(store, "pending"), [])
        metadata = await store.metadata_with_md5(entry.ids.instance)
        assert metadata is not None
        self.assertEqual(metadata["FileMD5"], hashlib.md5(data).hexdigest())

    async def test_streamed_late_prefix_md5(self) -> None:
        """
        A streamed instance whose prefix is known only at finish still gets
        the MD5 of prefix plus bytes.
        """
        store = open_store(self, in_memory_threshold=256 * 1024)
        data = payload(2 * MIB + 1, seed=2)
        entry = make_entry(prefix=PREFIX)
        await store_bytes(store, data, entry, piece=100_000)
        metadata = await store.metadata_with_md5(entry.ids.instance)
        assert metadata is not None
        self.assertEqual(metadata["FileMD5"], hashlib.md5(PREFIX + data).hexdigest())
        self.assertEqual(await store.read_file(entry.ids.instance), PREFIX + data)

    async def test_empty_instance(self) -> None:
        """
        An instance of no bytes beyond its prefix is stored and read back.
        """
        store = open_store(self)
        entry = make_entry(prefix=PREFIX)
        await store_bytes(store, b"", entry)
        self.assertEqual(await store.read_file(entry.ids.instance), PREFIX)
        self.assertEqual(await read_all(store, entry.ids.instance), [PREFIX])

    async def test_unknown_instance_reads(self) -> None:
        """
        Reads of an unknown instance return L{None}.
        """
        store = open_store(self)
        self.assertIsNone(store.open_reader("nope"))
        self.assertIsNone(await store.read_file("nope"))
        self.assertIsNone(store.metadata("nope"))
        self.assertIsNone(store.get(Level.INSTANCE, "nope"))


class StoreIndexTests(TestCase):
    """
    Index records, counters, statistics, lists and lookups.
    """

    async def test_records_and_children(self) -> None:
        """
        The first instance creates its parents with their main tags, and later
        instances leave the parents as they are.
        """
        store = open_store(self)
        first = make_entry(sop="1.1")
        second = make_entry(sop="1.2")
        second.header.main_tags[Level.SERIES]["Modality"] = "CT"
        await store_bytes(store, b"a" * 10, first)
        await store_bytes(store, b"b" * 20, second)
        series = store.get(Level.SERIES, first.ids.series)
        assert series is not None
        self.assertEqual(series["MainDicomTags"]["Modality"], "OT")
        self.assertEqual(series["ParentID"], first.ids.study)
        self.assertEqual(series["Type"], "Series")
        self.assertEqual(series["ID"], first.ids.series)
        self.assertEqual(
            sorted(store.children(Level.SERIES, first.ids.series)),
            sorted([first.ids.instance, second.ids.instance]),
        )
        self.assertEqual(
            store.children(Level.PATIENT, first.ids.patient), [first.ids.study]
        )
        self.assertEqual(store.children(Level.INSTANCE, first.ids.instance), [])
        patient = store.get(Level.PATIENT, first.ids.patient)
        assert patient is not None
        self.assertIsNone(patient["ParentID"])
        instance = store.get(Level.INSTANCE, second.ids.instance)
        assert instance is not None
        self.assertEqual(instance["FileSize"], 20)
        self.assertEqual(instance["MainDicomTags"]["SOPInstanceUID"], "1.2")
        self.assertNotIn("BlobId", instance)

    async def test_statistics_counters(self) -> None:
        """
        Counts and byte totals follow every stored instance.
        """
        store = open_store(self)
        await store_bytes(store, payload(1000), make_entry(sop="1.1"))
        await store_bytes(store, payload(2000), make_entry(sop="1.2"))
        await store_bytes(store, payload(3 * MIB), make_entry(study="9", sop="1.3"))
        statistics = store.statistics()
        self.assertEqual(statistics["CountPatients"], 1)
        self.assertEqual(statistics["CountStudies"], 2)
        self.assertEqual(statistics["CountSeries"], 2)
        self.assertEqual(statistics["CountInstances"], 3)
        self.assertEqual(statistics["TotalDiskSize"], str(3000 + 3 * MIB))
        self.assertEqual(statistics["TotalDiskSizeMB"], 3)
        self.assertEqual(statistics["TotalUncompressedSize"], str(3000 + 3 * MIB))
        self.assertEqual(statistics["TotalUncompressedSizeMB"], 3)
        self.assertEqual(store.count(Level.INSTANCE), 3)
        self.assertEqual(store.count(Level.STUDY), 2)

    async def test_list_ids_since_limit(self) -> None:
        """
        Ids are listed in insertion order with Orthanc's offset and limit.
        """
        store = open_store(self)
        entries = [make_entry(patient=f"Z{9 - n}") for n in range(5)]
        for entry in entries:
            await store_bytes(store, b"x", entry)
        patients = [entry.ids.patient for entry in entries]
        self.assertEqual(store.list_ids(Level.PATIENT), patients)
        self.assertEqual(store.list_ids(Level.PATIENT, since=1, limit=2), patients[1:3])
        self.assertEqual(store.list_ids(Level.PATIENT, since=3), patients[3:])
        self.assertEqual(store.list_ids(Level.PATIENT, limit=1), patients[:1])
        self.assertEqual(store.list_ids(Level.PATIENT, since=5), [])
        self.assertEqual(
            store.list_ids(Level.INSTANCE), [entry.ids.instance for entry in entries]
        )
        await store.delete(Level.PATIENT, patients[1])
        self.assertEqual(store.list_ids(Level.PATIENT), [patients[0]] + patients[2:])

    async def test_lookup_by_uid(self) -> None:
        """
        Identifiers find the ids of their level.
        """
        store = open_store(self)
        entry = make_entry()
        other = make_entry(patient="P2")
        await store_bytes(store, b"x", entry)
        await store_bytes(store, b"x", other)
        self.assertEqual(store.lookup(Level.PATIENT, "P1"), [entry.ids.patient])
        self.assertEqual(
            sorted(store.lookup(Level.STUDY, "1.2.3")),
            sorted([entry.ids.study, other.ids.study]),
        )
        self.assertEqual(
            sorted(store.lookup(Level.INSTANCE, "1.2.3.4.5")),
            sorted([entry.ids.instance, other.ids.instance]),
        )
        self.assertEqual(store.lookup(Level.SERIES, "1.2.3"), [])

    async def test_metadata_provenance(self) -> None:
        """
        The provenance recorded at ingest is returned as metadata.
        """
        store = open_store(self)
        entry = make_entry(origin="RestApi")
        await store_bytes(store, b"abc", entry)
        metadata = await store.metadata_with_md5(entry.ids.instance)
        assert metadata is not None
        self.assertEqual(metadata["Origin"], "RestApi")
        self.assertEqual(metadata["RemoteAET"], "STORESCU")
        self.assertEqual(metadata["CalledAET"], "ORTHANC")
        self.assertEqual(metadata["RemoteIP"], "127.0.0.1")
        self.assertEqual(metadata["TransferSyntax"], "1.2.840.10008.1.2.1")
        self.assertEqual(metadata["SopClassUid"], "1.2.840.10008.5.1.4.1.1.7")
        self.assertEqual(metadata["FileSize"], "3")
        self.assertEqual(metadata["FileMD5"], hashlib.md5(b"abc").hexdigest())
        self.assertNotIn("HttpUsername", metadata)
        self.assertRegex(metadata["ReceptionDate"], r"^\d{8}T\d{6}$")

    async def test_changes_log(self) -> None:
        """
        The change log records new resources and deletions in Orthanc's shape.
        """
        store = open_store(self)
        entry = make_entry()
        await store_bytes(store, b"x", entry)
        await store_bytes(store, b"y", make_entry(sop="2"))
        answer = store.changes()
        types = [change["ChangeType"] for change in answer["Changes"]]
        self.assertEqual(
            types, ["NewPatient", "NewStudy", "NewSeries", "NewInstance", "NewInstance"]
        )
        self.assertTrue(answer["Done"])
        self.assertEqual(answer["Last"], 5)
        first = answer["Changes"][0]
        self.assertEqual(first["Seq"], 1)
        self.assertEqual(first["ID"], entry.ids.patient)
        self.assertEqual(first["Path"], f"/patients/{entry.ids.patient}")
        self.assertEqual(first["ResourceType"], "Patient")
        self.assertRegex(first["Date"], r"^\d{8}T\d{6}$")
        page = store.changes(since=1, limit=2)
        self.assertEqual([c["Seq"] for c in page["Changes"]], [2, 3])
        self.assertFalse(page["Done"])
        self.assertEqual(page["Last"], 3)
        self.assertEqual(
            store.changes(since=5), {"Changes": [], "Done": True, "Last": 5}
        )
        await store.delete(Level.INSTANCE, entry.ids.instance)
        tail = store.changes(since=5)
        self.assertEqual([c["ChangeType"] for c in tail["Changes"]], ["Deleted"])
        self.assertEqual(tail["Changes"][0]["ID"], entry.ids.instance)


class DuplicateTests(TestCase):
    """
    Duplicates are decided by instance id in the writer.
    """

    async def test_duplicate_keeps_first(self) -> None:
        """
        Without overwrite a second copy returns AlreadyStored and the first
        copy stays.
        """
        store = open_store(self)
        entry = make_entry()
        first = await store_bytes(store, b"first", entry)
        second = await store_bytes(store, b"second copy", entry)
        self.assertEqual(first.status, StoreStatus.SUCCESS)
        self.assertEqual(second.status, StoreStatus.ALREADY_STORED)
        self.assertEqual(second.ids, entry.ids)
        self.assertEqual(await store.read_file(entry.ids.instance), b"first")
        self.assertEqual(store.count(Level.INSTANCE), 1)
        self.assertEqual(store.statistics()["TotalDiskSize"], "5")
        self.assertEqual(len(keys_of(store, "chunks")), 1)

    async def test_overwrite_replaces(self) -> None:
        """
        With overwrite the second copy replaces the first, file and record.
        """
        store = open_store(self, overwrite_instances=True)
        entry = make_entry()
        await store_bytes(store, b"first", entry)
        second = await store_bytes(store, b"second copy", entry)
        self.assertEqual(second.status, StoreStatus.SUCCESS)
        self.assertEqual(await store.read_file(entry.ids.instance), b"second copy")
        self.assertEqual(store.count(Level.INSTANCE), 1)
        self.assertEqual(store.count(Level.PATIENT), 1)
        self.assertEqual(store.statistics()["TotalDiskSize"], "11")
        self.assertEqual(len(keys_of(store, "chunks")), 1)
        metadata = await store.metadata_with_md5(entry.ids.instance)
        assert metadata is not None
        self.assertEqual(metadata["FileMD5"], hashlib.md5(b"second copy").hexdigest())

    async def test_overwrite_while_reading(self) -> None:
        """
        A reader of a copy that is overwritten meanwhile fails with
        L{StorageError} instead of mixing two copies.
        """
        store = open_store(self, overwrite_instances=True)
        entry = make_entry()
        await store_bytes(store, payload(3 * CHUNK_SIZE, seed=1), entry)
        reader = store.open_reader(entry.ids.instance)
        assert reader is not None
        first = await reader.read_next()
        self.assertEqual(first, payload(3 * CHUNK_SIZE, seed=1)[:CHUNK_SIZE])
        await store_bytes(store, payload(3 * CHUNK_SIZE, seed=2), entry)
        with self.assertRaises(StorageError):
            await reader.read_next()
        new_reader = store.open_reader(entry.ids.instance)
        assert new_reader is not None
        self.assertEqual(
            await new_reader.read_next(), payload(3 * CHUNK_SIZE, seed=2)[:CHUNK_SIZE]
        )

    async def test_parallel_transfers_store_once(self) -> None:
        """
        Eight interleaved streamed transfers of one instance store it once,
        and the chunks of the seven others are deleted.
        """
        store = open_store(self, in_memory_threshold=128 * 1024)
        entry = make_entry()
        transfers = [store.begin_transfer(lambda: None, lambda: None) for _ in range(8)]
        datas = [payload(MIB + 1000 * n, seed=n) for n in range(8)]
        for start in range(0, MIB + 8000, 65_536):
            for transfer, data in zip(transfers, datas):
                transfer.write(data[start : start + 65_536])
        results = await gatherResults([t.finish(entry) for t in transfers])
        statuses = [result.status for result in results]
        self.assertEqual(statuses.count(StoreStatus.SUCCESS), 1)
        self.assertEqual(statuses.count(StoreStatus.ALREADY_STORED), 7)
        winner = datas[statuses.index(StoreStatus.SUCCESS)]
        self.assertEqual(await store.read_file(entry.ids.instance), winner)
        expected_chunks = -(-len(winner) // CHUNK_SIZE)
        self.assertEqual(len(keys_of(store, "chunks")), expected_chunks)
        self.assertEqual(keys_of(store, "pending"), [])
        self.assertEqual(store.count(Level.INSTANCE), 1)
        self.assertEqual(store.statistics()["TotalDiskSize"], str(len(winner)))


class DeleteTests(TestCase):
    """
    Deletes cascade down and up, and counters go back.
    """

    async def build_tree(self, store: Store) -> dict[str, IndexEntry]:
        entries = {
            "a": make_entry(study="S1", series="E1", sop="I1"),
            "b": make_entry(study="S1", series="E1", sop="I2"),
            "c": make_entry(study="S1", series="E2", sop="I3"),
            "d": make_entry(study="S2", series="E3", sop="I4"),
        }
        for name, entry in entries.items():
            await store_bytes(store, payload(600_000, seed=ord(name)), entry)
        return entries

    async def test_delete_instance_keeps_series(self) -> None:
        """
        Deleting one of two instances leaves the series as remaining ancestor.
        """
        store = open_store(self)
        tree = await self.build_tree(store)
        answer = await store.delete(Level.INSTANCE, tree["a"].ids.instance)
        self.assertEqual(
            answer,
            {
                "RemainingAncestor": {
                    "ID": tree["a"].ids.series,
                    "Path": f"/series/{tree['a'].ids.series}",
                    "Type": "Series",
                }
            },
        )
        self.assertIsNone(store.get(Level.INSTANCE, tree["a"].ids.instance))
        self.assertEqual(store.count(Level.INSTANCE), 3)
        self.assertEqual(
            store.children(Level.SERIES, tree["a"].ids.series), [tree["b"].ids.instance]
        )
        self.assertEqual(store.statistics()["TotalDiskSize"], str(3 * 600_000))
        self.assertEqual(len(keys_of(store, "chunks")), 6)

    async def test_delete_last_instance_removes_series(self) -> None:
        """
        Deleting the only instance of a series deletes the series too.
        """
        store = open_store(self)
        tree = await self.build_tree(store)
        answer = await store.delete(Level.INSTANCE, tree["c"].ids.instance)
        assert answer is not None
        self.assertEqual(answer["RemainingAncestor"]["ID"], tree["c"].ids.study)
        self.assertEqual(answer["RemainingAncestor"]["Type"], "Study")
        self.assertIsNone(store.get(Level.SERIES, tree["c"].ids.series))
        self.assertEqual(store.count(Level.SERIES), 2)
        self.assertEqual(store.lookup(Level.SERIES, "E2"), [])

    async def test_delete_study_cascades(self) -> None:
        """
        Deleting a study deletes its series and instances and their files.
        """
        store = open_store(self)
        tree = await self.build_tree(store)
        answer = await store.delete(Level.STUDY, tree["a"].ids.study)
        assert answer is not None
        self.assertEqual(answer["RemainingAncestor"]["ID"], tree["a"].ids.patient)
        self.assertEqual(store.count(Level.STUDY), 1)
        self.assertEqual(store.count(Level.SERIES), 1)
        self.assertEqual(store.count(Level.INSTANCE), 1)
        self.assertEqual(store.list_ids(Level.INSTANCE), [tree["d"].ids.instance])
        self.assertEqual(len(keys_of(store, "chunks")), 2)
        self.assertEqual(store.statistics()["TotalDiskSize"], "600000")
        deleted = [
            c["ID"]
            for c in store.changes(since=10)["Changes"]
            if c["ChangeType"] == "Deleted"
        ]
        self.assertEqual(len(deleted), 1 + 2 + 3)

    async def test_delete_patient_empties_store(self) -> None:
        """
        Deleting the patient leaves nothing, and no remaining ancestor.
        """
        store = open_store(self)
        tree = await self.build_tree(store)
        answer = await store.delete(Level.PATIENT, tree["a"].ids.patient)
        self.assertEqual(answer, {"RemainingAncestor": None})
        statistics = store.statistics()
        self.assertEqual(statistics["CountPatients"], 0)
        self.assertEqual(statistics["CountStudies"], 0)
        self.assertEqual(statistics["CountSeries"], 0)
        self.assertEqual(statistics["CountInstances"], 0)
        self.assertEqual(statistics["TotalDiskSize"], "0")
        for name in ("chunks", "children", "lookups", "order", "pending"):
            self.assertEqual(keys_of(store, name), [], name)

    async def test_delete_last_instance_removes_all(self) -> None:
        """
        Deleting the only instance of a patient deletes every ancestor.
        """
        store = open_store(self)
        entry = make_entry()
        await store_bytes(store, b"x", entry)
        answer = await store.delete(Level.INSTANCE, entry.ids.instance)
        self.assertEqual(answer, {"RemainingAncestor": None})
        self.assertEqual(store.list_ids(Level.PATIENT), [])

    async def test_delete_unknown(self) -> None:
        """
        Deleting an unknown resource returns L{None} and changes nothing.
        """
        store = open_store(self)
        self.assertIsNone(await store.delete(Level.STUDY, "unknown"))
        self.assertEqual(store.changes()["Changes"], [])

    async def test_freed_pages_reused(self) -> None:
        """
        Storing again after a delete reuses the freed pages, so the file grows
        by much less than the bytes stored again.
        """
        directory = self.mktemp()
        store = open_store(self, directory=directory)
        size = 8 * MIB
        first = make_entry(sop="1")
        await store_bytes(store, payload(size, seed=1), first)
        await barrier(store)
        grown = os.path.getsize(os.path.join(directory, "data.mdb"))
        await store.delete(Level.INSTANCE, first.ids.instance)
        # LMDB 0.9 reuses the pages freed by a commit only from the second
        # write transaction after it, so one small store comes in between.
        await store_bytes(store, b"small", make_entry(sop="3"))
        await store_bytes(store, payload(size, seed=2), make_entry(sop="2"))
        regrown = os.path.getsize(os.path.join(directory, "data.mdb"))
        self.assertLess(regrown - grown, size // 16)


class OpenTests(TestCase):
    """
    Opening: flags, versions and the sweep of unfinished transfers.
    """

    def test_env_flags_durable(self) -> None:
        """
        The environment flushes every commit and never uses writemap.
        """
        store = open_store(self)
        flags = store.env.flags()
        self.assertTrue(flags["sync"])
        self.assertTrue(flags["metasync"])
        self.assertFalse(flags["writemap"])
        self.assertFalse(flags["map_async"])
        self.assertTrue(flags["lock"])
        self.assertEqual(store.env.info()["map_size"], Settings().lmdb_map_size)

    def test_versions_recorded(self) -> None:
        """
        A new store records the format, lmdb package and LMDB engine versions.
        """
        store = open_store(self)
        meta = store.env.open_db(b"meta", create=False)
        with store.env.begin() as txn:
            self.assertEqual(txn.get(b"format-version", db=meta), encode_int(1))
            self.assertEqual(
                txn.get(b"lmdb-package-version", db=meta), lmdb.__version__.encode()
            )
            engine = ".".join(map(str, lmdb.version())).encode()
            self.assertEqual(txn.get(b"lmdb-engine-version", db=meta), engine)

    async def test_other_format_refused(self) -> None:
        """
        A store written with another format version is not opened.
        """
        directory = self.mktemp()
        store = open_store(self, directory=directory)
        await store.close()
        env = lmdb.open(directory, max_dbs=24)
        meta = env.open_db(b"meta")
        with env.begin(write=True) as txn:
            txn.put(b"format-version", encode_int(99), db=meta)
        env.close()
        reopened = Store(replace(Settings(), storage_directory=directory), reactor)
        error = self.assertRaises(StorageError, reopened.open)
        self.assertIn("format version 99", str(error))

    async def test_open_sweeps_pending(self) -> None:
        """
        Chunks of a blob still marked pending at open are deleted, and chunks
        of stored instances stay.
        """
        directory = self.mktemp()
        store = open_store(self, directory=directory)
        entry = make_entry()
        await store_bytes(store, b"kept", entry)
        await store.close()
        env = lmdb.open(directory, max_dbs=24)
        chunks = env.open_db(b"chunks")
        pending = env.open_db(b"pending")
        with env.begin(write=True) as txn:
            txn.put(blob_key(1000), b"", db=pending)
            for number in range(3):
                txn.put(chunk_key(1000, number), b"orphan", db=chunks)
        env.close()
        reopened = open_store(self, directory=directory)
        self.assertEqual(keys_of(reopened, "pending"), [])
        self.assertEqual(len(keys_of(reopened, "chunks")), 1)
        self.assertEqual(await reopened.read_file(entry.ids.instance), b"kept")

    async def test_close_aborts_transfers(self) -> None:
        """
        Closing aborts the transfers in flight and deletes their chunks.
        """
        directory = self.mktemp()
        store = open_store(self, directory=directory, in_memory_threshold=0)
        transfer = store.begin_transfer(lambda: None, lambda: None)
        transfer.write(payload(3 * CHUNK_SIZE))
        await barrier(store)
        self.assertEqual(len(keys_of(store, "chunks")), 3)
        await store.close()
        reopened = open_store(self, directory=directory)
        self.assertEqual(keys_of(reopened, "chunks"), [])
        self.assertEqual(keys_of(reopened, "pending"), [])

    async def test_close_twice(self) -> None:
        """
        Two calls to close both fire once the store is closed, and a closed
        store refuses new transfers.
        """
        store = open_store(self)
        first, second = store.close(), store.close()
        await first
        await second
        self.assertRaises(StorageError, store.begin_transfer, print, print)
        self.assertRaises(StorageError, store.statistics)

    async def test_counters_survive_reopen(self) -> None:
        """
        Blob ids, change numbers and counts continue after a reopen.
        """
        directory = self.mktemp()
        store = open_store(self, directory=directory)
        await store_bytes(store, b"one", make_entry(sop="1"))
        await store.close()
        reopened = open_store(self, directory=directory)
        second = make_entry(sop="2")
        await store_bytes(reopened, b"two", second)
        self.assertEqual(reopened.count(Level.INSTANCE), 2)
        self.assertEqual(reopened.changes()["Last"], 5)
        self.assertEqual(await reopened.read_file(second.ids.instance), b"two")
        self.assertEqual(len(keys_of(reopened, "chunks")), 2)
