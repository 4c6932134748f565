"""
Run every scenario against every daemon, round by round in alternation (round 1 ocid,
round 1 reference, round 2 ocid, ...), with CPU and RSS accounting around each run.
"""

from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from bench import fixtures, procstat
from bench.config import Mode
from bench.daemons import Daemon
from bench.datasets import BlobFile, BlobSource
from bench.scenarios import Context, Metrics, Scenario, Skipped, scenarios


def log(message: str) -> None:
    """
    A progress line on standard error.
    """
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def clientCpuSeconds() -> float:
    """
    CPU time used so far by this process (every thread), in seconds.
    """
    return time.process_time()


@dataclass
class Results:
    """
    Everything measured: per daemon name, per scenario key, one metrics dict per
    successful round; and the errors and skips met.
    """

    runs: dict[str, dict[str, list[Metrics]]] = field(default_factory=dict)
    errors: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    skipped: dict[str, dict[str, str]] = field(default_factory=dict)
    peakRss: dict[str, int] = field(default_factory=dict)
    rounds: int = 0

    def add(self, daemon: str, scenario: str, metrics: Metrics) -> None:
        self.runs.setdefault(daemon, {}).setdefault(scenario, []).append(metrics)

    def fail(self, daemon: str, scenario: str, message: str) -> None:
        self.errors.setdefault(daemon, {}).setdefault(scenario, []).append(message)

    def skip(self, daemon: str, scenario: str, reason: str) -> None:
        self.skipped.setdefault(daemon, {})[scenario] = reason


def runOnce(scenario: Scenario, ctx: Context) -> Metrics:
    """
    Prepare, run and clean up one scenario, adding to the metrics of its run C{wall},
    C{clientCpu} (this process and C{wrk}), C{otherCpu} (every other process on the
    machine), and for scenarios on the main daemon C{serverCpu} and C{rssGrowth} (peak
    RSS during the run minus RSS before it).
    """
    prepared = scenario.prepare(ctx)
    try:
        return measuredRun(scenario, ctx, prepared)
    finally:
        scenario.cleanup(ctx, prepared)


def measuredRun(scenario: Scenario, ctx: Context, prepared: object) -> Metrics:
    """
    The metrics of one run of C{scenario}, with CPU and RSS accounting.
    """
    daemon = ctx.daemon
    watch = scenario.watchesMainDaemon
    if watch:
        resetWorked = daemon.resetPeak()
        rssBefore = procstat.rssBytes(daemon.pid)
        serverBefore = procstat.cpuSeconds(daemon.pid)
    clientBefore = clientCpuSeconds()
    busyBefore = procstat.machineBusySeconds()
    started = time.perf_counter()
    if watch:
        with procstat.RssSampler(daemon.pid) as sampler:
            metrics = scenario.run(ctx, prepared)
    else:
        metrics = scenario.run(ctx, prepared)
    metrics["wall"] = time.perf_counter() - started
    # wrk's CPU is reported by the scenario: rusage of children would also count the
    # daemons that restart scenarios start and reap.
    metrics["clientCpu"] = clientCpuSeconds() - clientBefore + metrics.get("wrkCpu", 0.0)
    busy = procstat.machineBusySeconds() - busyBefore
    if watch:
        metrics["serverCpu"] = procstat.cpuSeconds(daemon.pid) - serverBefore
        peak = sampler.peak
        if resetWorked:
            peak = max(peak, procstat.peakRssBytes(daemon.pid))
        metrics["rssGrowth"] = max(0, peak - rssBefore)
    metrics["otherCpu"] = max(
        0.0, busy - metrics["clientCpu"] - metrics.get("serverCpu", 0.0)
    )
    return metrics


@dataclass
class Subject:
    """
    One daemon under test, with its prepared restart data directories.
    """

    daemon: Daemon
    restartDirs: dict[str, fixtures.RestartDir]


def runRounds(
    results: Results,
    subjects: list[Subject],
    mode: Mode,
    blobSource: BlobSource,
    memorySource: BlobSource,
    pullBlob: BlobFile,
    workDir: Path,
    engine: str,
    deadline: float,
) -> None:
    """
    Run C{mode.rounds} rounds into C{results}; in each, every subject in turn runs every scenario.
    A failing scenario is recorded and the rest go on; a daemon that died is started
    again on its data directory.
    """
    chosen = scenarios(mode)
    for round in range(1, mode.rounds + 1):
        if time.monotonic() > deadline:
            log(f"time limit reached; stopping before round {round}")
            break
        results.rounds = round
        for subject in subjects:
            daemon = subject.daemon
            for scenario in chosen:
                if time.monotonic() > deadline:
                    break
                if not daemon.running():
                    log(f"{daemon.name} is not running; starting it again")
                    try:
                        daemon.start()
                    except RuntimeError as e:
                        results.fail(daemon.name, scenario.key, f"restart failed: {e}")
                        continue
                ctx = Context(
                    daemon=daemon,
                    mode=mode,
                    blobSource=blobSource,
                    memorySource=memorySource,
                    pullBlob=pullBlob,
                    round=round,
                    engine=engine,
                    restartDirs=subject.restartDirs,
                    workDir=workDir,
                )
                try:
                    metrics = runOnce(scenario, ctx)
                except Skipped as e:
                    results.skip(daemon.name, scenario.key, str(e))
                    continue
                except Exception as e:  # noqa: BLE001 - recorded and reported
                    message = f"{type(e).__name__}: {e}"
                    log(f"round {round} {daemon.name} {scenario.key} FAILED: {message}")
                    if not daemon.running():
                        message += f"\n  daemon died; log tail:\n{daemon.logTail(1500)}"
                    else:
                        message += "\n" + "".join(traceback.format_exc(limit=3))[-800:]
                    results.fail(daemon.name, scenario.key, message)
                    continue
                results.add(daemon.name, scenario.key, metrics)
                log(f"round {round} {daemon.name} {scenario.key}: {summarize(metrics)}")
    for subject in subjects:
        results.peakRss[subject.daemon.name] = max(
            subject.daemon.overallPeak, subject.daemon.notePeak()
        )


def summarize(metrics: Metrics) -> str:
    """
    A compact one-line rendering of a metrics dict.
    """
    return " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
