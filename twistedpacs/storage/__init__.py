"""
The LMDB store: sub-databases, the writer thread, and the reads.
"""

from twistedpacs.storage.null import NullStore
from twistedpacs.storage.reads import BlobReader
from twistedpacs.storage.store import Store
from twistedpacs.storage.transfer import Transfer

__all__ = ["BlobReader", "NullStore", "Store", "Transfer"]
