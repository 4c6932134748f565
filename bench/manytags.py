"""
The reference registry's tags written straight into its filesystem layout, for the
restart scenario's data directory with very many tags (ocid's is made through its journal
API instead: see L{bench.ocidjournal}).

Both start from a data directory where one small image was pushed over HTTP with the tag
C{t0}; every further tag C{t1} ... points at the same manifest.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

REPOSITORY = "bench/manytags"


class TooSlow(Exception):
    """
    Generating the data directory would take longer than allowed.
    """


def referenceTagsDir(root: Path, repository: str = REPOSITORY) -> Path:
    """
    The directory of the reference registry's tags of C{repository} under C{root}.
    """
    return root / "docker/registry/v2/repositories" / repository / "_manifests/tags"


def writeReferenceTags(
    root: Path,
    manifestDigest: str,
    first: int,
    count: int,
    timeLimit: float,
    repository: str = REPOSITORY,
) -> None:
    """
    Write tags C{t<first>} ... C{t<first+count-1>} of C{repository}, pointing at
    C{manifestDigest}, into the reference registry's filesystem layout under C{root}::

        .../_manifests/tags/<tag>/current/link               -> sha256:<hex>
        .../_manifests/tags/<tag>/index/sha256/<hex>/link    -> sha256:<hex>

    @raise TooSlow: if, after the first 1% (at least 2,000 tags), the projected total
        time exceeds C{timeLimit} seconds, or the limit itself passes.
    """
    hexDigest = manifestDigest.split(":", 1)[1]
    link = manifestDigest.encode()
    indexDir = f"index/sha256/{hexDigest}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    directoryFlags = os.O_RDONLY | os.O_DIRECTORY
    tagsDir = referenceTagsDir(root, repository)
    tagsDir.mkdir(parents=True, exist_ok=True)
    tagsFd = os.open(tagsDir, directoryFlags)
    checkAt = max(2000, count // 100)
    started = time.monotonic()
    try:
        for i in range(first, first + count):
            done = i - first
            if done and done % 1000 == 0:
                elapsed = time.monotonic() - started
                if elapsed > timeLimit or (
                    done >= checkAt and elapsed / done * count > timeLimit
                ):
                    raise TooSlow(
                        f"{done} reference tags in {elapsed:.1f}s: "
                        f"{count} would take about {elapsed / done * count:.0f}s"
                    )
            tag = f"t{i}"
            os.mkdir(tag, dir_fd=tagsFd)
            tagFd = os.open(tag, directoryFlags, dir_fd=tagsFd)
            try:
                os.mkdir("current", dir_fd=tagFd)
                fd = os.open("current/link", flags, 0o644, dir_fd=tagFd)
                os.write(fd, link)
                os.close(fd)
                os.mkdir("index", dir_fd=tagFd)
                os.mkdir("index/sha256", dir_fd=tagFd)
                os.mkdir(indexDir, dir_fd=tagFd)
                fd = os.open(indexDir + "/link", flags, 0o644, dir_fd=tagFd)
                os.write(fd, link)
                os.close(fd)
            finally:
                os.close(tagFd)
    finally:
        os.close(tagsFd)
