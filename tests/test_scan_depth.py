"""
Tests of the sequence depth limit through the REST upload of a live server.

These run the installed package: run C{pip install /work/main} into the
virtualenv before them.
"""

from __future__ import annotations

import struct

from twisted.trial.unittest import SynchronousTestCase

from tests import fixtures
from tests.server import ServerProcess
from twistedpacs.dicom.scan import MAXIMUM_SEQUENCE_DEPTH


def nested_sequences(depth: int) -> bytes:
    """
    Return explicit VR little endian undefined-length sequences nested
    C{depth} deep, each with one item.
    """
    opening = struct.pack("<HH2sHL", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF)
    opening += struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
    closing = struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
    closing += struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    return opening * depth + closing * depth


class UploadDepthTests(SynchronousTestCase):
    """
    Uploads whose sequences nest at and past the limit.
    """

    def test_upload_nested_sequences(self) -> None:
        """
        A file with sequences nested as deep as the limit is stored and its
        tags are read; one with 50,000 levels is answered 400 and not stored.
        """
        server = ServerProcess()
        self.addCleanup(server.stop)
        valid = fixtures.part10_bytes(fixtures.make_dataset())

        status, answer = server.request(
            "POST", "/instances", valid + nested_sequences(MAXIMUM_SEQUENCE_DEPTH)
        )
        self.assertEqual(status, 200, answer)
        tags = server.get_json(f"/instances/{answer['ID']}/tags")
        self.assertEqual(tags["0040,a730"]["Name"], "ContentSequence")

        other = fixtures.part10_bytes(fixtures.make_dataset())
        status, answer = server.request(
            "POST", "/instances", other + nested_sequences(50000)
        )
        self.assertEqual(status, 400, answer)
        self.assertEqual(answer["Message"], "Sequences nested too deeply")
        self.assertIn(f"maximum of {MAXIMUM_SEQUENCE_DEPTH}", answer["Details"])
        self.assertEqual(server.get_json("/statistics")["CountInstances"], 1)
