"""Progress that batch jobs can read: a tqdm bar on a terminal, one line per interval elsewhere.

tqdm with ``disable=None`` is silent when stderr is not a terminal (``nohup``, a TPU VM's batch
job, CI logs), so a ten-minute survey said nothing until it ended. Off a terminal, `bar` prints
one plain line to stderr at most every ``interval`` seconds and once at the end::

    jaxsteer collecting: 96/128 grad, 41.3 grad/s, ETA 1s

stdout is never touched: commands print their JSON summary there.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

INTERVAL_S = 30.0


def _duration(seconds: float) -> str:
    """12s, 4m05s, 2h03m."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def line(desc: str, done: int, total: int | None, unit: str, elapsed: float) -> str:
    """One progress record: done/total, rate and ETA (when the total and a rate are known)."""
    rate = done / elapsed if elapsed > 0 else 0.0
    text = f"jaxsteer {desc}: {done}/{total if total is not None else '?'} {unit}"
    text += f", {rate:.3g} {unit}/s" if rate >= 0.1 or rate == 0 else f", {1 / rate:.3g} s/{unit}"
    if total is not None and rate > 0:
        text += f", ETA {_duration(max(total - done, 0) / rate)}"
    return text + f", elapsed {_duration(elapsed)}"


class LineProgress:
    """A tqdm-like counter (``update``, ``close``, iteration) that prints `line` records."""

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None,
                 desc: str = "", unit: str = "it", interval: float = INTERVAL_S,
                 stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        self.iterable, self.desc, self.unit, self.interval = iterable, desc, unit, interval
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.n, self.clock = total, 0, clock
        self.stream = stream if stream is not None else sys.stderr
        self.start = self.last = clock()
        self.closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last >= self.interval:
            self._print(now)

    def _print(self, now: float) -> None:
        self.last = now
        print(line(self.desc, self.n, self.total, self.unit, now - self.start), file=self.stream,
              flush=True)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._print(self.clock())

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()


def bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
        unit: str = "it", stream: TextIO | None = None) -> Any:
    """A tqdm bar when ``stream`` (stderr) is a terminal, else a `LineProgress`."""
    stream = stream if stream is not None else sys.stderr
    if getattr(stream, "isatty", lambda: False)():
        from tqdm.auto import tqdm
        return tqdm(iterable, total=total, desc=desc, unit=unit, file=stream)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, stream=stream)
