"""Bulk work without the cyclic garbage collector.

Building findings and rendering them create many small objects and free almost none until the end; with a
results file of 100,000 rows in memory, every full collection rescans all of it, and that costs a third of
the time. Nothing in the reporter makes reference cycles it relies on the collector for, so it is paused
while bulk work runs and resumed (and left to catch up) afterwards.
"""

from __future__ import annotations

import functools
import gc
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def no_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def bulk(fn: F) -> F:
    """Run `fn` with the cyclic garbage collector paused."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with no_gc():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
