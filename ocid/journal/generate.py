"""
Data directories with very many tags, written straight through the journal's own code
(no HTTP, no running registry), for benchmarks and tests of restart time.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

from ocid.digest import Digest
from ocid.index import RegistryIndex
from ocid.journal.journal import replay, rewrite
from ocid.journal.records import LinkBlob, PutManifest, Record, TagAll
from ocid.manifest import OCI_MANIFEST, parseManifest
from ocid.storage.blobs import BlobStore

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

#: Tags per L{TagAll} record written.
_TAGS_PER_RECORD = 250_000


def smallImage() -> tuple[bytes, bytes, bytes]:
    """
    The config, layer and manifest of one small OCI image (a gzipped tar holding one
    file), the same bytes every time.
    """
    tarBytes = io.BytesIO()
    with tarfile.open(fileobj=tarBytes, mode="w", format=tarfile.PAX_FORMAT) as tar:
        content = b"hello from ocid.journal.generate\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(content))
    layer = gzip.compress(tarBytes.getvalue(), mtime=0)
    config = _json(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {
                "type": "layers",
                "diff_ids": [str(Digest.of(tarBytes.getvalue()))],
            },
            "config": {},
        }
    )
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _descriptor(OCI_CONFIG, config),
            "layers": [_descriptor(OCI_LAYER_GZIP, layer)],
        }
    )
    return config, layer, manifest


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _descriptor(mediaType: str, data: bytes) -> dict[str, object]:
    return {"mediaType": mediaType, "digest": str(Digest.of(data)), "size": len(data)}


def writeManyTags(dataPath: Path, repository: str, count: int) -> None:
    """
    Make C{dataPath} a registry data directory where C{repository} holds one small OCI
    image (L{smallImage}: config, one layer, manifest) tagged C{t0} ... C{t<count-1>}.

    The blob files are written where L{BlobStore} keeps them, and the journal is
    rewritten as one snapshot (holding whatever the directory held before, plus the
    image and its tags) and an empty log, exactly as compaction leaves it: a restart
    then loads the snapshot.  One million tags take a few seconds.

    No registry may be serving C{dataPath} meanwhile.

    Example (a shell)::

        python -c 'from pathlib import Path; from ocid.journal.generate import
        writeManyTags; writeManyTags(Path("/tmp/d"), "bench/manytags", 1_000_000)'

    @param dataPath: the data directory (created if needed, else added to).
    @param repository: a valid repository name.
    @param count: how many tags.
    """
    config, layer, manifestBytes = smallImage()
    blobs = BlobStore(dataPath / "blobs")
    blobs.root.mkdir(parents=True, exist_ok=True)
    digests = [Digest.of(data) for data in (config, layer, manifestBytes)]
    for digest, data in zip(digests, (config, layer, manifestBytes), strict=True):
        blobs.write(digest, data)
    manifest = parseManifest(manifestBytes, OCI_MANIFEST)
    manifestDigest = digests[2]
    records: list[Record] = [
        LinkBlob(repository, digests[0]),
        LinkBlob(repository, digests[1]),
        PutManifest.describing(repository, manifestDigest, len(manifestBytes), manifest),
    ]
    tags = [f"t{i}" for i in range(count)]
    for start in range(0, count, _TAGS_PER_RECORD):
        records.append(
            TagAll(repository, manifestDigest, tuple(tags[start : start + _TAGS_PER_RECORD]))
        )
    directory = dataPath / "journal"
    index = RegistryIndex()
    if directory.exists():
        replay(directory, index)
    index.apply(records)
    rewrite(directory, index)
