"""The garbage collector's settings for a record processor's process.

A processor makes and drops a few small objects per record (tuples, decoded events), nearly
all freed at once by reference counting, while it keeps tens of thousands of sessions and
page-minutes cached. With CPython's default thresholds (700, 10, 10) the collector runs every
700 new objects and keeps scanning that cache: a fifth of the processor's time at 1,000
events/s (`clickstream bench`). Here a young collection waits for 50,000 new objects, and
what start-up made (modules, schemas, clients) is frozen out of every scan; full collections
still come (every ten of the middle generation's), so cyclic garbage is still reclaimed.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

THRESHOLDS: Final = (50_000, 20, 10)


def tune_for_processing() -> None:
    """Set the processor's collector settings for the rest of the process."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


@contextmanager
def processing_gc() -> Iterator[None]:
    """The processor's collector settings within the block (the bench, tests), then the
    previous ones again."""
    previous = gc.get_threshold()
    tune_for_processing()
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()
