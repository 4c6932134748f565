"""
The content each daemon holds before the timed rounds: a blob to pull, an image to fetch
the manifest of, a repository with many tags to list, and data directories to restart
on.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import manytags, registry
from bench.config import Mode
from bench.daemons import Daemon, OcidDaemon, ReferenceDaemon
from bench.datasets import BlobFile, Image, makeImage
from bench.httpclient import Connection

PULL_REPOSITORY = "bench/pull"
MANIFEST_REPOSITORY = "bench/manifest"
MANIFEST_TAG = "latest"
TAGS_REPOSITORY = "bench/tags"

LogFunction = Callable[[str], None]


def pushTags(conn: Connection, repository: str, image: Image, count: int) -> None:
    """
    Push C{image} to C{repository} and tag it C{t0} ... C{t<count-1>}.
    """
    registry.pushImage(conn, repository, "t0", image)
    for i in range(1, count):
        registry.putManifest(conn, repository, f"t{i}", image)


def populate(daemon: Daemon, mode: Mode, blob: BlobFile) -> None:
    """
    Give a running daemon the content the scenarios read.
    """
    with Connection(daemon.port) as conn:
        registry.pushBlobMonolithic(conn, PULL_REPOSITORY, blob)
        registry.pushImage(conn, MANIFEST_REPOSITORY, MANIFEST_TAG, makeImage())
        pushTags(conn, TAGS_REPOSITORY, makeImage(), mode.listTags)
        tags = registry.listTags(conn, TAGS_REPOSITORY)
    if len(tags) != mode.listTags:
        raise RuntimeError(
            f"{daemon.name}: tags/list gave {len(tags)} tags, expected {mode.listTags}"
        )


@dataclass
class RestartDir:
    """
    A prepared data directory for the restart scenario, or why there is none.
    """

    path: Path | None
    tags: int
    note: str = ""


def daemonFor(kind: type[Daemon], dataDir: Path, workDir: Path) -> Daemon:
    """
    A daemon of C{kind} (not started) on C{dataDir}.
    """
    return kind(dataDir, workDir)


def prepareByHttp(kind: type[Daemon], dataDir: Path, workDir: Path, tags: int) -> str:
    """
    Start a daemon of C{kind} on a fresh C{dataDir}, push one image there with C{tags}
    tags in L{manytags.REPOSITORY} over HTTP, stop it; the manifest digest.
    """
    daemon = daemonFor(kind, dataDir, workDir)
    daemon.start()
    try:
        image = makeImage()
        with Connection(daemon.port) as conn:
            pushTags(conn, manytags.REPOSITORY, image, tags)
    finally:
        daemon.stop()
    return image.manifestDigest


def makeManyTagsDataDir(
    path: Path, count: int, workDir: Path, timeLimit: float = 900.0
) -> None:
    """
    Make an ocid data directory at C{path} whose repository L{manytags.REPOSITORY} has
    C{count} tags: one image pushed over HTTP as C{t0}, then every further tag appended
    through ocid's journal API (L{bench.ocidjournal}, in a process of its own), not over
    HTTP.

    @raise manytags.TooSlow: if appending takes over C{timeLimit} seconds.
    @raise RuntimeError: if appending fails (say, the journal API changed).
    """
    digest = prepareByHttp(OcidDaemon, path, workDir, 1)
    command = [
        sys.executable,
        "-m",
        "bench.ocidjournal",
        str(path),
        manytags.REPOSITORY,
        digest,
        "1",
        str(count - 1),
    ]
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeLimit,
            cwd=Path(__file__).resolve().parent.parent,
        )
    except subprocess.TimeoutExpired as e:
        raise manytags.TooSlow(f"appending {count} tags took over {timeLimit}s") from e
    if result.returncode != 0:
        raise RuntimeError(
            f"bench.ocidjournal exited with {result.returncode}: {result.stderr[-1500:]}"
        )


def makeManyTagsReferenceDir(
    path: Path, count: int, workDir: Path, timeLimit: float
) -> None:
    """
    Make a reference registry data directory at C{path} whose repository
    L{manytags.REPOSITORY} has C{count} tags: one image pushed over HTTP as C{t0}, then
    every further tag written straight into its filesystem layout.

    @raise manytags.TooSlow: if that would take over C{timeLimit} seconds.
    """
    digest = prepareByHttp(ReferenceDaemon, path, workDir, 1)
    manytags.writeReferenceTags(path, digest, 1, count - 1, timeLimit)


HTTP_TAGS_LIMIT = 5000


def ocidSourceHash() -> str:
    """
    A hash of ocid's source files: a cached data directory is reused only by the same
    ocid code, since the journal format may change.
    """
    spec = importlib.util.find_spec("ocid")
    if spec is None or spec.origin is None:
        raise RuntimeError("ocid is not importable")
    hasher = hashlib.sha256()
    root = Path(spec.origin).resolve().parent
    for path in sorted(root.rglob("*.py")):
        hasher.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return hasher.hexdigest()[:16]


def cachedManyTagsDataDir(
    path: Path, count: int, workDir: Path, cacheDir: Path | None, log: LogFunction
) -> None:
    """
    L{makeManyTagsDataDir}, or a copy of the one a previous run made with the same ocid
    source and count, kept in C{cacheDir} (C{None}: no cache).
    """
    if cacheDir is None:
        makeManyTagsDataDir(path, count, workDir)
        return
    cached = cacheDir / f"ocid-{count}-tags-{ocidSourceHash()}"
    if cached.is_dir():
        log(f"ocid: copying the cached {count}-tag data dir {cached}")
        shutil.copytree(cached, path)
        return
    makeManyTagsDataDir(path, count, workDir)
    cacheDir.mkdir(parents=True, exist_ok=True)
    for old in cacheDir.glob(f"ocid-{count}-tags-*"):
        shutil.rmtree(old, ignore_errors=True)
    partial = cacheDir / f"{cached.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(path, partial)
    partial.rename(cached)


def prepareRestartDirs(
    kind: type[Daemon],
    mode: Mode,
    workDir: Path,
    log: LogFunction,
    cacheDir: Path | None = None,
) -> dict[str, RestartDir]:
    """
    The data directories of the two restart scenarios for daemons of C{kind}:
    C{"restart_small"} (tags pushed over HTTP) and C{"restart_many"} (tags written
    directly or through ocid's journal API, possibly copied from C{cacheDir}; or over
    HTTP when there are few).
    """
    dirs: dict[str, RestartDir] = {}
    small = workDir / f"{kind.name}-restart-small"
    started = time.monotonic()
    prepareByHttp(kind, small, workDir, mode.restartTags)
    log(
        f"{kind.name}: {mode.restartTags}-tag data dir in {time.monotonic() - started:.1f}s"
    )
    dirs["restart_small"] = RestartDir(small, mode.restartTags)

    many = workDir / f"{kind.name}-restart-many"
    started = time.monotonic()
    try:
        if mode.manyTags <= HTTP_TAGS_LIMIT:
            prepareByHttp(kind, many, workDir, mode.manyTags)
        elif kind is OcidDaemon:
            cachedManyTagsDataDir(many, mode.manyTags, workDir, cacheDir, log)
        else:
            makeManyTagsReferenceDir(
                many, mode.manyTags, workDir, mode.referenceManyTagsLimit
            )
    except (manytags.TooSlow, RuntimeError, OSError) as e:
        shutil.rmtree(many, ignore_errors=True)
        log(f"{kind.name}: no {mode.manyTags}-tag data dir: {e}")
        dirs["restart_many"] = RestartDir(None, mode.manyTags, str(e))
    else:
        log(
            f"{kind.name}: {mode.manyTags}-tag data dir in "
            f"{time.monotonic() - started:.1f}s"
        )
        dirs["restart_many"] = RestartDir(many, mode.manyTags)
    return dirs
