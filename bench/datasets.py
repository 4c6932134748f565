"""
The data the scenarios push: big random blob files, and small distinct OCI images.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIB = 1 << 20
GIB = 1 << 30

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def sha256Digest(data: bytes) -> str:
    """
    The C{sha256:<hex>} digest of C{data}.
    """
    return "sha256:" + hashlib.sha256(data).hexdigest()


SUFFIX_SIZE = 32


@dataclass(frozen=True)
class BlobFile:
    """
    A blob too big to hold in memory: the content of a local file followed by a short
    random suffix that makes it distinct from every other blob pushed.

    @ivar path: the file.
    @ivar fileSize: how many bytes of the file the blob starts with.
    @ivar suffix: the bytes after them.
    @ivar digest: the C{sha256:<hex>} of the whole blob.
    """

    path: Path
    fileSize: int
    suffix: bytes
    digest: str

    @property
    def size(self) -> int:
        """
        The blob's size in bytes.
        """
        return self.fileSize + len(self.suffix)


@dataclass(frozen=True)
class BlobSource:
    """
    A random file written once, from which distinct big blobs are made cheaply: each is
    the file plus a random suffix, its digest finished from the file's saved sha256 state.
    """

    path: Path
    fileSize: int
    state: Any = field(repr=False, compare=False)

    def variant(self) -> BlobFile:
        """
        A new distinct blob: the file and a fresh random suffix.
        """
        suffix = os.urandom(SUFFIX_SIZE)
        hasher = self.state.copy()
        hasher.update(suffix)
        return BlobFile(self.path, self.fileSize, suffix, "sha256:" + hasher.hexdigest())


def makeBlobSource(path: Path, size: int, timeLimit: float = 600.0) -> BlobSource:
    """
    Write C{size} random bytes to C{path}, one MiB at a time, keeping their sha256 state.

    @raise TimeoutError: if that takes more than C{timeLimit} seconds.
    """
    hasher = hashlib.sha256()
    deadline = time.monotonic() + timeLimit
    remaining = size
    with path.open("wb") as f:
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"writing {path} took over {timeLimit}s")
            piece = os.urandom(min(MIB, remaining))
            hasher.update(piece)
            f.write(piece)
            remaining -= len(piece)
    return BlobSource(path, size, hasher)


def reclaimBlob(dataDir: Path, blob: BlobFile, timeLimit: float = 60.0) -> int:
    """
    Delete the stored copies of C{blob} under a registry's C{dataDir} (files of its size
    whose path names its hex digest), to keep the disk from filling up with blobs that
    are never read again; how many files were deleted.
    """
    hexDigest = blob.digest.split(":", 1)[1]
    deadline = time.monotonic() + timeLimit
    deleted = 0
    for directory, _, files in os.walk(dataDir):
        if time.monotonic() > deadline:
            break
        for name in files:
            path = os.path.join(directory, name)
            if hexDigest in path:
                try:
                    if os.stat(path).st_size == blob.size:
                        os.unlink(path)
                        deleted += 1
                except FileNotFoundError:
                    continue
    return deleted


@dataclass(frozen=True)
class Blob:
    """
    A small blob held in memory.
    """

    data: bytes
    digest: str
    mediaType: str

    @classmethod
    def of(cls, data: bytes, mediaType: str) -> Blob:
        """
        The blob of C{data}, digest computed.
        """
        return cls(data, sha256Digest(data), mediaType)

    def descriptor(self) -> dict[str, object]:
        """
        The OCI descriptor of this blob.
        """
        return {"mediaType": self.mediaType, "digest": self.digest, "size": len(self.data)}


@dataclass(frozen=True)
class Image:
    """
    A small OCI image: a config blob, layer blobs, and a manifest referencing them.
    """

    config: Blob
    layers: tuple[Blob, ...]
    manifest: bytes
    manifestDigest: str

    @property
    def blobs(self) -> tuple[Blob, ...]:
        """
        The config and layer blobs, in push order (layers first, as clients do).
        """
        return (*self.layers, self.config)


def makeImage(layerCount: int = 2, layerSize: int = 4096) -> Image:
    """
    A new OCI image whose layers are random bytes, so that every image is distinct.
    """
    layers = tuple(Blob.of(os.urandom(layerSize), OCI_LAYER) for _ in range(layerCount))
    config = Blob.of(
        json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {
                    "type": "layers",
                    "diff_ids": [layer.digest for layer in layers],
                },
            },
            separators=(",", ":"),
        ).encode(),
        OCI_CONFIG,
    )
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [layer.descriptor() for layer in layers],
        },
        separators=(",", ":"),
    ).encode()
    return Image(config, layers, manifest, sha256Digest(manifest))
