"""
"Error Codes" of the OCI Distribution Spec (C{distribution-spec.md}): every error body is
the spec's JSON (C{{"errors": [{"code", "message", "detail"}]}}) with a code from its
table, each code where the spec uses it and with its status; 405 C{UNSUPPORTED} only for
what is truly unsupported; every endpoint of the "Endpoints" table answers its success
status ("Determining Support" included); and no malformed request gets a 5xx.

Each test runs against a real C{twistd -n ocid} on a loopback port.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import pytest
import requests

from .spec_client import (
    ALGORITHMS,
    EMPTY_JSON,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    SpecClient,
    assertError,
    descriptor,
    digestOf,
    errorCodes,
    registryFixture,
)

registry = registryFixture()

Request = Callable[[SpecClient, str], requests.Response]


def _uploadOutOfOrder(registry: SpecClient, name: str) -> requests.Response:
    location = registry.startUpload(name)
    return registry.patch(location, data=b"abc", headers={"Content-Range": "5-7"})


def _uploadUnknown(registry: SpecClient, name: str) -> requests.Response:
    return registry.get(f"/v2/{name}/blobs/uploads/5f0c6a3e-4b1d-4c2e-9f8a-7b6c5d4e3f21")


def _digestMismatch(registry: SpecClient, name: str) -> requests.Response:
    location = registry.startUpload(name)
    return registry.put(location, params={"digest": digestOf(b"other")}, data=b"abc")


def _manifestBlobUnknown(registry: SpecClient, name: str) -> requests.Response:
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_EMPTY, EMPTY_JSON),
            "layers": [],
        }
    ).encode()
    return registry.putManifest(name, "t", body)


def _manifestInvalid(registry: SpecClient, name: str) -> requests.Response:
    return registry.putManifest(name, "t", b'{"schemaVersion": 2, "layers": 7}')


def _sizeInvalid(registry: SpecClient, name: str) -> requests.Response:
    location = registry.startUpload(name)
    return registry.patch(location, data=b"abcd", headers={"Content-Range": "0-9"})


def _unsupported(registry: SpecClient, name: str) -> requests.Response:
    return registry.put(f"/v2/{name}/blobs/{digestOf(b'x')}", data=b"x")


#: Each code of the spec's table that ocid answers, a request that gets it, and the
#: status the spec gives it (the endpoint table's failure column; 416 for chunks out of
#: order, "Pushing a blob in chunks"; 405 for an unsupported method).
CODES: list[tuple[str, int, Request]] = [
    ("BLOB_UNKNOWN", 404, lambda r, n: r.get(f"/v2/{n}/blobs/{digestOf(b'none')}")),
    ("BLOB_UPLOAD_INVALID", 416, _uploadOutOfOrder),
    ("BLOB_UPLOAD_UNKNOWN", 404, _uploadUnknown),
    ("DIGEST_INVALID", 400, _digestMismatch),
    ("MANIFEST_BLOB_UNKNOWN", 400, _manifestBlobUnknown),
    ("MANIFEST_INVALID", 400, _manifestInvalid),
    ("MANIFEST_UNKNOWN", 404, lambda r, n: r.get(f"/v2/{n}/manifests/nothing")),
    ("NAME_INVALID", 400, lambda r, n: r.get("/v2/NOT_VALID/tags/list")),
    ("NAME_UNKNOWN", 404, lambda r, n: r.get(f"/v2/{n}-never/tags/list")),
    ("SIZE_INVALID", 400, _sizeInvalid),
    ("UNSUPPORTED", 405, _unsupported),
]


@pytest.mark.parametrize("code, status, request_", CODES, ids=[c[0] for c in CODES])
def test_errorCode(registry: SpecClient, code: str, status: int, request_: Request) -> None:
    """
    "Error Codes": a 4xx JSON body "MUST have the following format" with "code" one of
    the table's, uppercase letters and underscores, and "message" a string; each code is
    answered where the spec uses it, with its status.
    """
    name = registry.repository()
    registry.pushBlob(name, b"seed")
    response = request_(registry, name)
    assert response.status_code == status, response.text
    assert errorCodes(response) == [code]
    body = response.json()["errors"][0]
    assert body["message"]


def test_headErrorsHaveNoBody(registry: SpecClient) -> None:
    """
    RFC 9110, 9.3.2: the answer to a HEAD has no body, errors included.
    """
    name = registry.repository()
    registry.pushBlob(name, b"seed")
    for path in (
        f"/v2/{name}/blobs/{digestOf(b'none')}",
        f"/v2/{name}/manifests/none",
        f"/v2/{name}/blobs/sha256:bad",
    ):
        response = registry.head(path)
        assert response.status_code in (400, 404)
        assert response.content == b""


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("PUT", "/v2/{name}/blobs/{digest}", {"GET", "HEAD", "DELETE"}),
        ("POST", "/v2/{name}/blobs/{digest}", {"GET", "HEAD", "DELETE"}),
        ("POST", "/v2/{name}/manifests/latest", {"GET", "HEAD", "PUT", "DELETE"}),
        ("PATCH", "/v2/{name}/manifests/latest", {"GET", "HEAD", "PUT", "DELETE"}),
        ("DELETE", "/v2/{name}/tags/list", {"GET", "HEAD"}),
        ("PUT", "/v2/{name}/referrers/{digest}", {"GET", "HEAD"}),
        ("DELETE", "/v2/_catalog", {"GET", "HEAD"}),
        ("POST", "/v2/", {"GET", "HEAD"}),
        ("GET", "/v2/{name}/blobs/uploads/", {"POST"}),
    ],
)
def test_methodNotAllowed(
    registry: SpecClient, method: str, path: str, allowed: set[str]
) -> None:
    """
    "Error Codes": C{UNSUPPORTED} ("the operation is unsupported") with 405 Method Not
    Allowed and an C{Allow} header (RFC 9110, 15.5.6), only for methods no endpoint of
    that path has.
    """
    name = registry.repository()
    digest = registry.pushBlob(name, b"x")
    response = registry.request(method, path.format(name=name, digest=digest))
    assertError(response, 405, "UNSUPPORTED")
    assert {m.strip() for m in response.headers["Allow"].split(",")} >= allowed


def test_unknownEndpoint(registry: SpecClient) -> None:
    """
    A path that is no endpoint of the API is 404 with a spec error body.
    """
    for path in ("/v2/foo", "/v2/foo/bar/baz", "/v2/foo/manifests/", "/v2/foo/referrers/"):
        response = registry.get(path)
        assert response.status_code == 404
        errorCodes(response)


# "Endpoints": every endpoint answers its success status, so no supported operation is
# ever "unsupported".


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_endpointTable(registry: SpecClient, algorithm: str) -> None:
    """
    "Endpoints": end-1 to end-14 each answer the table's success status: the registry
    supports Pull, Push, Content Discovery and Content Management ("Requirements").
    """
    name, other = registry.repository(), registry.repository()

    def check(endpoint: str, response: requests.Response, *status: int) -> None:
        assert response.status_code in status, (endpoint, response.status_code, response.text)

    check("end-1", registry.get("/v2/"), 200)
    location = registry.startUpload(name, **{"digest-algorithm": algorithm})  # end-4a/4c
    check("end-5", registry.patch(location, data=b"ab", headers={"Content-Range": "0-1"}), 202)
    check("end-13", registry.get(location), 204)
    data = b"abc"
    digest = digestOf(data, algorithm)
    check("end-6", registry.put(location, params={"digest": digest}, data=b"c"), 201)
    check("end-2", registry.get(f"/v2/{name}/blobs/{digest}"), 200)
    check("end-2", registry.head(f"/v2/{name}/blobs/{digest}"), 200)
    empty = digestOf(EMPTY_JSON, algorithm)
    check(
        "end-4b",
        registry.post(f"/v2/{name}/blobs/uploads/", params={"digest": empty}, data=EMPTY_JSON),
        201,
    )
    check(
        "end-11",
        registry.post(f"/v2/{other}/blobs/uploads/", params={"mount": digest, "from": name}),
        201,
    )
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_EMPTY, EMPTY_JSON, algorithm),
            "layers": [descriptor("application/octet-stream", data, algorithm)],
        }
    ).encode()
    check("end-7a", registry.putManifest(name, "tagged", manifest), 201)
    manifestDigest = digestOf(manifest, algorithm)
    check("end-7b", registry.putManifest(name, manifestDigest, manifest, tags=["a", "b"]), 201)
    check("end-3", registry.get(f"/v2/{name}/manifests/{manifestDigest}"), 200)
    check("end-3", registry.head(f"/v2/{name}/manifests/a"), 200)
    check("end-8a", registry.get(f"/v2/{name}/tags/list"), 200)
    check("end-8b", registry.get(f"/v2/{name}/tags/list", params={"n": "1", "last": "a"}), 200)
    check("end-12a", registry.referrers(name, manifestDigest), 200)
    check("end-12b", registry.referrers(name, manifestDigest, artifactType="a/b"), 200)
    cancelled = registry.startUpload(name)
    check("end-14", registry.delete(cancelled), 204)
    check("end-9", registry.delete(f"/v2/{name}/manifests/a"), 202)
    check("end-9", registry.delete(f"/v2/{name}/manifests/{manifestDigest}"), 202)
    check("end-10", registry.delete(f"/v2/{name}/blobs/{digest}"), 202)


# No malformed request is a server error.


def _fuzzRequests(name: str, digest: str) -> list[tuple[str, str, dict[str, object]]]:
    long = "a" * 5000
    badDigests = [
        "sha256:",
        "sha256:" + "g" * 64,
        "SHA256:" + "a" * 64,
        "sha256:" + "a" * 65,
        "sha384:" + "a" * 96,
        "sha256+b64:abc",
        "sha256:abc:def",
        ":",
        long,
        "sha256:" + long,
        "%00",
    ]
    requests_: list[tuple[str, str, dict[str, object]]] = []
    for bad in badDigests:
        requests_ += [
            ("GET", f"/v2/{name}/blobs/{bad}", {}),
            ("DELETE", f"/v2/{name}/blobs/{bad}", {}),
            ("GET", f"/v2/{name}/manifests/{bad}", {}),
            ("PUT", f"/v2/{name}/manifests/{bad}", {"data": b"{}"}),
            ("GET", f"/v2/{name}/referrers/{bad}", {}),
            ("POST", f"/v2/{name}/blobs/uploads/", {"params": {"digest": bad}, "data": b"x"}),
            ("POST", f"/v2/{name}/blobs/uploads/", {"params": {"mount": bad, "from": name}}),
            ("POST", f"/v2/{name}/blobs/uploads/", {"params": {"mount": bad}}),
        ]
    requests_ += [
        ("GET", f"/v2/{name}/tags/list", {"params": {"n": "9" * 400}}),
        ("GET", f"/v2/{name}/tags/list", {"params": {"n": "١٢"}}),
        ("GET", f"/v2/{name}/tags/list", {"params": {"last": long}}),
        ("GET", "/v2/_catalog", {"params": {"n": "-0", "last": "\x00"}}),
        ("GET", f"/v2/{name}/referrers/{digest}", {"params": {"last": long}}),
        ("GET", f"/v2/{name}/referrers/{digest}", {"params": {"artifactType": "\u00e9" * 50}}),
        ("POST", f"/v2/{name}/blobs/uploads/", {"params": {"digest-algorithm": long}}),
        ("POST", f"/v2/{name}/blobs/uploads/", {"params": {"mount": digest, "from": "BAD"}}),
        ("GET", f"/v2/{name}/blobs/{digest}", {"headers": {"Range": "bytes=" + ",".join(["0-1"] * 500)}}),
        ("GET", f"/v2/{name}/blobs/{digest}", {"headers": {"Range": "bytes=99999999999999999999999-"}}),
        ("GET", f"/v2/{name}/blobs/{digest}", {"headers": {"Range": "bytes=\u00e9"}}),
        ("GET", f"/v2/{name}/manifests/t", {"headers": {"Accept": ";;;,,,q=x;q=;" * 50}}),
        ("GET", f"/v2/{name}/manifests/t", {"headers": {"If-None-Match": long}}),
        ("PUT", f"/v2/{name}/manifests/{digest}", {"params": {"tag": [long, "a"]}, "data": b"{}"}),
        ("PUT", f"/v2/{name}/manifests/t", {"data": b"\xff\xfe\x00"}),
        ("PUT", f"/v2/{name}/manifests/t", {"data": b"[" * 100000 + b"]" * 100000}),
        ("PUT", f"/v2/{name}/manifests/t", {"data": b'{"schemaVersion": NaN}'}),
        ("PUT", f"/v2/{name}/manifests/t", {"data": b'{"schemaVersion": 2, "mediaType": 5}'}),
        ("PUT", f"/v2/{name}/manifests/t", {"data": b'{"schemaVersion": 2e400}'}),
        (
            "PUT",
            f"/v2/{name}/manifests/t",
            {
                "data": json.dumps(
                    {
                        "schemaVersion": 2,
                        "mediaType": OCI_INDEX,
                        "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest, "size": -1}],
                        "subject": "not a descriptor",
                    }
                ).encode(),
                "headers": {"Content-Type": OCI_INDEX},
            },
        ),
        (
            "PUT",
            f"/v2/{name}/manifests/t",
            {
                "data": json.dumps(
                    {
                        "schemaVersion": 2,
                        "mediaType": OCI_MANIFEST,
                        "config": {"mediaType": OCI_EMPTY, "digest": digest, "size": 2**70},
                        "layers": [{"mediaType": 1, "digest": None, "size": "2"}],
                        "annotations": {"a": 1},
                    }
                ).encode(),
                "headers": {"Content-Type": OCI_MANIFEST},
            },
        ),
        ("PATCH", f"/v2/{name}/blobs/uploads/{long}", {"data": b"x"}),
        ("PUT", f"/v2/{name}/blobs/uploads/../../x", {"data": b"x"}),
        ("GET", f"/v2/{name}/blobs/uploads/%2e%2e", {}),
        ("GET", "/v2/" + "a/" * 200 + "tags/list", {}),
        ("GET", "/v2/%00/tags/list", {}),
    ]
    return requests_


def test_noServerErrors(registry: SpecClient) -> None:
    """
    "Error Codes": a malformed request is the client's error: 4xx with a spec error
    body, never a 5xx.  Malformed digests in particular are 400 C{DIGEST_INVALID}
    ("Pushing blobs").
    """
    name = registry.repository()
    digest = registry.pushBlob(name, os.urandom(100))
    registry.pushImage(name, tag="t")
    location = registry.startUpload(name)
    for method, path, kwargs in _fuzzRequests(name, digest) + [
        ("PATCH", location, {"data": b"x", "headers": {"Content-Range": "bytes=\u00e9"}}),
        ("PATCH", location, {"data": b"x", "headers": {"Content-Range": "0-" + "9" * 30}}),
        ("PUT", location, {"params": {"digest": "sha256:x" * 10}, "data": b"x"}),
        ("PUT", location, {"data": b"x", "headers": {"Content-Range": "99-100"},
                           "params": {"digest": digest}}),
    ]:
        response = registry.request(method, path, **kwargs)  # type: ignore[arg-type]
        assert response.status_code < 500, (method, path[:200], response.text[:300])
        if response.status_code >= 400 and response.content:
            errorCodes(response)


@pytest.mark.parametrize(
    "reference", ["sha256:" + "g" * 64, "sha256:abc", "sha999:" + "a" * 64, "SHA256:" + "a" * 64]
)
def test_malformedDigestIsDigestInvalid(registry: SpecClient, reference: str) -> None:
    """
    "Pushing blobs": a digest that is invalid or of an unsupported algorithm is 400
    C{DIGEST_INVALID}, wherever it appears.
    """
    name = registry.repository()
    registry.pushImage(name, tag="t")
    for response in (
        registry.get(f"/v2/{name}/blobs/{reference}"),
        registry.delete(f"/v2/{name}/blobs/{reference}"),
        registry.get(f"/v2/{name}/manifests/{reference}"),
        registry.delete(f"/v2/{name}/manifests/{reference}"),
        registry.referrers(name, reference),
        registry.post(f"/v2/{name}/blobs/uploads/", params={"mount": reference}),
        registry.post(f"/v2/{name}/blobs/uploads/", params={"digest": reference}, data=b"x"),
    ):
        assertError(response, 400, "DIGEST_INVALID")


def test_determiningSupport(registry: SpecClient) -> None:
    """
    "Determining Support": C{GET /v2/} is 200 OK, so the registry implements the spec;
    no authentication is asked for, so C{UNAUTHORIZED} and C{DENIED} never occur.
    """
    response = registry.get("/v2/")
    assert response.status_code == 200
    assert response.json() == {}
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
