"""
The "Pull" category of the OCI Distribution Spec (C{distribution-spec.md}): "Pulling
manifests", "Pulling blobs" (with C{Range}, RFC 9110 section 14) and "Checking if content
exists in the registry", for sha256 and sha512 content; and "Content Negotiation"
(C{distribution-content-negotiation.md}) for manifests pulled by tag and by digest.

Each test runs against a real C{twistd -n ocid} on a loopback port.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import os

import pytest

from .spec_client import (
    ALGORITHMS,
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Pushed,
    SpecClient,
    assertError,
    descriptor,
    digestOf,
    errorCodes,
    registryFixture,
)

registry = registryFixture()


# "Pulling manifests"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_manifestByTag(registry: SpecClient, algorithm: str) -> None:
    """
    "Pulling manifests": a GET by tag MUST give the manifest with 200 OK and
    C{Docker-Content-Digest}; the C{Content-Type} is what was pushed.  The digest is in
    the algorithm the client pushed the manifest by.
    """
    name = registry.repository()
    image = registry.pushImage(name, algorithm=algorithm)
    response = registry.putManifest(
        name, image.digest, image.body, image.mediaType, tags=["v1"]
    )
    assert response.status_code == 201
    pulled = registry.get(f"/v2/{name}/manifests/v1")
    assert pulled.status_code == 200
    assert pulled.content == image.body
    assert pulled.headers["Content-Type"] == OCI_MANIFEST
    assert pulled.headers["Docker-Content-Digest"] == image.digest
    assert digestOf(pulled.content, algorithm) == image.digest
    assert int(pulled.headers["Content-Length"]) == image.size


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_manifestByDigest(registry: SpecClient, algorithm: str) -> None:
    """
    "Pulling manifests": a GET by digest gives the exact bytes pushed, whose digest the
    C{Docker-Content-Digest} header carries.
    """
    name = registry.repository()
    image = registry.pushImage(name, algorithm=algorithm)
    pulled = registry.get(f"/v2/{name}/manifests/{image.digest}")
    assert pulled.status_code == 200
    assert pulled.content == image.body
    assert pulled.headers["Docker-Content-Digest"] == image.digest
    assert pulled.headers["Content-Type"] == OCI_MANIFEST


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_headManifest(registry: SpecClient, algorithm: str) -> None:
    """
    "Checking if content exists in the registry": HEAD of a manifest by tag or digest
    MUST be 200 with C{Docker-Content-Digest} and the size in C{Content-Length}, and no
    body.
    """
    name = registry.repository()
    image = registry.pushImage(name, tag="latest", algorithm=algorithm)
    for reference in ("latest", image.digest):
        response = registry.head(f"/v2/{name}/manifests/{reference}")
        assert response.status_code == 200
        assert response.headers["Docker-Content-Digest"] == image.digest
        assert int(response.headers["Content-Length"]) == image.size
        assert response.headers["Content-Type"] == OCI_MANIFEST
        assert response.content == b""


@pytest.mark.parametrize(
    "mediaType, configType, layerType",
    [
        (OCI_MANIFEST, "application/vnd.oci.image.config.v1+json", OCI_LAYER),
        (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER),
    ],
)
def test_contentTypeIsWhatWasPushed(
    registry: SpecClient, mediaType: str, configType: str, layerType: str
) -> None:
    """
    "Pulling manifests": the C{Content-Type} SHOULD match what the client pushed, and
    the registry SHOULD NOT include parameters on it ("Pushing Manifests": the registry
    SHOULD ignore parameters on the pushed C{Content-Type}).
    """
    name = registry.repository()
    config = b'{"os":"linux"}'
    layer = os.urandom(32)
    registry.pushBlob(name, config)
    registry.pushBlob(name, layer)
    body = (
        b'{"schemaVersion":2,"mediaType":"%s","config":%s,"layers":[%s]}'
        % (
            mediaType.encode(),
            _json(descriptor(configType, config)),
            _json(descriptor(layerType, layer)),
        )
    )
    response = registry.putManifest(name, "t", body, mediaType + "; charset=utf-8")
    assert response.status_code == 201, response.text
    pulled = registry.get(f"/v2/{name}/manifests/t")
    assert pulled.headers["Content-Type"] == mediaType


def test_manifestWithoutMediaTypeField(registry: SpecClient) -> None:
    """
    "Pulling manifests": the C{Content-Type} SHOULD match what the client pushed as
    the manifest's C{Content-Type}, also when the manifest has no C{mediaType} field.
    """
    name = registry.repository()
    config = b"{}"
    registry.pushBlob(name, config)
    body = b'{"schemaVersion":2,"config":%s,"layers":[]}' % _json(
        descriptor("application/vnd.oci.image.config.v1+json", config)
    )
    assert registry.putManifest(name, "t", body, OCI_MANIFEST).status_code == 201
    pulled = registry.get(f"/v2/{name}/manifests/t")
    assert pulled.content == body
    assert pulled.headers["Content-Type"] == OCI_MANIFEST


def test_unknownManifest(registry: SpecClient) -> None:
    """
    "Pulling manifests": a manifest not in the repository MUST be 404 Not Found, by tag
    or by digest, with GET or HEAD; the error is C{MANIFEST_UNKNOWN}.
    """
    name = registry.repository()
    registry.pushImage(name, tag="present")
    for algorithm in ALGORITHMS:
        missing = digestOf(os.urandom(8), algorithm)
        for method in ("GET", "HEAD"):
            for reference in ("absent", missing):
                response = registry.request(method, f"/v2/{name}/manifests/{reference}")
                assertError(response, 404, "MANIFEST_UNKNOWN")


def test_manifestOfAnotherRepository(registry: SpecClient) -> None:
    """
    "Pulling manifests": a manifest pushed to one repository is not in another.
    """
    first, second = registry.repository(), registry.repository()
    image = registry.pushImage(first, tag="t")
    registry.pushImage(second, tag="other")
    assertError(
        registry.get(f"/v2/{second}/manifests/{image.digest}"), 404, "MANIFEST_UNKNOWN"
    )
    assertError(registry.get(f"/v2/{second}/manifests/t"), 404, "MANIFEST_UNKNOWN")


def test_nonexistentRepository(registry: SpecClient) -> None:
    """
    "Pushing Manifests": "An attempt to pull a nonexistent repository MUST return
    response code 404 Not Found" (with C{NAME_UNKNOWN}).
    """
    name = registry.repository("never")
    assertError(registry.get(f"/v2/{name}/manifests/latest"), 404, "NAME_UNKNOWN")
    assertError(
        registry.get(f"/v2/{name}/manifests/{digestOf(b'x')}"), 404, "NAME_UNKNOWN"
    )
    assertError(registry.head(f"/v2/{name}/manifests/latest"), 404, "NAME_UNKNOWN")
    assertError(registry.get(f"/v2/{name}/blobs/{digestOf(b'x')}"), 404, "BLOB_UNKNOWN")


@pytest.mark.parametrize(
    "name", ["Upper/case", "a//b", "a/", "-a", "a..b", "a" * 256, "a/b_-c"]
)
def test_invalidName(registry: SpecClient, name: str) -> None:
    """
    "Pulling manifests": C{<name>} MUST match the spec's regular expression; a name
    that does not is C{NAME_INVALID} (400), never looked up.
    """
    response = registry.get(f"/v2/{name}/manifests/latest")
    assertError(response, 400, "NAME_INVALID")


@pytest.mark.parametrize(
    "reference",
    [
        "sha256:" + "0" * 63,
        "sha256:" + "A" * 64,
        "sha512:" + "0" * 64,
        "md5:" + "0" * 32,
        "sha256:",
        "sha256:zz",
        ":abc",
    ],
)
def test_malformedDigestReference(registry: SpecClient, reference: str) -> None:
    """
    "Pulling manifests": C{<tag-or-digest>} MUST be a digest or a tag; a malformed or
    unsupported digest is 400 C{DIGEST_INVALID} ("Pushing blobs": "the registry SHOULD
    respond with a response code 400 Bad Request"), for manifests and blobs alike.
    """
    name = registry.repository()
    registry.pushImage(name, tag="t")
    assertError(registry.get(f"/v2/{name}/manifests/{reference}"), 400, "DIGEST_INVALID")
    assertError(registry.get(f"/v2/{name}/blobs/{reference}"), 400, "DIGEST_INVALID")
    assertError(registry.head(f"/v2/{name}/blobs/{reference}"), 400, "DIGEST_INVALID")


def test_invalidTagReference(registry: SpecClient) -> None:
    """
    "Pulling manifests": a tag MUST be at most 128 characters and match
    C{[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}}; anything else is refused (400), not looked up.
    """
    name = registry.repository()
    registry.pushImage(name, tag="t")
    for tag in ("a" * 129, ".dot", "-dash"):
        response = registry.get(f"/v2/{name}/manifests/{tag}")
        assert response.status_code == 400
        assert errorCodes(response) == ["MANIFEST_INVALID"]
    longest = "a" * 128
    assertError(registry.get(f"/v2/{name}/manifests/{longest}"), 404, "MANIFEST_UNKNOWN")


def test_conditionalManifestPull(registry: SpecClient) -> None:
    """
    RFC 9110 semantics ("API": implementations SHOULD follow them): the manifest's
    C{ETag} in C{If-None-Match} gives 304 Not Modified.
    """
    name = registry.repository()
    image = registry.pushImage(name, tag="t")
    first = registry.get(f"/v2/{name}/manifests/t")
    etag = first.headers["ETag"]
    assert image.digest in etag
    again = registry.get(f"/v2/{name}/manifests/t", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    other = registry.get(f"/v2/{name}/manifests/t", headers={"If-None-Match": '"x"'})
    assert other.status_code == 200


# "Pulling blobs"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_blob(registry: SpecClient, algorithm: str) -> None:
    """
    "Pulling blobs": GET of a blob MUST give it with 200 OK and a
    C{Docker-Content-Digest} matching the body.
    """
    name = registry.repository()
    data = os.urandom(5000)
    digest = registry.pushBlob(name, data, algorithm)
    response = registry.get(f"/v2/{name}/blobs/{digest}")
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["Docker-Content-Digest"] == digest
    assert digestOf(response.content, algorithm) == digest
    assert int(response.headers["Content-Length"]) == len(data)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_headBlob(registry: SpecClient, algorithm: str) -> None:
    """
    "Checking if content exists in the registry": HEAD of a blob MUST be 200 with
    C{Docker-Content-Digest} and its size in C{Content-Length}.
    """
    name = registry.repository()
    data = os.urandom(777)
    digest = registry.pushBlob(name, data, algorithm)
    response = registry.head(f"/v2/{name}/blobs/{digest}")
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == digest
    assert int(response.headers["Content-Length"]) == 777
    assert response.content == b""


def test_zeroByteBlob(registry: SpecClient) -> None:
    """
    "Pulling blobs" of an empty blob: 200, C{Content-Length: 0}, the digest of nothing.
    """
    name = registry.repository()
    digest = registry.pushBlob(name, b"")
    assert digest == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    response = registry.get(f"/v2/{name}/blobs/{digest}")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Content-Length"] == "0"
    assert response.headers["Docker-Content-Digest"] == digest
    head = registry.head(f"/v2/{name}/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == "0"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_unknownBlob(registry: SpecClient, algorithm: str) -> None:
    """
    "Pulling blobs": a blob not found in the repository MUST be 404 (C{BLOB_UNKNOWN}),
    also when another repository has it.
    """
    name, other = registry.repository(), registry.repository()
    data = os.urandom(100)
    digest = registry.pushBlob(other, data, algorithm)
    registry.pushBlob(name, os.urandom(10), algorithm)
    assertError(registry.get(f"/v2/{name}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assertError(registry.head(f"/v2/{name}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    missing = digestOf(os.urandom(8), algorithm)
    assertError(registry.get(f"/v2/{name}/blobs/{missing}"), 404, "BLOB_UNKNOWN")


# "Pulling blobs": "A registry SHOULD support the Range request header in accordance with
# RFC 9110 (section 14)."


@pytest.fixture(scope="module")
def rangeBlob(registry: SpecClient) -> tuple[str, bytes]:
    """
    A 1000-byte blob, as a blob URL path and its bytes.
    """
    name = registry.repository()
    data = os.urandom(1000)
    digest = registry.pushBlob(name, data)
    return f"/v2/{name}/blobs/{digest}", data


@pytest.mark.parametrize(
    "header, first, last",
    [
        ("bytes=0-0", 0, 0),
        ("bytes=10-19", 10, 19),
        ("bytes=990-", 990, 999),
        ("bytes=-10", 990, 999),
        ("bytes=-5000", 0, 999),
        ("bytes=900-5000", 900, 999),
        ("bytes=0-999", 0, 999),
    ],
)
def test_singleRange(
    registry: SpecClient,
    rangeBlob: tuple[str, bytes],
    header: str,
    first: int,
    last: int,
) -> None:
    """
    "Pulling blobs" with one satisfiable range: 206 Partial Content with C{Content-Range}
    and exactly those bytes (RFC 9110, 14.4 and 15.3.7).
    """
    path, data = rangeBlob
    response = registry.get(path, headers={"Range": header})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes {first}-{last}/1000"
    assert response.content == data[first : last + 1]
    assert int(response.headers["Content-Length"]) == last - first + 1


def test_multipleRanges(registry: SpecClient, rangeBlob: tuple[str, bytes]) -> None:
    """
    "Pulling blobs" with several ranges: 206 with a C{multipart/byteranges} body
    (RFC 9110, 14.6), one part per range, each with its C{Content-Range}; unsatisfiable
    ranges among satisfiable ones are left out.
    """
    path, data = rangeBlob
    response = registry.get(path, headers={"Range": "bytes=0-9, 500-509, -5, 5000-"})
    assert response.status_code == 206
    contentType = response.headers["Content-Type"]
    assert contentType.startswith("multipart/byteranges; boundary=")
    assert int(response.headers["Content-Length"]) == len(response.content)
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + contentType.encode() + b"\r\n\r\n" + response.content
    )
    assert message.is_multipart()
    parts = [
        (part["Content-Range"], part.get_payload(decode=True))
        for part in message.iter_parts()
    ]
    assert parts == [
        ("bytes 0-9/1000", data[0:10]),
        ("bytes 500-509/1000", data[500:510]),
        ("bytes 995-999/1000", data[995:1000]),
    ]


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=1000-1000, 2000-"])
def test_unsatisfiableRange(
    registry: SpecClient, rangeBlob: tuple[str, bytes], header: str
) -> None:
    """
    "Pulling blobs" with no satisfiable range: 416 with C{Content-Range: bytes */size}
    (RFC 9110, 15.5.17), whose body is exactly as long as its C{Content-Length}.
    """
    path, _ = rangeBlob
    response = registry.get(path, headers={"Range": header})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == "bytes */1000"
    assert int(response.headers["Content-Length"]) == len(response.content)
    errorCodes(response)


def test_rangeOfEmptyBlob(registry: SpecClient) -> None:
    """
    RFC 9110, 14.1.1: no range of a zero-length representation is satisfiable: 416.
    """
    name = registry.repository()
    digest = registry.pushBlob(name, b"")
    response = registry.get(f"/v2/{name}/blobs/{digest}", headers={"Range": "bytes=0-"})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == "bytes */0"
    assert int(response.headers["Content-Length"]) == len(response.content)


@pytest.mark.parametrize(
    "header", ["bytes=10-5", "items=0-1", "bytes=a-b", "bytes=", "bytes=--1", "0-10"]
)
def test_invalidRangeIgnored(
    registry: SpecClient, rangeBlob: tuple[str, bytes], header: str
) -> None:
    """
    RFC 9110, 14.2: a C{Range} header that is not a valid byte range set is ignored:
    the whole blob, 200.
    """
    path, data = rangeBlob
    response = registry.get(path, headers={"Range": header})
    assert response.status_code == 200
    assert response.content == data


def test_rangeSupportAdvertised(registry: SpecClient, rangeBlob: tuple[str, bytes]) -> None:
    """
    RFC 9110, 14.3: a blob answer says C{Accept-Ranges: bytes}.
    """
    path, _ = rangeBlob
    assert registry.head(path).headers["Accept-Ranges"] == "bytes"


# "Content Negotiation" (distribution-content-negotiation.md; "Pulling manifests": "The
# client SHOULD include an Accept header indicating which manifest content types it
# supports").


def _multiPlatform(
    registry: SpecClient, name: str, mediaType: str = OCI_INDEX, amd64: bool = True
) -> tuple[Pushed, Pushed, Pushed]:
    """
    Push an arm64 and (if C{amd64}) a linux/amd64 image and an index of them tagged
    C{multi}; return the index and the two images.
    """
    arm = registry.pushImage(name)
    amd = registry.pushImage(name)
    manifests = [arm.descriptor(platform={"architecture": "arm64", "os": "linux"})]
    if amd64:
        manifests.append(amd.descriptor(platform={"architecture": "amd64", "os": "linux"}))
    index = registry.pushIndex(name, manifests, tag="multi", mediaType=mediaType)
    return index, arm, amd


@pytest.mark.parametrize(
    "accept",
    [
        None,
        "*/*",
        "application/*",
        "application/json",
        OCI_INDEX,
        f"{OCI_MANIFEST}, {OCI_INDEX}",
        f"{OCI_INDEX};q=0.5",
    ],
)
def test_indexServedWhenAccepted(registry: SpecClient, accept: str | None) -> None:
    """
    "Content Negotiation": a client that accepts the stored index's type (or anything:
    the table answers no C{Accept}, C{*/*} and C{application/json} alike) gets the index
    itself.
    """
    name = registry.repository()
    index, _, _ = _multiPlatform(registry, name)
    headers = {} if accept is None else {"Accept": accept}
    response = registry.get(f"/v2/{name}/manifests/multi", headers=headers)
    assert response.status_code == 200
    assert response.content == index.body
    assert response.headers["Content-Type"] == OCI_INDEX


def test_acceptAcrossSeveralHeaderLines(registry: SpecClient) -> None:
    """
    "Content Negotiation": the types of every C{Accept} header line count (RFC 9110,
    5.3: several lines are one comma-separated list).
    """
    name = registry.repository()
    index, _, _ = _multiPlatform(registry, name)
    response = registry.get(
        f"/v2/{name}/manifests/multi",
        headers={"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}, {OCI_INDEX}"},
    )
    assert response.content == index.body


@pytest.mark.parametrize(
    "indexType, imageAccept",
    [(OCI_INDEX, OCI_MANIFEST), (DOCKER_MANIFEST_LIST, OCI_MANIFEST)],
)
def test_indexNotAcceptedFallsBackToDefaultPlatform(
    registry: SpecClient, indexType: str, imageAccept: str
) -> None:
    """
    "Content Negotiation": a client pulling by tag that accepts image manifests but not
    the stored index's type gets the index's linux/amd64 image (as the table's
    "linux/amd64 for backward compatibility" rows), with that image's digest.
    """
    name = registry.repository()
    _, _, amd = _multiPlatform(registry, name, indexType)
    response = registry.get(f"/v2/{name}/manifests/multi", headers={"Accept": imageAccept})
    assert response.status_code == 200
    assert response.content == amd.body
    assert response.headers["Docker-Content-Digest"] == amd.digest
    assert response.headers["Content-Type"] == OCI_MANIFEST


def test_indexNotAcceptedWithoutDefaultPlatform(registry: SpecClient) -> None:
    """
    "Content Negotiation": with no linux/amd64 image in the index to fall back to, a
    client that does not accept the index's type gets 404 C{MANIFEST_UNKNOWN}, as the
    reference registry (distribution) answers.
    """
    name = registry.repository()
    _multiPlatform(registry, name, amd64=False)
    response = registry.get(f"/v2/{name}/manifests/multi", headers={"Accept": OCI_MANIFEST})
    assertError(response, 404, "MANIFEST_UNKNOWN")


def test_imageNotAccepted(registry: SpecClient) -> None:
    """
    "Content Negotiation": an image manifest pulled by tag by a client that accepts only
    other types (or refuses its type with C{q=0}) is 404 C{MANIFEST_UNKNOWN}; the
    registry never converts a manifest, as that would change its digest.
    """
    name = registry.repository()
    registry.pushImage(name, tag="t")
    for accept in (OCI_INDEX, DOCKER_MANIFEST, f"{OCI_MANIFEST};q=0, {OCI_INDEX}"):
        response = registry.get(f"/v2/{name}/manifests/t", headers={"Accept": accept})
        assertError(response, 404, "MANIFEST_UNKNOWN")
        head = registry.head(f"/v2/{name}/manifests/t", headers={"Accept": accept})
        assertError(head, 404, "MANIFEST_UNKNOWN")


def test_byDigestAlwaysTheExactBytes(registry: SpecClient) -> None:
    """
    "Pulling manifests": clients pulling by digest SHOULD verify the manifest matches
    it, so a pull by digest gives the stored bytes whatever the C{Accept} header.
    """
    name = registry.repository()
    index, _, _ = _multiPlatform(registry, name)
    response = registry.get(
        f"/v2/{name}/manifests/{index.digest}",
        headers={"Accept": OCI_MANIFEST},
    )
    assert response.status_code == 200
    assert response.content == index.body
    assert response.headers["Content-Type"] == OCI_INDEX


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
