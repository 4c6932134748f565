"""
Smoke test of the benchmark: C{python -m bench --smoke} runs end to end and prints a
table with a number in every row, for ocid and (where it is installed) the reference
registry. No timing is asserted.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.config import SMOKE
from bench.daemons import REFERENCE_BINARY
from bench.rows import tableRows

ROOT = Path(__file__).resolve().parent.parent
NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?(e[+-]?\d+)?$")


def tableCells(output: str) -> dict[str, dict[str, str]]:
    """
    The cells of the main table in the benchmark's output: row key to column name to
    cell text.
    """
    allLines = output.splitlines()
    start = next(i for i, line in enumerate(allLines) if line.startswith("| row "))
    header = [cell.strip() for cell in allLines[start].strip("|").split("|")]
    rows: dict[str, dict[str, str]] = {}
    for line in allLines[start + 2 :]:
        if not line.startswith("| "):
            break  # the end of the main table
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert len(cells) == len(header), line
        rows[cells[0]] = dict(zip(header, cells, strict=True))
    return rows


def test_smokeRunPrintsEveryRow(tmp_path: Path) -> None:
    """
    The smoke mode prints every row with a numeric value for ocid, and for the
    reference registry too when C{docker-registry} is installed (always in CI).
    """
    if os.environ.get("CI") == "true" or os.path.exists(REFERENCE_BINARY):
        daemons = ["ocid", "reference"]
        only: list[str] = []
    else:
        daemons = ["ocid"]
        only = ["--only", "ocid"]
    if "reference" in daemons and not os.path.exists(REFERENCE_BINARY):
        pytest.fail(f"CI=true but {REFERENCE_BINARY} is missing")
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--workdir", str(tmp_path), *only],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    context = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"
    assert result.returncode == 0, context
    rows = tableCells(result.stdout)
    for row in tableRows(SMOKE):
        assert row.key in rows, f"row {row.key} missing\n{context}"
        for daemon in daemons:
            value = rows[row.key][daemon]
            assert NUMBER.match(value), f"{row.key}/{daemon} = {value!r}\n{context}"
    assert "machine:" in result.stdout and "dd bs=1M" in result.stdout
