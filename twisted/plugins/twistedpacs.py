from twisted.application.service import ServiceMaker

TwistedPACS = ServiceMaker(
    "TwistedPACS",
    "twistedpacs.service",
    "A DICOM store: C-STORE, C-ECHO and a REST API over LMDB.",
    "twistedpacs",
)
