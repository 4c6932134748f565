"""
The "Push" category of the OCI Distribution Spec (C{distribution-spec.md}): "Pushing
blobs" ("POST then PUT", "Single POST", "Pushing a blob in chunks", "Cancel a blob
upload", "Mounting a blob from another repository") and "Pushing Manifests" (with tags
as parameters, and the manifest contents of the OCI Image Spec: descriptors with
C{data}, non-distributable layers, custom fields, empty layer lists, nested indexes,
artifacts), for sha256 and sha512.

Each test runs against a real C{twistd -n ocid} on a loopback port.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from .spec_client import (
    ALGORITHMS,
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    EMPTY_JSON,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    SpecClient,
    assertError,
    descriptor,
    digestOf,
    registryFixture,
    uploadUUID,
)

registry = registryFixture()

OCTETS = {"Content-Type": "application/octet-stream"}


def filesHolding(root: Path, data: bytes) -> list[Path]:
    """
    Every file under C{root} whose content contains C{data}.
    """
    return [p for p in root.rglob("*") if p.is_file() and data in p.read_bytes()]


# "Pushing blobs" > "POST then PUT"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_postThenPut(registry: SpecClient, algorithm: str) -> None:
    """
    "POST then PUT": the POST MUST be 202 with a C{Location} containing a UUID; the
    PUT of the whole blob to C{<location>?digest=} MUST be 201 with a C{Location} of a
    pullable blob URL.
    """
    name = registry.repository()
    data = os.urandom(3000)
    digest = digestOf(data, algorithm)
    started = registry.post(f"/v2/{name}/blobs/uploads/", headers={"Content-Length": "0"})
    assert started.status_code == 202
    location = started.headers["Location"]
    session = uploadUUID(location)
    assert started.headers["Docker-Upload-UUID"] == session
    finished = registry.put(location, params={"digest": digest}, data=data, headers=OCTETS)
    assert finished.status_code == 201, finished.text
    assert finished.headers["Docker-Content-Digest"] == digest
    pulled = registry.get(finished.headers["Location"])
    assert pulled.status_code == 200
    assert pulled.content == data
    assert registry.get(f"/v2/{name}/blobs/{digest}").content == data


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_singlePost(registry: SpecClient, algorithm: str) -> None:
    """
    "Single POST": C{POST /v2/<name>/blobs/uploads/?digest=} with the blob as body is
    201 Created with a pullable C{Location}.
    """
    name = registry.repository()
    data = os.urandom(2048)
    digest = digestOf(data, algorithm)
    response = registry.post(
        f"/v2/{name}/blobs/uploads/", params={"digest": digest}, data=data, headers=OCTETS
    )
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == digest
    assert registry.get(response.headers["Location"]).content == data


def test_singlePostWrongDigest(registry: SpecClient) -> None:
    """
    "Single POST": "the <digest> MUST match the blob's digest"; a mismatch is 400
    C{DIGEST_INVALID} and stores nothing.
    """
    name = registry.repository()
    data = os.urandom(100)
    claimed = digestOf(b"something else")
    response = registry.post(
        f"/v2/{name}/blobs/uploads/", params={"digest": claimed}, data=data, headers=OCTETS
    )
    assertError(response, 400, "DIGEST_INVALID")
    assertError(registry.head(f"/v2/{name}/blobs/{claimed}"), 404, "BLOB_UNKNOWN")
    assertError(registry.head(f"/v2/{name}/blobs/{digestOf(data)}"), 404, "BLOB_UNKNOWN")


@pytest.mark.parametrize(
    "digest", ["sha256:abc", "md5:" + "0" * 32, "sha512:" + "0" * 64, "nonsense"]
)
def test_malformedUploadDigest(registry: SpecClient, digest: str) -> None:
    """
    "Pushing blobs": "if the client provided digest is invalid or uses an unsupported
    algorithm, the registry SHOULD respond with a response code 400 Bad Request", for a
    single POST and a closing PUT.
    """
    name = registry.repository()
    response = registry.post(
        f"/v2/{name}/blobs/uploads/", params={"digest": digest}, data=b"abc", headers=OCTETS
    )
    assertError(response, 400, "DIGEST_INVALID")
    location = registry.startUpload(name)
    response = registry.put(location, params={"digest": digest}, data=b"abc", headers=OCTETS)
    assertError(response, 400, "DIGEST_INVALID")


def test_closingPutWithoutDigest(registry: SpecClient) -> None:
    """
    "Pushing a blob in chunks": "The closing PUT request MUST include the <digest> of
    the whole blob"; without it the answer is 400 C{DIGEST_INVALID}.
    """
    name = registry.repository()
    location = registry.startUpload(name)
    assertError(registry.put(location, data=b"abc", headers=OCTETS), 400, "DIGEST_INVALID")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_closingPutWrongDigest(registry: SpecClient, algorithm: str) -> None:
    """
    "Pushing blobs": a closing PUT whose digest does not match the bytes is 400
    C{DIGEST_INVALID}; no blob is stored under either digest.
    """
    name = registry.repository()
    data = os.urandom(100)
    claimed = digestOf(os.urandom(100), algorithm)
    location = registry.startUpload(name)
    response = registry.put(location, params={"digest": claimed}, data=data, headers=OCTETS)
    assertError(response, 400, "DIGEST_INVALID")
    assertError(registry.head(f"/v2/{name}/blobs/{claimed}"), 404, "BLOB_UNKNOWN")


def test_zeroByteBlobUpload(registry: SpecClient) -> None:
    """
    "Pushing blobs" of an empty blob, by POST then PUT and by single POST.
    """
    name = registry.repository()
    for algorithm in ALGORITHMS:
        assert registry.pushBlob(name, b"", algorithm) == digestOf(b"", algorithm)
        response = registry.post(
            f"/v2/{name}/blobs/uploads/",
            params={"digest": digestOf(b"", algorithm)},
            data=b"",
            headers=OCTETS,
        )
        assert response.status_code == 201
        pulled = registry.get(f"/v2/{name}/blobs/{digestOf(b'', algorithm)}")
        assert pulled.status_code == 200
        assert pulled.content == b""


def test_pushSameBlobTwice(registry: SpecClient) -> None:
    """
    "Layer Upload De-duplication": pushing a blob the repository has is fine.
    """
    name = registry.repository()
    data = os.urandom(64)
    assert registry.pushBlob(name, data) == registry.pushBlob(name, data)
    assert registry.get(f"/v2/{name}/blobs/{digestOf(data)}").content == data


# "Pushing a blob in chunks"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_chunkedUpload(registry: SpecClient, algorithm: str) -> None:
    """
    "Pushing a blob in chunks": each PATCH with C{Content-Range} MUST be 202 with
    C{Location} and C{Range: 0-<end-of-range>}; a GET of the session MUST be 204 with
    them; the closing PUT, carrying the final chunk, MUST be 201.  sha512 is asked for
    with C{digest-algorithm} (end-4c).
    """
    name = registry.repository()
    data = os.urandom(3000)
    digest = digestOf(data, algorithm)
    location = registry.startUpload(name, **{"digest-algorithm": algorithm})
    session = uploadUUID(location)
    for first, last in ((0, 999), (1000, 1999)):
        response = registry.patch(
            location,
            data=data[first : last + 1],
            headers={**OCTETS, "Content-Range": f"{first}-{last}"},
        )
        assert response.status_code == 202, response.text
        assert response.headers["Range"] == f"0-{last}"
        assert response.headers["Docker-Upload-UUID"] == session
        location = response.headers["Location"]
        assert uploadUUID(location) == session
    status = registry.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-1999"
    assert uploadUUID(status.headers["Location"]) == session
    assert status.headers["Docker-Upload-UUID"] == session
    finished = registry.put(
        location,
        params={"digest": digest},
        data=data[2000:],
        headers={**OCTETS, "Content-Range": "2000-2999"},
    )
    assert finished.status_code == 201, finished.text
    assert finished.headers["Docker-Content-Digest"] == digest
    assert registry.get(finished.headers["Location"]).content == data


def test_streamedUpload(registry: SpecClient) -> None:
    """
    "Pushing a blob in chunks" without C{Content-Range} (as docker and containerd
    stream a blob): each PATCH appends; then a PUT with no body closes the session.
    """
    name = registry.repository()
    data = os.urandom(5000)
    location = registry.startUpload(name)
    for start in range(0, 5000, 2000):
        response = registry.patch(location, data=data[start : start + 2000], headers=OCTETS)
        assert response.status_code == 202
        location = response.headers["Location"]
    assert response.headers["Range"] == "0-4999"
    finished = registry.put(location, params={"digest": digestOf(data)})
    assert finished.status_code == 201, finished.text
    assert registry.get(finished.headers["Location"]).content == data


def test_statusOfNewSession(registry: SpecClient) -> None:
    """
    "Pushing a blob in chunks": a session that holds nothing yet is active: 204 with
    C{Location} and C{Range}.
    """
    name = registry.repository()
    location = registry.startUpload(name)
    status = registry.get(location)
    assert status.status_code == 204
    assert uploadUUID(status.headers["Location"]) == uploadUUID(location)
    assert "Range" in status.headers


@pytest.mark.parametrize(
    "contentRange",
    ["200-299", "50-149", "0-99", "101-200"],
    ids=["gap", "overlap", "restart", "one-past"],
)
def test_chunkOutOfOrder(registry: SpecClient, contentRange: str) -> None:
    """
    "Pushing a blob in chunks": "If a chunk is uploaded out of order, the registry MUST
    respond with a 416"; it tells the current C{Range} and the session is unharmed.
    """
    name = registry.repository()
    data = os.urandom(300)
    location = registry.startUpload(name)
    first = registry.patch(
        location, data=data[:100], headers={**OCTETS, "Content-Range": "0-99"}
    )
    assert first.status_code == 202
    location = first.headers["Location"]
    start, end = (int(x) for x in contentRange.split("-"))
    response = registry.patch(
        location,
        data=os.urandom(end - start + 1),
        headers={**OCTETS, "Content-Range": contentRange},
    )
    assertError(response, 416, "BLOB_UPLOAD_INVALID")
    assert response.headers["Range"] == "0-99"
    assert registry.get(location).headers["Range"] == "0-99"
    rest = registry.patch(
        location, data=data[100:], headers={**OCTETS, "Content-Range": "100-299"}
    )
    assert rest.status_code == 202
    finished = registry.put(rest.headers["Location"], params={"digest": digestOf(data)})
    assert finished.status_code == 201
    assert registry.get(finished.headers["Location"]).content == data


def test_firstChunkNotAtZero(registry: SpecClient) -> None:
    """
    "Pushing a blob in chunks": "The first chunk's range MUST begin with 0"; one that
    does not is out of order: 416.
    """
    name = registry.repository()
    location = registry.startUpload(name)
    response = registry.patch(
        location, data=b"x" * 10, headers={**OCTETS, "Content-Range": "10-19"}
    )
    assertError(response, 416, "BLOB_UPLOAD_INVALID")


def test_finalChunkOutOfOrder(registry: SpecClient) -> None:
    """
    "Pushing a blob in chunks": "If the final chunk is uploaded out of order, the
    registry MUST respond with a 416"; the session can still be completed.
    """
    name = registry.repository()
    data = os.urandom(200)
    location = registry.startUpload(name)
    registry.patch(location, data=data[:100], headers={**OCTETS, "Content-Range": "0-99"})
    response = registry.put(
        location,
        params={"digest": digestOf(data)},
        data=data[150:],
        headers={**OCTETS, "Content-Range": "150-199"},
    )
    assertError(response, 416, "BLOB_UPLOAD_INVALID")
    assert response.headers["Range"] == "0-99"
    finished = registry.put(
        location,
        params={"digest": digestOf(data)},
        data=data[100:],
        headers={**OCTETS, "Content-Range": "100-199"},
    )
    assert finished.status_code == 201
    assert registry.get(finished.headers["Location"]).content == data


def test_contentLengthDisagreesWithContentRange(registry: SpecClient) -> None:
    """
    "Pushing a blob in chunks": C{<length>} is the chunk's length and the range is
    inclusive on both ends; a chunk whose C{Content-Length} disagrees with its
    C{Content-Range} is 400 C{SIZE_INVALID}, and nothing of it is kept.
    """
    name = registry.repository()
    location = registry.startUpload(name)
    response = registry.patch(
        location, data=b"x" * 10, headers={**OCTETS, "Content-Range": "0-10"}
    )
    assertError(response, 400, "SIZE_INVALID")
    status = registry.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-0"
    ok = registry.patch(location, data=b"x" * 10, headers={**OCTETS, "Content-Range": "0-9"})
    assert ok.headers["Range"] == "0-9"


@pytest.mark.parametrize("contentRange", ["bytes", "5-", "-5", "a-b", "9-0"])
def test_malformedContentRange(registry: SpecClient, contentRange: str) -> None:
    """
    "Pushing a blob in chunks": C{<range>} MUST match C{^[0-9]+-[0-9]+$} and be
    inclusive on both ends; any other is refused as an invalid range (416, as
    distribution answers), and nothing of the chunk is kept.
    """
    name = registry.repository()
    location = registry.startUpload(name)
    response = registry.patch(
        location, data=b"x", headers={**OCTETS, "Content-Range": contentRange}
    )
    assertError(response, 416, "BLOB_UPLOAD_INVALID")
    assert registry.get(location).headers["Range"] == "0-0"


def test_unknownSession(registry: SpecClient) -> None:
    """
    end-5, end-6, end-13, end-14: a session that does not exist (a made-up UUID, or not
    a UUID at all) is 404 C{BLOB_UPLOAD_UNKNOWN} for PATCH, PUT, GET and DELETE.
    """
    name = registry.repository()
    registry.pushBlob(name, b"x")
    for session in ("0b9e2f2a-5d55-4e62-9d4c-3a8d2b7e1f00", "not-a-session"):
        location = f"/v2/{name}/blobs/uploads/{session}"
        assertError(
            registry.patch(location, data=b"abc", headers=OCTETS), 404, "BLOB_UPLOAD_UNKNOWN"
        )
        assertError(
            registry.put(location, params={"digest": digestOf(b"abc")}, data=b"abc"),
            404,
            "BLOB_UPLOAD_UNKNOWN",
        )
        assertError(registry.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
        assertError(registry.delete(location), 404, "BLOB_UPLOAD_UNKNOWN")


def test_sessionOfAnotherRepository(registry: SpecClient) -> None:
    """
    A session belongs to the repository it was opened for: under another repository's
    URL it is unknown (404 C{BLOB_UPLOAD_UNKNOWN}).
    """
    name, other = registry.repository(), registry.repository()
    location = registry.startUpload(name)
    session = uploadUUID(location)
    registry.pushBlob(other, b"x")
    assertError(
        registry.get(f"/v2/{other}/blobs/uploads/{session}"), 404, "BLOB_UPLOAD_UNKNOWN"
    )
    assert registry.get(location).status_code == 204


def test_completedSessionIsGone(registry: SpecClient) -> None:
    """
    A session closed with its PUT is over: its location is 404 C{BLOB_UPLOAD_UNKNOWN}.
    """
    name = registry.repository()
    location = registry.startUpload(name)
    assert registry.put(location, params={"digest": digestOf(b"a")}, data=b"a").status_code == 201
    assertError(registry.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assertError(
        registry.patch(location, data=b"b", headers=OCTETS), 404, "BLOB_UPLOAD_UNKNOWN"
    )


def test_digestAlgorithmUnsupported(registry: SpecClient) -> None:
    """
    end-4c: C{digest-algorithm} naming an algorithm the registry does not support is
    400 C{DIGEST_INVALID}.
    """
    name = registry.repository()
    response = registry.post(
        f"/v2/{name}/blobs/uploads/", params={"digest-algorithm": "md5"}
    )
    assertError(response, 400, "DIGEST_INVALID")


def test_completeWithOtherAlgorithmThanAnnounced(registry: SpecClient) -> None:
    """
    "Pushing blobs": the closing PUT's digest is what the blob is checked against, even
    in another algorithm than the session's C{digest-algorithm}.
    """
    name = registry.repository()
    data = os.urandom(500)
    location = registry.startUpload(name, **{"digest-algorithm": "sha512"})
    response = registry.put(
        location, params={"digest": digestOf(data, "sha256")}, data=data, headers=OCTETS
    )
    assert response.status_code == 201
    assert registry.get(f"/v2/{name}/blobs/{digestOf(data)}").content == data


# "Cancel a blob upload"


def test_cancelUpload(registry: SpecClient) -> None:
    """
    "Cancel a blob upload": DELETE of the session SHOULD be 204; the session is then
    gone (404 C{BLOB_UPLOAD_UNKNOWN} for GET, PATCH, PUT, DELETE) and the bytes it
    held are removed from the registry's disk.
    """
    name = registry.repository()
    chunk = os.urandom(64) + b"cancelled upload marker"
    location = registry.startUpload(name)
    response = registry.patch(
        location, data=chunk, headers={**OCTETS, "Content-Range": f"0-{len(chunk) - 1}"}
    )
    assert response.status_code == 202
    dataPath = registry.daemon.dataPath
    assert filesHolding(dataPath, chunk), "the chunk should be on disk before the cancel"
    cancelled = registry.delete(location, headers={"Content-Length": "0"})
    assert cancelled.status_code == 204
    assertError(registry.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assertError(
        registry.patch(location, data=b"x", headers=OCTETS), 404, "BLOB_UPLOAD_UNKNOWN"
    )
    assertError(
        registry.put(location, params={"digest": digestOf(chunk)}),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    assertError(registry.delete(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert filesHolding(dataPath, chunk) == []
    session = uploadUUID(location)
    assert [p for p in dataPath.rglob("*") if session in p.name] == []
    assertError(registry.head(f"/v2/{name}/blobs/{digestOf(chunk)}"), 404, "BLOB_UNKNOWN")


# "Mounting a blob from another repository"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_mountFrom(registry: SpecClient, algorithm: str) -> None:
    """
    "Mounting a blob from another repository": a successful mount MUST be 201 with a
    C{Location} of the blob, which is then pullable from the target repository.
    """
    source, target = registry.repository(), registry.repository()
    data = os.urandom(300)
    digest = registry.pushBlob(source, data, algorithm)
    response = registry.post(
        f"/v2/{target}/blobs/uploads/", params={"mount": digest, "from": source}
    )
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == digest
    assert registry.get(response.headers["Location"]).content == data
    assert registry.get(f"/v2/{target}/blobs/{digest}").content == data


def test_mountFromRepositoryWithoutTheBlob(registry: SpecClient) -> None:
    """
    "Mounting a blob from another repository": a registry "unable to mount the requested
    blob ... SHOULD return a 202": an upload session the client may use instead.
    """
    source, target = registry.repository(), registry.repository()
    registry.pushBlob(source, b"something")
    data = os.urandom(100)
    response = registry.post(
        f"/v2/{target}/blobs/uploads/", params={"mount": digestOf(data), "from": source}
    )
    assert response.status_code == 202
    location = response.headers["Location"]
    uploadUUID(location)
    finished = registry.put(location, params={"digest": digestOf(data)}, data=data)
    assert finished.status_code == 201
    assert registry.get(f"/v2/{target}/blobs/{digestOf(data)}").content == data


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_anonymousMount(registry: SpecClient, algorithm: str) -> None:
    """
    "Mounting a blob from another repository": "The registry MAY treat the from
    parameter as optional, and it MAY cross-mount the blob if it can be found": without
    C{from}, a blob in any repository is mounted (201); one nowhere is 202.
    """
    source, target = registry.repository(), registry.repository()
    data = os.urandom(300)
    digest = registry.pushBlob(source, data, algorithm)
    response = registry.post(f"/v2/{target}/blobs/uploads/", params={"mount": digest})
    assert response.status_code == 201
    assert registry.get(f"/v2/{target}/blobs/{digest}").content == data
    missing = digestOf(os.urandom(10), algorithm)
    response = registry.post(f"/v2/{target}/blobs/uploads/", params={"mount": missing})
    assert response.status_code == 202
    uploadUUID(response.headers["Location"])


def test_mountDeletedBlob(registry: SpecClient) -> None:
    """
    A blob deleted from its repository ("Deleting Blobs") can no longer be mounted from
    it: 202, an upload session.
    """
    source, target = registry.repository(), registry.repository()
    digest = registry.pushBlob(source, os.urandom(50))
    assert registry.delete(f"/v2/{source}/blobs/{digest}").status_code == 202
    response = registry.post(
        f"/v2/{target}/blobs/uploads/", params={"mount": digest, "from": source}
    )
    assert response.status_code == 202
    assertError(registry.head(f"/v2/{target}/blobs/{digest}"), 404, "BLOB_UNKNOWN")


def test_mountMalformedDigest(registry: SpecClient) -> None:
    """
    "Pushing blobs": an invalid digest to mount is 400 C{DIGEST_INVALID}.
    """
    name = registry.repository()
    response = registry.post(
        f"/v2/{name}/blobs/uploads/", params={"mount": "sha256:nope", "from": "other"}
    )
    assertError(response, 400, "DIGEST_INVALID")


# "Pushing Manifests"


def test_pushManifestByTag(registry: SpecClient) -> None:
    """
    "Pushing Manifests": a PUT by tag MUST be 201 with a C{Location} of a pullable
    manifest URL and a C{Docker-Content-Digest} of the bytes pushed.
    """
    name = registry.repository()
    config = b'{"os":"linux"}'
    registry.pushBlob(name, config)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [],
        }
    ).encode()
    response = registry.putManifest(name, "v1", body)
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == digestOf(body)
    pulled = registry.get(response.headers["Location"])
    assert pulled.status_code == 200
    assert pulled.content == body
    assert "OCI-Tag" not in response.headers
    assert "OCI-Subject" not in response.headers


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_pushManifestByDigest(registry: SpecClient, algorithm: str) -> None:
    """
    "Pushing Manifests": a PUT by digest; the C{Docker-Content-Digest} "MUST be equal
    to the client provided digest", in its algorithm.
    """
    name = registry.repository()
    image = registry.pushImage(name, algorithm=algorithm)
    assert image.digest.startswith(algorithm + ":")
    pulled = registry.get(f"/v2/{name}/manifests/{image.digest}")
    assert pulled.content == image.body
    assert pulled.headers["Docker-Content-Digest"] == image.digest


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_pushManifestWithTagParameters(registry: SpecClient, algorithm: str) -> None:
    """
    "Pushing Manifests" (end-7b): a PUT by digest with C{tag} parameters tags each; the
    registry "SHOULD support pushing at least 10 tags per request" and "MUST include an
    OCI-Tag response header ... for each accepted tag".
    """
    name = registry.repository()
    image = registry.pushImage(name, algorithm=algorithm)
    tags = ["1.2.3", "1.2", "1", "latest", "a_b", "A-Z", "x.y-z", "t7", "t8", "t9", "t10"]
    response = registry.putManifest(name, image.digest, image.body, tags=tags)
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == image.digest
    announced = [t.strip() for t in response.headers["OCI-Tag"].split(",")]
    assert sorted(announced) == sorted(tags)
    for tag in tags:
        pulled = registry.get(f"/v2/{name}/manifests/{tag}")
        assert pulled.content == image.body
        assert pulled.headers["Docker-Content-Digest"] == image.digest
    listed = registry.get(f"/v2/{name}/tags/list").json()["tags"]
    assert listed == sorted(tags)


def test_pushManifestWithRepeatedTagParameter(registry: SpecClient) -> None:
    """
    end-7b: a tag given twice is one tag, announced once.
    """
    name = registry.repository()
    image = registry.pushImage(name)
    response = registry.putManifest(name, image.digest, image.body, tags=["a", "a", "b"])
    assert response.status_code == 201
    assert sorted(t.strip() for t in response.headers["OCI-Tag"].split(",")) == ["a", "b"]


def test_pushManifestByTagWithTagParameters(registry: SpecClient) -> None:
    """
    end-7b's C{tag} parameters on a push by tag: every accepted tag, the one in the path
    too, gets an C{OCI-Tag} header ("for each accepted tag").
    """
    name = registry.repository()
    image = registry.pushImage(name)
    response = registry.putManifest(name, "main", image.body, tags=["extra"])
    assert response.status_code == 201
    assert sorted(t.strip() for t in response.headers["OCI-Tag"].split(",")) == [
        "extra",
        "main",
    ]
    assert registry.get(f"/v2/{name}/tags/list").json()["tags"] == ["extra", "main"]


def test_pushManifestWithInvalidTagParameter(registry: SpecClient) -> None:
    """
    end-7b: a C{tag} parameter that is not a valid tag fails the whole push (400) and
    stores nothing, not even the valid tags.
    """
    name = registry.repository()
    image = registry.pushImage(name)
    body = image.body.replace(b"{", b"{ ", 1)
    response = registry.putManifest(name, digestOf(body), body, tags=["good", "-bad"])
    assert response.status_code == 400
    assertError(registry.get(f"/v2/{name}/manifests/good"), 404, "MANIFEST_UNKNOWN")
    assertError(
        registry.get(f"/v2/{name}/manifests/{digestOf(body)}"), 404, "MANIFEST_UNKNOWN"
    )


def test_retagMovesTag(registry: SpecClient) -> None:
    """
    "Definitions": a tag is a pointer to a manifest; pushing another manifest by the
    same tag moves it.
    """
    name = registry.repository()
    first = registry.pushImage(name, tag="t")
    second = registry.pushImage(name, tag="t")
    assert registry.get(f"/v2/{name}/manifests/t").content == second.body
    assert registry.get(f"/v2/{name}/manifests/{first.digest}").content == first.body


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_pushManifestDigestMismatch(registry: SpecClient, algorithm: str) -> None:
    """
    "Pushing Manifests": the C{Docker-Content-Digest} MUST equal the client's digest,
    so a body whose digest is not the reference is refused: 400 C{DIGEST_INVALID}.
    """
    name = registry.repository()
    image = registry.pushImage(name, algorithm=algorithm)
    other = digestOf(image.body + b" ", algorithm)
    response = registry.putManifest(name, other, image.body)
    assertError(response, 400, "DIGEST_INVALID")
    assertError(registry.get(f"/v2/{name}/manifests/{other}"), 404, "MANIFEST_UNKNOWN")


def test_pushManifestMalformedDigest(registry: SpecClient) -> None:
    """
    "Pushing Manifests": a reference that is a malformed digest is 400
    C{DIGEST_INVALID}.
    """
    name = registry.repository()
    image = registry.pushImage(name)
    for reference in ("sha256:totallywrong", "sha512:" + "a" * 64, "md5:" + "a" * 32):
        response = registry.putManifest(name, reference, image.body)
        assertError(response, 400, "DIGEST_INVALID")


def test_exactBytesPreserved(registry: SpecClient) -> None:
    """
    "Pushing Manifests": "The registry MUST store the manifest in the exact byte
    representation provided by the client": unknown fields, key order, whitespace and
    escapes come back byte for byte; so do a config's custom fields.
    """
    name = registry.repository()
    config = b'{"zeta": 1,\n  "alpha": {"x-custom": [1, 2.50, "\\u00e9"]},  "os": "linux"}'
    registry.pushBlob(name, config)
    body = (
        b'{\n  "schemaVersion": 2,\n  "x-vendor-field": {"nested": [true, null, 1e3]},\n'
        b'  "mediaType": "application/vnd.oci.image.manifest.v1+json",\n'
        b'  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "'
        + digestOf(config).encode()
        + b'", "size": %d, "x-descriptor-extra": "kept"},\n' % len(config)
        + b'  "layers": [],\n  "annotations": {"caf\\u00e9": "\\ud83d\\ude00"}\n}\n\n'
    )
    response = registry.putManifest(name, "t", body)
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == digestOf(body)
    assert registry.get(f"/v2/{name}/manifests/t").content == body
    assert registry.get(f"/v2/{name}/blobs/{digestOf(config)}").content == config


def test_emptyLayerList(registry: SpecClient) -> None:
    """
    "Pushing Manifests": "The uploaded manifest MUST reference any blobs that make up
    the object. However, the list of blobs MAY be empty."
    """
    name = registry.repository()
    image = registry.pushImage(name, tag="t", layers=0)
    assert json.loads(image.body)["layers"] == []
    assert registry.get(f"/v2/{name}/manifests/t").content == image.body


def test_descriptorWithData(registry: SpecClient) -> None:
    """
    Descriptors with embedded C{data} (image-descriptor.md, "Embedded content"): the
    content is in the manifest, so it need not have been pushed.
    """
    name = registry.repository()
    registry.pushBlob(name, EMPTY_JSON)
    content = b"embedded layer content"
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_EMPTY, EMPTY_JSON, data="e30="),
        "layers": [
            descriptor(
                "application/octet-stream",
                content,
                data=base64.b64encode(content).decode(),
            )
        ],
    }
    pushed = registry.pushManifest(name, manifest, tag="t")
    assert registry.get(f"/v2/{name}/manifests/t").content == pushed.body


def test_descriptorWithWrongData(registry: SpecClient) -> None:
    """
    image-descriptor.md: embedded C{data} must be the content the descriptor's digest
    and size describe; when it is not, the manifest is invalid (400 C{MANIFEST_INVALID}).
    """
    name = registry.repository()
    registry.pushBlob(name, EMPTY_JSON)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_EMPTY, EMPTY_JSON),
        "layers": [
            descriptor(
                "application/octet-stream",
                b"real",
                data=base64.b64encode(b"fake").decode(),
            )
        ],
    }
    response = registry.putManifest(name, "t", json.dumps(manifest).encode())
    assertError(response, 400, "MANIFEST_INVALID")


def test_nonDistributableLayer(registry: SpecClient) -> None:
    """
    Non-distributable layers with C{urls} (image-descriptor.md, "urls";
    image-layer "Non-Distributable Layers") live elsewhere: a manifest with one that was
    never pushed is accepted.
    """
    name = registry.repository()
    config = b'{"os":"windows"}'
    registry.pushBlob(name, config)
    foreign = os.urandom(32)
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, config),
        "layers": [
            descriptor(
                "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                foreign,
                urls=["https://example.invalid/layer.tar.gz"],
            ),
            descriptor(
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                os.urandom(16),
                urls=["https://example.invalid/other.tar.gz"],
            ),
        ],
    }
    pushed = registry.pushManifest(name, manifest, tag="windows")
    assert registry.get(f"/v2/{name}/manifests/windows").content == pushed.body
    assertError(
        registry.head(f"/v2/{name}/blobs/{digestOf(foreign)}"), 404, "BLOB_UNKNOWN"
    )


@pytest.mark.parametrize("missing", ["config", "layer"])
def test_manifestBlobUnknown(registry: SpecClient, missing: str) -> None:
    """
    "Push": a manifest referring to a blob the repository does not have "MUST result in
    one or more MANIFEST_BLOB_UNKNOWN errors" (400) when rejected.
    """
    name = registry.repository()
    config, layer = b'{"a":1}', os.urandom(20)
    if missing != "config":
        registry.pushBlob(name, config)
    if missing != "layer":
        registry.pushBlob(name, layer)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(OCI_LAYER, layer)],
        }
    ).encode()
    assertError(registry.putManifest(name, "t", body), 400, "MANIFEST_BLOB_UNKNOWN")
    assertError(registry.get(f"/v2/{name}/manifests/t"), 404, "MANIFEST_UNKNOWN")


def test_blobOfAnotherRepositoryIsUnknown(registry: SpecClient) -> None:
    """
    "Push": blobs are pushed to a repository; a manifest in another repository cannot
    use them without a mount (400 C{MANIFEST_BLOB_UNKNOWN}).
    """
    source, target = registry.repository(), registry.repository()
    image = registry.pushImage(source)
    registry.pushBlob(target, b"x")
    assertError(
        registry.putManifest(target, "t", image.body), 400, "MANIFEST_BLOB_UNKNOWN"
    )


def test_indexOfUnknownManifest(registry: SpecClient) -> None:
    """
    "Push": an index listing a manifest not in the repository is 400
    C{MANIFEST_BLOB_UNKNOWN}.
    """
    name = registry.repository()
    image = registry.pushImage(name)
    ghost = descriptor(OCI_MANIFEST, b'{"ghost":true}')
    body = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [image.descriptor(), ghost]}
    ).encode()
    response = registry.putManifest(name, "t", body, OCI_INDEX)
    assertError(response, 400, "MANIFEST_BLOB_UNKNOWN")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_nestedIndexes(registry: SpecClient, algorithm: str) -> None:
    """
    image-image-index.md: an index's C{manifests} may list indexes; an index of an
    index of images is pushed and pulled like any manifest.
    """
    name = registry.repository()
    amd = registry.pushImage(name, algorithm=algorithm)
    arm = registry.pushImage(name, algorithm=algorithm)
    inner = registry.pushIndex(
        name,
        [
            amd.descriptor(platform={"architecture": "amd64", "os": "linux"}),
            arm.descriptor(platform={"architecture": "arm64", "os": "linux"}),
        ],
        algorithm=algorithm,
    )
    outer = registry.pushIndex(
        name, [inner.descriptor()], tag="nested", algorithm=algorithm
    )
    pulled = registry.get(f"/v2/{name}/manifests/nested")
    assert pulled.content == outer.body
    assert pulled.headers["Content-Type"] == OCI_INDEX
    assert pulled.headers["Docker-Content-Digest"] == outer.digest
    assert registry.get(f"/v2/{name}/manifests/{inner.digest}").content == inner.body


def test_emptyIndex(registry: SpecClient) -> None:
    """
    image-image-index.md: C{manifests} is required but may be empty.
    """
    name = registry.repository()
    index = registry.pushIndex(name, [], tag="empty")
    assert registry.get(f"/v2/{name}/manifests/empty").content == index.body


def test_dockerManifestList(registry: SpecClient) -> None:
    """
    docker-manifest-v2-2.md: a Docker image manifest and a manifest list of it are
    pushed and pulled with their own media types.
    """
    name = registry.repository()
    config, layer = b'{"os":"linux"}', os.urandom(40)
    registry.pushBlob(name, config)
    registry.pushBlob(name, layer)
    image = registry.pushManifest(
        name,
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": descriptor(DOCKER_CONFIG, config),
            "layers": [descriptor(DOCKER_LAYER, layer)],
        },
    )
    listed = registry.pushIndex(
        name,
        [image.descriptor(platform={"architecture": "amd64", "os": "linux"})],
        tag="list",
        mediaType=DOCKER_MANIFEST_LIST,
    )
    pulled = registry.get(f"/v2/{name}/manifests/list")
    assert pulled.content == listed.body
    assert pulled.headers["Content-Type"] == DOCKER_MANIFEST_LIST


def test_artifactWithEmptyConfig(registry: SpecClient) -> None:
    """
    image-manifest.md, "Guidelines for Artifact Usage": an artifact with C{artifactType}
    and the empty descriptor as config (and as its only layer) is a valid manifest.
    """
    name = registry.repository()
    registry.pushBlob(name, EMPTY_JSON)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.thing.v1",
        "config": descriptor(OCI_EMPTY, EMPTY_JSON),
        "layers": [descriptor(OCI_EMPTY, EMPTY_JSON)],
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    }
    pushed = registry.pushManifest(name, manifest, tag="artifact")
    assert registry.get(f"/v2/{name}/manifests/artifact").content == pushed.body
    assert registry.get(f"/v2/{name}/blobs/{digestOf(EMPTY_JSON)}").content == b"{}"


@pytest.mark.parametrize(
    "body, contentType",
    [
        (b"not json", OCI_MANIFEST),
        (b"[]", OCI_MANIFEST),
        (b'{"schemaVersion":2,"mediaType":"%s","manifests":[]}' % OCI_INDEX.encode(),
         OCI_MANIFEST),
        (b'{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}',
         "application/vnd.docker.distribution.manifest.v1+prettyjws"),
        (b'{"schemaVersion":3,"mediaType":"%s","manifests":[]}' % OCI_INDEX.encode(),
         OCI_INDEX),
        (b'{"schemaVersion":2,"mediaType":"%s","layers":[]}' % OCI_MANIFEST.encode(),
         OCI_MANIFEST),
        (b'{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"a/b","digest":"sha256:x",'
         b'"size":1},"layers":[]}' % OCI_MANIFEST.encode(), OCI_MANIFEST),
        (b'{"schemaVersion":2,"mediaType":"%s"}' % OCI_INDEX.encode(), OCI_INDEX),
        (b'{"schemaVersion":2,"mediaType":"application/x-unknown"}', "application/x-unknown"),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "content-type-mismatch",
        "schema1",
        "bad-schema-version",
        "no-config",
        "bad-descriptor-digest",
        "index-without-manifests",
        "unknown-type",
    ],
)
def test_invalidManifest(registry: SpecClient, body: bytes, contentType: str) -> None:
    """
    "Pushing Manifests": a manifest that is not a valid manifest of its C{Content-Type}
    (or whose C{mediaType} field disagrees with it: "clients MUST set the Content-Type
    header to the value specified by the mediaType field") is 400 C{MANIFEST_INVALID}.
    """
    name = registry.repository()
    assertError(registry.putManifest(name, "t", body, contentType), 400, "MANIFEST_INVALID")


def test_manifestSizeLimit(registry: SpecClient) -> None:
    """
    "Pushing Manifests": registries "SHOULD expect to be able to support manifest pushes
    of at least 4 megabytes" and answer one over their limit with 413.
    """
    name = registry.repository()
    registry.pushBlob(name, EMPTY_JSON)
    skeleton = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_EMPTY, EMPTY_JSON),
        "layers": [],
        "annotations": {"padding": ""},
    }
    base = len(json.dumps(skeleton).encode())
    limit = 4 * 1024 * 1024
    skeleton["annotations"] = {"padding": "p" * (limit - base)}
    body = json.dumps(skeleton).encode()
    assert len(body) == limit
    response = registry.putManifest(name, "big", body)
    assert response.status_code == 201, response.text[:500]
    assert registry.get(f"/v2/{name}/manifests/big").content == body
    skeleton["annotations"] = {"padding": "p" * (limit - base + 1)}
    tooBig = json.dumps(skeleton).encode()
    response = registry.putManifest(name, "toobig", tooBig)
    assert response.status_code == 413
    assertError(registry.get(f"/v2/{name}/manifests/toobig"), 404, "MANIFEST_UNKNOWN")


def test_pushCreatesRepository(registry: SpecClient) -> None:
    """
    "Push": pushing into a repository that does not exist yet creates it.
    """
    name = registry.repository("new")
    assertError(registry.get(f"/v2/{name}/tags/list"), 404, "NAME_UNKNOWN")
    registry.pushImage(name, tag="first")
    listed = registry.get(f"/v2/{name}/tags/list")
    assert listed.json() == {"name": name, "tags": ["first"]}
