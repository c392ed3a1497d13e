"""
Orthanc-shaped JSON error bodies for the REST API.

Every error a client can cause ends here: a 4xx or 5xx status and a JSON body
with the fields Orthanc returns, never a traceback.
"""

from __future__ import annotations

import json
from http import HTTPStatus

# Orthanc's error codes (OrthancFramework Enumerations.h), used for the
# OrthancError and OrthancStatus fields so Orthanc clients can switch on them.
ORTHANC_ERRORS = {
    "InternalError": -1,
    "ParameterOutOfRange": 3,
    "InexistentItem": 7,
    "BadRequest": 8,
    "UriSyntax": 12,
    "BadFileFormat": 15,
    "UnknownResource": 17,
    "FullStorage": 19,
    "BadJson": 28,
    "NotAcceptable": 34,
}

_ORTHANC_DESCRIPTIONS = {
    "InternalError": "Internal error",
    "ParameterOutOfRange": "Parameter out of range",
    "InexistentItem": "Accessing an inexistent item",
    "BadRequest": "Bad request",
    "UriSyntax": "Badly formatted URI",
    "BadFileFormat": "Bad file format",
    "UnknownResource": "Unknown resource",
    "FullStorage": "The file storage is full",
    "BadJson": "Cannot parse a JSON document",
    "NotAcceptable": "Cannot send a response which is acceptable according to the "
    "Accept HTTP header",
}


class RestError(Exception):
    """
    An error to return to the client as an Orthanc-shaped JSON body.

    @ivar status: the HTTP status code.
    @ivar orthanc_error: the name of the matching Orthanc error code.
    """

    def __init__(
        self, status: int, message: str, details: str = "", orthanc_error: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.orthanc_error = orthanc_error or _default_orthanc_error(status)


def _default_orthanc_error(status: int) -> str:
    return {
        400: "BadRequest",
        404: "UnknownResource",
        413: "BadRequest",
        415: "BadFileFormat",
        507: "FullStorage",
    }.get(status, "InternalError" if status >= 500 else "BadRequest")


def error_body(error: RestError, method: bytes | str, uri: bytes | str) -> bytes:
    """
    Encode the JSON body of an error response.
    """
    if isinstance(method, bytes):
        method = method.decode("latin-1")
    if isinstance(uri, bytes):
        uri = uri.decode("latin-1")
    try:
        reason = HTTPStatus(error.status).phrase
    except ValueError:
        reason = "Error"
    document = {
        "HttpError": reason,
        "HttpStatus": error.status,
        "Message": error.message,
        "Details": error.details,
        "Method": method,
        "Uri": uri,
        "OrthancError": _ORTHANC_DESCRIPTIONS.get(error.orthanc_error, error.message),
        "OrthancStatus": ORTHANC_ERRORS.get(error.orthanc_error, -1),
    }
    return json.dumps(document, indent=2).encode("utf-8") + b"\n"


def raw_error_response(error: RestError, method: bytes, uri: bytes) -> bytes:
    """
    Build a complete HTTP/1.1 response that closes the connection.

    Used before twisted.web has a request to respond through, when a body is
    rejected from its headers alone (too large, multipart) and must not be
    read, nor a C{100 Continue} sent.
    """
    body = error_body(error, method, uri)
    try:
        reason = HTTPStatus(error.status).phrase
    except ValueError:
        reason = "Error"
    head = (
        f"HTTP/1.1 {error.status} {reason}\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body
