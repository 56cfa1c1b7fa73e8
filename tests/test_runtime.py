"""Fewer collections around computations (metrics.runtime.gc_deferred): the collector's threshold is
process-wide, so the blocks must nest, survive errors and overlap across threads, and the collector
must keep collecting while they do."""

import gc
import threading

import pytest

from metrics.runtime import DEFERRED_THRESHOLD, gc_deferred


@pytest.fixture(autouse=True)
def default_collector():
    before = gc.get_threshold()
    gc.enable()
    yield before
    gc.set_threshold(*before)
    gc.enable()


def test_nested_blocks_restore_the_threshold_when_the_outer_one_ends(default_collector):
    with gc_deferred():
        assert gc.get_threshold()[0] == DEFERRED_THRESHOLD
        with gc_deferred():
            assert gc.get_threshold()[0] == DEFERRED_THRESHOLD
        assert gc.get_threshold()[0] == DEFERRED_THRESHOLD
    assert gc.get_threshold() == default_collector


def test_an_error_inside_still_restores(default_collector):
    with pytest.raises(ValueError), gc_deferred():
        raise ValueError("boom")
    assert gc.get_threshold() == default_collector


def test_automatic_collection_turned_off_by_its_owner_stays_off():
    gc.set_threshold(0)
    with gc_deferred():
        assert gc.get_threshold()[0] == 0
    assert gc.get_threshold()[0] == 0


def test_overlapping_blocks_never_stop_the_collector(default_collector):
    """Two threads' blocks overlap (as under steady load in the threaded server): the collector stays
    enabled throughout and still collects once enough objects are allocated."""
    entered, release, done = threading.Event(), threading.Event(), threading.Event()
    collections = []

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            collections.append(info["generation"])

    def other():
        with gc_deferred():
            entered.set()
            release.wait()
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    entered.wait()
    gc.callbacks.append(count)
    try:
        with gc_deferred():  # begins while the other thread's block holds the threshold up
            release.set()
            done.wait()  # the other block ended first: the threshold must stay up for this one
            assert gc.isenabled() and gc.get_threshold()[0] == DEFERRED_THRESHOLD
            kept = [[] for _ in range(3 * DEFERRED_THRESHOLD)]  # containers the collector tracks
            assert collections, "no collection while the blocks overlapped"
            del kept
    finally:
        gc.callbacks.remove(count)
    thread.join()
    assert gc.get_threshold() == default_collector
