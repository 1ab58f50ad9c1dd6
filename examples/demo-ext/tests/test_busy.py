"""busy(ms) and f(callback, ms): Rust work runs with the GIL released, so the caller's other
Python threads keep running. Overlap and ordering are shown with events and recorded
timestamps, never with durations."""

import sys
import threading
import time

import pytest

import gilguard_demo


@pytest.fixture
def no_forced_switches():
    """Makes CPython switch threads only when the GIL is given up voluntarily.

    Normally a thread that waits for the GIL longer than the switch interval (5 ms) forces
    the holder to drop it at its next bytecode boundary, for instance right after a C call
    returns. That would let another thread run *between* the return of a busy() that kept
    the GIL and the caller's next statement, and fake an overlap. With a long interval,
    other threads run during a call only if the call released the GIL."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(60)
    yield
    sys.setswitchinterval(previous)


def test_busy_checksum_depends_only_on_ms():
    assert gilguard_demo.busy(5) == gilguard_demo.busy(5)
    assert gilguard_demo.busy(1) != gilguard_demo.busy(2)
    assert gilguard_demo.busy(0) == 0


def test_busy_rejects_bad_arguments():
    with pytest.raises(ValueError):
        gilguard_demo.busy(-1)
    with pytest.raises(TypeError):
        gilguard_demo.busy("5")


def test_two_threads_in_busy_overlap(no_forced_switches):
    # Both threads leave the barrier together. If busy() held the GIL, the second could not
    # even record its start time before the first one's busy() returned.
    barrier = threading.Barrier(2)
    spans = []
    checksums = []

    def run():
        barrier.wait()
        start = time.perf_counter()
        checksums.append(gilguard_demo.busy(300))
        spans.append((start, time.perf_counter()))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    (start_a, end_a), (start_b, end_b) = spans
    assert max(start_a, start_b) < min(end_a, end_b), f"no overlap: {spans}"
    assert checksums[0] == checksums[1] == gilguard_demo.busy(300)


def test_main_thread_keeps_running_while_f_works(capsys, no_forced_switches):
    # The classic scenario: f() works without the GIL, so the main thread prints
    # "Still running!" before f's callback runs; the callback reports whether it did.
    entering = threading.Event()
    printed = threading.Event()
    done = threading.Event()
    outcome = {}

    def callback():
        return printed.is_set()

    def call_f():
        entering.set()
        outcome["returned"] = gilguard_demo.f(callback, 300)
        done.set()

    worker = threading.Thread(target=call_f)
    worker.start()
    entering.wait()
    while not done.is_set():
        print("Still running!")
        printed.set()
        done.wait(0.01)
    worker.join()

    assert outcome["returned"] is True, "the callback ran before the main thread printed"
    assert "Still running!" in capsys.readouterr().out


def test_f_returns_what_the_callback_returned():
    marker = object()
    assert gilguard_demo.f(lambda: marker, 1) is marker


def test_f_propagates_the_callback_exception_unchanged():
    class Boom(Exception):
        pass

    raised = Boom("from the callback")

    def callback():
        raise raised

    with pytest.raises(Boom) as info:
        gilguard_demo.f(callback, 1)
    assert info.value is raised
    assert info.traceback[-1].name == "callback"


def test_f_rejects_bad_arguments():
    with pytest.raises(TypeError):
        gilguard_demo.f(lambda: None)
    with pytest.raises(ValueError):
        gilguard_demo.f(lambda: None, -1)
