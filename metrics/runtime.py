"""Process start-up tuning shared by every long-lived entry point (`vsm`, the benchmark), and fewer
garbage collections around computations."""

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Young objects allocated between two automatic collections while a computation runs (CPython's
# default is 700). High enough that a digest's tens of thousands of objects are not walked again and
# again, low enough that a process under steady load still collects its cycles.
DEFERRED_THRESHOLD = 100_000

_lock = threading.Lock()
_active = 0  # computations inside ``gc_deferred`` now, across threads
_saved: tuple[int, ...] = gc.get_threshold()  # the thresholds to restore when the last one ends


def settle() -> None:
    """Freeze everything alive after start-up (modules, numpy internals) out of the cyclic
    garbage collector's reach. A full collection then walks only what a request allocated: measured on
    the benchmark database, this removed a ~35 ms pause from the p95 of every metric."""
    gc.collect()
    gc.freeze()


@contextmanager
def gc_deferred() -> Iterator[None]:
    """Fewer cyclic collections inside the block, never none. A computation allocates tens of
    thousands of small objects (items, observations, their explain callables) that stay alive until
    it ends and that reference counting frees: at the default threshold the collector walks them
    again and again (measured: a third of the time spent building a digest's observations).

    The collector's threshold is process-wide and the Slack app computes on several threads, so the
    blocks are counted under a lock and the first one's thresholds come back when the last one ends.
    The collector is only made lazier, never switched off: under steady load the blocks may overlap
    for hours, and a process must still collect its cycles then. A threshold of 0 (automatic
    collection off, the owner's choice) is left as it is."""
    global _active, _saved
    with _lock:
        if _active == 0:
            _saved = gc.get_threshold()
            if _saved[0]:
                gc.set_threshold(max(_saved[0], DEFERRED_THRESHOLD), *_saved[1:])
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                gc.set_threshold(*_saved)
