"""A Rust panic in a function Python calls becomes a RuntimeError (gilguard::boundary)
instead of aborting the process, and the module stays usable. No other function of the
module can be made to panic from Python, so these tests use its test hook,
panic_for_tests(message)."""

import sys

import pytest

import gilguard_demo

OWN_GIL = sys.version_info >= (3, 12)


def assert_still_usable():
    """Every part of the module still works: GIL released and taken back, a Worker thread
    calling back, sub-interpreters created and ended."""
    assert gilguard_demo.busy(0) == 0
    assert gilguard_demo.f(lambda: "called", 0) == "called"
    seen = []
    worker = gilguard_demo.Worker(seen.append)
    worker.submit("item")
    assert worker.join() == 1
    assert seen == ["item"]
    assert gilguard_demo.run_in_subinterpreters(["result = 2 + 2"]) == ["4"]


def test_a_panic_becomes_a_runtime_error_and_the_module_stays_usable():
    with pytest.raises(RuntimeError) as info:
        gilguard_demo.panic_for_tests("boom")
    assert type(info.value) is RuntimeError
    assert str(info.value) == "Rust panic: boom"
    # The hook's own errors are ordinary exceptions.
    with pytest.raises(TypeError):
        gilguard_demo.panic_for_tests(42)
    assert_still_usable()


def test_a_panic_in_a_workers_callback_is_raised_by_join():
    # The hook runs on the Worker's native thread, attached through its thread-state
    # handle: the panic is raised there as the callback's exception, the worker goes on
    # with the next items, and join() raises the first one.
    seen = []

    def callback(item):
        seen.append(item)
        gilguard_demo.panic_for_tests(f"on item {item}")

    worker = gilguard_demo.Worker(callback)
    for item in range(3):
        worker.submit(item)
    with pytest.raises(RuntimeError, match="^Rust panic: on item 0$") as info:
        worker.join()
    assert info.traceback[-1].name == "callback"
    assert seen == [0, 1, 2]
    assert_still_usable()


PANIC_IN_A_SUBINTERPRETER = """
import gilguard_demo
try:
    gilguard_demo.panic_for_tests("in a sub-interpreter")
except RuntimeError as error:
    result = error
"""


NEEDS_OWN_GIL = pytest.mark.skipif(not OWN_GIL, reason="own GIL needs CPython 3.12")


@pytest.mark.parametrize("own_gil", [False, pytest.param(True, marks=NEEDS_OWN_GIL)])
def test_a_panic_in_a_sub_interpreter_is_raised_there(own_gil):
    # The RuntimeError is created in the sub-interpreter that called the hook, where the
    # script catches it.
    scripts = [PANIC_IN_A_SUBINTERPRETER] * 2
    results = gilguard_demo.run_in_subinterpreters(scripts, own_gil=own_gil)
    assert results == ["Rust panic: in a sub-interpreter"] * 2
    assert_still_usable()
