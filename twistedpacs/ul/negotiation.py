# -*- test-case-name: tests.test_ul_protocol -*-
"""
Association negotiation on the acceptor side: whether an A-ASSOCIATE-RQ is
rejected, and which presentation contexts, roles and limits an A-ASSOCIATE-AC
accepts (PS3.8 section 7.1 and Annex D, PS3.7 Annex D.3).

Pure functions over the PDU types, with no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydicom._uid_dict import UID_dictionary
from pydicom.uid import (
    JPEG2000TransferSyntaxes,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
    MPEGTransferSyntaxes,
    RLETransferSyntaxes,
    UncompressedTransferSyntaxes,
)

from twistedpacs.config import Settings
from twistedpacs.dicom.part10 import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
)
from twistedpacs.ul.pdu import (
    CONTEXT_ABSTRACT_SYNTAX_NOT_SUPPORTED,
    CONTEXT_ACCEPTANCE,
    CONTEXT_PROVIDER_REJECTION_NO_REASON,
    CONTEXT_TRANSFER_SYNTAXES_NOT_SUPPORTED,
    DICOM_APPLICATION_CONTEXT_NAME,
    PROTOCOL_VERSION,
    REJECT_ACSE_PROTOCOL_VERSION_NOT_SUPPORTED,
    REJECT_PRESENTATION_LOCAL_LIMIT_EXCEEDED,
    REJECT_RESULT_PERMANENT,
    REJECT_RESULT_TRANSIENT,
    REJECT_SOURCE_SERVICE_PROVIDER_ACSE,
    REJECT_SOURCE_SERVICE_PROVIDER_PRESENTATION,
    REJECT_SOURCE_SERVICE_USER,
    REJECT_USER_APPLICATION_CONTEXT_NAME_NOT_SUPPORTED,
    REJECT_USER_CALLED_AE_TITLE_NOT_RECOGNIZED,
    REJECT_USER_CALLING_AE_TITLE_NOT_RECOGNIZED,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    AsynchronousOperationsWindow,
    ImplementationClassUID,
    ImplementationVersionName,
    MaximumLength,
    PresentationContextAC,
    PresentationContextRQ,
    SCPSCURoleSelection,
    UserInformation,
    UserInformationSubItem,
)

__all__ = [
    "ACCEPTED_TRANSFER_SYNTAXES",
    "IMPLEMENTATION_CLASS_UID",
    "IMPLEMENTATION_VERSION_NAME",
    "QUERY_RETRIEVE_SOP_CLASSES",
    "QUERY_RETRIEVE_TRANSFER_SYNTAXES",
    "STORAGE_SOP_CLASSES",
    "VERIFICATION_SOP_CLASS",
    "AcceptedContext",
    "Negotiation",
    "check_request",
    "is_valid_ae_title",
    "negotiate",
    "shown_ae_title",
]

VERIFICATION_SOP_CLASS = "1.2.840.10008.1.1"

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"

# "CT Image Storage", "Digital X-Ray Image Storage - For Presentation",
# "Waveform Storage - Trial" and the retired "Stored Print Storage SOP
# Class", but not "Storage Commitment Push Model SOP Class".
_STORAGE_NAME = re.compile(r" Storage( - .+| SOP Class)?$")


def _storage_sop_classes() -> frozenset[str]:
    return frozenset(
        uid
        for uid, entry in UID_dictionary.items()
        if entry[1] == "SOP Class" and _STORAGE_NAME.search(entry[0])
    )


#: Every storage SOP class in pydicom's UID dictionary.
STORAGE_SOP_CLASSES: frozenset[str] = _storage_sop_classes()

#: The transfer syntaxes of a data set we store. These are the four
#: uncompressed ones (implicit and explicit little endian, explicit big
#: endian, deflated), the JPEG, JPEG-LS, JPEG 2000 and HTJ2K, RLE, MPEG-2,
#: MPEG-4 and HEVC families as pydicom 3 lists them, and encapsulated
#: uncompressed. JPIP (pixel data by reference) and the SMPTE ST 2110
#: syntaxes are left out.
ACCEPTED_TRANSFER_SYNTAXES: frozenset[str] = frozenset(
    [
        *UncompressedTransferSyntaxes,
        *JPEGTransferSyntaxes,
        *JPEGLSTransferSyntaxes,
        *JPEG2000TransferSyntaxes,
        *RLETransferSyntaxes,
        *MPEGTransferSyntaxes,
        "1.2.840.10008.1.2.1.98",
    ]
)


#: The Patient Root and Study Root Query/Retrieve Information Model FIND,
#: MOVE and GET SOP classes.
QUERY_RETRIEVE_SOP_CLASSES: frozenset[str] = frozenset(
    (
        "1.2.840.10008.5.1.4.1.2.1.1",
        "1.2.840.10008.5.1.4.1.2.1.2",
        "1.2.840.10008.5.1.4.1.2.1.3",
        "1.2.840.10008.5.1.4.1.2.2.1",
        "1.2.840.10008.5.1.4.1.2.2.2",
        "1.2.840.10008.5.1.4.1.2.2.3",
    )
)

#: The transfer syntaxes of a query identifier: the uncompressed ones, which
#: pydicom reads and writes without a codec.
QUERY_RETRIEVE_TRANSFER_SYNTAXES: frozenset[str] = frozenset(
    UncompressedTransferSyntaxes
)


# An AE title after its padding is removed: 1 to 16 characters of the default
# character repertoire (ISO 646 G0, 0x20 to 0x7E), without backslash, as PS3.5
# Table 6.2-1 sets for the AE value representation.
_AE_TITLE = re.compile(r"[\x20-\x5B\x5D-\x7E]{1,16}")


def is_valid_ae_title(title: str) -> bool:
    """
    Tell whether C{title}, without its leading and trailing spaces, is an AE
    title: 1 to 16 characters of the default character repertoire, without
    backslash or control characters.
    """
    return _AE_TITLE.fullmatch(title.strip(" ")) is not None


def shown_ae_title(title: str) -> str:
    """
    Return C{title} as a log message shows it: as it is when it is a valid AE
    title, otherwise as its ASCII-only Python representation (C{ascii}), so
    a control character in it cannot start a line of its own in the log.
    """
    return title if is_valid_ae_title(title) else ascii(title)


@dataclass(frozen=True)
class AcceptedContext:
    """
    A presentation context accepted in the A-ASSOCIATE-AC.

    @ivar context_id: The presentation context ID.
    @ivar abstract_syntax: The SOP class UID.
    @ivar transfer_syntax: The transfer syntax UID we accepted.
    """

    context_id: int
    abstract_syntax: str
    transfer_syntax: str


@dataclass(frozen=True)
class Negotiation:
    """
    The outcome of negotiating an accepted association.

    @ivar ac: The A-ASSOCIATE-AC PDU to send.
    @ivar contexts: The accepted presentation contexts by context ID.
    @ivar peer_maximum_length: The largest P-DATA-TF PDU length, after the
        6-byte header, the peer accepts, or 0 for no limit.
    @ivar requestor_scp_classes: The storage SOP classes for which the
        requestor takes the SCP role, so that a C-GET may send it C-STOREs.
    """

    ac: AAssociateAC
    contexts: dict[int, AcceptedContext]
    peer_maximum_length: int
    requestor_scp_classes: frozenset[str] = frozenset()


def check_request(
    rq: AAssociateRQ, settings: Settings, active_associations: int
) -> AAssociateRJ | None:
    """
    Decide whether an A-ASSOCIATE-RQ is rejected as a whole.

    @param active_associations: The associations accepted and not yet ended
        on this server, not counting this one.
    A calling AE title that L{is_valid_ae_title} refuses is rejected with
    reason 3, and such a called AE title with reason 7, both permanently by
    the service user.

    @return: The A-ASSOCIATE-RJ PDU for the first reason that applies, or
        L{None} to negotiate the presentation contexts.
    """
    if not rq.protocol_version & PROTOCOL_VERSION:
        return AAssociateRJ(
            REJECT_RESULT_PERMANENT,
            REJECT_SOURCE_SERVICE_PROVIDER_ACSE,
            REJECT_ACSE_PROTOCOL_VERSION_NOT_SUPPORTED,
        )
    if rq.application_context_name != DICOM_APPLICATION_CONTEXT_NAME:
        return AAssociateRJ(
            REJECT_RESULT_PERMANENT,
            REJECT_SOURCE_SERVICE_USER,
            REJECT_USER_APPLICATION_CONTEXT_NAME_NOT_SUPPORTED,
        )
    if not is_valid_ae_title(rq.calling_ae_title):
        return AAssociateRJ(
            REJECT_RESULT_PERMANENT,
            REJECT_SOURCE_SERVICE_USER,
            REJECT_USER_CALLING_AE_TITLE_NOT_RECOGNIZED,
        )
    called = rq.called_ae_title
    if not is_valid_ae_title(called) or (
        settings.dicom_check_called_aet and called != settings.aet
    ):
        return AAssociateRJ(
            REJECT_RESULT_PERMANENT,
            REJECT_SOURCE_SERVICE_USER,
            REJECT_USER_CALLED_AE_TITLE_NOT_RECOGNIZED,
        )
    maximum = settings.maximum_associations
    if maximum and active_associations >= maximum:
        return AAssociateRJ(
            REJECT_RESULT_TRANSIENT,
            REJECT_SOURCE_SERVICE_PROVIDER_PRESENTATION,
            REJECT_PRESENTATION_LOCAL_LIMIT_EXCEEDED,
        )
    return None


# The SOP classes this server provides as SCP and never uses as SCU.
_SERVICE_CLASSES = QUERY_RETRIEVE_SOP_CLASSES | {VERIFICATION_SOP_CLASS}


def _answer_context(
    context: PresentationContextRQ, settings: Settings, seen: set[int]
) -> PresentationContextAC:
    """
    Build the result for one proposed presentation context.

    The first proposed transfer syntax we accept wins. A rejected context
    still carries a transfer syntax sub-item, which PS3.8 requires and states
    the requestor does not test.
    """
    proposed = context.transfer_syntaxes
    placeholder = proposed[0] if proposed else IMPLICIT_VR_LITTLE_ENDIAN
    if context.context_id in seen or not context.context_id % 2:
        # PS3.8 requires distinct odd context IDs, so a repeated or even one
        # is a broken proposal.
        return PresentationContextAC(
            context.context_id, CONTEXT_PROVIDER_REJECTION_NO_REASON, placeholder
        )
    seen.add(context.context_id)
    abstract_syntax = context.abstract_syntax
    if abstract_syntax in QUERY_RETRIEVE_SOP_CLASSES:
        for transfer_syntax in proposed:
            if transfer_syntax in QUERY_RETRIEVE_TRANSFER_SYNTAXES:
                return PresentationContextAC(
                    context.context_id, CONTEXT_ACCEPTANCE, transfer_syntax
                )
        return PresentationContextAC(
            context.context_id, CONTEXT_TRANSFER_SYNTAXES_NOT_SUPPORTED, placeholder
        )
    supported = (
        abstract_syntax == VERIFICATION_SOP_CLASS
        or abstract_syntax in STORAGE_SOP_CLASSES
        or settings.unknown_sop_class_accepted
    )
    if not supported:
        return PresentationContextAC(
            context.context_id, CONTEXT_ABSTRACT_SYNTAX_NOT_SUPPORTED, placeholder
        )
    for transfer_syntax in proposed:
        if transfer_syntax in ACCEPTED_TRANSFER_SYNTAXES:
            return PresentationContextAC(
                context.context_id, CONTEXT_ACCEPTANCE, transfer_syntax
            )
    return PresentationContextAC(
        context.context_id, CONTEXT_TRANSFER_SYNTAXES_NOT_SUPPORTED, placeholder
    )


def _answer_roles(
    proposals: tuple[SCPSCURoleSelection, ...], accepted_classes: set[str]
) -> list[SCPSCURoleSelection]:
    """
    Build the SCP/SCU role selection replies for the accepted SOP classes (PS3.7 Annex
    D.3.3.4).

    The requestor keeps the SCU role where it proposed it. It gets the SCP
    role of a storage SOP class where it proposed it, which lets a C-GET
    send it the instances of that class. Other classes have no SCP role for
    the requestor to take, because this server only responds to them.
    """
    answers = []
    answered: set[str] = set()
    for proposal in proposals:
        uid = proposal.sop_class_uid
        if uid in accepted_classes and uid not in answered:
            answered.add(uid)
            scp_role = proposal.scp_role and uid not in _SERVICE_CLASSES
            answers.append(SCPSCURoleSelection(uid, proposal.scu_role, scp_role))
    return answers


def negotiate(rq: AAssociateRQ, settings: Settings) -> Negotiation:
    """
    Build the A-ASSOCIATE-AC for an A-ASSOCIATE-RQ that L{check_request}
    accepted.

    Every proposed context gets a result: 0 (acceptance), 2 (a repeated or
    even context ID), 3 (abstract syntax not supported) or 4 (no proposed
    transfer syntax supported). The user information carries our maximum
    length, the implementation class UID and version name, the SCP/SCU Role
    Selection replies, and an asynchronous operations window of 1 invoked
    and 1 performed when the requestor proposed one.
    """
    seen: set[int] = set()
    answers = []
    contexts: dict[int, AcceptedContext] = {}
    for context in rq.presentation_contexts:
        answer = _answer_context(context, settings, seen)
        answers.append(answer)
        if answer.result == CONTEXT_ACCEPTANCE and answer.transfer_syntax:
            contexts[answer.context_id] = AcceptedContext(
                answer.context_id, context.abstract_syntax, answer.transfer_syntax
            )

    user_information = rq.user_information or UserInformation()
    sub_items: list[UserInformationSubItem] = [
        MaximumLength(settings.maximum_pdu_length),
        ImplementationClassUID(IMPLEMENTATION_CLASS_UID),
    ]
    if user_information.asynchronous_operations_window is not None:
        sub_items.append(AsynchronousOperationsWindow(1, 1))
    accepted_classes = {context.abstract_syntax for context in contexts.values()}
    roles = _answer_roles(user_information.role_selections, accepted_classes)
    sub_items.extend(roles)
    sub_items.append(ImplementationVersionName(IMPLEMENTATION_VERSION_NAME))

    ac = AAssociateAC(
        called_ae_title=rq.called_ae_title,
        calling_ae_title=rq.calling_ae_title,
        presentation_contexts=tuple(answers),
        user_information=UserInformation(tuple(sub_items)),
        application_context_name=DICOM_APPLICATION_CONTEXT_NAME,
        protocol_version=PROTOCOL_VERSION,
    )
    requestor_scp_classes = frozenset(
        role.sop_class_uid for role in roles if role.scp_role
    )
    return Negotiation(
        ac, contexts, user_information.maximum_length or 0, requestor_scp_classes
    )
