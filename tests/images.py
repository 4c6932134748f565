"""
Build real OCI images on disk, as an OCI Image Layout directory, for end-to-end tests
with real registry clients (see C{image-image-layout.md}: "Content", "Blobs",
"oci-layout file", "index.json file").

Layers are gzip'd tar archives of random bytes, so that every test run pushes content
that no registry has seen before.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import attrs

OCI_LAYOUT = "application/vnd.oci.layout.header.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
REF_NAME = "org.opencontainers.image.ref.name"


def sha256Digest(data: bytes) -> str:
    """
    The C{sha256:...} digest of C{data}.
    """
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonicalJSON(value: Any) -> bytes:
    """
    Serialize C{value} as compact JSON with sorted keys.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


@attrs.frozen
class Blob:
    """
    Some content and the descriptor that points at it.
    """

    mediaType: str
    data: bytes = attrs.field(repr=False)

    @property
    def digest(self) -> str:
        """
        The content's digest.
        """
        return sha256Digest(self.data)

    @property
    def size(self) -> int:
        """
        The content's length in bytes.
        """
        return len(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        """
        An OCI descriptor (C{mediaType}, C{digest}, C{size}) for this content.
        """
        return {
            "mediaType": self.mediaType,
            "digest": self.digest,
            "size": self.size,
            **extra,
        }


@attrs.frozen
class Image:
    """
    One single-platform image: an OCI image manifest, its config and its layers.
    """

    manifest: Blob
    config: Blob
    layers: tuple[Blob, ...]
    platform: dict[str, str]

    @property
    def blobs(self) -> tuple[Blob, ...]:
        """
        The config and the layers: every blob the manifest references.
        """
        return (self.config, *self.layers)


@attrs.frozen
class MultiArchImage:
    """
    An OCI image index over several single-platform images.
    """

    index: Blob
    images: tuple[Image, ...]


@attrs.frozen
class ImageSet:
    """
    The images written into one OCI Image Layout directory.

    @ivar layoutPath: the layout directory.
    @ivar single: a 3-layer image, tagged C{single} in the layout.
    @ivar multi: a 2-platform index, tagged C{multi} in the layout.
    """

    layoutPath: Path
    single: Image
    multi: MultiArchImage


def randomLayer(size: int, files: int = 3) -> tuple[Blob, str]:
    """
    A gzip'd tar layer holding C{files} files of random bytes, C{size} bytes in all.

    @return: the compressed layer and the digest of the uncompressed tar (its diffID).
    """
    tarBuffer = io.BytesIO()
    with tarfile.open(fileobj=tarBuffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directory = tarfile.TarInfo("data")
        directory.type = tarfile.DIRTYPE
        directory.mode = 0o755
        tar.addfile(directory)
        for i in range(files):
            content = os.urandom(size // files)
            info = tarfile.TarInfo(f"data/file-{i}.bin")
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    uncompressed = tarBuffer.getvalue()
    compressed = gzip.compress(uncompressed, compresslevel=1, mtime=0)
    return Blob(OCI_LAYER_GZIP, compressed), sha256Digest(uncompressed)


def buildImage(
    layerSizes: tuple[int, ...], architecture: str = "amd64", os_: str = "linux"
) -> Image:
    """
    A single-platform OCI image with one random layer for each of C{layerSizes}.
    """
    layers: list[Blob] = []
    diffIDs: list[str] = []
    for size in layerSizes:
        layer, diffID = randomLayer(size)
        layers.append(layer)
        diffIDs.append(diffID)
    config = Blob(
        OCI_CONFIG,
        canonicalJSON(
            {
                "architecture": architecture,
                "os": os_,
                "config": {
                    "Env": ["PATH=/usr/bin:/bin"],
                    "Cmd": ["/data/file-0.bin"],
                },
                "rootfs": {"type": "layers", "diff_ids": diffIDs},
                "history": [
                    {"created_by": f"ocid e2e test layer {i}"} for i in range(len(layers))
                ],
            }
        ),
    )
    manifest = Blob(
        OCI_MANIFEST,
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config.descriptor(),
                "layers": [layer.descriptor() for layer in layers],
                "annotations": {"org.opencontainers.image.title": "ocid-e2e"},
            },
            indent=3,
        ).encode(),
    )
    return Image(
        manifest=manifest,
        config=config,
        layers=tuple(layers),
        platform={"architecture": architecture, "os": os_},
    )


def buildMultiArchImage(layerSizes: tuple[int, ...]) -> MultiArchImage:
    """
    An OCI image index over a linux/amd64 and a linux/arm64 image.
    """
    images = tuple(buildImage(layerSizes, architecture=arch) for arch in ("amd64", "arm64"))
    index = Blob(
        OCI_INDEX,
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    image.manifest.descriptor(platform=image.platform) for image in images
                ],
            },
            indent=2,
        ).encode(),
    )
    return MultiArchImage(index=index, images=images)


def writeBlob(layoutPath: Path, blob: Blob) -> None:
    """
    Store C{blob} under C{blobs/sha256/} of an OCI Image Layout ("Blobs").
    """
    algorithm, encoded = blob.digest.split(":", 1)
    path = layoutPath / "blobs" / algorithm / encoded
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob.data)


def writeLayout(layoutPath: Path, refs: dict[str, Blob], blobs: list[Blob]) -> None:
    """
    Write an OCI Image Layout: C{oci-layout}, C{index.json} naming each of C{refs}
    with an C{org.opencontainers.image.ref.name} annotation, and every blob.
    """
    layoutPath.mkdir(parents=True, exist_ok=True)
    (layoutPath / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    for blob in blobs:
        writeBlob(layoutPath, blob)
    for blob in refs.values():
        writeBlob(layoutPath, blob)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            blob.descriptor(annotations={REF_NAME: name}) for name, blob in refs.items()
        ],
    }
    (layoutPath / "index.json").write_text(json.dumps(index))


def buildTestImages(
    layoutPath: Path,
    layerSizes: tuple[int, ...] = (48 * 1024, 512 * 1024, 3 * 1024 * 1024),
    multiLayerSizes: tuple[int, ...] = (32 * 1024, 256 * 1024),
) -> ImageSet:
    """
    Write a 3-layer image (ref C{single}) and a 2-platform index (ref C{multi}) into a
    new OCI Image Layout at C{layoutPath}.
    """
    single = buildImage(layerSizes)
    multi = buildMultiArchImage(multiLayerSizes)
    blobs = [*single.blobs]
    for image in multi.images:
        blobs.extend(image.blobs)
        blobs.append(image.manifest)
    writeLayout(layoutPath, {"single": single.manifest, "multi": multi.index}, blobs=blobs)
    return ImageSet(layoutPath=layoutPath, single=single, multi=multi)


@attrs.frozen
class LayoutContent:
    """
    What one ref of an OCI Image Layout resolves to, read back from disk.

    @ivar manifest: the bytes of the manifest (or index) the ref names.
    @ivar mediaType: its media type, from the C{index.json} descriptor.
    @ivar blobs: every blob in the layout, by digest.
    """

    manifest: bytes
    mediaType: str
    blobs: dict[str, bytes]

    @property
    def digest(self) -> str:
        """
        The digest of the manifest the ref names.
        """
        return sha256Digest(self.manifest)


def readLayout(layoutPath: Path, ref: str) -> LayoutContent:
    """
    Read back the manifest that C{ref} names in the layout at C{layoutPath}, and every
    blob in the layout, checking that each blob's content matches its file name.
    """
    index = json.loads((layoutPath / "index.json").read_text())
    matches = [
        descriptor
        for descriptor in index["manifests"]
        if (descriptor.get("annotations") or {}).get(REF_NAME) == ref
    ]
    assert len(matches) == 1, f"ref {ref!r} in {index!r}"
    blobs: dict[str, bytes] = {}
    for algorithmDir in (layoutPath / "blobs").iterdir():
        for path in algorithmDir.iterdir():
            digest = f"{algorithmDir.name}:{path.name}"
            data = path.read_bytes()
            assert sha256Digest(data) == digest, f"{path} does not match its name"
            blobs[digest] = data
    descriptor = matches[0]
    manifest = blobs[descriptor["digest"]]
    assert len(manifest) == descriptor["size"]
    return LayoutContent(manifest=manifest, mediaType=descriptor["mediaType"], blobs=blobs)
