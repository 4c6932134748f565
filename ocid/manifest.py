"""
Parsing and validating pushed manifests: OCI image manifests and indexes (OCI Image Spec,
"Image Manifest", "Image Index", "Descriptor"), Docker image manifests V2 schema 2 and manifest
lists.  The registry stores the exact bytes pushed; this only reads what it must check and
what the referrers API reports.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import attrs

from ocid.digest import Digest
from ocid.errors import MANIFEST_INVALID, RegistryError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    }
)

#: Manifest types that list other manifests.
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
#: Manifest types that describe one image or artifact.
IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
MANIFEST_TYPES = INDEX_TYPES | IMAGE_TYPES

#: The largest manifest accepted ("Pushing Manifests": at least 4 megabytes).
MAX_MANIFEST_SIZE = 4 * 1024 * 1024


@attrs.frozen
class Descriptor:
    """
    The parts of a descriptor the registry checks.

    @ivar external: whether the content may live elsewhere (it has C{urls}, as
        non-distributable layers do) or is embedded (it has C{data}), so it need not have
        been pushed here.
    """

    mediaType: str
    digest: Digest
    size: int
    external: bool = False
    platform: dict[str, Any] | None = attrs.field(default=None, eq=False)


@attrs.frozen
class Manifest:
    """
    A parsed, valid manifest.

    @ivar mediaType: its media type, as served in C{Content-Type}.
    @ivar blobs: the config and layer descriptors of an image manifest.
    @ivar manifests: the child manifest descriptors of an index.
    @ivar subject: the C{subject} descriptor, if any.
    @ivar artifactType: what the referrers API reports for it.
    @ivar annotations: its annotations.
    """

    mediaType: str
    blobs: tuple[Descriptor, ...]
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None
    artifactType: str | None
    annotations: dict[str, str] | None = attrs.field(eq=False)

    def references(self) -> tuple[Descriptor, ...]:
        """
        Every descriptor whose content must be in the repository for this manifest to be
        pullable: blobs (but not external ones) and child manifests.
        """
        return tuple(d for d in self.blobs if not d.external) + self.manifests


def bareMediaType(value: str | None) -> str | None:
    """
    A C{Content-Type} value without parameters, lowercased; C{None} for none.
    """
    if value is None:
        return None
    bare = value.split(";", 1)[0].strip().lower()
    return bare or None


def _invalid(message: str, **detail: Any) -> RegistryError:
    return RegistryError(MANIFEST_INVALID, message, detail=detail or None)


def _string(obj: dict[str, Any], key: str, where: str, required: bool = False) -> Any:
    value = obj.get(key)
    if value is None:
        if required:
            raise _invalid(f"{where}: {key} is required")
        return None
    if not isinstance(value, str):
        raise _invalid(f"{where}: {key} must be a string")
    return value


def _annotations(obj: dict[str, Any], where: str) -> dict[str, str] | None:
    value = obj.get("annotations")
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _invalid(f"{where}: annotations must map strings to strings")
    return value


def parseDescriptor(value: Any, where: str) -> Descriptor:
    """
    Validate one descriptor object.
    """
    if not isinstance(value, dict):
        raise _invalid(f"{where} must be a descriptor object")
    mediaType = _string(value, "mediaType", where, required=True)
    digestText = _string(value, "digest", where, required=True)
    try:
        digest = Digest.parse(digestText)
    except RegistryError:
        raise _invalid(f"{where}: invalid digest", digest=digestText[:200]) from None
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid(f"{where}: size must be a non-negative integer")
    urls = value.get("urls")
    if urls is not None and (
        not isinstance(urls, list) or not all(isinstance(u, str) for u in urls)
    ):
        raise _invalid(f"{where}: urls must be a list of strings")
    data = value.get("data")
    if data is not None:
        if not isinstance(data, str):
            raise _invalid(f"{where}: data must be base64 text")
        try:
            content = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise _invalid(f"{where}: data is not valid base64") from None
        if len(content) != size or Digest.of(content, digest.algorithm) != digest:
            raise _invalid(f"{where}: data does not match its digest and size")
    _annotations(value, where)
    _string(value, "artifactType", where)
    platform = value.get("platform")
    if platform is not None and not isinstance(platform, dict):
        raise _invalid(f"{where}: platform must be an object")
    return Descriptor(
        mediaType=mediaType,
        digest=digest,
        size=size,
        external=bool(urls) or data is not None,
        platform=platform,
    )


def _descriptors(obj: dict[str, Any], key: str) -> tuple[Descriptor, ...]:
    value = obj.get(key)
    if not isinstance(value, list):
        raise _invalid(f"{key} must be a list of descriptors")
    return tuple(parseDescriptor(v, f"{key}[{i}]") for i, v in enumerate(value))


def _inferType(obj: dict[str, Any]) -> str | None:
    if "manifests" in obj:
        return OCI_INDEX
    if "config" in obj or "layers" in obj:
        return OCI_MANIFEST
    return None


def parseManifest(body: bytes, contentType: str | None) -> Manifest:
    """
    Parse and validate a pushed manifest.

    @param contentType: the request's C{Content-Type}, if any.
    @raise RegistryError: C{MANIFEST_INVALID} for anything malformed, for schema 1, or for a
        C{Content-Type} that disagrees with the manifest's C{mediaType}.
    """
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise _invalid("manifest is not valid JSON") from None
    except RecursionError:
        raise _invalid("manifest is nested too deeply") from None
    if not isinstance(obj, dict):
        raise _invalid("manifest is not a JSON object")
    declared = _string(obj, "mediaType", "manifest")
    header = bareMediaType(contentType)
    if header in ("application/octet-stream", "application/json"):
        header = None
    if declared is not None and header is not None and declared != header:
        raise _invalid(
            "Content-Type does not match the manifest's mediaType",
            contentType=header,
            mediaType=declared,
        )
    mediaType = declared or header or _inferType(obj)
    schemaVersion = obj.get("schemaVersion")
    if mediaType in DOCKER_SCHEMA1 or schemaVersion == 1:
        raise _invalid("schema 1 manifests are not supported; push schema 2 or OCI")
    if mediaType not in MANIFEST_TYPES:
        raise _invalid("unsupported manifest media type", mediaType=mediaType)
    if schemaVersion != 2 or isinstance(schemaVersion, bool):
        raise _invalid("schemaVersion must be 2")
    artifactType = _string(obj, "artifactType", "manifest")
    annotations = _annotations(obj, "manifest")
    subject = None
    if obj.get("subject") is not None:
        subject = parseDescriptor(obj["subject"], "subject")
    if mediaType in IMAGE_TYPES:
        config = parseDescriptor(obj.get("config"), "config")
        layers = _descriptors(obj, "layers")
        return Manifest(
            mediaType=mediaType,
            blobs=(config, *layers),
            manifests=(),
            subject=subject,
            artifactType=artifactType or config.mediaType,
            annotations=annotations,
        )
    return Manifest(
        mediaType=mediaType,
        blobs=(),
        manifests=_descriptors(obj, "manifests"),
        subject=subject,
        artifactType=artifactType,
        annotations=annotations,
    )
