"""
Writing JSON bodies and the spec's error bodies.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.web.iweb import IRequest

from ocid.errors import RegistryError

JSON = b"application/json"


def jsonBody(
    request: IRequest, obj: Any, status: int = 200, contentType: bytes = JSON
) -> bytes:
    """
    Answer C{obj} as JSON with C{status}.
    """
    body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", contentType)
    request.setHeader(b"Content-Length", b"%d" % len(body))
    return body


def errorBody(request: IRequest, error: RegistryError) -> bytes:
    """
    Answer the spec's C{{"errors": [...]}} body for C{error}, with its status and headers.
    """
    for name, value in error.headers.items():
        request.setHeader(name, value)
    return jsonBody(request, error.body(), error.status)


def emptyBody(request: IRequest, status: int) -> bytes:
    """
    Answer C{status} with no body.
    """
    request.setResponseCode(status)
    request.setHeader(b"Content-Length", b"0")
    return b""
