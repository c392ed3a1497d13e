"""
TwistedPACS: a DICOM store on Twisted, with an embedded LMDB store.
"""

__version__ = "0.1.0"
