"""
Render the results: machine limits, the table of medians with ratio, target and
met/missed per row, a CPU table, peak RSS, and the errors met.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from bench.config import Mode
from bench.machine import MachineLimits
from bench.rows import Row, tableRows
from bench.runner import Results

OCID = "ocid"
REFERENCE = "reference"


@dataclass
class Cell:
    """
    One daemon's value on one row: a median, or why there is none.
    """

    value: float | None
    note: str = ""

    def render(self) -> str:
        if self.value is None:
            return self.note
        return formatNumber(self.value)


def formatNumber(value: float) -> str:
    """
    A number with about four significant digits, no exponent for usual sizes.
    """
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    if abs(value) >= 10:
        return f"{value:.2f}"
    return f"{value:.3g}"


def cell(results: Results, daemon: str, row: Row, present: bool) -> Cell:
    """
    The median of C{row}'s metric over C{daemon}'s successful rounds.
    """
    if not present:
        return Cell(None, "absent")
    runs = results.runs.get(daemon, {}).get(row.scenario, [])
    values = [run[row.metric] for run in runs if row.metric in run]
    if values:
        return Cell(statistics.median(values) * row.scale)
    if row.scenario in results.skipped.get(daemon, {}):
        return Cell(None, "n/a")
    if {row.scenario, "setup"} & set(results.errors.get(daemon, {})):
        return Cell(None, "ERR")
    return Cell(None, "-")


def renderTable(header: list[str], lines: list[list[str]], right: set[int]) -> str:
    """
    A pipe-separated table with aligned columns; columns in C{right} align right.
    """
    widths = [
        max(len(str(line[i])) for line in [header, *lines]) for i in range(len(header))
    ]

    def renderLine(line: list[str]) -> str:
        parts = [
            str(value).rjust(widths[i]) if i in right else str(value).ljust(widths[i])
            for i, value in enumerate(line)
        ]
        return "| " + " | ".join(parts) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([renderLine(header), rule, *(renderLine(line) for line in lines)])


def mainTable(
    results: Results, mode: Mode, limits: MachineLimits | None, present: set[str]
) -> tuple[str, int, int]:
    """
    The table of rows; also how many targets were met and how many missed.
    """
    ddRate = limits.ddFdatasync if limits else None
    lines = []
    met = missed = 0
    for row in tableRows(mode):
        ocid = cell(results, OCID, row, OCID in present)
        reference = cell(results, REFERENCE, row, REFERENCE in present)
        ratio = None
        if ocid.value is not None and reference.value:
            ratio = ocid.value / reference.value
        verdicts = []
        for target in row.targets:
            verdicts.append(
                None if ocid.value is None else target.met(ocid.value, ratio, ddRate)
            )
        if verdicts and all(v is True for v in verdicts):
            verdict = "met"
            met += 1
        elif any(v is False for v in verdicts):
            verdict = "MISSED"
            missed += 1
        else:
            verdict = "?"
        lines.append(
            [
                row.key,
                row.label,
                row.unit,
                "higher" if row.higherIsBetter else "lower",
                ocid.render(),
                reference.render(),
                f"{ratio:.2f}x" if ratio is not None else "-",
                " & ".join(t.describe(ddRate) for t in row.targets),
                verdict,
            ]
        )
    header = [
        "row",
        "measure",
        "unit",
        "better",
        "ocid",
        "reference",
        "ocid/ref",
        "target",
        "met?",
    ]
    return renderTable(header, lines, {4, 5, 6}), met, missed


def cpuTable(results: Results) -> str:
    """
    Median wall time and CPU seconds of server, client and every other process, per
    scenario and daemon.
    """
    keys: list[str] = []
    for daemon in (OCID, REFERENCE):
        for key in results.runs.get(daemon, {}):
            if key not in keys:
                keys.append(key)
    metrics = ("wall", "serverCpu", "clientCpu", "otherCpu")
    lines = []
    for key in keys:
        line = [key]
        for daemon in (OCID, REFERENCE):
            runs = results.runs.get(daemon, {}).get(key, [])
            for metric in metrics:
                values = [run[metric] for run in runs if metric in run]
                line.append(f"{statistics.median(values):.2f}" if values else "-")
        lines.append(line)
    header = ["scenario"]
    for daemon in ("ocid", "ref"):
        header += [
            f"{daemon} wall",
            f"{daemon} server",
            f"{daemon} client",
            f"{daemon} other",
        ]
    return renderTable(header, lines, set(range(1, len(header))))


def otherLoadNote(results: Results, cores: int) -> str | None:
    """
    A warning if processes other than the client and the daemon under test used more
    than 10% of the machine during the timed runs, else C{None}.
    """
    other = wall = 0.0
    for byScenario in results.runs.values():
        for runs in byScenario.values():
            for run in runs:
                other += run.get("otherCpu", 0.0)
                wall += run.get("wall", 0.0)
    if not wall or other / (wall * cores) <= 0.10:
        return None
    return (
        f"other processes used {other:.0f} CPU-seconds during {wall:.0f} s of timed runs "
        f"({other / (wall * cores):.0%} of the machine): results are noisy, run again on "
        f"a quiet machine"
    )


def shorten(message: str, lines: int = 8) -> str:
    """
    The first line of C{message} and its last C{lines} lines, indented.
    """
    parts = message.strip().splitlines()
    if len(parts) > lines + 1:
        parts = [parts[0], "  ...", *parts[-lines:]]
    return "\n    ".join(parts)


def errorLines(results: Results) -> list[str]:
    """
    One entry per daemon and scenario that failed or was skipped.
    """
    lines = []
    for daemon, byScenario in results.errors.items():
        for key, messages in byScenario.items():
            lines.append(
                f"- {daemon} {key}: failed {len(messages)}x; first: {shorten(messages[0])}"
            )
    for daemon, byScenario in results.skipped.items():
        for key, reason in byScenario.items():
            lines.append(f"- {daemon} {key}: skipped: {reason}")
    return lines


def render(
    results: Results,
    mode: Mode,
    limits: MachineLimits | None,
    present: set[str],
    notes: list[str],
) -> str:
    """
    The whole report, as printed at the end of a run.
    """
    out = [f"== ocid benchmark, {mode.name} mode, {results.rounds} round(s), medians =="]
    if limits:
        out.append(
            f"machine: {limits.cores} cores (shared by the client and both daemons), "
            f"sha256 {limits.sha256:,.0f} MB/s, dd bs=1M conv=fdatasync "
            f"{limits.ddFdatasync:,.0f} MB/s, loopback TCP {limits.loopbackTcp:,.0f} MB/s"
        )
    table, met, missed = mainTable(results, mode, limits, present)
    out += ["", table, "", f"targets: {met} met, {missed} missed"]
    peaks = ", ".join(
        f"{name} {value / (1 << 20):,.0f} MiB" for name, value in results.peakRss.items()
    )
    out.append(f"peak RSS (VmHWM) of the main daemons over the whole run: {peaks}")
    out += [
        "",
        "CPU seconds per scenario (medians; client = this process + wrk; other = every "
        "other process on the machine):",
        cpuTable(results),
    ]
    if limits:
        warning = otherLoadNote(results, limits.cores)
        if warning:
            notes = [*notes, warning]
    problems = errorLines(results)
    if problems:
        out += ["", "errors and skips:", *problems]
    if notes:
        out += ["", "notes:", *(f"- {note}" for note in notes)]
    return "\n".join(out)
