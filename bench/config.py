"""
The three run modes (full, short, smoke) and their sizes, counts and durations.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20
GIB = 1 << 30


@dataclass(frozen=True)
class Mode:
    """
    How much work one benchmark run does.

    @ivar rounds: how many rounds each daemon runs (medians are taken over them).
    @ivar blobSize: the big random blob pushed and pulled.
    @ivar chunkSize: the size of each PATCH of the chunked push.
    @ivar memoryPushSize: the blob pushed while watching RSS growth.
    @ivar pullClients: concurrent clients of the parallel pull.
    @ivar loadSeconds: duration of each request-rate run (manifest GET/HEAD, tags/list).
    @ivar loadConnections: keep-alive connections of each request-rate run.
    @ivar smallImages: images pushed per small-image run.
    @ivar smallWorkers: concurrent workers of the parallel small-image run.
    @ivar listTags: tags in the repository whose tags/list is measured.
    @ivar restartTags: tags in the data directory of the small restart.
    @ivar manyTags: tags in the data directory of the big restart.
    @ivar referenceManyTagsLimit: seconds allowed to write the reference registry's
        big data directory; past that (projected), its big restart row is ocid-only.
    @ivar machineScale: scales the data sizes of the machine-limit measurements.
    @ivar timeLimit: no new scenario starts after this many seconds.
    """

    name: str
    rounds: int
    blobSize: int
    chunkSize: int
    memoryPushSize: int
    pullClients: int
    loadSeconds: float
    loadConnections: int
    smallImages: int
    smallWorkers: int
    listTags: int
    restartTags: int
    manyTags: int
    referenceManyTagsLimit: float
    machineScale: float
    timeLimit: float


FULL = Mode(
    name="full",
    rounds=5,
    blobSize=GIB,
    chunkSize=16 * MIB,
    memoryPushSize=4 * GIB,
    pullClients=4,
    loadSeconds=10,
    loadConnections=32,
    smallImages=300,
    smallWorkers=8,
    listTags=1000,
    restartTags=1000,
    manyTags=1_000_000,
    referenceManyTagsLimit=120,
    machineScale=1.0,
    timeLimit=3 * 3600,
)

SHORT = Mode(
    name="short",
    rounds=3,
    blobSize=GIB,
    chunkSize=16 * MIB,
    memoryPushSize=GIB,
    pullClients=4,
    loadSeconds=3,
    loadConnections=32,
    smallImages=300,
    smallWorkers=8,
    listTags=1000,
    restartTags=1000,
    manyTags=1_000_000,
    referenceManyTagsLimit=120,
    machineScale=1.0,
    timeLimit=3600,
)

SMOKE = Mode(
    name="smoke",
    rounds=1,
    blobSize=8 * MIB,
    chunkSize=MIB,
    memoryPushSize=8 * MIB,
    pullClients=4,
    loadSeconds=0.5,
    loadConnections=8,
    smallImages=16,
    smallWorkers=8,
    listTags=30,
    restartTags=10,
    manyTags=30,
    referenceManyTagsLimit=30,
    machineScale=1 / 64,
    timeLimit=600,
)

MODES = {mode.name: mode for mode in (FULL, SHORT, SMOKE)}


def describeSize(size: int) -> str:
    """
    C{size} bytes as a short human label: C{1 GiB}, C{16 MiB}, C{4 KiB}.
    """
    for unit, scale in (("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"


def describeCount(count: int) -> str:
    """
    A count as a short label: C{1M}, C{1k}, C{200}.
    """
    if count >= 1_000_000 and count % 1_000_000 == 0:
        return f"{count // 1_000_000}M"
    if count >= 1000 and count % 1000 == 0:
        return f"{count // 1000}k"
    return str(count)
