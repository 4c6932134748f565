"""
The crash torture (L{tests.torture}) in a short form: a real C{twistd -n ocid}, four
concurrent pushers, three C{kill -9} at random moments about four seconds apart, a
restart on the same data after each, then a clean stop and restart; nothing acknowledged
may be lost or corrupted, and the daemon's log must stay free of tracebacks.

The seed is random unless C{OCID_TORTURE_SEED} is set; a failure names it, so that
C{python -m tests.torture --seed SEED} repeats the run (up to the timing of the kills).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.torture import Torture, TortureConfig


def test_crashTorture(tmp_path: Path) -> None:
    """
    Three kill cycles of about four seconds with four pushers acknowledge many writes,
    lose none and corrupt none, within a minute.
    """
    seed = int(os.environ.get("OCID_TORTURE_SEED", "0")) or int.from_bytes(
        os.urandom(4), "big"
    )
    lines: list[str] = []
    config = TortureConfig(
        data=tmp_path / "data",
        log=tmp_path / "ocid.log",
        cycles=3,
        seconds=4.0,
        pushers=4,
        seed=seed,
    )
    started = time.monotonic()
    torture = Torture(config, out=lines.append)
    reports = torture.run()
    elapsed = time.monotonic() - started
    output = "\n".join(lines)
    print(output)
    totals = torture.totals()

    assert [r.name for r in reports] == [
        "cycle 1/3",
        "cycle 2/3",
        "cycle 3/3",
        "final (clean restart)",
    ], output
    assert (totals["lost"], totals["corrupted"], totals["problem"]) == (0, 0, 0), output
    assert totals["images"] >= 20, output
    for report in reports[:3]:
        assert report.checked["manifests"] > 0, output
    assert reports[-1].checked["blobs"] > 0, output
    assert elapsed < 60, f"took {elapsed:.1f} s\n{output}"
