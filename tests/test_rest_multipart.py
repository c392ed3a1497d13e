"""
The streaming multipart/form-data parser.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests import fixtures
from twistedpacs.rest.multipart import (
    MultipartError,
    MultipartParser,
    PartHeaders,
    boundary_of,
)

BOUNDARY = "----QAformBoundary7MA4YWxkTrZu0gW"


class _Collector:
    def __init__(self) -> None:
        self.parts: list[tuple[PartHeaders, bytearray]] = []
        self.ended = 0

    def start(self, headers: PartHeaders) -> "_Collector":
        self.parts.append((headers, bytearray()))
        return self

    def feed(self, data: bytes) -> None:
        self.parts[-1][1].extend(data)

    def end(self) -> None:
        self.ended += 1


def parse(body: bytes, sizes: list[int] | None = None) -> _Collector:
    collector = _Collector()
    parser = MultipartParser(BOUNDARY.encode(), collector.start, collector.end)
    offset, index = 0, 0
    while offset < len(body):
        size = sizes[index % len(sizes)] if sizes else len(body)
        parser.feed(body[offset : offset + size])
        offset += size
        index += 1
    parser.finish()
    return collector


PARTS = [
    ("first.dcm", "application/dicom", b"\x00" * 128 + b"DICM" + b"\r\n--" * 3),
    ("second.dcm", "application/octet-stream", bytes(range(256)) * 20),
    ("notes.txt", "text/plain", b"not DICOM\r\n"),
]


class MultipartParserTests(SynchronousTestCase):
    """
    Parts, file names and bodies come out exactly, in any chunking.
    """

    def test_parser_whole_body(self) -> None:
        """
        Three parts give their file names and exact bodies, even bodies that
        contain CRLF and dashes.
        """
        collector = parse(fixtures.multipart_body(PARTS, BOUNDARY))
        self.assertEqual(collector.ended, 3)
        self.assertEqual(
            [h.filename for h, _ in collector.parts],
            ["first.dcm", "second.dcm", "notes.txt"],
        )
        self.assertEqual([bytes(b) for _, b in collector.parts], [p[2] for p in PARTS])
        self.assertEqual(collector.parts[0][0].name, "files")
        self.assertEqual(collector.parts[2][0].headers["content-type"], "text/plain")

    @given(st.lists(st.integers(min_value=1, max_value=97), min_size=1, max_size=20))
    def test_parser_any_chunking(self, sizes: list[int]) -> None:
        """
        Feeding the body in any chunk sizes gives the same parts.
        """
        collector = parse(fixtures.multipart_body(PARTS, BOUNDARY), sizes)
        self.assertEqual([bytes(b) for _, b in collector.parts], [p[2] for p in PARTS])

    @given(st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=5))
    def test_parser_part_without_headers(self, sizes: list[int]) -> None:
        """
        A part with an empty header block keeps its whole body, blank lines
        and a leading CRLF included, in any chunking.
        """
        body = b"\r\nline1\r\n\r\nline2"
        envelope = (
            f"--{BOUNDARY}\r\n\r\n".encode() + body + f"\r\n--{BOUNDARY}--\r\n".encode()
        )
        collector = parse(envelope, sizes)
        self.assertEqual([bytes(b) for _, b in collector.parts], [body])
        self.assertEqual(collector.parts[0][0].headers, {})

    def test_parser_truncated_body(self) -> None:
        """
        A body without its closing boundary is an error at the end.
        """
        body = fixtures.multipart_body(PARTS, BOUNDARY)
        collector = _Collector()
        parser = MultipartParser(BOUNDARY.encode(), collector.start, collector.end)
        parser.feed(body[:-40])
        self.assertRaises(MultipartError, parser.finish)

    def test_parser_oversized_headers(self) -> None:
        """
        Part headers that never end are an error rather than a growing buffer.
        """
        collector = _Collector()
        parser = MultipartParser(BOUNDARY.encode(), collector.start, collector.end)
        parser.feed(f"--{BOUNDARY}\r\n".encode())
        self.assertRaises(MultipartError, parser.feed, b"X-Long: " + b"a" * 20000)

    def test_boundary_parameter(self) -> None:
        """
        The boundary is read from the Content-Type, quoted or not, and its
        absence is an error.
        """
        self.assertEqual(boundary_of(b'multipart/form-data; boundary="ab c"'), b"ab c")
        self.assertEqual(boundary_of(b"multipart/form-data; boundary=xyz"), b"xyz")
        self.assertRaises(MultipartError, boundary_of, b"multipart/form-data")
