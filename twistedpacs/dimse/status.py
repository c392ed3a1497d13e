"""
DIMSE status codes used by the services, and their categories (PS3.7 Annex C
and the service classes of PS3.4).

The meaning of a code depends on the service: 0xB000 is "coercion of data
elements" in a C-STORE-RSP but "sub-operations complete, one or more failures
or warnings" in a C-MOVE-RSP or C-GET-RSP. The category of a code does not.
"""

from __future__ import annotations

import enum

__all__ = [
    "StatusCategory",
    "status_category",
]


class StatusCategory(enum.Enum):
    """
    The status types of PS3.7 Annex C.
    """

    SUCCESS = "success"
    WARNING = "warning"
    FAILURE = "failure"
    CANCEL = "cancel"
    PENDING = "pending"


SUCCESS = 0x0000

# Pending: C-FIND, C-GET and C-MOVE send one of these with each match or
# sub-operation. 0xFF01 adds a warning that one or more optional keys were
# not supported for matching.
PENDING = 0xFF00
PENDING_WARNING = 0xFF01

CANCEL = 0xFE00

# Failures.
REFUSED_OUT_OF_RESOURCES = 0xA700
REFUSED_OUT_OF_RESOURCES_NUMBER_OF_MATCHES = 0xA701
REFUSED_OUT_OF_RESOURCES_SUBOPERATIONS = 0xA702
REFUSED_MOVE_DESTINATION_UNKNOWN = 0xA801
DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000
PROCESSING_FAILURE = 0x0110
SOP_CLASS_NOT_SUPPORTED = 0x0122
NOT_AUTHORIZED = 0x0124
DUPLICATE_INVOCATION = 0x0210
UNRECOGNIZED_OPERATION = 0x0211
MISTYPED_ARGUMENT = 0x0212

# Warnings.
SUBOPERATIONS_COMPLETE_WITH_FAILURES = 0xB000
COERCION_OF_DATA_ELEMENTS = 0xB000
ELEMENTS_DISCARDED = 0xB006
DATASET_DOES_NOT_MATCH_SOP_CLASS_WARNING = 0xB007

# General codes outside 0xB000-0xBFFF that are warnings, not failures:
# requested optional attributes not supported (0x0001), attribute list error
# (0x0107) and attribute value out of range (0x0116).
_GENERAL_WARNINGS = frozenset({0x0001, 0x0107, 0x0116})


def status_category(code: int) -> StatusCategory:
    """
    Classify a DIMSE status code by the ranges of PS3.7 Annex C.

    0x0000 is success. 0x0001, 0x0107, 0x0116 and 0xB000-0xBFFF are warnings.
    0xFE00 is cancel, and 0xFF00 and 0xFF01 are pending. Every other code is
    a failure, including codes no standard defines, because a requestor
    cannot assume that an operation with an unknown outcome succeeded.

    @raise ValueError: if C{code} does not fit the 16 bits of a Status value.
    """
    if not 0 <= code <= 0xFFFF:
        raise ValueError(f"status code {code!r} is outside 0x0000-0xFFFF")
    if code == SUCCESS:
        return StatusCategory.SUCCESS
    if code in _GENERAL_WARNINGS or 0xB000 <= code <= 0xBFFF:
        return StatusCategory.WARNING
    if code == CANCEL:
        return StatusCategory.CANCEL
    if code == PENDING or code == PENDING_WARNING:
        return StatusCategory.PENDING
    return StatusCategory.FAILURE
