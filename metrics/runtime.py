"""Process start-up tuning shared by every long-lived entry point (`vsm`, the benchmark)."""

import gc


def settle() -> None:
    """Freeze everything alive after start-up (modules, numpy and scipy internals) out of the cyclic
    garbage collector's reach. A full collection then walks only what a request allocated: measured on
    the benchmark database, this removed a ~35 ms pause from the p95 of every metric."""
    gc.collect()
    gc.freeze()
