"""
The "Content Management" category of the OCI Distribution Spec
(C{distribution-spec.md}): "Deleting tags", "Deleting Manifests" and "Deleting Blobs"
(end-9, end-10), for sha256 and sha512: each deletion is 202, visible to the very next
request, limited to what it names, durable across a restart, and deleting what does not
exist is the spec's 404.

Each test runs against a real C{twistd -n ocid} on a loopback port.
"""

from __future__ import annotations

import json
import os

import pytest

from .spec_client import (
    ALGORITHMS,
    OCI_INDEX,
    SpecClient,
    assertError,
    digestOf,
    registryFixture,
)

registry = registryFixture()


# "Deleting tags"


def test_deleteTag(registry: SpecClient) -> None:
    """
    "Deleting tags": DELETE of C{/v2/<name>/manifests/<tag>} MUST be 202; "Once deleted,
    a GET to /v2/<name>/manifests/<tag> will return a 404".  Only the tag goes: the
    manifest, its other tags and its blobs stay.
    """
    name = registry.repository()
    image = registry.pushImage(name, tag="doomed")
    registry.putManifest(name, image.digest, image.body, tags=["kept"])
    response = registry.delete(f"/v2/{name}/manifests/doomed")
    assert response.status_code == 202
    assertError(registry.get(f"/v2/{name}/manifests/doomed"), 404, "MANIFEST_UNKNOWN")
    assertError(registry.head(f"/v2/{name}/manifests/doomed"), 404, "MANIFEST_UNKNOWN")
    assert registry.get(f"/v2/{name}/manifests/kept").content == image.body
    assert registry.get(f"/v2/{name}/manifests/{image.digest}").content == image.body
    assert registry.get(f"/v2/{name}/tags/list").json()["tags"] == ["kept"]


def test_deleteUnknownTag(registry: SpecClient) -> None:
    """
    "Deleting tags": a tag that does not exist is 404 C{MANIFEST_UNKNOWN}, also when it
    was just deleted.
    """
    name = registry.repository()
    registry.pushImage(name, tag="t")
    assertError(registry.delete(f"/v2/{name}/manifests/never"), 404, "MANIFEST_UNKNOWN")
    assert registry.delete(f"/v2/{name}/manifests/t").status_code == 202
    assertError(registry.delete(f"/v2/{name}/manifests/t"), 404, "MANIFEST_UNKNOWN")


def test_retagAfterDelete(registry: SpecClient) -> None:
    """
    A deleted tag can be pushed again, to any manifest.
    """
    name = registry.repository()
    first = registry.pushImage(name, tag="t")
    second = registry.pushImage(name)
    assert registry.delete(f"/v2/{name}/manifests/t").status_code == 202
    registry.putManifest(name, "t", second.body)
    assert registry.get(f"/v2/{name}/manifests/t").content == second.body
    assert registry.get(f"/v2/{name}/manifests/{first.digest}").status_code == 200


# "Deleting Manifests"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_deleteManifest(registry: SpecClient, algorithm: str) -> None:
    """
    "Deleting Manifests": DELETE by digest MUST be 202; "Once deleted, a GET to
    /v2/<name>/manifests/<digest> and any tag pointing to that digest will return a
    404".  Other manifests and the blobs stay.
    """
    name = registry.repository()
    image = registry.pushImage(name, tag="one", algorithm=algorithm)
    registry.putManifest(name, image.digest, image.body, tags=["two", "three"])
    other = registry.pushImage(name, tag="other", algorithm=algorithm)
    response = registry.delete(f"/v2/{name}/manifests/{image.digest}")
    assert response.status_code == 202
    for reference in (image.digest, "one", "two", "three"):
        assertError(registry.get(f"/v2/{name}/manifests/{reference}"), 404, "MANIFEST_UNKNOWN")
        assertError(registry.head(f"/v2/{name}/manifests/{reference}"), 404, "MANIFEST_UNKNOWN")
    assert registry.get(f"/v2/{name}/tags/list").json()["tags"] == ["other"]
    assert registry.get(f"/v2/{name}/manifests/other").content == other.body
    manifest = json.loads(image.body)
    for blob in [manifest["config"], *manifest["layers"]]:
        assert registry.head(f"/v2/{name}/blobs/{blob['digest']}").status_code == 200


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_deleteUnknownManifest(registry: SpecClient, algorithm: str) -> None:
    """
    "Deleting Manifests": a digest not in the repository is 404 C{MANIFEST_UNKNOWN},
    also right after it was deleted; "If the repository does not exist, the response
    MUST return 404 Not Found" (C{NAME_UNKNOWN}).
    """
    name = registry.repository()
    image = registry.pushImage(name, algorithm=algorithm)
    missing = digestOf(os.urandom(16), algorithm)
    assertError(registry.delete(f"/v2/{name}/manifests/{missing}"), 404, "MANIFEST_UNKNOWN")
    assert registry.delete(f"/v2/{name}/manifests/{image.digest}").status_code == 202
    assertError(
        registry.delete(f"/v2/{name}/manifests/{image.digest}"), 404, "MANIFEST_UNKNOWN"
    )
    never = registry.repository("never")
    assertError(registry.delete(f"/v2/{never}/manifests/{missing}"), 404, "NAME_UNKNOWN")
    assertError(registry.delete(f"/v2/{never}/manifests/latest"), 404, "NAME_UNKNOWN")


def test_deleteManifestOfAnotherRepository(registry: SpecClient) -> None:
    """
    "Deleting Manifests" deletes from C{<name>} only: the same manifest in another
    repository stays.
    """
    first, second = registry.repository(), registry.repository()
    image = registry.pushImage(first, tag="t")
    manifest = json.loads(image.body)
    for blob in [manifest["config"], *manifest["layers"]]:
        mounted = registry.post(
            f"/v2/{second}/blobs/uploads/", params={"mount": blob["digest"], "from": first}
        )
        assert mounted.status_code == 201
    assert registry.putManifest(second, "t", image.body).status_code == 201
    assert registry.delete(f"/v2/{first}/manifests/{image.digest}").status_code == 202
    assert registry.get(f"/v2/{second}/manifests/t").content == image.body
    assertError(registry.get(f"/v2/{first}/manifests/t"), 404, "MANIFEST_UNKNOWN")


def test_deleteManifestThenPushAgain(registry: SpecClient) -> None:
    """
    A deleted manifest can be pushed again; its old tags do not come back.
    """
    name = registry.repository()
    image = registry.pushImage(name, tag="old")
    assert registry.delete(f"/v2/{name}/manifests/{image.digest}").status_code == 202
    response = registry.putManifest(name, image.digest, image.body, tags=["new"])
    assert response.status_code == 201
    assert registry.get(f"/v2/{name}/manifests/new").content == image.body
    assertError(registry.get(f"/v2/{name}/manifests/old"), 404, "MANIFEST_UNKNOWN")


def test_deleteManifestListedByIndex(registry: SpecClient) -> None:
    """
    "Deleting Manifests": a manifest an index lists can be deleted (202); the index
    stays, as pushed.
    """
    name = registry.repository()
    child = registry.pushImage(name)
    index = registry.pushIndex(name, [child.descriptor()], tag="idx")
    assert registry.delete(f"/v2/{name}/manifests/{child.digest}").status_code == 202
    assertError(registry.get(f"/v2/{name}/manifests/{child.digest}"), 404, "MANIFEST_UNKNOWN")
    assert registry.get(f"/v2/{name}/manifests/idx").content == index.body


# "Deleting Blobs"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_deleteBlob(registry: SpecClient, algorithm: str) -> None:
    """
    "Deleting Blobs": DELETE of a blob MUST be 202; the blob is then unknown to that
    repository (404 C{BLOB_UNKNOWN} for GET and HEAD) but still served by another
    repository that has it.
    """
    name, other = registry.repository(), registry.repository()
    data = os.urandom(200)
    digest = registry.pushBlob(name, data, algorithm)
    registry.pushBlob(other, data, algorithm)
    response = registry.delete(f"/v2/{name}/blobs/{digest}")
    assert response.status_code == 202
    assertError(registry.get(f"/v2/{name}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assertError(registry.head(f"/v2/{name}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert registry.get(f"/v2/{other}/blobs/{digest}").content == data


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_deleteUnknownBlob(registry: SpecClient, algorithm: str) -> None:
    """
    "Deleting Blobs": "If the blob is not found, a 404 Not Found code MUST be returned"
    (C{BLOB_UNKNOWN}), also right after it was deleted, and in a repository that does
    not exist.
    """
    name = registry.repository()
    digest = registry.pushBlob(name, os.urandom(10), algorithm)
    missing = digestOf(os.urandom(10), algorithm)
    assertError(registry.delete(f"/v2/{name}/blobs/{missing}"), 404, "BLOB_UNKNOWN")
    assert registry.delete(f"/v2/{name}/blobs/{digest}").status_code == 202
    assertError(registry.delete(f"/v2/{name}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    never = registry.repository("never")
    assertError(registry.delete(f"/v2/{never}/blobs/{missing}"), 404, "BLOB_UNKNOWN")


def test_pushBlobAgainAfterDelete(registry: SpecClient) -> None:
    """
    "Deleting Blobs": a deleted blob can be pushed again and is then pullable.
    """
    name = registry.repository()
    data = os.urandom(100)
    digest = registry.pushBlob(name, data)
    assert registry.delete(f"/v2/{name}/blobs/{digest}").status_code == 202
    assert registry.pushBlob(name, data) == digest
    assert registry.get(f"/v2/{name}/blobs/{digest}").content == data


def test_manifestNeedsDeletedBlob(registry: SpecClient) -> None:
    """
    "Push": after its layer is deleted, a manifest using it is refused with
    C{MANIFEST_BLOB_UNKNOWN}.
    """
    name = registry.repository()
    image = registry.pushImage(name)
    layer = json.loads(image.body)["layers"][0]["digest"]
    assert registry.delete(f"/v2/{name}/manifests/{image.digest}").status_code == 202
    assert registry.delete(f"/v2/{name}/blobs/{layer}").status_code == 202
    assertError(registry.putManifest(name, "t", image.body), 400, "MANIFEST_BLOB_UNKNOWN")


@pytest.mark.parametrize("digest", ["sha256:nope", "md5:" + "0" * 32, "sha512:" + "0" * 64])
def test_deleteMalformedDigest(registry: SpecClient, digest: str) -> None:
    """
    end-9, end-10 failures include 400: a malformed digest is 400 C{DIGEST_INVALID}.
    """
    name = registry.repository()
    registry.pushImage(name, tag="t")
    assertError(registry.delete(f"/v2/{name}/blobs/{digest}"), 400, "DIGEST_INVALID")
    assertError(registry.delete(f"/v2/{name}/manifests/{digest}"), 400, "DIGEST_INVALID")


def test_deleteInvalidTag(registry: SpecClient) -> None:
    """
    end-9: a reference that is neither a digest nor a valid tag is 400.
    """
    name = registry.repository()
    registry.pushImage(name, tag="t")
    response = registry.delete(f"/v2/{name}/manifests/{'x' * 129}")
    assertError(response, 400, "MANIFEST_INVALID")


# Durability: every deletion answered 202 is still in effect after a restart.


def test_deletionsSurviveRestart(registry: SpecClient) -> None:
    """
    "Content Management": a tag, a manifest and a blob deleted (202) stay deleted after
    the registry restarts, and what was not deleted stays.
    """
    name = registry.repository()
    untagged = registry.pushImage(name, tag="untag-me")
    registry.putManifest(name, untagged.digest, untagged.body, tags=["keep-me"])
    deleted = registry.pushImage(name, tag="gone", algorithm="sha512")
    blob = registry.pushBlob(name, os.urandom(50))
    kept = registry.pushBlob(name, os.urandom(50))
    assert registry.delete(f"/v2/{name}/manifests/untag-me").status_code == 202
    assert registry.delete(f"/v2/{name}/manifests/{deleted.digest}").status_code == 202
    assert registry.delete(f"/v2/{name}/blobs/{blob}").status_code == 202
    registry.restart()
    assertError(registry.get(f"/v2/{name}/manifests/untag-me"), 404, "MANIFEST_UNKNOWN")
    assertError(registry.get(f"/v2/{name}/manifests/gone"), 404, "MANIFEST_UNKNOWN")
    assertError(
        registry.get(f"/v2/{name}/manifests/{deleted.digest}"), 404, "MANIFEST_UNKNOWN"
    )
    assertError(registry.get(f"/v2/{name}/blobs/{blob}"), 404, "BLOB_UNKNOWN")
    assert registry.get(f"/v2/{name}/manifests/keep-me").content == untagged.body
    assert registry.head(f"/v2/{name}/blobs/{kept}").status_code == 200
    assert registry.get(f"/v2/{name}/tags/list").json()["tags"] == ["keep-me"]


def test_deletedManifestIsGoneEverywhere(registry: SpecClient) -> None:
    """
    "Deleting Manifests": once deleted, a manifest an index lists is not readable
    through the blobs endpoint either, and a new index cannot list it
    (C{MANIFEST_BLOB_UNKNOWN}, "Push"): an index never points at a missing manifest.
    """
    name = registry.repository()
    child = registry.pushImage(name)
    registry.pushIndex(name, [child.descriptor()], tag="idx")
    assert registry.get(f"/v2/{name}/blobs/{child.digest}").content == child.body
    assert registry.delete(f"/v2/{name}/manifests/{child.digest}").status_code == 202
    assertError(registry.get(f"/v2/{name}/blobs/{child.digest}"), 404, "BLOB_UNKNOWN")
    other = registry.repository()
    response = registry.post(f"/v2/{other}/blobs/uploads/", params={"mount": child.digest})
    assert response.status_code == 202
    body = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [child.descriptor()]}
    ).encode()
    assertError(registry.putManifest(name, "idx2", body, OCI_INDEX), 400, "MANIFEST_BLOB_UNKNOWN")
