"""
The rows of the result table: what each measures, which direction is better, and the
target ocid should meet.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.config import Mode, describeCount, describeSize


@dataclass(frozen=True)
class Target:
    """
    A goal for ocid on one row.

    @ivar kind: C{"ratio>="} or C{"ratio<="} (ocid/reference), C{"value<="} (ocid's own
        value), or C{"ddshare>="} (ocid's value as a share of the dd fdatasync rate).
    @ivar bound: the number the kind compares against.
    """

    kind: str
    bound: float

    def describe(self, ddRate: float | None = None) -> str:
        """
        A short label, such as C{>=1.5x} or C{<=200 ms}.
        """
        if self.kind == "ratio>=":
            return f">={self.bound:g}x"
        if self.kind == "ratio<=":
            return f"<={self.bound:g}x"
        if self.kind == "ddshare>=":
            suffix = f" ({self.bound * ddRate:.0f})" if ddRate else ""
            return f">={self.bound:.0%} dd{suffix}"
        return f"<={self.bound:g}"

    def met(self, ocid: float, ratio: float | None, ddRate: float | None) -> bool | None:
        """
        Whether ocid meets this target; C{None} if it cannot be told.
        """
        if self.kind == "ratio>=":
            return None if ratio is None else ratio >= self.bound
        if self.kind == "ratio<=":
            return None if ratio is None else ratio <= self.bound
        if self.kind == "ddshare>=":
            return None if not ddRate else ocid >= self.bound * ddRate
        return ocid <= self.bound


@dataclass(frozen=True)
class Row:
    """
    One line of the table.

    @ivar key: a stable identifier (the first column).
    @ivar label: what is measured.
    @ivar scenario: the scenario whose results hold the value.
    @ivar metric: the name of the value in that scenario's results.
    @ivar unit: the unit shown.
    @ivar higherIsBetter: which direction is better.
    @ivar targets: what ocid should meet (all of them).
    @ivar scale: multiplies the stored metric for display (seconds to ms, bytes to MiB).
    """

    key: str
    label: str
    scenario: str
    metric: str
    unit: str
    higherIsBetter: bool
    targets: tuple[Target, ...] = ()
    scale: float = 1.0


def tableRows(mode: Mode) -> list[Row]:
    """
    Every row of the table for C{mode}, in order.
    """
    blob = describeSize(mode.blobSize)
    chunk = describeSize(mode.chunkSize)
    many = describeCount(mode.manyTags)
    memoryPush = "push_mem" if mode.memoryPushSize != mode.blobSize else "push_mono"
    return [
        Row(
            "push_mono",
            f"{blob} blob monolithic push (POST+PUT)",
            "push_mono",
            "mbps",
            "MB/s",
            True,
            (Target("ratio>=", 1.5), Target("ddshare>=", 0.9)),
        ),
        Row(
            "push_chunked",
            f"{blob} blob chunked push ({chunk} PATCHes)",
            "push_chunked",
            "mbps",
            "MB/s",
            True,
            (Target("ratio>=", 1.8),),
        ),
        Row(
            "pull_1",
            f"{blob} blob pull, 1 client",
            "pull_1",
            "mbps",
            "MB/s",
            True,
            (Target("ratio>=", 1.0),),
        ),
        Row(
            "pull_n",
            f"{blob} blob pull, {mode.pullClients} clients (total)",
            "pull_n",
            "mbps",
            "MB/s",
            True,
            (Target("ratio>=", 1.0),),
        ),
        Row(
            "manifest_get",
            f"manifest GET by tag, {mode.loadConnections} conns",
            "manifest_get",
            "rate",
            "req/s",
            True,
            (Target("ratio>=", 4.0),),
        ),
        Row(
            "manifest_get_p99",
            "manifest GET p99 latency",
            "manifest_get",
            "p99",
            "ms",
            False,
            (Target("ratio<=", 0.25),),
            1000.0,
        ),
        Row(
            "manifest_head",
            f"manifest HEAD by tag, {mode.loadConnections} conns",
            "manifest_head",
            "rate",
            "req/s",
            True,
            (Target("ratio>=", 4.0),),
        ),
        Row(
            "manifest_head_p99",
            "manifest HEAD p99 latency",
            "manifest_head",
            "p99",
            "ms",
            False,
            (Target("ratio<=", 0.25),),
            1000.0,
        ),
        Row(
            "small_seq",
            f"small image push, {mode.smallImages} sequential",
            "small_seq",
            "rate",
            "img/s",
            True,
            (Target("ratio>=", 3.0),),
        ),
        Row(
            "small_par",
            f"small image push, {mode.smallWorkers} workers",
            "small_par",
            "rate",
            "img/s",
            True,
            (Target("ratio>=", 3.0),),
        ),
        Row(
            "tags_list",
            f"tags/list of {describeCount(mode.listTags)} tags",
            "tags_list",
            "rate",
            "req/s",
            True,
            (Target("ratio>=", 4.0),),
        ),
        Row(
            "restart_small",
            f"restart to first 200, {describeCount(mode.restartTags)} tags",
            "restart_small",
            "seconds",
            "ms",
            False,
            (Target("value<=", 200),),
            1000.0,
        ),
        Row(
            "restart_many",
            f"restart to first 200, {many} tags",
            "restart_many",
            "seconds",
            "s",
            False,
            (Target("value<=", 5),),
        ),
        Row(
            "rss_many",
            f"peak RSS at restart, {many} tags",
            "restart_many",
            "rss",
            "MiB",
            False,
            (Target("value<=", 1024),),
            1 / (1 << 20),
        ),
        Row(
            "rss_push",
            f"RSS growth, {describeSize(mode.memoryPushSize)} push",
            memoryPush,
            "rssGrowth",
            "MiB",
            False,
            (Target("value<=", 50),),
            1 / (1 << 20),
        ),
        Row(
            "rss_pull",
            f"RSS growth, {mode.pullClients}x{blob} pull",
            "pull_n",
            "rssGrowth",
            "MiB",
            False,
            (Target("value<=", 50),),
            1 / (1 << 20),
        ),
    ]
