"""
The timed scenarios. Each has an untimed C{prepare} step and a timed C{run} step that
returns its metrics (rates, latencies, RSS); the runner adds CPU and RSS accounting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import fixtures, loadgen, procstat, registry
from bench.config import Mode
from bench.daemons import Daemon
from bench.datasets import (
    OCI_MANIFEST,
    BlobFile,
    BlobSource,
    Image,
    makeImage,
    reclaimBlob,
)
from bench.httpclient import Connection

Metrics = dict[str, float]


@dataclass
class Context:
    """
    What a scenario run needs.

    @ivar daemon: the running daemon under test.
    @ivar mode: sizes and durations.
    @ivar blobSource: makes the distinct big blobs pushed.
    @ivar memorySource: makes the distinct blobs pushed while watching RSS.
    @ivar pullBlob: the big blob stored in every daemon for the pulls.
    @ivar round: the round number, from 1.
    @ivar engine: the load generator for request-rate runs (C{auto}, C{wrk}, C{py}).
    @ivar restartDirs: the prepared restart data directories of this daemon's kind.
    @ivar workDir: where logs and configs go.
    """

    daemon: Daemon
    mode: Mode
    blobSource: BlobSource
    memorySource: BlobSource
    pullBlob: BlobFile
    round: int
    engine: str
    restartDirs: dict[str, fixtures.RestartDir] = field(default_factory=dict)
    workDir: Path = Path("/tmp")


class Skipped(Exception):
    """
    The scenario cannot run for this daemon; the message says why.
    """


class Scenario:
    """
    One timed scenario.

    @cvar key: the name rows refer to.
    @cvar watchesMainDaemon: whether the runner should account CPU and RSS of the
        main daemon during C{run} (not for restarts, which start their own).
    """

    key = ""
    watchesMainDaemon = True

    def prepare(self, ctx: Context) -> Any:
        """
        Untimed preparation; its result is passed to L{run}.
        """
        return None

    def run(self, ctx: Context, prepared: Any) -> Metrics:
        """
        The timed part; its metrics.
        """
        raise NotImplementedError

    def cleanup(self, ctx: Context, prepared: Any) -> None:
        """
        Untimed clean-up after L{run}, even if it failed.
        """


def mbps(size: int, seconds: float) -> float:
    """
    C{size} bytes in C{seconds}, in MB/s (10^6 bytes per second).
    """
    return size / seconds / 1e6


class BigPush(Scenario):
    """
    A push of a new distinct big blob, whose stored copy is deleted afterwards so that
    the rounds do not fill the disk.
    """

    def sourceOf(self, ctx: Context) -> BlobSource:
        """
        What makes the blob to push.
        """
        return ctx.blobSource

    def prepare(self, ctx: Context) -> BlobFile:
        return self.sourceOf(ctx).variant()

    def cleanup(self, ctx: Context, prepared: BlobFile) -> None:
        reclaimBlob(ctx.daemon.dataDir, prepared)


class PushMonolithic(BigPush):
    """
    POST, then one PUT of the whole big blob streamed from its file.
    """

    key = "push_mono"

    def run(self, ctx: Context, prepared: BlobFile) -> Metrics:
        blob = prepared
        with Connection(ctx.daemon.port) as conn:
            started = time.perf_counter()
            registry.pushBlobMonolithic(
                conn, f"{self.key.replace('_', '-')}/r{ctx.round}", blob
            )
            elapsed = time.perf_counter() - started
        return {"mbps": mbps(blob.size, elapsed), "seconds": elapsed}


class PushMemory(PushMonolithic):
    """
    The monolithic push of the (bigger) memory blob, for its RSS growth.
    """

    key = "push_mem"

    def sourceOf(self, ctx: Context) -> BlobSource:
        return ctx.memorySource


class PushChunked(BigPush):
    """
    POST, PATCHes of C{chunkSize} with C{Content-Range}, then PUT with the digest.
    """

    key = "push_chunked"

    def run(self, ctx: Context, prepared: BlobFile) -> Metrics:
        with Connection(ctx.daemon.port) as conn:
            started = time.perf_counter()
            registry.pushBlobChunked(
                conn, f"push-chunked/r{ctx.round}", prepared, ctx.mode.chunkSize
            )
            elapsed = time.perf_counter() - started
        return {"mbps": mbps(prepared.size, elapsed), "seconds": elapsed}


def inThreads(count: int, work: Callable[[int], Any], timeout: float) -> list[Any]:
    """
    Run C{work(i)} for C{i} in C{range(count)} in threads at once; their results.

    @raise Exception: the first exception any of them raised.
    """
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            results[i] = work(i)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            errors.append(e)

    threads = [
        threading.Thread(target=target, args=(i,), daemon=True) for i in range(count)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        raise TimeoutError(f"{count} workers still busy after {timeout}s")
    if errors:
        raise errors[0]
    return results


def checkedPull(port: int, blob: BlobFile) -> None:
    """
    Pull the big blob and check its size and sha256 digest.
    """
    with Connection(port) as conn:
        pulled = registry.pullBlob(conn, fixtures.PULL_REPOSITORY, blob.digest)
    if pulled.size != blob.size or pulled.digest != blob.digest:
        raise ValueError(
            f"pulled {pulled.size} bytes with digest {pulled.digest}, "
            f"expected {blob.size} bytes with {blob.digest}"
        )


class PullOne(Scenario):
    """
    One client pulls the big blob, hashing it as it arrives.
    """

    key = "pull_1"

    def run(self, ctx: Context, prepared: Any) -> Metrics:
        started = time.perf_counter()
        checkedPull(ctx.daemon.port, ctx.pullBlob)
        elapsed = time.perf_counter() - started
        return {"mbps": mbps(ctx.pullBlob.size, elapsed), "seconds": elapsed}


class PullMany(Scenario):
    """
    C{pullClients} clients pull the big blob at once; the total rate.
    """

    key = "pull_n"

    def run(self, ctx: Context, prepared: Any) -> Metrics:
        clients = ctx.mode.pullClients
        started = time.perf_counter()
        inThreads(clients, lambda i: checkedPull(ctx.daemon.port, ctx.pullBlob), 1800)
        elapsed = time.perf_counter() - started
        return {"mbps": mbps(ctx.pullBlob.size * clients, elapsed), "seconds": elapsed}


class ManifestLoad(Scenario):
    """
    C{loadConnections} keep-alive connections GET (or HEAD) the small image's manifest
    by tag for C{loadSeconds}.
    """

    key = "manifest_get"
    method = "GET"

    def run(self, ctx: Context, prepared: Any) -> Metrics:
        result = loadgen.load(
            ctx.daemon.port,
            f"/v2/{fixtures.MANIFEST_REPOSITORY}/manifests/{fixtures.MANIFEST_TAG}",
            {"Accept": OCI_MANIFEST},
            ctx.mode.loadConnections,
            ctx.mode.loadSeconds,
            self.method,
            ctx.engine,
        )
        return loadMetrics(result)


class ManifestHeadLoad(ManifestLoad):
    """
    As L{ManifestLoad}, with C{HEAD}.
    """

    key = "manifest_head"
    method = "HEAD"


class TagsListLoad(Scenario):
    """
    C{GET /v2/<name>/tags/list} of the repository with C{listTags} tags.
    """

    key = "tags_list"

    def run(self, ctx: Context, prepared: Any) -> Metrics:
        result = loadgen.load(
            ctx.daemon.port,
            f"/v2/{fixtures.TAGS_REPOSITORY}/tags/list",
            {},
            ctx.mode.loadConnections,
            ctx.mode.loadSeconds,
            "GET",
            ctx.engine,
        )
        return loadMetrics(result)


def loadMetrics(result: loadgen.LoadResult) -> Metrics:
    """
    The metrics of a request-rate run.

    @raise RuntimeError: if no request succeeded, or too many failed.
    """
    if result.requests == 0 or result.errors > max(10, result.requests // 100):
        raise RuntimeError(
            f"{result.engine}: {result.requests} requests ok, {result.errors} failed"
        )
    return {
        "rate": result.rate,
        "p50": result.p50,
        "p99": result.p99,
        "errors": result.errors,
        "wrkCpu": result.clientCpu if result.engine == "wrk" else 0.0,
    }


def pushImages(port: int, repository: str, images: list[Image], tagBase: int) -> None:
    """
    Push C{images} one after another on one keep-alive connection.
    """
    with Connection(port) as conn:
        for i, image in enumerate(images):
            registry.pushImage(conn, repository, f"i{tagBase + i}", image)


class SmallSequential(Scenario):
    """
    C{smallImages} distinct images (2 random 4 KiB layers, a config, an OCI manifest
    by tag) pushed one after another on one keep-alive connection.
    """

    key = "small_seq"

    def prepare(self, ctx: Context) -> list[Image]:
        return [makeImage() for _ in range(ctx.mode.smallImages)]

    def run(self, ctx: Context, prepared: list[Image]) -> Metrics:
        started = time.perf_counter()
        pushImages(ctx.daemon.port, f"small-seq/r{ctx.round}", prepared, 0)
        elapsed = time.perf_counter() - started
        return {"rate": len(prepared) / elapsed, "seconds": elapsed}


class SmallParallel(SmallSequential):
    """
    The same number of distinct images pushed by C{smallWorkers} workers, each on its
    own keep-alive connection, all to one repository.
    """

    key = "small_par"

    def run(self, ctx: Context, prepared: list[Image]) -> Metrics:
        workers = ctx.mode.smallWorkers
        shares = [prepared[i::workers] for i in range(workers)]
        started = time.perf_counter()
        inThreads(
            workers,
            lambda i: pushImages(
                ctx.daemon.port, f"small-par/r{ctx.round}", shares[i], i * len(prepared)
            ),
            600,
        )
        elapsed = time.perf_counter() - started
        return {"rate": len(prepared) / elapsed, "seconds": elapsed}


class Restart(Scenario):
    """
    Start a second daemon of the same kind on a prepared data directory: the time from
    process start to the first 200 on C{/v2/}, its peak RSS and CPU time by then.
    """

    key = "restart_small"
    watchesMainDaemon = False

    def run(self, ctx: Context, prepared: Any) -> Metrics:
        restartDir = ctx.restartDirs.get(self.key)
        if restartDir is None or restartDir.path is None:
            raise Skipped(restartDir.note if restartDir else "no data dir prepared")
        daemon = type(ctx.daemon)(restartDir.path, ctx.workDir)
        try:
            seconds = daemon.start(timeout=300)
            rss = procstat.peakRssBytes(daemon.pid)
            cpu = procstat.cpuSeconds(daemon.pid)
        finally:
            daemon.stop()
        return {"seconds": seconds, "rss": rss, "serverCpu": cpu}


class RestartMany(Restart):
    """
    L{Restart} on the data directory with C{manyTags} tags.
    """

    key = "restart_many"


def scenarios(mode: Mode) -> list[Scenario]:
    """
    Every scenario run in each round, in order.
    """
    chosen: list[Scenario] = [
        PushMonolithic(),
        PushChunked(),
        PullOne(),
        PullMany(),
        ManifestLoad(),
        ManifestHeadLoad(),
        SmallSequential(),
        SmallParallel(),
        TagsListLoad(),
    ]
    if mode.memoryPushSize != mode.blobSize:
        chosen.append(PushMemory())
    chosen += [Restart(), RestartMany()]
    return chosen
