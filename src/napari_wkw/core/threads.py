"""Ordered, memory-bounded parallel map for the work inside one unit.

Reading WKW (libwkw), LZ4 and numpy's filters release the GIL, so a few threads fill
the cores when one big file is the only unit left; at most ``2 x threads`` results
are held at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def bounded_map(function: Callable[[T], R], items: Iterable[T], threads: int = 1) -> Iterator[R]:
    """``map(function, items)`` on ``threads`` threads, results in order, lazily."""
    if threads <= 1:
        yield from map(function, items)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="napari-wkw-tile") as pool:
        window: deque = deque()
        try:
            for item in items:
                window.append(pool.submit(function, item))
                if len(window) >= 2 * threads:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            for future in window:
                future.cancel()
