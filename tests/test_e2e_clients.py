"""
End-to-end tests of a real C{twistd -n ocid} daemon with real registry clients:
skopeo (a Go client built on containers/image), the C{oras} Python SDK and
C{python-dxf}.

The spec sections exercised are those of C{distribution-spec.md}: "Pull" ("Pulling
manifests", "Pulling blobs", "Checking if content exists in the registry"), "Push"
("Pushing blobs", "Pushing a blob in chunks", "Mounting a blob from another
repository", "Pushing Manifests") and "Content Discovery > Listing Tags".

Set C{OCID_E2E_REGISTRY=reference} to run the same tests against the reference
registry (C{/usr/bin/docker-registry}, distribution 2.8) instead of ocid, to check the
tests themselves.

In CI (C{CI=true}) a missing client fails the test instead of skipping it.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest

from .daemon import RegistryDaemon, portRefuses
from .images import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    OCI_MANIFEST,
    Blob,
    Image,
    ImageSet,
    buildTestImages,
    readLayout,
    sha256Digest,
)

REFERENCE_REGISTRY = "/usr/bin/docker-registry"
SKOPEO_TIMEOUT = 60.0


def inCI() -> bool:
    """
    Whether the tests run in CI, where a missing client is a failure, not a skip.
    """
    return os.environ.get("CI") == "true"


def missing(what: str) -> None:
    """
    Skip the test because C{what} is not installed; fail it instead in CI.
    """
    message = f"{what} is not installed"
    if inCI():
        pytest.fail(message + " (CI=true: real clients must not be skipped)")
    pytest.skip(message)


def requireExecutable(name: str) -> str:
    """
    The path of executable C{name}; skip (or, in CI, fail) without it.
    """
    path = shutil.which(name)
    if path is None:
        missing(name)
        raise AssertionError("unreachable")
    return path


def requireModule(name: str) -> ModuleType:
    """
    Import module C{name}; skip (or, in CI, fail) without it.
    """
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"Python module {name}")
        raise AssertionError("unreachable") from None


@attrs.define
class ReferenceRegistryDaemon(RegistryDaemon):
    """
    The reference registry (distribution 2.8) behind the L{RegistryDaemon} API, to
    check the tests' own logic.
    """

    def command(self) -> list[str]:
        """
        Write a C{config.yml} serving C{dataPath} on the loopback port, and run
        C{docker-registry serve} with it.
        """
        configPath = self.logPath.with_name(self.logPath.name + ".config.yml")
        configPath.write_text(
            "version: 0.1\n"
            "log:\n  level: info\n"
            "storage:\n"
            f"  filesystem:\n    rootdirectory: {self.dataPath}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n"
        )
        return [REFERENCE_REGISTRY, "serve", str(configPath)]


def stopCleanly(registry: RegistryDaemon) -> None:
    """
    Stop C{registry} with SIGTERM; it must shut down cleanly.

    After a clean shutdown on a signal, twistd kills itself with that signal so that
    its parent sees why it stopped: the exit status is -SIGTERM, and the log tells a
    clean shutdown from a death by signal.
    """
    marker = "Main loop terminated."
    before = registry.log().count(marker)
    code = registry.stop()
    assert code in (0, -signal.SIGTERM), f"exit status {code}"
    if not isinstance(registry, ReferenceRegistryDaemon):
        assert registry.log().count(marker) == before + 1, "no clean shutdown"


def makeDaemon(tmpPath: Path) -> RegistryDaemon:
    """
    A daemon (ocid, or the reference registry if C{OCID_E2E_REGISTRY=reference})
    serving a fresh data directory under C{tmpPath}.
    """
    dataPath = tmpPath / "data"
    logPath = tmpPath / "registry.log"
    if os.environ.get("OCID_E2E_REGISTRY") == "reference":
        if not Path(REFERENCE_REGISTRY).exists():
            pytest.skip(f"{REFERENCE_REGISTRY} is not installed")
        return ReferenceRegistryDaemon(dataPath, logPath)
    return RegistryDaemon(dataPath, logPath)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryDaemon]:
    """
    A running registry daemon with a fresh data directory; its log is printed at
    teardown (pytest shows it when the test fails).
    """
    daemon = makeDaemon(tmp_path)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.kill()
        print(f"----- registry log ({daemon.logPath}) -----")
        print(daemon.log()[-30000:])


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> ImageSet:
    """
    A 3-layer image and a 2-platform index in an OCI Image Layout directory.
    """
    return buildTestImages(tmp_path_factory.mktemp("layout") / "oci")


# ---------------------------------------------------------------------------------
# skopeo


@attrs.frozen
class Skopeo:
    """
    Runs C{skopeo} with a private policy, registries configuration and auth file, so
    that nothing on the machine changes what it does.
    """

    executable: str
    configPath: Path

    @classmethod
    def make(cls, configPath: Path) -> Skopeo:
        """
        Find skopeo (skip, or fail in CI, without it) and write its configuration
        into C{configPath}.
        """
        executable = requireExecutable("skopeo")
        configPath.mkdir(parents=True, exist_ok=True)
        (configPath / "policy.json").write_text(
            json.dumps({"default": [{"type": "insecureAcceptAnything"}]})
        )
        (configPath / "registries.conf").write_text("unqualified-search-registries = []\n")
        (configPath / "auth.json").write_text('{"auths": {}}')
        return cls(executable, configPath)

    def run(self, *args: str) -> bytes:
        """
        Run C{skopeo ARGS...}; return its standard output, or fail the test with its
        standard error.
        """
        command = [
            self.executable,
            "--policy",
            str(self.configPath / "policy.json"),
            *args,
        ]
        env = dict(os.environ)
        env["CONTAINERS_REGISTRIES_CONF"] = str(self.configPath / "registries.conf")
        env["REGISTRY_AUTH_FILE"] = str(self.configPath / "auth.json")
        result = subprocess.run(
            command,
            check=False,
            capture_output=True,
            timeout=SKOPEO_TIMEOUT,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            pytest.fail(
                f"{' '.join(command)} exited with {result.returncode}:\n"
                f"stdout: {result.stdout.decode(errors='replace')}\n"
                f"stderr: {result.stderr.decode(errors='replace')}"
            )
        return result.stdout

    def push(self, source: str, destination: str, digestFile: Path, *options: str) -> str:
        """
        C{skopeo copy} C{source} to registry reference C{destination}; return the
        digest of the manifest it pushed.
        """
        self.run(
            "copy",
            "--dest-tls-verify=false",
            "--digestfile",
            str(digestFile),
            *options,
            source,
            f"docker://{destination}",
        )
        return digestFile.read_text().strip()

    def pull(self, source: str, destination: str, *options: str) -> None:
        """
        C{skopeo copy} registry reference C{source} to C{destination}.
        """
        self.run(
            "copy",
            "--src-tls-verify=false",
            *options,
            f"docker://{source}",
            destination,
        )

    def rawManifest(self, reference: str) -> bytes:
        """
        The manifest bytes that C{skopeo inspect --raw} gets for C{reference}.
        """
        # skopeo prints the raw manifest verbatim; keep the exact bytes.
        return self.run("inspect", "--raw", "--tls-verify=false", f"docker://{reference}")

    def listTags(self, repository: str) -> list[str]:
        """
        The tags that C{skopeo list-tags} finds in C{repository}.
        """
        output = self.run("list-tags", "--tls-verify=false", f"docker://{repository}")
        tags: list[str] = json.loads(output)["Tags"]
        return tags


@pytest.fixture
def skopeo(tmp_path: Path) -> Skopeo:
    """
    A L{Skopeo} runner with private configuration.
    """
    return Skopeo.make(tmp_path / "skopeo-config")


@attrs.frozen
class Pushed:
    """
    The manifest digests skopeo reported for each tag it pushed to C{team/app}.
    """

    oci: str
    docker: str
    multi: str


REPOSITORY = "team/app"
TAG_OCI = "v1"
TAG_DOCKER = "v1-docker"
TAG_MULTI = "multi"


def pushAll(
    skopeo: Skopeo, registry: RegistryDaemon, images: ImageSet, work: Path
) -> Pushed:
    """
    "Push" the OCI image, its Docker v2s2 conversion and the multi-platform index to
    C{team/app} with C{skopeo copy}, and check the digests skopeo reports.
    """
    work.mkdir(parents=True, exist_ok=True)
    layout = images.layoutPath
    base = f"{registry.hostPort}/{REPOSITORY}"
    oci = skopeo.push(f"oci:{layout}:single", f"{base}:{TAG_OCI}", work / "oci.digest")
    docker = skopeo.push(
        f"oci:{layout}:single",
        f"{base}:{TAG_DOCKER}",
        work / "docker.digest",
        "--format",
        "v2s2",
    )
    multi = skopeo.push(
        f"oci:{layout}:multi", f"{base}:{TAG_MULTI}", work / "multi.digest", "--all"
    )
    # An OCI image pushed as OCI is pushed byte for byte: same manifest digest.
    assert oci == images.single.manifest.digest
    assert multi == images.multi.index.digest
    assert docker not in (oci, multi)
    return Pushed(oci=oci, docker=docker, multi=multi)


def assertBlobsEqual(expected: tuple[Blob, ...], actual: dict[str, bytes]) -> None:
    """
    Every one of C{expected} is among C{actual} (by digest) with the same bytes.
    """
    for blob in expected:
        assert blob.digest in actual, f"{blob.digest} ({blob.mediaType}) missing"
        assert actual[blob.digest] == blob.data, f"{blob.digest} content differs"


def checkDockerManifest(manifest: bytes, image: Image) -> None:
    """
    C{manifest} is the Docker v2s2 conversion of C{image}: same config and layer
    blobs, Docker media types.
    """
    parsed = json.loads(manifest)
    assert parsed["mediaType"] == DOCKER_MANIFEST
    assert parsed["config"]["mediaType"] == DOCKER_CONFIG
    assert parsed["config"]["digest"] == image.config.digest
    assert [layer["digest"] for layer in parsed["layers"]] == [
        layer.digest for layer in image.layers
    ]
    assert {layer["mediaType"] for layer in parsed["layers"]} == {DOCKER_LAYER_GZIP}


def verifyAll(
    skopeo: Skopeo,
    registry: RegistryDaemon,
    images: ImageSet,
    pushed: Pushed,
    work: Path,
) -> None:
    """
    "Pull" everything that L{pushAll} pushed with skopeo and compare manifest and
    blob digests and bytes with what was pushed; "Content Discovery > Listing Tags"
    with C{skopeo list-tags}.
    """
    work.mkdir(parents=True, exist_ok=True)
    base = f"{registry.hostPort}/{REPOSITORY}"

    # "Pulling manifests" by tag and by digest: the exact bytes pushed.
    assert skopeo.rawManifest(f"{base}:{TAG_OCI}") == images.single.manifest.data
    assert skopeo.rawManifest(f"{base}@{pushed.oci}") == images.single.manifest.data
    assert skopeo.rawManifest(f"{base}:{TAG_MULTI}") == images.multi.index.data
    for image in images.multi.images:
        raw = skopeo.rawManifest(f"{base}@{image.manifest.digest}")
        assert raw == image.manifest.data
    dockerRaw = skopeo.rawManifest(f"{base}:{TAG_DOCKER}")
    assert sha256Digest(dockerRaw) == pushed.docker
    checkDockerManifest(dockerRaw, images.single)

    # Full pulls ("Pulling blobs") into fresh directories.
    skopeo.pull(f"{base}:{TAG_OCI}", f"oci:{work / 'oci'}:{TAG_OCI}")
    content = readLayout(work / "oci", TAG_OCI)
    assert content.mediaType == OCI_MANIFEST
    assert content.digest == pushed.oci
    assert content.manifest == images.single.manifest.data
    assertBlobsEqual(images.single.blobs, content.blobs)

    skopeo.pull(f"{base}:{TAG_MULTI}", f"oci:{work / 'multi'}:{TAG_MULTI}", "--all")
    content = readLayout(work / "multi", TAG_MULTI)
    assert content.digest == pushed.multi
    assert content.manifest == images.multi.index.data
    for image in images.multi.images:
        assertBlobsEqual((image.manifest, *image.blobs), content.blobs)

    # dir: keeps the Docker manifest as it is; blobs are files named by hex digest.
    dockerDir = work / "docker"
    skopeo.pull(f"{base}:{TAG_DOCKER}", f"dir:{dockerDir}")
    manifest = (dockerDir / "manifest.json").read_bytes()
    assert sha256Digest(manifest) == pushed.docker
    checkDockerManifest(manifest, images.single)
    for blob in images.single.blobs:
        path = dockerDir / blob.digest.split(":", 1)[1]
        assert path.read_bytes() == blob.data, f"{blob.digest} content differs"

    # "Content Discovery > Listing Tags"
    assert sorted(skopeo.listTags(base)) == sorted([TAG_OCI, TAG_DOCKER, TAG_MULTI])


def test_skopeoPushPull(
    skopeo: Skopeo, registry: RegistryDaemon, images: ImageSet, tmp_path: Path
) -> None:
    """
    skopeo "Push"es a 3-layer OCI image, its Docker v2s2 form and a 2-platform OCI
    index ("Pushing blobs", "Pushing Manifests"), then "Pull"s them back ("Pulling
    manifests", "Pulling blobs") with identical digests, and "Content Discovery >
    Listing Tags" lists the three tags.

    A second push of the same content is a no-op for skopeo ("Checking if content
    exists in the registry") and reports the same digests.  Pushing the image to a
    second repository lets skopeo try "Mounting a blob from another repository"
    (it falls back to an upload if the mount is refused).
    """
    pushed = pushAll(skopeo, registry, images, tmp_path / "push")
    verifyAll(skopeo, registry, images, pushed, tmp_path / "pull")
    again = pushAll(skopeo, registry, images, tmp_path / "push-again")
    assert again == pushed

    other = f"{registry.hostPort}/team/other"
    layout = images.layoutPath
    digest = skopeo.push(f"oci:{layout}:single", f"{other}:v2", tmp_path / "o.digest")
    assert digest == images.single.manifest.digest
    skopeo.pull(f"{other}:v2", f"oci:{tmp_path / 'other'}:v2")
    content = readLayout(tmp_path / "other", "v2")
    assert content.manifest == images.single.manifest.data
    assertBlobsEqual(images.single.blobs, content.blobs)
    assert skopeo.listTags(other) == ["v2"]


def test_skopeoAfterCleanRestart(
    skopeo: Skopeo, registry: RegistryDaemon, images: ImageSet, tmp_path: Path
) -> None:
    """
    Everything pushed ("Push") is still there, with identical digests ("Pull"),
    after the daemon is stopped with SIGTERM and started again on the same data
    directory; while it is stopped, its port refuses connections.
    """
    pushed = pushAll(skopeo, registry, images, tmp_path / "push")
    verifyAll(skopeo, registry, images, pushed, tmp_path / "before")
    port = registry.port
    stopCleanly(registry)
    assert portRefuses(port)
    registry.start()
    assert registry.port == port
    verifyAll(skopeo, registry, images, pushed, tmp_path / "after")


def test_skopeoAfterKill(
    skopeo: Skopeo, registry: RegistryDaemon, images: ImageSet, tmp_path: Path
) -> None:
    """
    Everything pushed ("Push") is still there, with identical digests ("Pull"),
    after the daemon is killed with SIGKILL, as in a crash, and started again on the
    same data directory.
    """
    pushed = pushAll(skopeo, registry, images, tmp_path / "push")
    port = registry.port
    registry.kill()
    assert portRefuses(port)
    registry.start()
    verifyAll(skopeo, registry, images, pushed, tmp_path / "after")


def test_tlsProbeAnsweredPromptly(registry: RegistryDaemon) -> None:
    """
    With C{--tls-verify=false} skopeo (containers/image) first tries HTTPS, then
    falls back to plain HTTP when the TLS handshake fails; "API > Determining
    Support" (C{GET /v2/}) thus starts with a TLS ClientHello. The plain-HTTP
    registry must fail that handshake at once (an HTTP 400 or a closed connection),
    not leave the client waiting for its handshake timeout (10 seconds for every
    skopeo command).
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", registry.port), timeout=5) as sock:
        try:
            context.wrap_socket(sock, server_hostname="127.0.0.1").close()
        except TimeoutError:
            pytest.fail("the TLS ClientHello got no answer within 5 seconds")
        except (ssl.SSLError, ConnectionError):
            pass
        else:
            pytest.fail("a TLS handshake succeeded on the plain-HTTP port")
    assert time.monotonic() - started < 2


# ---------------------------------------------------------------------------------
# oras (Python SDK)

PAYLOAD_TYPE = "application/vnd.ocid.test.payload.v1"
CONFIG_TYPE = "application/vnd.ocid.test.config.v1+json"
ARTIFACT_TYPE = "application/vnd.ocid.test.sbom.v1+json"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
TITLE = "org.opencontainers.image.title"


def orasClient(registry: RegistryDaemon) -> Any:
    """
    An C{oras} SDK client for the daemon, over plain HTTP.

    The SDK retries a request that raised or got a 500 up to 5 times, sleeping up to
    83 seconds in between; that would hide a flaky server and blow the time budget,
    so this client sends each request once.
    """
    provider = requireModule("oras.provider")
    sendOnce = getattr(provider.Registry.do_request, "__wrapped__", None)

    class OnceRegistry(provider.Registry):  # type: ignore[misc,name-defined]
        def do_request(self, *args: Any, **kwargs: Any) -> Any:
            if sendOnce is None:
                return super().do_request(*args, **kwargs)
            return sendOnce(self, *args, **kwargs)

    return OnceRegistry(hostname=registry.hostPort, insecure=True)


@attrs.frozen
class Artifacts:
    """
    What L{pushArtifacts} pushed.

    @ivar files: the bytes of each file, by file name.
    @ivar configTarget: a reference to the artifact with a custom config media type.
    @ivar typedTarget: a reference to the artifact with an C{artifactType}.
    @ivar typedManifest: the bytes of the C{artifactType} manifest as pushed.
    """

    files: dict[str, bytes]
    configTarget: str
    typedTarget: str
    typedManifest: bytes


def pushArtifacts(client: Any, registry: RegistryDaemon, work: Path) -> Artifacts:
    """
    Push two artifacts with oras: one with a custom config media type (2 files, the
    second "Pushing a blob in chunks"), one with an C{artifactType} and the empty
    config (see C{image-manifest.md}, "Guidelines for Artifact Usage").
    """
    work.mkdir(parents=True, exist_ok=True)
    files = {
        "payload.bin": os.urandom(300 * 1024),
        "notes.txt": b"ocid end-to-end test\n" * 100,
        "sbom.json": json.dumps({"packages": [os.urandom(8).hex()]}).encode(),
    }
    for name, data in files.items():
        (work / name).write_bytes(data)
    config = work / "config.json"
    config.write_bytes(b'{"kind": "ocid-e2e"}')

    configTarget = f"{registry.hostPort}/team/artifact:v1"
    response = client.push(
        configTarget,
        files=[f"{work / 'payload.bin'}:{PAYLOAD_TYPE}"],
        manifest_config=f"{config}:{CONFIG_TYPE}",
        manifest_annotations={"org.example.purpose": "e2e"},
        disable_path_validation=True,
        quiet=True,
    )
    assert response.status_code == 201, response.text

    # The second file goes in 64 KiB PATCH chunks ("Pushing a blob in chunks").
    container = client.get_container(configTarget)
    notes = work / "notes.txt"
    layer = {
        "mediaType": "text/plain",
        "digest": sha256Digest(files["notes.txt"]),
        "size": len(files["notes.txt"]),
    }
    response = client.upload_blob(
        str(notes), container, layer, do_chunked=True, chunk_size=64 * 1024
    )
    assert response.status_code == 201, response.text
    manifest = client.get_manifest(configTarget)
    manifest["layers"].append({**layer, "annotations": {TITLE: "notes.txt"}})
    response = client.upload_manifest(manifest, container)
    assert response.status_code == 201, response.text

    # An artifact with an artifactType and the empty config.
    typedTarget = f"{registry.hostPort}/team/artifact:sbom"
    typed = client.get_container(typedTarget)
    empty = work / "empty.json"
    empty.write_bytes(b"{}")
    emptyDescriptor = Blob(EMPTY_TYPE, b"{}").descriptor()
    sbom = Blob("application/json", files["sbom.json"])
    for path, descriptor in (
        (empty, emptyDescriptor),
        (work / "sbom.json", sbom.descriptor()),
    ):
        response = client.upload_blob(str(path), typed, descriptor)
        assert response.status_code in (200, 201), response.text
    typedManifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": emptyDescriptor,
        "layers": [sbom.descriptor(annotations={TITLE: "sbom.json"})],
    }
    response = client.upload_manifest(typedManifest, typed)
    assert response.status_code == 201, response.text
    # requests serializes json= bodies with json.dumps defaults.
    typedBytes = json.dumps(typedManifest).encode()
    assert response.headers.get("Docker-Content-Digest") in (
        None,
        sha256Digest(typedBytes),
    )
    return Artifacts(
        files=files,
        configTarget=configTarget,
        typedTarget=typedTarget,
        typedManifest=typedBytes,
    )


def verifyArtifacts(client: Any, artifacts: Artifacts, work: Path) -> None:
    """
    "Pull" both artifacts back with oras and compare media types and bytes; list the
    tags ("Content Discovery > Listing Tags").
    """
    manifest = client.get_manifest(artifacts.configTarget)
    assert manifest["config"]["mediaType"] == CONFIG_TYPE
    assert manifest["annotations"] == {"org.example.purpose": "e2e"}
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        PAYLOAD_TYPE,
        "text/plain",
    ]
    out = work / "config-artifact"
    pulled = client.pull(artifacts.configTarget, outdir=str(out))
    assert sorted(Path(p).name for p in pulled) == ["notes.txt", "payload.bin"]
    for name in ("payload.bin", "notes.txt"):
        assert (out / name).read_bytes() == artifacts.files[name]

    typed = client.get_manifest(artifacts.typedTarget)
    assert typed["artifactType"] == ARTIFACT_TYPE
    assert typed["config"]["mediaType"] == EMPTY_TYPE
    out = work / "typed-artifact"
    client.pull(artifacts.typedTarget, outdir=str(out))
    assert (out / "sbom.json").read_bytes() == artifacts.files["sbom.json"]

    # The manifest comes back byte for byte, under its digest.
    container = client.get_container(artifacts.typedTarget)
    response = client.do_request(
        f"http://{container.manifest_url()}",
        "GET",
        headers={"Accept": OCI_MANIFEST},
    )
    assert response.status_code == 200
    assert response.content == artifacts.typedManifest
    assert response.headers["Docker-Content-Digest"] == sha256Digest(
        artifacts.typedManifest
    )

    assert sorted(client.get_tags(artifacts.configTarget)) == ["sbom", "v1"]


def test_orasArtifacts(registry: RegistryDaemon, tmp_path: Path) -> None:
    """
    oras "Push"es artifacts with a custom config media type and with an
    C{artifactType}; "Pull" gives back the same bytes, before and after a restart.
    """
    client = orasClient(registry)
    artifacts = pushArtifacts(client, registry, tmp_path / "push")
    verifyArtifacts(client, artifacts, tmp_path / "before")
    stopCleanly(registry)
    registry.start()
    verifyArtifacts(orasClient(registry), artifacts, tmp_path / "after")


# ---------------------------------------------------------------------------------
# python-dxf


def dxfClient(registry: RegistryDaemon, repository: str) -> Any:
    """
    A C{python-dxf} client for C{repository} on the daemon, over plain HTTP.
    """
    dxf = requireModule("dxf")
    return dxf.DXF(registry.hostPort, repository, insecure=True, timeout=30)


def test_dxfBlobsAndTags(registry: RegistryDaemon, tmp_path: Path) -> None:
    """
    python-dxf "Push"es blobs (one from a file, one as a chunked request body),
    "Pull"s them back, mounts one into another repository ("Mounting a blob from
    another repository"), tags manifests and lists the tags, whole and a page at a
    time ("Content Discovery > Listing Tags"); all of it survives a SIGKILL.
    """
    repo = dxfClient(registry, "team/blobs")
    fileData = os.urandom(200 * 1024)
    filePath = tmp_path / "blob.bin"
    filePath.write_bytes(fileData)
    fileDigest = repo.push_blob(str(filePath))
    assert fileDigest == sha256Digest(fileData)

    streamData = os.urandom(700 * 1024)
    streamDigest = sha256Digest(streamData)
    chunks = (streamData[i : i + 64 * 1024] for i in range(0, len(streamData), 64 * 1024))
    assert repo.push_blob(data=chunks, digest=streamDigest) == streamDigest
    # Already there: "Checking if content exists in the registry" skips the upload.
    assert repo.push_blob(str(filePath)) == fileDigest

    tags = [f"t{i}" for i in range(5)]
    for i, tag in enumerate(tags):
        digests = (fileDigest, streamDigest) if i % 2 else (streamDigest,)
        repo.set_alias(tag, *digests)

    mounted = dxfClient(registry, "team/mounted")
    assert mounted.mount_blob("team/blobs", fileDigest) == fileDigest

    def verify() -> None:
        for digest, data in ((fileDigest, fileData), (streamDigest, streamData)):
            assert b"".join(repo.pull_blob(digest)) == data
            assert repo.blob_size(digest) == len(data)
        assert b"".join(mounted.pull_blob(fileDigest)) == fileData
        assert sorted(repo.list_aliases()) == tags
        assert sorted(repo.list_aliases(batch_size=2)) == tags
        assert repo.get_alias("t0") == [streamDigest]
        assert repo.get_alias("t1") == [fileDigest, streamDigest]

    verify()
    registry.kill()
    registry.start()
    verify()
