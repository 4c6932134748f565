"""
What the spec tests (C{tests/test_spec_*.py}) share: a real C{twistd -n ocid} daemon for
each test module, and a small raw-HTTP client that builds and pushes OCI content with the
digests, media types and bytes the tests then check.

Every test works in repositories of its own (L{SpecClient.repository}), so the tests of
a module share one daemon and still never see each other's content.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import uuid
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urljoin

import attrs
import pytest
import requests

from .daemon import RegistryDaemon

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

#: The digest algorithms a registry may support, both implemented by ocid.
ALGORITHMS = ("sha256", "sha512")
#: The content of the empty descriptor (image-manifest.md, "Guidance for an Empty
#: Descriptor").
EMPTY_JSON = b"{}"

#: The "code" values the spec's "Error Codes" table allows.
SPEC_ERROR_CODES = frozenset(
    {
        "BLOB_UNKNOWN",
        "BLOB_UPLOAD_INVALID",
        "BLOB_UPLOAD_UNKNOWN",
        "DIGEST_INVALID",
        "MANIFEST_BLOB_UNKNOWN",
        "MANIFEST_INVALID",
        "MANIFEST_UNKNOWN",
        "NAME_INVALID",
        "NAME_UNKNOWN",
        "SIZE_INVALID",
        "UNAUTHORIZED",
        "DENIED",
        "UNSUPPORTED",
        "TOOMANYREQUESTS",
    }
)

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_LINK = re.compile(r'^\s*<([^>]*)>\s*;\s*rel="?next"?\s*$')


def digestOf(data: bytes, algorithm: str = "sha256") -> str:
    """
    The C{<algorithm>:<hex>} digest of C{data}.
    """
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def descriptor(
    mediaType: str, content: bytes, algorithm: str = "sha256", **extra: Any
) -> dict[str, Any]:
    """
    An OCI descriptor of C{content}, with C{extra} fields (such as C{data} or C{urls}).
    """
    return {
        "mediaType": mediaType,
        "digest": digestOf(content, algorithm),
        "size": len(content),
        **extra,
    }


def uploadUUID(location: str) -> str:
    """
    The session UUID in an upload C{Location}; the test fails if there is none ("The
    C{<blob-push-location>} MUST contain a UUID").
    """
    match = _UUID.search(location)
    assert match is not None, f"no UUID in upload location {location!r}"
    return match.group(0)


def nextLink(response: requests.Response) -> str | None:
    """
    The target of the response's C{Link: <...>; rel="next"} header (RFC 5988), if any.
    """
    value = response.headers.get("Link")
    if value is None:
        return None
    match = _LINK.match(value)
    assert match is not None, f"malformed Link header {value!r}"
    return match.group(1)


def errorCodes(response: requests.Response) -> list[str]:
    """
    The C{code} of every error in a spec error body ("Error Codes"), after checking the
    body has the spec's form: JSON C{{"errors": [{"code", "message", "detail"?}]}} with a
    C{Content-Length} matching it, and only the table's codes.
    """
    assert response.headers["Content-Type"].split(";")[0] == "application/json"
    assert int(response.headers["Content-Length"]) == len(response.content)
    body = response.json()
    assert isinstance(body["errors"], list) and body["errors"]
    codes = []
    for error in body["errors"]:
        assert set(error) <= {"code", "message", "detail"}, error
        assert re.fullmatch(r"[A-Z_]+", error["code"])
        assert error["code"] in SPEC_ERROR_CODES, error
        assert isinstance(error.get("message", ""), str)
        codes.append(error["code"])
    return codes


def assertError(response: requests.Response, status: int, code: str) -> None:
    """
    Assert C{response} is a spec error answer with C{status} and C{code}.
    """
    assert response.status_code == status, (response.status_code, response.text)
    if response.request.method == "HEAD":
        assert response.content == b""
        return
    assert errorCodes(response) == [code], response.text


@attrs.frozen
class Pushed:
    """
    A manifest pushed to a repository: its exact bytes, media type and digest.
    """

    name: str
    body: bytes = attrs.field(repr=False)
    mediaType: str
    digest: str

    @property
    def size(self) -> int:
        """
        The manifest's length in bytes.
        """
        return len(self.body)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        """
        A descriptor of this manifest, with C{extra} fields (a C{platform}, say).
        """
        return {
            "mediaType": self.mediaType,
            "digest": self.digest,
            "size": self.size,
            **extra,
        }


@attrs.define
class SpecClient:
    """
    Raw HTTP to one registry daemon, with helpers that push content the way clients do.
    """

    daemon: RegistryDaemon
    session: requests.Session = attrs.field(factory=requests.Session)

    @property
    def url(self) -> str:
        """
        The registry's base URL.
        """
        return self.daemon.url

    def repository(self, prefix: str = "spec") -> str:
        """
        A repository name no other test uses.
        """
        return f"{prefix}/{uuid.uuid4().hex[:16]}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """
        Send C{method} to C{path} (a path such as C{/v2/...}, or an absolute URL the
        registry gave back, such as a C{Location}).
        """
        kwargs.setdefault("timeout", 60)
        kwargs.setdefault("allow_redirects", False)
        return self.session.request(method, urljoin(self.url + "/", path), **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("HEAD", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    # Blobs.

    def startUpload(self, name: str, **params: str) -> str:
        """
        Open an upload session ("POST then PUT", first step); return its location.
        """
        response = self.post(
            f"/v2/{name}/blobs/uploads/", params=params, headers={"Content-Length": "0"}
        )
        assert response.status_code == 202, response.text
        return response.headers["Location"]

    def pushBlob(self, name: str, data: bytes, algorithm: str = "sha256") -> str:
        """
        Push C{data} into C{name} with a POST then a PUT; return its digest.
        """
        digest = digestOf(data, algorithm)
        params = {} if algorithm == "sha256" else {"digest-algorithm": algorithm}
        location = self.startUpload(name, **params)
        response = self.put(
            location,
            params={"digest": digest},
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 201, response.text
        return digest

    # Manifests.

    def putManifest(
        self,
        name: str,
        reference: str,
        body: bytes,
        mediaType: str | None = OCI_MANIFEST,
        tags: Iterable[str] = (),
    ) -> requests.Response:
        """
        PUT C{body} as a manifest of type C{mediaType} (no C{Content-Type} if C{None}).
        """
        headers = {} if mediaType is None else {"Content-Type": mediaType}
        params = [("tag", tag) for tag in tags]
        return self.put(
            f"/v2/{name}/manifests/{reference}", data=body, headers=headers, params=params
        )

    def pushManifest(
        self,
        name: str,
        manifest: dict[str, Any] | bytes,
        tag: str | None = None,
        algorithm: str = "sha256",
        mediaType: str | None = None,
    ) -> Pushed:
        """
        Push C{manifest} by C{tag}, or by its digest in C{algorithm} without one (with a
        C{tag} and an algorithm other than sha256: by digest, with C{?tag=}).
        """
        if isinstance(manifest, bytes):
            body = manifest
            declared = json.loads(body).get("mediaType")
        else:
            body = json.dumps(manifest, indent=2).encode()
            declared = manifest.get("mediaType")
        mediaType = mediaType or declared or OCI_MANIFEST
        digest = digestOf(body, algorithm)
        if tag is not None and algorithm == "sha256":
            response = self.putManifest(name, tag, body, mediaType)
        else:
            tags = () if tag is None else (tag,)
            response = self.putManifest(name, digest, body, mediaType, tags)
        assert response.status_code == 201, response.text
        assert response.headers["Docker-Content-Digest"] == digest
        return Pushed(name, body, mediaType, digest)

    def pushImage(
        self,
        name: str,
        tag: str | None = None,
        algorithm: str = "sha256",
        layers: int = 1,
        configMediaType: str = OCI_CONFIG,
        **fields: Any,
    ) -> Pushed:
        """
        Push a config and C{layers} random layers, then an image manifest with
        C{fields} added (C{subject}, C{artifactType}, C{annotations}, ...).
        """
        config = json.dumps(
            {"architecture": "amd64", "os": "linux", "nonce": uuid.uuid4().hex}
        ).encode()
        self.pushBlob(name, config, algorithm)
        layerDescriptors = []
        for _ in range(layers):
            layer = os.urandom(64)
            self.pushBlob(name, layer, algorithm)
            layerDescriptors.append(descriptor(OCI_LAYER, layer, algorithm))
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(configMediaType, config, algorithm),
            "layers": layerDescriptors,
            **fields,
        }
        return self.pushManifest(name, manifest, tag, algorithm)

    def pushArtifact(
        self,
        name: str,
        subject: Pushed | dict[str, Any],
        artifactType: str | None = "application/vnd.example.signature.v1",
        tag: str | None = None,
        algorithm: str = "sha256",
        configMediaType: str = OCI_EMPTY,
        **fields: Any,
    ) -> Pushed:
        """
        Push an artifact manifest ("image-manifest.md", "Guidelines for Artifact Usage")
        that refers to C{subject}: the empty config, one small layer, C{artifactType}
        (left out if C{None}) and C{fields}.
        """
        self.pushBlob(name, EMPTY_JSON, algorithm)
        payload = b"signature " + uuid.uuid4().bytes
        self.pushBlob(name, payload, algorithm)
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(configMediaType, EMPTY_JSON, algorithm),
            "layers": [descriptor("application/octet-stream", payload, algorithm)],
            "subject": subject.descriptor() if isinstance(subject, Pushed) else subject,
            **fields,
        }
        if artifactType is not None:
            manifest["artifactType"] = artifactType
        return self.pushManifest(name, manifest, tag, algorithm)

    def pushIndex(
        self,
        name: str,
        manifests: list[dict[str, Any]],
        tag: str | None = None,
        algorithm: str = "sha256",
        mediaType: str = OCI_INDEX,
        **fields: Any,
    ) -> Pushed:
        """
        Push an index of C{manifests} (descriptors), with C{fields} added.
        """
        index = {
            "schemaVersion": 2,
            "mediaType": mediaType,
            "manifests": manifests,
            **fields,
        }
        return self.pushManifest(name, index, tag, algorithm)

    def referrers(self, name: str, digest: str, **params: str) -> requests.Response:
        """
        GET the referrers list of C{digest} ("Listing Referrers").
        """
        return self.get(f"/v2/{name}/referrers/{digest}", params=params)

    def restart(self) -> None:
        """
        Stop the daemon cleanly and start it again on the same data and port.
        """
        stopDaemon(self.daemon)
        self.session.close()
        self.daemon.start()


def stopDaemon(daemon: RegistryDaemon) -> None:
    """
    Stop C{daemon} with SIGTERM and check it shut down cleanly (twistd ends a clean
    shutdown on a signal by dying of that signal, so C{-SIGTERM} is clean too).
    """
    code = daemon.stop()
    assert code in (0, -signal.SIGTERM), f"exit status {code}:\n{daemon.log()}"


def registryFixture() -> Any:
    """
    A module-scoped fixture named C{registry}: a L{SpecClient} of a fresh daemon that
    stops after the module's last test.  Use it as C{registry = registryFixture()}.
    """

    @pytest.fixture(scope="module")
    def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpecClient]:
        base = tmp_path_factory.mktemp("registry")
        daemon = RegistryDaemon(base / "data", base / "ocid.log")
        daemon.start()
        client = SpecClient(daemon)
        try:
            yield client
        finally:
            client.session.close()
            if daemon.process is not None:
                stopDaemon(daemon)

    return registry
