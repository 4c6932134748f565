"""
The error codes of the OCI Distribution Spec ("Error Codes") and the exception that carries
one to the HTTP layer.
"""

from __future__ import annotations

import errno
import os
from typing import Any

import attrs


@attrs.frozen
class ErrorCode:
    """
    One row of the spec's error code table, with the HTTP status we answer it with.
    """

    code: str
    message: str
    status: int


BLOB_UNKNOWN = ErrorCode("BLOB_UNKNOWN", "blob unknown to registry", 404)
BLOB_UPLOAD_INVALID = ErrorCode("BLOB_UPLOAD_INVALID", "blob upload invalid", 400)
BLOB_UPLOAD_UNKNOWN = ErrorCode(
    "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", 404
)
DIGEST_INVALID = ErrorCode(
    "DIGEST_INVALID", "provided digest did not match uploaded content", 400
)
MANIFEST_BLOB_UNKNOWN = ErrorCode(
    "MANIFEST_BLOB_UNKNOWN",
    "manifest references a manifest or blob unknown to registry",
    400,
)
MANIFEST_INVALID = ErrorCode("MANIFEST_INVALID", "manifest invalid", 400)
MANIFEST_UNKNOWN = ErrorCode("MANIFEST_UNKNOWN", "manifest unknown to registry", 404)
NAME_INVALID = ErrorCode("NAME_INVALID", "invalid repository name", 400)
NAME_UNKNOWN = ErrorCode("NAME_UNKNOWN", "repository name not known to registry", 404)
SIZE_INVALID = ErrorCode(
    "SIZE_INVALID", "provided length did not match content length", 400
)
UNAUTHORIZED = ErrorCode("UNAUTHORIZED", "authentication required", 401)
DENIED = ErrorCode("DENIED", "requested access to the resource is denied", 403)
UNSUPPORTED = ErrorCode("UNSUPPORTED", "the operation is unsupported", 405)
TOOMANYREQUESTS = ErrorCode("TOOMANYREQUESTS", "too many requests", 429)
#: Not in the spec's table (which is for 4xx answers): what went wrong on our side.
UNKNOWN = ErrorCode("UNKNOWN", "unknown error", 500)


class RegistryError(Exception):
    """
    A request failed with one of the spec's error codes.

    @ivar error: the code.
    @ivar message: a human-readable message (defaults to the code's description).
    @ivar detail: unstructured JSON-able detail for the client.
    @ivar status: the HTTP status to answer with (defaults to the code's).
    @ivar headers: extra response headers (for example C{Range} on a 416).
    """

    def __init__(
        self,
        error: ErrorCode,
        message: str | None = None,
        *,
        detail: Any = None,
        status: int | None = None,
        headers: dict[bytes, bytes] | None = None,
    ) -> None:
        self.error = error
        self.message = message if message is not None else error.message
        self.detail = detail
        self.status = status if status is not None else error.status
        self.headers = headers or {}
        super().__init__(f"{error.code}: {self.message}")

    def body(self) -> dict[str, Any]:
        """
        The spec's JSON error body for this error.
        """
        entry: dict[str, Any] = {"code": self.error.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return {"errors": [entry]}


class StorageError(Exception):
    """
    The disk refused a write (for example C{ENOSPC} or C{EIO}); nothing was acknowledged.
    """


def _osError(error: BaseException) -> OSError | None:
    """
    The L{OSError} behind C{error}: itself, or the first one in its chain of causes.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def storageError(error: BaseException) -> RegistryError:
    """
    The 5xx answer for a failed disk write: 507 when the disk is full (C{ENOSPC},
    C{EDQUOT}), else 500.  The client learns what the disk said (C{EIO}, say), never a
    path inside the data directory.
    """
    cause = _osError(error)
    if cause is not None and cause.errno in (errno.ENOSPC, errno.EDQUOT):
        return RegistryError(
            UNKNOWN,
            "insufficient storage: the registry's disk is full",
            detail={"errno": errno.errorcode[cause.errno]},
            status=507,
        )
    if cause is not None and cause.errno:
        return RegistryError(
            UNKNOWN,
            f"storage error: {os.strerror(cause.errno)}",
            detail={"errno": errno.errorcode.get(cause.errno, str(cause.errno))},
            status=500,
        )
    return RegistryError(UNKNOWN, "storage error: the disk refused a write", status=500)
