"""
Tests of query/retrieve matching over a fake store, and of the C-MOVE
sub-operation counts.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset
from twisted.trial.unittest import SynchronousTestCase

from twistedpacs.dimse.move import SubOperations
from twistedpacs.dimse.outgoing import dataset_offset, proposed_contexts
from twistedpacs.dimse.query import (
    EXPLICIT_VR_BIG_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    QueryError,
    build_response,
    decode_identifier,
    encode_identifier,
    match_value,
    parse_query,
    search,
)
from twistedpacs.dimse.commands import CMoveRQ
from twistedpacs.model import Level
from tests.fixtures import make_dataset, part10_bytes


class FakeStore:
    """
    An in-memory index of patients, studies, series and instances.
    """

    def __init__(self) -> None:
        self.records: dict[tuple[Level, str], dict[str, Any]] = {}
        self.order: dict[Level, list[str]] = {level: [] for level in Level}
        self.kids: dict[str, list[str]] = {}

    def add(
        self, level: Level, resource_id: str, parent: str | None, **tags: str
    ) -> None:
        self.records[level, resource_id] = {"ParentID": parent, "MainDicomTags": tags}
        self.order[level].append(resource_id)
        if parent is not None:
            self.kids.setdefault(parent, []).append(resource_id)

    def get(self, level: Level, resource_id: str) -> dict[str, Any] | None:
        return self.records.get((level, resource_id))

    def list_ids(self, level: Level, since: int = 0, limit: int = 0) -> list[str]:
        ids = self.order[level][since:]
        return ids[:limit] if limit else ids

    def children(self, level: Level, resource_id: str) -> list[str]:
        return list(self.kids.get(resource_id, []))

    def lookup(self, level: Level, value: str) -> list[str]:
        key = {
            Level.PATIENT: "PatientID",
            Level.STUDY: "StudyInstanceUID",
            Level.SERIES: "SeriesInstanceUID",
            Level.INSTANCE: "SOPInstanceUID",
        }[level]
        return [
            resource_id
            for (record_level, resource_id), record in self.records.items()
            if record_level is level and record["MainDicomTags"].get(key) == value
        ]

    def metadata(self, instance_id: str) -> dict[str, str]:
        return {"SopClassUid": "1.2.840.10008.5.1.4.1.1.7"}


def _store() -> FakeStore:
    store = FakeStore()
    rows = [
        ("20231231", "QA^ALPHA", "CT"),
        ("20240101", "QA^BETA", "MR"),
        ("20240131", "QA^GAMMA", "CT"),
        ("20240201", "Grüßner^Jörg", "US"),
    ]
    for number, (date, name, modality) in enumerate(rows):
        store.add(
            Level.PATIENT, f"p{number}", None, PatientID=f"P{number}", PatientName=name
        )
        store.add(
            Level.STUDY,
            f"st{number}",
            f"p{number}",
            StudyInstanceUID=f"1.{number}",
            StudyDate=date,
        )
        store.add(
            Level.SERIES,
            f"se{number}",
            f"st{number}",
            SeriesInstanceUID=f"1.{number}.1",
            Modality=modality,
        )
        for image in range(2):
            store.add(
                Level.INSTANCE,
                f"i{number}.{image}",
                f"se{number}",
                SOPInstanceUID=f"1.{number}.1.{image}",
            )
    return store


def _study_query(**keys: str) -> Any:
    dataset = Dataset()
    dataset.QueryRetrieveLevel = "STUDY"
    dataset.StudyInstanceUID = ""
    for keyword, value in keys.items():
        setattr(dataset, keyword, value)
    return parse_query(dataset, "STUDY")


def _matches(store: FakeStore, query: Any) -> list[Any]:
    return [match for match in search(store, query) if match is not None]


class MatchValueTests(SynchronousTestCase):
    """
    Tests of the matching of one value.
    """

    def test_match_value_date_ranges(self) -> None:
        """
        Date ranges are inclusive, open ranges work, a reversed one matches
        nothing.
        """
        self.assertTrue(match_value("DA", "20240101-20240131", "20240131"))
        self.assertFalse(match_value("DA", "20240101-20240131", "20240201"))
        self.assertTrue(match_value("DA", "20240101-", "20990101"))
        self.assertTrue(match_value("DA", "-20231231", "20231231"))
        self.assertFalse(match_value("DA", "20240201-20240101", "20240115"))

    def test_match_value_time_precision(self) -> None:
        """
        A time more precise than the upper bound is compared on its precision.
        """
        self.assertTrue(match_value("TM", "1000-1100", "105959.123"))
        self.assertTrue(match_value("TM", "1000-1100", "110059"))
        self.assertFalse(match_value("TM", "1000-1100", "110100"))

    def test_match_value_wildcards(self) -> None:
        """
        Star and question mark match any run and one character.
        """
        self.assertTrue(match_value("LO", "QA*", "QA0001"))
        self.assertTrue(match_value("LO", "Q?0001", "QA0001"))
        self.assertFalse(match_value("LO", "Q?", "QA0001"))
        self.assertFalse(match_value("LO", "qa*", "QA0001"))

    def test_match_value_person_name_case(self) -> None:
        """
        PN matches case-insensitively, single value and wildcard alike.
        """
        self.assertTrue(match_value("PN", "qa^beta", "QA^BETA"))
        self.assertTrue(match_value("PN", "q?^bet*", "QA^BETA"))

    def test_match_value_uid_list(self) -> None:
        """
        A backslash list of UIDs matches any of them and no wildcard applies.
        """
        self.assertTrue(match_value("UI", "1.2\\1.3", "1.3"))
        self.assertFalse(match_value("UI", "1.*", "1.3"))

    def test_match_value_universal(self) -> None:
        """
        An empty value or a lone star matches an empty stored value too.
        """
        self.assertTrue(match_value("PN", "", ""))
        self.assertTrue(match_value("PN", "*", ""))
        self.assertFalse(match_value("PN", "A", ""))

    def test_match_value_multi_valued_stored(self) -> None:
        """
        A stored attribute with several values matches on any of them.
        """
        self.assertTrue(match_value("CS", "MR", "CT\\MR"))


class SearchTests(SynchronousTestCase):
    """
    Tests of searching a fake index at each level.
    """

    def test_search_study_dates(self) -> None:
        """
        The five date queries of the acceptance case find 2, 3, 1, 1 and 0.
        """
        store = _store()
        cases = [
            ("20240101-20240131", 2),
            ("20240101-", 3),
            ("-20231231", 1),
            ("20240131", 1),
            ("20240201-20240101", 0),
        ]
        for value, expected in cases:
            matches = _matches(store, _study_query(StudyDate=value))
            self.assertEqual(len(matches), expected, value)

    def test_search_patient_name(self) -> None:
        """
        Name wildcards find 3 QA names, one with ?, all with *, and the
        non-ASCII name.
        """
        store = _store()
        self.assertEqual(len(_matches(store, _study_query(PatientName="QA^*"))), 3)
        (beta,) = _matches(store, _study_query(PatientName="Q?^BET?"))
        self.assertEqual(beta.values["PatientName"], "QA^BETA")
        self.assertEqual(len(_matches(store, _study_query(PatientName="*"))), 4)
        (name,) = _matches(store, _study_query(PatientName="Grü*"))
        self.assertEqual(name.values["PatientName"], "Grüßner^Jörg")

    def test_search_series_by_study_uid(self) -> None:
        """
        A SERIES query with the study's unique key returns only its series.
        """
        dataset = Dataset()
        dataset.QueryRetrieveLevel = "SERIES"
        dataset.StudyInstanceUID = "1.2"
        dataset.SeriesInstanceUID = ""
        dataset.Modality = ""
        matches = _matches(_store(), parse_query(dataset, "STUDY"))
        self.assertEqual([match.resource_id for match in matches], ["se2"])
        self.assertEqual(matches[0].values["Modality"], "CT")

    def test_search_computed_attributes(self) -> None:
        """
        Study counts and ModalitiesInStudy are computed, and matched.
        """
        query = _study_query(
            NumberOfStudyRelatedInstances="",
            NumberOfStudyRelatedSeries="",
            ModalitiesInStudy="CT",
        )
        matches = _matches(_store(), query)
        self.assertEqual([match.resource_id for match in matches], ["st0", "st2"])
        self.assertEqual(matches[0].values["NumberOfStudyRelatedInstances"], "2")
        self.assertEqual(matches[0].values["NumberOfStudyRelatedSeries"], "1")

    def test_search_image_level_patient_root(self) -> None:
        """
        A Patient Root IMAGE query with a UID list returns those instances.
        """
        dataset = Dataset()
        dataset.QueryRetrieveLevel = "IMAGE"
        dataset.SOPInstanceUID = "1.0.1.1\\1.3.1.0"
        matches = _matches(_store(), parse_query(dataset, "PATIENT"))
        self.assertEqual(sorted(m.resource_id for m in matches), ["i0.1", "i3.0"])

    def test_parse_query_invalid_level(self) -> None:
        """
        A missing level, or PATIENT in the Study Root model, fails with 0xA900.
        """
        dataset = Dataset()
        with self.assertRaises(QueryError) as missing:
            parse_query(dataset, "STUDY")
        self.assertEqual(missing.exception.status, 0xA900)
        dataset.QueryRetrieveLevel = "PATIENT"
        with self.assertRaises(QueryError) as wrong:
            parse_query(dataset, "STUDY")
        self.assertEqual(wrong.exception.status, 0xA900)


class ResponseTests(SynchronousTestCase):
    """
    Tests of response identifiers and their character sets.
    """

    def test_response_latin1_query(self) -> None:
        """
        A Latin-1 query gets a Latin-1 response whose bytes decode back.
        """
        dataset = Dataset()
        dataset.SpecificCharacterSet = "ISO_IR 100"
        dataset.QueryRetrieveLevel = "STUDY"
        dataset.PatientName = "Grü*"
        encoded = encode_identifier(dataset, IMPLICIT_VR_LITTLE_ENDIAN)
        self.assertIn("Grü*".encode("latin-1"), encoded)
        query = parse_query(
            decode_identifier(encoded, IMPLICIT_VR_LITTLE_ENDIAN), "STUDY"
        )
        (match,) = _matches(_store(), query)
        response = build_response(query, match, "TWISTEDPACS")
        data = encode_identifier(response, IMPLICIT_VR_LITTLE_ENDIAN)
        self.assertIn("Grüßner^Jörg".encode("latin-1"), data)
        decoded = decode_identifier(data, IMPLICIT_VR_LITTLE_ENDIAN)
        self.assertEqual(decoded.SpecificCharacterSet, "ISO_IR 100")
        self.assertEqual(str(decoded.PatientName), "Grüßner^Jörg")
        self.assertEqual(decoded.StudyInstanceUID, "1.3")

    def test_response_utf8_without_charset(self) -> None:
        """
        A query without a character set gets ISO_IR 192 for a non-ASCII value.
        """
        query = _study_query(PatientName="Grü*")
        (match,) = _matches(_store(), query)
        data = encode_identifier(
            build_response(query, match, "X"), EXPLICIT_VR_BIG_ENDIAN
        )
        self.assertIn("Grüßner^Jörg".encode("utf-8"), data)
        decoded = decode_identifier(data, EXPLICIT_VR_BIG_ENDIAN)
        self.assertEqual(decoded.SpecificCharacterSet, "ISO_IR 192")

    def test_decode_identifier_garbage(self) -> None:
        """
        A deflated identifier that does not inflate fails with 0xC000.
        """
        with self.assertRaises(QueryError) as raised:
            decode_identifier(b"\xff\xff\xff\xff", "1.2.840.10008.1.2.1.99")
        self.assertEqual(raised.exception.status, 0xC000)


class SubOperationTests(SynchronousTestCase):
    """
    Tests of the C-MOVE sub-operation accounting.
    """

    def _request(self) -> CMoveRQ:
        return CMoveRQ(message_id=7, affected_sop_class_uid="1.2", move_destination="D")

    def test_counts_success_warning_failure(self) -> None:
        """
        Each status lands in its count, and a failure makes the final 0xB000
        with the failed UID listed.
        """
        counts = SubOperations(remaining=4)
        counts.record("1", 0x0000)
        counts.record("2", 0xB000)
        counts.record("3", 0xA700)
        counts.record("4", None)
        self.assertEqual(
            (counts.remaining, counts.completed, counts.warning, counts.failed),
            (0, 1, 1, 2),
        )
        self.assertEqual(counts.failed_uids, ["3", "4"])
        self.assertEqual(counts.final_status(False), 0xB000)
        final = counts.response(self._request(), 0xB000, final=True)
        self.assertIsNone(final.number_of_remaining_suboperations)
        self.assertTrue(final.has_dataset)

    def test_counts_all_success(self) -> None:
        """
        Every sub-operation completed gives 0x0000 and no identifier.
        """
        counts = SubOperations(remaining=2)
        counts.record("1", 0)
        pending = counts.response(self._request(), 0xFF00, final=False)
        self.assertEqual(pending.number_of_remaining_suboperations, 1)
        counts.record("2", 0)
        self.assertEqual(counts.final_status(False), 0x0000)
        self.assertFalse(counts.response(self._request(), 0, final=True).has_dataset)

    def test_counts_cancel_keeps_remaining(self) -> None:
        """
        A cancelled move answers 0xFE00 with the remaining count.
        """
        counts = SubOperations(remaining=3)
        counts.record("1", 0)
        self.assertEqual(counts.final_status(True), 0xFE00)
        final = counts.response(self._request(), 0xFE00, final=True)
        self.assertEqual(final.number_of_remaining_suboperations, 2)

    def test_proposed_contexts_little_endian_fallback(self) -> None:
        """
        A SOP class stored in little endian also gets a context offering both.
        """
        contexts = proposed_contexts(
            {("1.2", "1.2.840.10008.1.2.1"), ("1.3", "1.2.840.10008.1.2.4.50")}
        )
        syntaxes = [(c.abstract_syntax, c.transfer_syntaxes) for c in contexts]
        self.assertEqual(
            syntaxes,
            [
                ("1.2", ("1.2.840.10008.1.2.1",)),
                ("1.3", ("1.2.840.10008.1.2.4.50",)),
                ("1.2", ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")),
            ],
        )

    def test_dataset_offset_part10(self) -> None:
        """
        The data set of a Part 10 file starts right after its File Meta group.
        """
        dataset = make_dataset()
        data = part10_bytes(dataset)
        offset = dataset_offset(data)
        self.assertEqual(data[offset : offset + 4], b"\x08\x00\x16\x00")
        self.assertEqual(dataset_offset(data[offset:]), 0)
