"""
The referrers API of the OCI Distribution Spec 1.1 (C{distribution-spec.md}): "Pushing
Manifests with Subject" (the C{OCI-Subject} header, subjects that are not in the
registry) and "Listing Referrers" (end-12a, end-12b: the image index answered, each
descriptor's C{artifactType} and annotations, C{artifactType} filtering with
C{OCI-Filters-Applied}, an empty list rather than a 404, C{Link} pagination), with the
list kept right when referrers or subjects are deleted ("Deleting Manifests") and across
a restart, for sha256 and sha512.

Each test runs against a real C{twistd -n ocid} on a loopback port.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import requests

from .spec_client import (
    ALGORITHMS,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    Pushed,
    SpecClient,
    assertError,
    descriptor,
    digestOf,
    nextLink,
    registryFixture,
)

registry = registryFixture()

SIGNATURE = "application/vnd.example.signature.v1"
SBOM = "application/vnd.example.sbom.v1"


def referrersIndex(response: requests.Response) -> list[dict[str, Any]]:
    """
    The descriptors of a referrers answer, after checking it is what "Listing
    Referrers" says: 200, C{Content-Type: application/vnd.oci.image.index.v1+json}, an
    image index.
    """
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == OCI_INDEX
    assert int(response.headers["Content-Length"]) == len(response.content)
    index = response.json()
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI_INDEX
    assert isinstance(index["manifests"], list)
    return index["manifests"]


def byDigest(descriptors: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """
    The descriptors by digest, each digest once.
    """
    result = {d["digest"]: d for d in descriptors}
    assert len(result) == len(descriptors), "a referrer is listed twice"
    return result


# "Pushing Manifests with Subject"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_subjectHeader(registry: SpecClient, algorithm: str) -> None:
    """
    "Pushing Manifests with Subject": a registry supporting the referrers API "MUST
    respond with the response header OCI-Subject: <subject digest>"; a manifest without
    a subject gets no such header.
    """
    name = registry.repository()
    image = registry.pushImage(name, algorithm=algorithm)
    registry.pushBlob(name, b"{}", algorithm)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": SIGNATURE,
            "config": descriptor("application/vnd.oci.empty.v1+json", b"{}", algorithm),
            "layers": [],
            "subject": image.descriptor(),
        }
    ).encode()
    response = registry.putManifest(name, digestOf(body, algorithm), body)
    assert response.status_code == 201
    assert response.headers["OCI-Subject"] == image.digest
    plain = registry.putManifest(name, "plain", image.body)
    assert "OCI-Subject" not in plain.headers


def test_subjectNotInRegistry(registry: SpecClient) -> None:
    """
    "Push": a registry "MUST initially accept an otherwise valid manifest with a subject
    field that references a manifest that does not exist in the repository, allowing
    clients to push a manifest and referrers to that manifest in either order", and
    still answers C{OCI-Subject}.  The referrer is listed under that digest at once,
    and still once the subject is pushed.
    """
    name = registry.repository()
    registry.pushBlob(name, b"{}")
    future = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.empty.v1+json", b"{}"),
            "layers": [],
            "annotations": {"nonce": os.urandom(8).hex()},
        }
    ).encode()
    subject = {"mediaType": OCI_MANIFEST, "digest": digestOf(future), "size": len(future)}
    artifact = registry.pushArtifact(name, subject)
    assert registry.get(f"/v2/{name}/manifests/{artifact.digest}").status_code == 200
    listed = referrersIndex(registry.referrers(name, subject["digest"]))
    assert [d["digest"] for d in listed] == [artifact.digest]
    assert registry.putManifest(name, "later", future).status_code == 201
    listed = referrersIndex(registry.referrers(name, subject["digest"]))
    assert [d["digest"] for d in listed] == [artifact.digest]


def test_indexWithSubject(registry: SpecClient) -> None:
    """
    "Pushing Manifests with Subject" for an index: C{OCI-Subject} too, and "Listing
    Referrers": "If the artifactType is empty or missing in an index, the artifactType
    MUST be omitted"; its annotations are included.
    """
    name = registry.repository()
    subject = registry.pushImage(name)
    child = registry.pushImage(name)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [child.descriptor()],
            "subject": subject.descriptor(),
            "annotations": {"org.example.kind": "index-referrer"},
        }
    ).encode()
    response = registry.putManifest(name, digestOf(body), body, OCI_INDEX)
    assert response.status_code == 201
    assert response.headers["OCI-Subject"] == subject.digest
    typed = registry.pushIndex(
        name, [child.descriptor()], subject=subject.descriptor(), artifactType=SBOM
    )
    listed = byDigest(referrersIndex(registry.referrers(name, subject.digest)))
    assert listed[digestOf(body)] == {
        "mediaType": OCI_INDEX,
        "digest": digestOf(body),
        "size": len(body),
        "annotations": {"org.example.kind": "index-referrer"},
    }
    assert listed[typed.digest]["artifactType"] == SBOM
    assert "annotations" not in listed[typed.digest]


# "Listing Referrers"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_listReferrers(registry: SpecClient, algorithm: str) -> None:
    """
    "Listing Referrers": 200 and an image index of a descriptor per manifest whose
    subject is C{<digest>}, each with the manifest's media type, digest and size, its
    C{artifactType} and its annotations.
    """
    name = registry.repository()
    subject = registry.pushImage(name, tag="app", algorithm=algorithm)
    annotations = {
        "org.opencontainers.image.created": "2024-01-01T14:42:55Z",
        "org.example.signature.fingerprint": "abcd",
    }
    signature = registry.pushArtifact(
        name, subject, SIGNATURE, algorithm=algorithm, annotations=annotations
    )
    sbom = registry.pushArtifact(name, subject, SBOM, algorithm=algorithm)
    listed = byDigest(referrersIndex(registry.referrers(name, subject.digest)))
    assert listed == {
        signature.digest: {
            "mediaType": OCI_MANIFEST,
            "digest": signature.digest,
            "size": signature.size,
            "artifactType": SIGNATURE,
            "annotations": annotations,
        },
        sbom.digest: {
            "mediaType": OCI_MANIFEST,
            "digest": sbom.digest,
            "size": sbom.size,
            "artifactType": SBOM,
        },
    }
    for digest in listed:
        assert registry.get(f"/v2/{name}/manifests/{digest}").status_code == 200


def test_artifactTypeFallsBackToConfigMediaType(registry: SpecClient) -> None:
    """
    "Listing Referrers": "If the artifactType is empty or missing in the image
    manifest, the value of artifactType MUST be set to the config descriptor mediaType
    value."
    """
    name = registry.repository()
    subject = registry.pushImage(name)
    missing = registry.pushArtifact(
        name, subject, artifactType=None, configMediaType="application/vnd.example.cfg.v1"
    )
    empty = registry.pushArtifact(
        name, subject, artifactType="", configMediaType="application/vnd.example.other.v1"
    )
    image = registry.pushImage(name, subject=subject.descriptor())
    listed = byDigest(referrersIndex(registry.referrers(name, subject.digest)))
    assert listed[missing.digest]["artifactType"] == "application/vnd.example.cfg.v1"
    assert listed[empty.digest]["artifactType"] == "application/vnd.example.other.v1"
    assert listed[image.digest]["artifactType"] == OCI_CONFIG


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_noReferrers(registry: SpecClient, algorithm: str) -> None:
    """
    "Listing Referrers": "If a query results in no matching referrers, an empty
    manifest list MUST be returned", and a registry supporting the API "MUST NOT return
    a 404": for a manifest nothing refers to, a digest not in the repository, and a
    repository that does not exist.
    """
    name = registry.repository()
    subject = registry.pushImage(name, algorithm=algorithm)
    missing = digestOf(os.urandom(8), algorithm)
    never = registry.repository("never")
    for repository, digest in ((name, subject.digest), (name, missing), (never, missing)):
        assert referrersIndex(registry.referrers(repository, digest)) == []


def test_referrerOfAnotherRepository(registry: SpecClient) -> None:
    """
    "Listing Referrers": each descriptor "is of an image manifest or index in the same
    <name> namespace".
    """
    first, second = registry.repository(), registry.repository()
    subject = registry.pushImage(first)
    registry.pushArtifact(first, subject)
    assert referrersIndex(registry.referrers(second, subject.digest)) == []
    registry.pushBlob(second, b"x")
    assert referrersIndex(registry.referrers(second, subject.digest)) == []


def test_onlyDirectReferrers(registry: SpecClient) -> None:
    """
    "Listing Referrers" lists the manifests whose subject is C{<digest>}: a referrer of
    a referrer is listed under its own subject, not under the first.
    """
    name = registry.repository()
    subject = registry.pushImage(name)
    signature = registry.pushArtifact(name, subject)
    countersignature = registry.pushArtifact(name, signature)
    assert [d["digest"] for d in referrersIndex(registry.referrers(name, subject.digest))] == [
        signature.digest
    ]
    assert [
        d["digest"] for d in referrersIndex(registry.referrers(name, signature.digest))
    ] == [countersignature.digest]


@pytest.mark.parametrize(
    "digest", ["sha256:abc", "sha256:" + "G" * 64, "md5:" + "0" * 32, "nonsense"]
)
def test_invalidDigest(registry: SpecClient, digest: str) -> None:
    """
    "Listing Referrers": "If the request is invalid, such as a <digest> with an invalid
    syntax, a 400 Bad Request MUST be returned" (C{DIGEST_INVALID}).
    """
    name = registry.repository()
    registry.pushImage(name)
    assertError(registry.referrers(name, digest), 400, "DIGEST_INVALID")


def test_invalidName(registry: SpecClient) -> None:
    """
    A C{<name>} outside the name grammar is 400 C{NAME_INVALID} here too.
    """
    assertError(registry.referrers("Bad..Name", digestOf(b"x")), 400, "NAME_INVALID")


def test_duplicatePushListedOnce(registry: SpecClient) -> None:
    """
    A referrer pushed twice (by digest and again by tag) is one manifest, listed once.
    """
    name = registry.repository()
    subject = registry.pushImage(name)
    artifact = registry.pushArtifact(name, subject)
    assert registry.putManifest(name, "again", artifact.body).status_code == 201
    listed = referrersIndex(registry.referrers(name, subject.digest))
    assert [d["digest"] for d in listed] == [artifact.digest]


# Filtering (end-12b)


def test_filterByArtifactType(registry: SpecClient) -> None:
    """
    "Listing Referrers": "The registry SHOULD support filtering on artifactType"; when
    applied, "the response MUST include a header OCI-Filters-Applied: artifactType".
    Without a filter there is no such header.
    """
    name = registry.repository()
    subject = registry.pushImage(name)
    signatures = {registry.pushArtifact(name, subject, SIGNATURE).digest for _ in range(2)}
    sbom = registry.pushArtifact(name, subject, SBOM)
    unfiltered = registry.referrers(name, subject.digest)
    assert "OCI-Filters-Applied" not in unfiltered.headers
    assert {d["digest"] for d in referrersIndex(unfiltered)} == signatures | {sbom.digest}
    filtered = registry.referrers(name, subject.digest, artifactType=SIGNATURE)
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    listed = referrersIndex(filtered)
    assert {d["digest"] for d in listed} == signatures
    assert all(d["artifactType"] == SIGNATURE for d in listed)
    none = registry.referrers(name, subject.digest, artifactType="application/x-none")
    assert none.headers["OCI-Filters-Applied"] == "artifactType"
    assert referrersIndex(none) == []


def test_filterBySeveralArtifactTypes(registry: SpecClient) -> None:
    """
    end-12b with C{artifactType} given more than once keeps referrers of any of those
    types; an empty C{artifactType} filters nothing (and no filter is announced).
    """
    name = registry.repository()
    subject = registry.pushImage(name)
    signature = registry.pushArtifact(name, subject, SIGNATURE)
    sbom = registry.pushArtifact(name, subject, SBOM)
    registry.pushArtifact(name, subject, "application/vnd.example.other")
    response = registry.get(
        f"/v2/{name}/referrers/{subject.digest}",
        params=[("artifactType", SIGNATURE), ("artifactType", SBOM)],
    )
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    assert {d["digest"] for d in referrersIndex(response)} == {signature.digest, sbom.digest}
    unfiltered = registry.referrers(name, subject.digest, artifactType="")
    assert "OCI-Filters-Applied" not in unfiltered.headers
    assert len(referrersIndex(unfiltered)) == 3


def test_filterMatchesConfigMediaTypeFallback(registry: SpecClient) -> None:
    """
    end-12b filters on the C{artifactType} the list reports, which for an image
    manifest without one is its config's media type.
    """
    name = registry.repository()
    subject = registry.pushImage(name)
    artifact = registry.pushArtifact(
        name, subject, artifactType=None, configMediaType="application/vnd.example.cfg.v1"
    )
    registry.pushArtifact(name, subject, SIGNATURE)
    response = registry.referrers(
        name, subject.digest, artifactType="application/vnd.example.cfg.v1"
    )
    assert [d["digest"] for d in referrersIndex(response)] == [artifact.digest]


def test_filterOnUnknownSubject(registry: SpecClient) -> None:
    """
    end-12b on a digest with no referrers: an empty list, the filter still applied.
    """
    name = registry.repository()
    response = registry.referrers(name, digestOf(b"none"), artifactType=SIGNATURE)
    assert referrersIndex(response) == []
    assert response.headers["OCI-Filters-Applied"] == "artifactType"


# Pagination: "A Link header MUST be included in the response when the descriptor list
# cannot be returned in a single manifest."


def _collect(
    registry: SpecClient, first: requests.Response
) -> tuple[list[dict[str, Any]], int]:
    """
    Every descriptor of a referrers list, following C{Link} from its first page; and
    how many pages there were.
    """
    descriptors = referrersIndex(first)
    pages = 1
    link = nextLink(first)
    while link is not None:
        response = registry.get(link)
        descriptors.extend(referrersIndex(response))
        link = nextLink(response)
        pages += 1
        assert pages < 50
    return descriptors, pages


def test_pagination(registry: SpecClient) -> None:
    """
    "Listing Referrers": a list too large for one manifest is paged with C{Link: <...>;
    rel="next"}; each page is an image index small enough to read as a manifest (4 MiB,
    "Pushing Manifests"); following the links lists every referrer once.  A filter
    carries over to the next pages.
    """
    name = registry.repository()
    subject = registry.pushImage(name)
    big = "x" * (300 * 1024)
    pushed = {
        registry.pushArtifact(
            name, subject, SIGNATURE if i % 2 else SBOM, annotations={"big": big, "i": str(i)}
        ).digest: SIGNATURE if i % 2 else SBOM
        for i in range(8)
    }
    first = registry.referrers(name, subject.digest)
    assert nextLink(first) is not None
    descriptors, pages = _collect(registry, first)
    assert pages > 1
    assert set(byDigest(descriptors)) == set(pushed)
    for d in descriptors:
        assert d["annotations"]["big"] == big
    filtered = registry.referrers(name, subject.digest, artifactType=SIGNATURE)
    descriptors, _ = _collect(registry, filtered)
    assert set(byDigest(descriptors)) == {d for d, t in pushed.items() if t == SIGNATURE}


def test_pageSize(registry: SpecClient) -> None:
    """
    Each page of a paged referrers list stays under the 4 MiB a client reads of a
    manifest.
    """
    name = registry.repository()
    subject = registry.pushImage(name)
    for i in range(6):
        registry.pushArtifact(name, subject, annotations={"big": "y" * (900 * 1024), "i": str(i)})
    link: str | None = f"/v2/{name}/referrers/{subject.digest}"
    while link is not None:
        response = registry.get(link)
        assert len(response.content) < 4 * 1024 * 1024
        assert referrersIndex(response)
        link = nextLink(response)


# The list stays right through deletions ("Deleting Manifests") and restarts.


def test_deletedReferrerIsNotListed(registry: SpecClient) -> None:
    """
    "Deleting Manifests": a referrer deleted by digest leaves the list at once; one only
    untagged is still a manifest with that subject, so it stays listed.
    """
    name = registry.repository()
    subject = registry.pushImage(name)
    deleted = registry.pushArtifact(name, subject, tag="sig1")
    untagged = registry.pushArtifact(name, subject, tag="sig2")
    assert registry.delete(f"/v2/{name}/manifests/{deleted.digest}").status_code == 202
    assert registry.delete(f"/v2/{name}/manifests/sig2").status_code == 202
    listed = referrersIndex(registry.referrers(name, subject.digest))
    assert [d["digest"] for d in listed] == [untagged.digest]
    assert referrersIndex(registry.referrers(name, subject.digest, artifactType=SIGNATURE))


def test_deletedSubjectKeepsReferrers(registry: SpecClient) -> None:
    """
    "Deleting Manifests" of a subject: its referrers are manifests of their own, still
    in the repository with that C{subject}, so they are still listed (the list answers
    for any digest, "Listing Referrers"), and still when the subject is pushed again.
    """
    name = registry.repository()
    subject = registry.pushImage(name, tag="app")
    artifact = registry.pushArtifact(name, subject)
    assert registry.delete(f"/v2/{name}/manifests/{subject.digest}").status_code == 202
    assertError(registry.get(f"/v2/{name}/manifests/app"), 404, "MANIFEST_UNKNOWN")
    listed = referrersIndex(registry.referrers(name, subject.digest))
    assert [d["digest"] for d in listed] == [artifact.digest]
    assert registry.get(f"/v2/{name}/manifests/{artifact.digest}").status_code == 200
    assert registry.putManifest(name, "app", subject.body).status_code == 201
    listed = referrersIndex(registry.referrers(name, subject.digest))
    assert [d["digest"] for d in listed] == [artifact.digest]


def test_referrersSurviveRestart(registry: SpecClient) -> None:
    """
    The referrers list after a restart is the one before it: referrers with their
    C{artifactType} and annotations, for sha256 and sha512 subjects, with deleted
    referrers still gone.
    """
    name = registry.repository()
    expected: dict[str, list[dict[str, Any]]] = {}
    subjects: list[Pushed] = []
    for algorithm in ALGORITHMS:
        subject = registry.pushImage(name, algorithm=algorithm)
        subjects.append(subject)
        registry.pushArtifact(
            name, subject, SIGNATURE, algorithm=algorithm, annotations={"a": algorithm}
        )
        registry.pushArtifact(name, subject, None, algorithm=algorithm)
        gone = registry.pushArtifact(name, subject, SBOM, algorithm=algorithm)
        assert registry.delete(f"/v2/{name}/manifests/{gone.digest}").status_code == 202
        expected[subject.digest] = referrersIndex(registry.referrers(name, subject.digest))
        assert len(expected[subject.digest]) == 2
    registry.restart()
    for subject in subjects:
        after = referrersIndex(registry.referrers(name, subject.digest))
        assert byDigest(after) == byDigest(expected[subject.digest])
        filtered = registry.referrers(name, subject.digest, artifactType=SIGNATURE)
        assert [d["artifactType"] for d in referrersIndex(filtered)] == [SIGNATURE]
