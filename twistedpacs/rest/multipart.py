"""
A streaming parser of C{multipart/form-data} bodies (RFC 7578, with the
framing of RFC 2046 section 5.1), so that C{curl -F file=@image.dcm} and HTML
forms can upload without the envelope ever being held in memory.

Each part's body goes to a sink as it arrives. Between chunks, the parser
keeps at most one delimiter's worth of body bytes, or the headers of one part
up to L{MAXIMUM_PART_HEADERS}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol


class MultipartError(ValueError):
    """
    The body is not a valid multipart/form-data envelope.
    """


class PartSink(Protocol):
    """
    The receiver of the body of one part, fed in chunks as they arrive.
    """

    def feed(self, data: bytes) -> None: ...


@dataclass
class PartHeaders:
    """
    The headers of one part, with the names lower-cased.
    """

    headers: dict[str, str] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return _disposition_parameter(
            self.headers.get("content-disposition", ""), "filename"
        )

    @property
    def name(self) -> str:
        return _disposition_parameter(
            self.headers.get("content-disposition", ""), "name"
        )


def _disposition_parameter(value: str, parameter: str) -> str:
    for piece in value.split(";")[1:]:
        key, _, raw = piece.strip().partition("=")
        if key.strip().lower() == parameter:
            raw = raw.strip()
            if len(raw) >= 2 and raw[0] == raw[-1] == '"':
                raw = raw[1:-1].replace('\\"', '"')
            return raw
    return ""


def boundary_of(content_type: bytes) -> bytes:
    """
    Read the boundary parameter of a multipart Content-Type.

    @raise MultipartError: if it is missing or longer than RFC 2046's 70
        characters.
    """
    for piece in content_type.split(b";")[1:]:
        key, _, value = piece.strip().partition(b"=")
        if key.strip().lower() == b"boundary":
            value = value.strip().strip(b'"')
            if 1 <= len(value) <= 70:
                return value
    raise MultipartError("the multipart Content-Type has no valid boundary parameter")


# Headers of one part larger than this are not a form upload.
MAXIMUM_PART_HEADERS = 16 * 1024


class MultipartParser:
    """
    Split a multipart body fed in chunks into parts.

    @param start_part: called with the headers of each part, and returns the
        sink of its body.
    @param end_part: called once a part's body is complete.
    """

    def __init__(
        self,
        boundary: bytes,
        start_part: Callable[[PartHeaders], PartSink],
        end_part: Callable[[], None],
    ) -> None:
        self._delimiter = b"\r\n--" + boundary
        self._start_part = start_part
        self._end_part = end_part
        # The body starts with the first boundary line (no CRLF before it).
        self._buffer = b"\r\n"
        self._state = "preamble"
        self._sink: PartSink | None = None
        self.parts = 0

    def feed(self, data: bytes) -> None:
        """
        Parse the next bytes of the body.

        @raise MultipartError: on a malformed envelope.
        """
        self._buffer += data
        while self._step():
            pass

    def finish(self) -> None:
        """
        Check that the body ended with the closing delimiter.

        @raise MultipartError: if it did not.
        """
        if self._state != "epilogue":
            raise MultipartError("the multipart body ended before its closing boundary")

    def _step(self) -> bool:
        return {
            "preamble": self._step_preamble,
            "after_delimiter": self._step_after_delimiter,
            "headers": self._step_headers,
            "body": self._step_body,
            "epilogue": self._step_epilogue,
        }[self._state]()

    def _step_preamble(self) -> bool:
        index = self._buffer.find(self._delimiter)
        if index < 0:
            # Keep only what could be the start of a delimiter.
            self._buffer = self._buffer[-len(self._delimiter) :]
            return False
        self._buffer = self._buffer[index + len(self._delimiter) :]
        self._state = "after_delimiter"
        return True

    def _step_after_delimiter(self) -> bool:
        if len(self._buffer) < 2:
            return False
        if self._buffer.startswith(b"--"):
            self._state = "epilogue"
            self._buffer = b""
            return False
        line_end = self._buffer.find(b"\r\n")
        if line_end < 0:
            if len(self._buffer) > 1024:
                raise MultipartError("a multipart boundary line does not end")
            return False
        if self._buffer[:line_end].strip(b" \t"):
            raise MultipartError("unexpected bytes after a multipart boundary")
        self._buffer = self._buffer[line_end + 2 :]
        self._state = "headers"
        return True

    def _step_headers(self) -> bool:
        if len(self._buffer) < 2:
            return False
        if self._buffer.startswith(b"\r\n"):
            # An empty header block: the body starts right after this CRLF.
            raw, self._buffer = b"", self._buffer[2:]
        else:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAXIMUM_PART_HEADERS:
                    raise MultipartError(
                        "the headers of a multipart part are too large"
                    )
                return False
            raw, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
        headers = PartHeaders()
        for line in raw.split(b"\r\n"):
            if not line:
                continue
            name, colon, value = line.partition(b":")
            if not colon:
                raise MultipartError(f"invalid multipart header line {line[:80]!r}")
            headers.headers[name.strip().lower().decode("latin-1")] = (
                value.strip().decode("utf-8", "replace")
            )
        self._sink = self._start_part(headers)
        self.parts += 1
        self._state = "body"
        return True

    def _step_body(self) -> bool:
        assert self._sink is not None
        index = self._buffer.find(self._delimiter)
        if index < 0:
            keep = len(self._delimiter) - 1
            if len(self._buffer) > keep:
                self._sink.feed(self._buffer[:-keep])
                self._buffer = self._buffer[-keep:]
            return False
        if index:
            self._sink.feed(self._buffer[:index])
        self._buffer = self._buffer[index + len(self._delimiter) :]
        self._sink = None
        self._end_part()
        self._state = "after_delimiter"
        return True

    def _step_epilogue(self) -> bool:
        self._buffer = b""
        return False
