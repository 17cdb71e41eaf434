"""Progress reporting that suits the stream: a tqdm bar on a terminal, a few plain lines in a log.

A tqdm bar redraws itself with carriage returns many times a second; redirected to a file
(``fedsllm demo > log 2>&1``) that is thousands of ``\\r`` updates. :func:`progress_bar` returns tqdm
when stderr is a terminal and otherwise a :class:`PlainProgress` that prints one line at each
quarter of the work (and at most one per ``min_interval_s`` in between), with the same small API
(``update``, ``set_postfix``, ``close``, iteration, ``with``).
"""

from __future__ import annotations

import math
import sys
import time
from typing import IO, Any, Iterable, Iterator

__all__ = ["is_interactive", "PlainProgress", "progress_bar"]


def is_interactive(stream: IO[str] | None = None) -> bool:
    """True if ``stream`` (default: stderr) is a terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or file-like without isatty
        return False


class PlainProgress:
    """Plain-line progress for logs: ``desc: 50% (500/1000) 12 s [key=value]``.

    Args:
        iterable: optional iterable to wrap (its ``len`` is the total when ``total`` is None).
        total: amount of work (None: unknown; then a line is printed at most every ``min_interval_s``).
        desc: label at the start of each line.
        stream: where to print (default: stderr).
        fractions: print when the done fraction crosses each of these.
        min_interval_s: besides the fractions, print at most this often, s.
    """

    def __init__(self, iterable: Iterable[Any] | None = None, total: float | None = None, desc: str = "",
                 stream: IO[str] | None = None, fractions: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0),
                 min_interval_s: float = 60.0):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total
        self.desc = desc
        self.stream = stream
        self.n = 0.0
        self._fractions = sorted(fractions)
        self._next = 0
        self._min_interval_s = float(min_interval_s)
        self._start = self._last = time.perf_counter()
        self._postfix = ""
        self._closed = False
        self.lines = 0
        """Lines printed so far."""

    def _print(self, now: float) -> None:
        done = f"{self.n:g}" if self.total is None else \
            f"{100.0 * self.n / self.total:.0f}% ({self.n:g}/{self.total:g})"
        print(f"{self.desc}: {done} {now - self._start:.0f} s{self._postfix}", file=self.stream or sys.stderr,
              flush=True)
        self._last = now
        self.lines += 1

    def update(self, n: float = 1) -> None:
        """Add ``n`` units of done work; print a line when a fraction is crossed (or the interval passed)."""
        self.n += n
        now = time.perf_counter()
        crossed = False
        if self.total:
            while self._next < len(self._fractions) and self.n >= self._fractions[self._next] * self.total:
                self._next += 1
                crossed = True
        if crossed or now - self._last >= self._min_interval_s:
            self._print(now)

    def set_postfix(self, **values: Any) -> None:
        """Values appended to the next lines (like tqdm's postfix)."""
        self._postfix = " [" + ", ".join(f"{k}={v}" for k, v in values.items()) + "]" if values else ""

    def close(self) -> None:
        """Print a last line if the work stopped between two fractions."""
        if not self._closed and self.total and 0 < self.n < self.total and self._next < len(self._fractions):
            self._print(time.perf_counter())
        self._closed = True

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("PlainProgress was built without an iterable")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(iterable: Iterable[Any] | None = None, total: float | None = None, desc: str = "",
                 enabled: bool = True, **tqdm_kwargs: Any) -> Any:
    """A tqdm bar on a terminal, :class:`PlainProgress` lines otherwise, a silent tqdm when not ``enabled``.

    Args:
        iterable: optional iterable to wrap.
        total: amount of work.
        desc: label.
        enabled: False: report nothing.
        **tqdm_kwargs: passed to tqdm only (e.g. ``leave=False``).
    """
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm comes with the [train] extra; the core package reports in plain lines
        tqdm = None
    if enabled and (tqdm is None or not is_interactive()):
        return PlainProgress(iterable, total=total, desc=desc)
    if tqdm is None:
        return PlainProgress(iterable, total=total, desc=desc, min_interval_s=math.inf, fractions=())
    return tqdm(iterable, total=total, desc=desc, disable=not enabled, **tqdm_kwargs)
