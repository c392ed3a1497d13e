# -*- test-case-name: tests.test_dimse_query -*-
"""
Query/Retrieve matching over the index (PS3.4 section C.2.2.2): parsing a
C-FIND or C-MOVE identifier, matching it against the main tags of stored
resources, and building the response identifiers.

Matching rules, applied to each key with a non-empty value:

  - Single value: equality, case-sensitive except for PN, which is matched
    case-insensitively as Orthanc does by default (C{CaseSensitivePN} false).
  - Wildcard: C{*} and C{?} in any string VR but UI, DA, TM and DT, with the
    same case rule.
  - List: values separated by backslashes match when any of them matches, for
    every VR. PS3.4 allows lists for UIDs, and Orthanc for every VR.
  - Range: C{A-B}, C{A-} and C{-B} for DA, TM and DT, inclusive. A range whose
    lower bound is later than its upper bound matches nothing.
  - A stored attribute with several values matches when any value matches.

An empty value, or C{*} alone, is universal matching. A key that is not a
main tag of its level or above, nor a computed attribute, is not matched and
comes back empty. Sequence matching is not done.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence

from twistedpacs.dicom.tags import MAIN_TAGS
from twistedpacs.dimse.status import CANNOT_UNDERSTAND, DATASET_DOES_NOT_MATCH_SOP_CLASS
from twistedpacs.model import LEVELS, Level

__all__ = [
    "FIND_SOP_CLASSES",
    "GET_SOP_CLASSES",
    "MAXIMUM_IDENTIFIER_LENGTH",
    "MOVE_SOP_CLASSES",
    "Query",
    "QueryError",
    "QueryKey",
    "decode_identifier",
    "encode_identifier",
    "match_value",
    "parse_query",
    "search",
]

PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"

#: The information model ("PATIENT" or "STUDY" root) of each FIND SOP class.
FIND_SOP_CLASSES = {PATIENT_ROOT_FIND: "PATIENT", STUDY_ROOT_FIND: "STUDY"}
#: The information model of each MOVE SOP class.
MOVE_SOP_CLASSES = {PATIENT_ROOT_MOVE: "PATIENT", STUDY_ROOT_MOVE: "STUDY"}
#: The information model of each GET SOP class.
GET_SOP_CLASSES = {PATIENT_ROOT_GET: "PATIENT", STUDY_ROOT_GET: "STUDY"}

#: The cap on the bytes of a received identifier. A query identifier is a few
#: hundred bytes, so a larger one is a broken or hostile peer.
MAXIMUM_IDENTIFIER_LENGTH = 1024 * 1024

#: The Query/Retrieve Level values (0008,0052) and the levels they name.
RETRIEVE_LEVELS = {
    "PATIENT": Level.PATIENT,
    "STUDY": Level.STUDY,
    "SERIES": Level.SERIES,
    "IMAGE": Level.INSTANCE,
}
LEVEL_NAMES = {level: name for name, level in RETRIEVE_LEVELS.items()}

#: The unique key of each level.
UNIQUE_KEYS = {
    Level.PATIENT: "PatientID",
    Level.STUDY: "StudyInstanceUID",
    Level.SERIES: "SeriesInstanceUID",
    Level.INSTANCE: "SOPInstanceUID",
}

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"

_QUERY_RETRIEVE_LEVEL = 0x00080052
_SPECIFIC_CHARACTER_SET = 0x00080005
_RETRIEVE_AE_TITLE = 0x00080054
_SOP_CLASS_UID = 0x00080016

# The level whose index record stores each main tag. ImageOrientationPatient
# is a main tag of both series and instances, and the series one is used.
_TAG_LEVELS: dict[str, Level] = {}
for _level in reversed(LEVELS):
    for _keyword in MAIN_TAGS[_level]:
        _TAG_LEVELS[_keyword] = _level

# Attributes computed from the index, with the level they describe.
_COMPUTED_LEVELS = {
    "NumberOfPatientRelatedStudies": Level.PATIENT,
    "NumberOfPatientRelatedSeries": Level.PATIENT,
    "NumberOfPatientRelatedInstances": Level.PATIENT,
    "NumberOfStudyRelatedSeries": Level.STUDY,
    "NumberOfStudyRelatedInstances": Level.STUDY,
    "ModalitiesInStudy": Level.STUDY,
    "SOPClassesInStudy": Level.STUDY,
    "NumberOfSeriesRelatedInstances": Level.SERIES,
    "SOPClassUID": Level.INSTANCE,
}

_RANGE_VRS = frozenset(("DA", "TM", "DT"))
_NO_WILDCARD_VRS = frozenset(("UI", "DA", "TM", "DT", "IS", "DS", "US", "UL"))
_INTEGER_VRS = frozenset(("US", "UL", "SS", "SL", "UV", "SV"))
_STRING_VRS = frozenset(
    ("AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM")
    + ("UC", "UI", "UR", "UT")
)


class QueryError(Exception):
    """
    An identifier that cannot be used as a query.

    @ivar status: The DIMSE failure status of the response.
    @ivar message: The Error Comment, at most 64 characters.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class QueryKey:
    """
    One key of a query identifier.

    @ivar tag: The attribute tag as an integer.
    @ivar keyword: The DICOM keyword, or an empty string for a private or
        unknown tag.
    @ivar vr: The VR the identifier gave the element.
    @ivar value: The matching value as text, or empty for universal matching.
    """

    tag: int
    keyword: str
    vr: str
    value: str


@dataclass(frozen=True)
class Query:
    """
    A parsed query identifier.

    @ivar model: C{"PATIENT"} or C{"STUDY"}, the root of the information model.
    @ivar level: The Query/Retrieve Level.
    @ivar keys: Every key of the identifier but (0008,0005) and (0008,0052).
    @ivar character_set: The Specific Character Set of the identifier, as
        received, or an empty string.
    """

    model: str
    level: Level
    keys: tuple[QueryKey, ...]
    character_set: str = ""
    _by_keyword: dict[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for key in self.keys:
            if key.keyword:
                self._by_keyword[key.keyword] = key.value

    def constraint(self, keyword: str) -> str:
        """
        Return the matching value of a key, or an empty string if the key is
        absent or universal.
        """
        return self._by_keyword.get(keyword, "")

    def matching_keys(self) -> list[QueryKey]:
        """
        Return the keys that constrain the result: non-universal keys of
        attributes stored or computed at the query level or above.
        """
        depth = LEVELS.index(self.level)
        keys = []
        for key in self.keys:
            if not key.value or key.value == "*" or key.vr == "SQ":
                continue
            level = _TAG_LEVELS.get(key.keyword) or _COMPUTED_LEVELS.get(key.keyword)
            if level is not None and LEVELS.index(level) <= depth:
                keys.append(key)
        return keys


def decode_identifier(data: bytes, transfer_syntax: str) -> Dataset:
    """
    Parse an identifier received on a presentation context.

    @raise QueryError: with 0xC000 if the bytes are not a data set in that
        transfer syntax.
    """
    if transfer_syntax == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
        try:
            data = zlib.decompress(data, -zlib.MAX_WBITS)
        except zlib.error as error:
            raise QueryError(CANNOT_UNDERSTAND, f"Invalid deflated identifier: {error}")
    implicit = transfer_syntax == IMPLICIT_VR_LITTLE_ENDIAN
    little = transfer_syntax != EXPLICIT_VR_BIG_ENDIAN
    try:
        dataset = read_dataset(BytesIO(data), implicit, little)
        # Convert every raw element now, so a bad value fails here.
        for element in dataset:
            _ = element.value
    except Exception as error:
        # pydicom raises many types on malformed input.
        raise QueryError(CANNOT_UNDERSTAND, f"Invalid identifier: {error}"[:64])
    return dataset


def encode_identifier(dataset: Dataset, transfer_syntax: str) -> bytes:
    """
    Encode a response identifier in a presentation context's transfer syntax.
    """
    buffer = DicomBytesIO()
    buffer.is_implicit_VR = transfer_syntax == IMPLICIT_VR_LITTLE_ENDIAN
    buffer.is_little_endian = transfer_syntax != EXPLICIT_VR_BIG_ENDIAN
    write_dataset(buffer, dataset)
    data = buffer.getvalue()
    if transfer_syntax == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
        compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        data = compressor.compress(data) + compressor.flush()
    return data


def _element_text(element: DataElement) -> str:
    value = element.value
    if value is None:
        return ""
    if element.VR == "SQ":
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(item) for item in value)
    return str(value).strip()


def parse_query(dataset: Dataset, model: str) -> Query:
    """
    Build a query from an identifier of the C{model} information model.

    @raise QueryError: with 0xA900 if the Query/Retrieve Level is missing or
        not a level of the model.
    """
    if _QUERY_RETRIEVE_LEVEL not in dataset:
        raise QueryError(DATASET_DOES_NOT_MATCH_SOP_CLASS, "Missing QueryRetrieveLevel")
    level_name = _element_text(dataset[_QUERY_RETRIEVE_LEVEL]).upper()
    level = RETRIEVE_LEVELS.get(level_name)
    if level is None or (model == "STUDY" and level is Level.PATIENT):
        raise QueryError(
            DATASET_DOES_NOT_MATCH_SOP_CLASS,
            f"Invalid QueryRetrieveLevel {level_name[:32]}",
        )
    character_set = ""
    if _SPECIFIC_CHARACTER_SET in dataset:
        character_set = _element_text(dataset[_SPECIFIC_CHARACTER_SET])
    keys = []
    for element in dataset:
        tag = int(element.tag)
        if tag in (_QUERY_RETRIEVE_LEVEL, _SPECIFIC_CHARACTER_SET):
            continue
        if element.tag.element == 0:
            # Group lengths are encoding details, not keys.
            continue
        keyword = keyword_for_tag(tag) or ""
        keys.append(QueryKey(tag, keyword, element.VR, _element_text(element)))
    return Query(model, level, tuple(keys), character_set)


# Matching


def _wildcard_pattern(text: str, ignore_case: bool) -> re.Pattern[str]:
    pattern = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char)
        for char in text
    )
    return re.compile(pattern, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _normalize_temporal(vr: str, text: str) -> str:
    # Legacy DA values ("2024.01.31") and TM values with colons compare as
    # their plain digits.
    if vr == "DA":
        return text.replace(".", "")
    if vr == "TM":
        return text.replace(":", "")
    return text


def _match_range(vr: str, constraint: str, value: str) -> bool:
    lower, _, upper = constraint.partition("-")
    lower = _normalize_temporal(vr, lower.strip())
    upper = _normalize_temporal(vr, upper.strip())
    value = _normalize_temporal(vr, value)
    if lower and upper and lower > upper:
        return False
    if lower and value < lower:
        return False
    # A value more precise than the upper bound ("105959" against "1100")
    # is compared on the bound's precision.
    if upper and value[: len(upper)] > upper:
        return False
    return True


def _match_one(vr: str, constraint: str, value: str) -> bool:
    if not value:
        return False
    if vr in _RANGE_VRS:
        if "-" in constraint:
            return _match_range(vr, constraint, value)
        return _normalize_temporal(vr, constraint) == _normalize_temporal(vr, value)
    ignore_case = vr == "PN"
    if vr not in _NO_WILDCARD_VRS and ("*" in constraint or "?" in constraint):
        return _wildcard_pattern(constraint, ignore_case).fullmatch(value) is not None
    if ignore_case:
        return constraint.casefold() == value.casefold()
    if vr in ("IS", "US", "UL"):
        try:
            return int(constraint) == int(value)
        except ValueError:
            return constraint == value
    return constraint == value


def match_value(vr: str, constraint: str, value: str) -> bool:
    """
    Return whether one stored value matches one key's matching value.

    @param vr: The VR of the attribute, which chooses the rules.
    @param constraint: The matching value of the key. Empty or C{*} matches
        everything, including an empty stored value.
    @param value: The stored value, with several values separated by
        backslashes.
    """
    constraint = constraint.strip()
    if not constraint or constraint == "*":
        return True
    alternatives = constraint.split("\\")
    stored = [part.strip() for part in value.split("\\")] if value else [""]
    return any(
        _match_one(vr, alternative.strip(), part)
        for alternative in alternatives
        for part in stored
    )


# Searching the index


class _Resolver:
    """
    The merged main tags and computed attributes of resources, read from the
    store with a cache of ancestors, for one search.
    """

    def __init__(self, store: Any) -> None:
        self._store = store
        self._records: dict[tuple[Level, str], dict[str, Any] | None] = {}

    def record(self, level: Level, resource_id: str) -> dict[str, Any] | None:
        key = (level, resource_id)
        if key not in self._records:
            if len(self._records) > 4096:
                self._records.clear()
            self._records[key] = self._store.get(level, resource_id)
        return self._records[key]

    def tags(self, level: Level, resource_id: str) -> dict[str, str] | None:
        """
        Return the main tags of a resource merged with those of its ancestors,
        or L{None} if it was deleted meanwhile.
        """
        merged: dict[str, str] = {}
        current: Level | None = level
        current_id: str | None = resource_id
        while current is not None and current_id:
            record = self.record(current, current_id)
            if record is None:
                return None
            for keyword, value in record.get("MainDicomTags", {}).items():
                merged.setdefault(keyword, value)
            current_id = record.get("ParentID")
            current = current.parent
        return merged

    def descendants(self, level: Level, resource_id: str, target: Level) -> list[str]:
        ids = [resource_id]
        while level is not target:
            child = level.child
            assert child is not None
            ids = [
                found for parent in ids for found in self._store.children(level, parent)
            ]
            level = child
        return ids

    def computed(self, keyword: str, level: Level, resource_id: str) -> str:
        """
        Return a computed attribute of a resource at the level it describes.
        """
        store = self._store
        if keyword == "SOPClassUID":
            metadata = store.metadata(resource_id) or {}
            return str(metadata.get("SopClassUid", ""))
        if keyword == "ModalitiesInStudy":
            modalities = set()
            for series_id in store.children(Level.STUDY, resource_id):
                record = self.record(Level.SERIES, series_id) or {}
                modality = record.get("MainDicomTags", {}).get("Modality", "")
                if modality:
                    modalities.add(modality)
            return "\\".join(sorted(modalities))
        if keyword == "SOPClassesInStudy":
            classes = set()
            for instance_id in self.descendants(level, resource_id, Level.INSTANCE):
                metadata = store.metadata(instance_id) or {}
                if metadata.get("SopClassUid"):
                    classes.add(str(metadata["SopClassUid"]))
            return "\\".join(sorted(classes))
        target = {
            "Studies": Level.STUDY,
            "Series": Level.SERIES,
            "Instances": Level.INSTANCE,
        }[keyword.rsplit("Related", 1)[1]]
        return str(len(self.descendants(level, resource_id, target)))

    def ancestor_id(self, level: Level, resource_id: str, ancestor: Level) -> str:
        current = level
        current_id = resource_id
        while current is not ancestor:
            record = self.record(current, current_id) or {}
            current_id = record.get("ParentID") or ""
            parent = current.parent
            assert parent is not None
            current = parent
        return current_id


@dataclass
class Match:
    """
    One resource that matched a query.

    @ivar level: The query level.
    @ivar resource_id: The Orthanc id of the resource.
    @ivar values: The value of each requested keyword, computed ones included.
    """

    level: Level
    resource_id: str
    values: dict[str, str]


def _has_wildcard(value: str) -> bool:
    return "*" in value or "?" in value


def _candidate_ids(store: Any, query: Query, resolver: _Resolver) -> Iterator[str]:
    """
    Yield the ids of the query level that can match: those below the deepest
    unique key given as single values, or every id of the level otherwise.
    """
    depth = LEVELS.index(query.level)
    for level in reversed(LEVELS[: depth + 1]):
        values = query.constraint(UNIQUE_KEYS[level])
        if not values or _has_wildcard(values):
            continue
        seen: set[str] = set()
        for value in values.split("\\"):
            for found in store.lookup(level, value.strip()):
                for resource_id in resolver.descendants(level, found, query.level):
                    if resource_id not in seen:
                        seen.add(resource_id)
                        yield resource_id
        return
    page = 1000
    since = 0
    while True:
        ids = store.list_ids(query.level, since, page)
        yield from ids
        if len(ids) < page:
            return
        since += page


def search(
    store: Any, query: Query, requested: list[str] | None = None
) -> Iterator[Match | None]:
    """
    Search the index for the resources that match C{query}.

    The generator yields a L{Match} for each match and L{None} after each
    resource that did not match, so a caller can run it in bounded slices.
    Each step does a few short read transactions.

    @param requested: The keywords whose values each match carries, by
        default every keyword of the query.
    """
    resolver = _Resolver(store)
    keys = query.matching_keys()
    if requested is None:
        requested = [key.keyword for key in query.keys if key.keyword]
        requested.append(UNIQUE_KEYS[query.level])
    vrs = {key.keyword: key.vr for key in keys}
    for resource_id in _candidate_ids(store, query, resolver):
        tags = resolver.tags(query.level, resource_id)
        if tags is None:
            yield None
            continue
        values: dict[str, str] = {}

        def value_of(keyword: str) -> str:
            if keyword not in values:
                values[keyword] = _value(resolver, query, tags, keyword, resource_id)
            return values[keyword]

        matched = all(
            match_value(vrs[key.keyword], key.value, value_of(key.keyword))
            for key in keys
        )
        if not matched:
            yield None
            continue
        for keyword in requested:
            value_of(keyword)
        yield Match(query.level, resource_id, values)


def _value(
    resolver: _Resolver,
    query: Query,
    tags: dict[str, str],
    keyword: str,
    resource_id: str,
) -> str:
    if keyword in tags:
        return str(tags[keyword])
    level = _COMPUTED_LEVELS.get(keyword)
    if level is None or LEVELS.index(level) > LEVELS.index(query.level):
        return ""
    owner = resolver.ancestor_id(query.level, resource_id, level)
    return resolver.computed(keyword, level, owner) if owner else ""


# Response identifiers


def _encodable(text: str, character_set: str) -> bool:
    from pydicom.charset import encode_string

    try:
        encode_string(text, [character_set])
    except (UnicodeError, LookupError, ValueError):
        return False
    return True


def response_character_set(query: Query, texts: list[str]) -> str:
    """
    Choose the Specific Character Set of a response: the query's when it can
    encode every value (or every value is ASCII), else ISO_IR 192 (UTF-8).
    """
    if all(text.isascii() for text in texts):
        return query.character_set
    first = query.character_set.split("\\")[0].strip() or "ISO_IR 6"
    if "\\" not in query.character_set and first != "ISO_IR 6":
        if all(_encodable(text, first) for text in texts):
            return query.character_set
    return "ISO_IR 192"


def _typed_value(vr: str, text: str) -> Any:
    if not text:
        return None
    parts = text.split("\\")
    if vr in _INTEGER_VRS:
        try:
            numbers = [int(part) for part in parts]
        except ValueError:
            return None
        return numbers[0] if len(numbers) == 1 else numbers
    if vr in _STRING_VRS and len(parts) > 1:
        return parts
    return text


def build_response(
    query: Query, match: Match, retrieve_aet: str, extra: tuple[str, ...] = ()
) -> Dataset:
    """
    Build the identifier of one C-FIND response: every key of the query with
    its stored value, the Query/Retrieve Level, and the unique key of the
    query level even where the query left it out.

    @param retrieve_aet: The Retrieve AE Title, returned if the query
        contains the Retrieve AE Title key.
    @param extra: More keywords to return even if the query does not
        contain them.
    """
    dataset = Dataset()
    texts = [value for value in match.values.values() if value]
    character_set = response_character_set(query, texts)
    if character_set:
        dataset.SpecificCharacterSet = character_set.split("\\")
    dataset.QueryRetrieveLevel = LEVEL_NAMES[query.level]
    for key in query.keys:
        if key.tag == _RETRIEVE_AE_TITLE:
            dataset.add_new(key.tag, "AE", retrieve_aet)
        elif key.vr == "SQ":
            dataset.add_new(key.tag, "SQ", Sequence())
        else:
            text = match.values.get(key.keyword, "") if key.keyword else ""
            dataset.add_new(key.tag, key.vr, _typed_value(key.vr, text))
    for keyword in (UNIQUE_KEYS[query.level], *extra):
        tag = tag_for_keyword(keyword)
        if tag is not None and tag not in dataset:
            vr = dictionary_VR(tag)
            dataset.add_new(tag, vr, _typed_value(vr, match.values.get(keyword, "")))
    return dataset


def instances_of(store: Any, match: Match) -> list[str]:
    """
    Return the ids of every instance below a matched resource.
    """
    return _Resolver(store).descendants(match.level, match.resource_id, Level.INSTANCE)
