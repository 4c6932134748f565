"""
C{python -m bench [--short | --smoke]}: benchmark ocid against the reference registry
side by side and print a table of medians with ratios and targets.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench import fixtures, machine
from bench.config import FULL, MODES, SHORT, SMOKE, Mode
from bench.daemons import (
    Daemon,
    OcidDaemon,
    ReferenceDaemon,
    ocidAvailable,
    referenceAvailable,
)
from bench.datasets import BlobFile, makeBlobSource
from bench.loadgen import wrkAvailable
from bench.report import render
from bench.runner import Results, Subject, log, runRounds


def parseArguments(argv: list[str]) -> argparse.Namespace:
    """
    The command-line options.
    """
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark ocid against the reference registry (docker-registry).",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--short", action="store_true", help="quick mode (3 rounds)")
    size.add_argument("--smoke", action="store_true", help="tiny sizes, 1 round, seconds")
    parser.add_argument("--rounds", type=int, help="override the number of rounds")
    parser.add_argument(
        "--only", choices=["ocid", "reference"], help="benchmark one daemon only"
    )
    parser.add_argument(
        "--engine",
        choices=["auto", "wrk", "py"],
        default="auto",
        help="load generator for GET rates (HEAD always uses py: wrk cannot)",
    )
    parser.add_argument("--workdir", type=Path, help="parent of the temporary directory")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--time-limit", type=float, help="seconds before no new scenario")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "ocid-bench-cache",
        help="where ocid's 1M-tag data dir is kept for later runs with the same ocid "
        "source (default: %(default)s)",
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="always make the 1M-tag data dir afresh"
    )
    return parser.parse_args(argv)


def chooseMode(arguments: argparse.Namespace) -> Mode:
    """
    The mode the options ask for.
    """
    mode = SMOKE if arguments.smoke else SHORT if arguments.short else FULL
    if arguments.rounds:
        mode = replace(mode, rounds=max(1, min(arguments.rounds, 100)))
    if arguments.time_limit:
        mode = replace(mode, timeLimit=arguments.time_limit)
    return mode


def chooseKinds(arguments: argparse.Namespace, notes: list[str]) -> list[type[Daemon]]:
    """
    The daemons to benchmark: those installed, and asked for.
    """
    kinds: list[type[Daemon]] = []
    if arguments.only in (None, "ocid"):
        if ocidAvailable():
            kinds.append(OcidDaemon)
        else:
            notes.append("ocid is not installed here (`twistd ocid` unknown): skipped")
    if arguments.only in (None, "reference"):
        if referenceAvailable():
            kinds.append(ReferenceDaemon)
        else:
            notes.append("docker-registry is not installed: reference skipped")
    return kinds


def setUp(
    kind: type[Daemon],
    mode: Mode,
    workDir: Path,
    blob: BlobFile,
    results: Results,
    cacheDir: Path | None,
) -> Subject | None:
    """
    Prepare the restart data directories of C{kind}, start its main daemon and give it
    its content; C{None} (and the error recorded in C{results}) if that fails.
    """
    daemon: Daemon | None = None
    try:
        restartDirs = fixtures.prepareRestartDirs(kind, mode, workDir, log, cacheDir)
        daemon = kind(workDir / f"{kind.name}-data", workDir)
        daemon.start()
        fixtures.populate(daemon, mode, blob)
    except Exception as e:  # noqa: BLE001 - recorded and reported
        log(f"{kind.name} setup FAILED: {e}")
        tail = daemon.logTail(1500) if daemon else ""
        results.fail(kind.name, "setup", f"{type(e).__name__}: {e}\n{tail}")
        if daemon:
            daemon.stop()
        return None
    log(f"{kind.name} started on port {daemon.port} and populated")
    return Subject(daemon, restartDirs)


def main(argv: list[str]) -> int:
    """
    Run the benchmark; 0 if every scenario ran without error.
    """
    arguments = parseArguments(argv)
    mode = chooseMode(arguments)
    assert mode.name in MODES
    notes = [
        "both daemons, the client and wrk share the machine's cores: rates are "
        "relative measures, and the CPU table shows how much the client took",
        "reference config: filesystem storage, delete enabled, no auth, access log off, "
        "log level error, in-memory blob descriptor cache (as in its stock config)",
    ]
    kinds = chooseKinds(arguments, notes)
    if not kinds:
        print("nothing to benchmark: neither ocid nor docker-registry is available")
        return 2
    if arguments.engine == "py" or not wrkAvailable() or mode.loadSeconds < 1:
        notes.append("request rates measured with bench's own epoll client")
    else:
        notes.append(
            "GET rates measured with wrk -t1; HEAD with bench's own epoll client, since "
            "wrk 4.1 waits for a body after HEAD (wg/wrk issue 198)"
        )
    workDir = Path(tempfile.mkdtemp(prefix="ocid-bench-", dir=arguments.workdir))
    cacheDir = None if arguments.no_cache else arguments.cache_dir
    started = time.monotonic()
    deadline = started + mode.timeLimit
    subjects: list[Subject] = []
    results = Results()
    present = {kind.name for kind in kinds}
    limits = None
    try:
        log(f"{mode.name} mode; work dir {workDir}; daemons: {sorted(present)}")
        limits = machine.measure(workDir, mode.machineScale)
        log(f"machine: {limits}")
        blobSource = makeBlobSource(workDir / "blob.bin", mode.blobSize)
        memorySource = blobSource
        if mode.memoryPushSize != mode.blobSize:
            memorySource = makeBlobSource(workDir / "memory-blob.bin", mode.memoryPushSize)
        pullBlob = blobSource.variant()
        log("blob files written")
        for kind in kinds:
            subject = setUp(kind, mode, workDir, pullBlob, results, cacheDir)
            if subject:
                subjects.append(subject)
        if ReferenceDaemon in kinds:
            notes.append(
                "the reference registry reads no tags at startup, so its "
                "restart time does not depend on the number of tags"
            )
        runRounds(
            results,
            subjects,
            mode,
            blobSource,
            memorySource,
            pullBlob,
            workDir,
            arguments.engine,
            deadline,
        )
    finally:
        for subject in subjects:
            stopping = time.monotonic()
            subject.daemon.stop()
            log(f"{subject.daemon.name} stopped in {time.monotonic() - stopping:.1f}s")
        if arguments.keep:
            log(f"kept {workDir}")
        else:
            removing = time.monotonic()
            shutil.rmtree(workDir, ignore_errors=True)
            log(f"work dir removed in {time.monotonic() - removing:.1f}s")
    print(render(results, mode, limits, present, notes))
    log(f"done in {time.monotonic() - started:.0f}s")
    return 1 if results.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
