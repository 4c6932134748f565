"""
A minimal registry client for tests (with C{requests}): push blobs and images the way the
spec describes ("Pushing blobs", "Pushing Manifests"), and snapshot a data directory to
prove what a test did or did not change on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import attrs
import requests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def digestOf(data: bytes) -> str:
    """
    The C{sha256:...} digest of C{data}.
    """
    return "sha256:" + hashlib.sha256(data).hexdigest()


@attrs.frozen
class PushedImage:
    """
    An image pushed by L{pushImage}: its manifest bytes and every blob.
    """

    name: str
    tag: str
    manifest: bytes = attrs.field(repr=False)
    blobs: dict[str, bytes] = attrs.field(repr=False)

    @property
    def digest(self) -> str:
        return digestOf(self.manifest)


def pushBlob(
    session: requests.Session, url: str, name: str, data: bytes, timeout: float = 60
) -> requests.Response:
    """
    Push C{data} as one blob of repository C{name} with a POST then a single PUT
    ("Pushing a blob monolithically", POST then PUT); return the closing response.
    """
    started = session.post(f"{url}/v2/{name}/blobs/uploads/", timeout=timeout)
    if started.status_code != 202:
        return started
    location = started.headers["Location"]
    separator = "&" if "?" in location else "?"
    return session.put(
        f"{url}{location}{separator}digest={digestOf(data)}",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=timeout,
    )


def imageManifest(config: bytes, layers: list[bytes]) -> bytes:
    """
    The bytes of an OCI image manifest for C{config} and C{layers}.
    """
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": digestOf(config),
            "size": len(config),
        },
        "layers": [
            {"mediaType": OCI_LAYER, "digest": digestOf(layer), "size": len(layer)}
            for layer in layers
        ],
    }
    return json.dumps(manifest, sort_keys=True).encode()


def pushImage(
    session: requests.Session,
    url: str,
    name: str,
    tag: str,
    layers: list[bytes],
    config: bytes | None = None,
) -> PushedImage:
    """
    Push C{layers} and a config as blobs, then the manifest under C{tag}; raise if any
    step is refused.
    """
    if config is None:
        config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
    blobs = {digestOf(b): b for b in [config, *layers]}
    for data in blobs.values():
        response = pushBlob(session, url, name, data)
        assert response.status_code == 201, (response.status_code, response.text)
    manifest = imageManifest(config, layers)
    response = session.put(
        f"{url}/v2/{name}/manifests/{tag}",
        data=manifest,
        headers={"Content-Type": OCI_MANIFEST},
        timeout=60,
    )
    assert response.status_code == 201, (response.status_code, response.text)
    return PushedImage(name, tag, manifest, blobs)


def checkImage(session: requests.Session, url: str, image: PushedImage) -> None:
    """
    Assert that C{image} pulls back byte for byte: its tag, its manifest and every blob.
    """
    response = session.get(
        f"{url}/v2/{image.name}/manifests/{image.tag}",
        headers={"Accept": OCI_MANIFEST},
        timeout=60,
    )
    assert response.status_code == 200, (image.name, response.status_code, response.text)
    assert response.content == image.manifest
    assert response.headers["Docker-Content-Digest"] == image.digest
    for digest, data in image.blobs.items():
        blob = session.get(f"{url}/v2/{image.name}/blobs/{digest}", timeout=60)
        assert blob.status_code == 200, (image.name, digest, blob.status_code)
        assert blob.content == data, (image.name, digest)


def snapshot(root: Path) -> dict[str, str]:
    """
    Every entry under C{root}: relative path to the sha256 of a file's bytes, or to
    C{"dir"} for a directory.
    """
    entries: dict[str, str] = {}
    for directory, dirnames, filenames in os.walk(root):
        base = Path(directory)
        for d in dirnames:
            entries[str((base / d).relative_to(root))] = "dir"
        for f in filenames:
            path = base / f
            entries[str(path.relative_to(root))] = hashlib.sha256(
                path.read_bytes()
            ).hexdigest()
    return entries


def residentBytes(pid: int) -> int:
    """
    The resident set size of process C{pid} (C{VmRSS} in C{/proc/<pid>/status}).
    """
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"no VmRSS for process {pid}")
