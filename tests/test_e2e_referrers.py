"""
End to end: a signature-like artifact attached to an image with a real client, the C{oras}
Python SDK, and found again through the referrers API (C{distribution-spec.md}, "Pushing
Manifests with Subject" and "Listing Referrers"), with and without an C{artifactType}
filter, before and after the registry restarts on the same data directory.

The SDK pushes (blobs, then the manifest with its C{subject}) and pulls; it has no call
for the referrers API, so the lists are read with raw HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from .daemon import RegistryDaemon
from .spec_client import OCI_INDEX, OCI_MANIFEST, stopDaemon

oras_client = pytest.importorskip("oras.client")
oras_oci = pytest.importorskip("oras.oci")

SIGNATURE_TYPE = "application/vnd.example.signature.v1"
SBOM_TYPE = "application/vnd.example.sbom.v1"
REPOSITORY = "e2e/app"


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[RegistryDaemon]:
    """
    A fresh registry daemon, stopped after the test.
    """
    registry = RegistryDaemon(tmp_path / "data", tmp_path / "ocid.log")
    registry.start()
    try:
        yield registry
    finally:
        if registry.process is not None:
            stopDaemon(registry)


def orasPush(
    daemon: RegistryDaemon,
    tmp_path: Path,
    tag: str,
    payload: bytes,
    payloadType: str,
    configType: str | None = None,
    **kwargs: Any,
) -> requests.Response:
    """
    Push a one-file artifact with the oras SDK to C{REPOSITORY:tag}; return the answer to
    its manifest PUT.
    """
    client = oras_client.OrasClient(hostname=daemon.hostPort, insecure=True)
    path = tmp_path / f"{tag}.bin"
    path.write_bytes(payload)
    if configType is not None:
        config = tmp_path / f"{tag}.config.json"
        config.write_bytes(b"{}")
        kwargs["manifest_config"] = f"{config}:{configType}"
    response: requests.Response = client.push(
        files=[f"{path}:{payloadType}"],
        target=f"{daemon.hostPort}/{REPOSITORY}:{tag}",
        disable_path_validation=True,
        quiet=True,
        **kwargs,
    )
    assert response.status_code == 201, response.text
    return response


def referrers(daemon: RegistryDaemon, digest: str, **params: str) -> requests.Response:
    """
    The referrers list of C{digest} in C{REPOSITORY}, checked to be the spec's answer:
    200 and an image index.
    """
    response = requests.get(
        f"{daemon.url}/v2/{REPOSITORY}/referrers/{digest}", params=params, timeout=30
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == OCI_INDEX
    index = response.json()
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI_INDEX
    return response


def descriptors(response: requests.Response) -> dict[str, dict[str, Any]]:
    """
    The descriptors of a referrers answer, by digest.
    """
    return {d["digest"]: d for d in response.json()["manifests"]}


def test_signatureThroughReferrersAcrossRestart(
    daemon: RegistryDaemon, tmp_path: Path
) -> None:
    """
    oras pushes an image, then a signature and an SBOM whose C{subject} is the image:
    each manifest PUT is answered with C{OCI-Subject}; the referrers list has both, with
    their C{artifactType} (here the config media type oras sets) and annotations; the
    C{artifactType} filter keeps only the signature and says so in
    C{OCI-Filters-Applied}.  After a restart on the same data the lists are the same,
    and oras still pulls the signature by digest; an SBOM deleted before a second
    restart stays gone from the list.
    """
    orasPush(daemon, tmp_path, "v1", b"the application", "application/vnd.example.app")
    head = requests.head(
        f"{daemon.url}/v2/{REPOSITORY}/manifests/v1",
        headers={"Accept": OCI_MANIFEST},
        timeout=30,
    )
    assert head.status_code == 200
    subject = oras_oci.Subject(
        mediaType=head.headers["Content-Type"],
        digest=head.headers["Docker-Content-Digest"],
        size=int(head.headers["Content-Length"]),
    )

    signed = orasPush(
        daemon,
        tmp_path,
        "signature",
        b"signature bytes",
        "application/vnd.example.signature.payload",
        configType=SIGNATURE_TYPE,
        subject=subject,
        manifest_annotations={"org.example.signer": "alice"},
    )
    assert signed.headers["OCI-Subject"] == subject.digest
    signature = signed.headers["Docker-Content-Digest"]
    sbomPushed = orasPush(
        daemon,
        tmp_path,
        "sbom",
        b'{"packages": []}',
        "application/spdx+json",
        configType=SBOM_TYPE,
        subject=subject,
    )
    assert sbomPushed.headers["OCI-Subject"] == subject.digest
    sbom = sbomPushed.headers["Docker-Content-Digest"]

    def check() -> None:
        everything = referrers(daemon, subject.digest)
        assert "OCI-Filters-Applied" not in everything.headers
        listed = descriptors(everything)
        assert set(listed) == {signature, sbom}
        assert listed[signature]["artifactType"] == SIGNATURE_TYPE
        assert listed[signature]["mediaType"] == OCI_MANIFEST
        assert listed[signature]["annotations"] == {"org.example.signer": "alice"}
        assert listed[sbom]["artifactType"] == SBOM_TYPE
        filtered = referrers(daemon, subject.digest, artifactType=SIGNATURE_TYPE)
        assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
        assert list(descriptors(filtered)) == [signature]

    check()
    stopDaemon(daemon)
    daemon.start()
    check()

    client = oras_client.OrasClient(hostname=daemon.hostPort, insecure=True)
    manifest = client.get_manifest(f"{daemon.hostPort}/{REPOSITORY}@{signature}")
    assert manifest["subject"]["digest"] == subject.digest
    pulled = client.pull(
        target=f"{daemon.hostPort}/{REPOSITORY}@{signature}", outdir=str(tmp_path / "out")
    )
    assert [Path(p).read_bytes() for p in pulled] == [b"signature bytes"]

    deleted = requests.delete(f"{daemon.url}/v2/{REPOSITORY}/manifests/{sbom}", timeout=30)
    assert deleted.status_code == 202
    stopDaemon(daemon)
    daemon.start()
    assert list(descriptors(referrers(daemon, subject.digest))) == [signature]
    assert descriptors(referrers(daemon, subject.digest, artifactType=SBOM_TYPE)) == {}
    raw = requests.get(
        f"{daemon.url}/v2/{REPOSITORY}/manifests/{signature}",
        headers={"Accept": OCI_MANIFEST},
        timeout=30,
    )
    assert json.loads(raw.content)["config"]["mediaType"] == SIGNATURE_TYPE
