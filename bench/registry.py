"""
The OCI distribution operations the scenarios time, over L{bench.httpclient}.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from bench.datasets import OCI_MANIFEST, Blob, BlobFile, Image
from bench.httpclient import Connection, FileBody, HTTPError, Response, localTarget

OCTET_STREAM = {"Content-Type": "application/octet-stream"}


def expect(response: Response, status: int, what: str) -> Response:
    """
    C{response}, if its status is C{status}.

    @raise HTTPError: naming C{what} and quoting the body otherwise.
    """
    if response.status != status:
        raise HTTPError(
            f"{what}: expected {status}, got {response.status}: {response.body[:300]!r}"
        )
    return response


def withDigest(location: str, digest: str) -> str:
    """
    The upload C{location} with C{digest=} added to its query.
    """
    target = localTarget(location)
    return target + ("&" if "?" in target else "?") + "digest=" + digest


def startUpload(conn: Connection, name: str) -> str:
    """
    Open an upload session (C{POST /v2/<name>/blobs/uploads/}); its location.
    """
    response = expect(
        conn.request("POST", f"/v2/{name}/blobs/uploads/"), 202, "POST upload"
    )
    location = response.headers.get("location")
    if not location:
        raise HTTPError("POST upload: no Location header")
    return location


def pushBlobBytes(conn: Connection, name: str, blob: Blob) -> None:
    """
    Push a small in-memory blob: POST, then PUT with the whole body and the digest.
    """
    location = startUpload(conn, name)
    expect(
        conn.request("PUT", withDigest(location, blob.digest), OCTET_STREAM, blob.data),
        201,
        "PUT blob",
    )


def pushBlobMonolithic(conn: Connection, name: str, blob: BlobFile) -> None:
    """
    Push a blob from its file: POST, then one PUT with the whole body (sendfile).
    """
    location = startUpload(conn, name)
    with blob.path.open("rb") as f:
        body = FileBody(f, 0, blob.size, blob.fileSize, blob.suffix)
        response = conn.request(
            "PUT", withDigest(location, blob.digest), OCTET_STREAM, body
        )
    expect(response, 201, "PUT monolithic blob")


def pushBlobChunked(conn: Connection, name: str, blob: BlobFile, chunk: int) -> int:
    """
    Push a blob in C{chunk}-byte PATCHes with C{Content-Range}, then close the upload
    with an empty PUT carrying the digest; the number of PATCHes sent.
    """
    location = startUpload(conn, name)
    offset = 0
    patches = 0
    with blob.path.open("rb") as f:
        while offset < blob.size:
            length = min(chunk, blob.size - offset)
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + length - 1}",
            }
            response = conn.request(
                "PATCH",
                localTarget(location),
                headers,
                FileBody(f, offset, length, blob.fileSize, blob.suffix),
            )
            expect(response, 202, f"PATCH at {offset}")
            location = response.headers.get("location", location)
            offset += length
            patches += 1
    expect(
        conn.request("PUT", withDigest(location, blob.digest), OCTET_STREAM),
        201,
        "PUT closing chunked upload",
    )
    return patches


@dataclass
class Pulled:
    """
    What one blob pull received: its size and sha256 digest.
    """

    size: int
    digest: str


def pullBlob(conn: Connection, name: str, digest: str) -> Pulled:
    """
    C{GET} a blob, hashing the body as it streams in (in this thread: a second hashing
    thread costs more CPU in copies than it saves on two shared cores).
    """
    hasher = hashlib.sha256()
    response = conn.request("GET", f"/v2/{name}/blobs/{digest}", sink=hasher.update)
    if response.status != 200:
        raise HTTPError(f"GET blob: status {response.status}")
    return Pulled(response.bodyLength, "sha256:" + hasher.hexdigest())


def putManifest(conn: Connection, name: str, reference: str, image: Image) -> None:
    """
    Push C{image}'s manifest under C{reference} (a tag or its digest).
    """
    expect(
        conn.request(
            "PUT",
            f"/v2/{name}/manifests/{reference}",
            {"Content-Type": OCI_MANIFEST},
            image.manifest,
        ),
        201,
        f"PUT manifest {reference}",
    )


def pushImage(conn: Connection, name: str, tag: str, image: Image) -> None:
    """
    Push a small image: every blob (POST + PUT), then the manifest by tag.
    """
    for blob in image.blobs:
        pushBlobBytes(conn, name, blob)
    putManifest(conn, name, tag, image)


def getManifest(
    conn: Connection, name: str, reference: str, method: str = "GET"
) -> Response:
    """
    C{GET} or C{HEAD} a manifest, accepting the OCI manifest type.
    """
    return expect(
        conn.request(method, f"/v2/{name}/manifests/{reference}", {"Accept": OCI_MANIFEST}),
        200,
        f"{method} manifest",
    )


def listTags(conn: Connection, name: str) -> list[str]:
    """
    The tags of C{name}, from one C{GET /v2/<name>/tags/list}.
    """
    response = expect(conn.request("GET", f"/v2/{name}/tags/list"), 200, "tags/list")
    return list(json.loads(response.body).get("tags") or [])
