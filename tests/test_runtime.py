"""The collector pause around computations (metrics.runtime.gc_paused): process-wide, so it must
nest, survive errors and overlap across threads without leaving the collector off."""

import gc
import threading

import pytest

from metrics.runtime import gc_paused


@pytest.fixture(autouse=True)
def collector_on():
    gc.enable()
    yield
    gc.enable()


def test_nested_pauses_resume_when_the_outer_one_ends():
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_error_inside_still_resumes():
    with pytest.raises(ValueError), gc_paused():
        raise ValueError("boom")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()


def test_overlapping_pauses_on_two_threads_resume_after_the_last():
    entered, release, done = threading.Event(), threading.Event(), threading.Event()

    def other():
        with gc_paused():
            entered.set()
            release.wait()
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    entered.wait()
    with gc_paused():  # begins while the other thread's pause holds the collector off
        release.set()
        done.wait()  # the other pause ended first: the collector must stay off for this one
        assert not gc.isenabled()
    thread.join()
    assert gc.isenabled()
