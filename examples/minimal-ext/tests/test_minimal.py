"""gilguard_minimal: the GIL released around Rust work, and Python callbacks on native
threads whose exceptions reach the caller. No assertion depends on timing."""

import sys
import threading
import time

import pytest

import gilguard_minimal


def squares(n):
    """0² + … + (n-1)², wrapped at 2**64, as the module computes it."""
    return ((n - 1) * n * (2 * n - 1) // 6) % 2**64 if n > 0 else 0


def test_the_formula():
    assert all(squares(n) == sum(i * i for i in range(n)) for n in range(50))


@pytest.mark.parametrize("n", [0, 1, 2, 10, 1000, 10**6, 2**22 + 3])
def test_sum_of_squares(n):
    assert gilguard_minimal.sum_of_squares(n) == squares(n)


def test_sum_of_squares_argument_errors():
    with pytest.raises(TypeError):
        gilguard_minimal.sum_of_squares("ten")
    with pytest.raises(OverflowError):
        gilguard_minimal.sum_of_squares(-1)


def test_other_threads_run_while_it_computes():
    # With a huge switch interval CPython never takes the GIL from the main thread; the
    # counter can advance between `before` and `after` only if the call releases it.
    ticks = [0]
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks[0] += 1
            time.sleep(0.0005)  # releases the GIL while sleeping

    interval = sys.getswitchinterval()
    counter = threading.Thread(target=count)
    counter.start()
    sys.setswitchinterval(1000)
    try:
        for _ in range(500):
            before = ticks[0]
            gilguard_minimal.sum_of_squares(10**7)
            if ticks[0] > before:
                break
        else:
            pytest.fail("the counter thread never ran during sum_of_squares")
    finally:
        sys.setswitchinterval(interval)
        stop.set()
        counter.join()


def test_call_from_threads_returns_each_result():
    caller = threading.get_ident()
    seen = []

    def square(i):
        seen.append(threading.get_ident())
        return i * i

    # The caller waits with the GIL released: otherwise no worker could run `square`, and
    # this call would never return.
    assert gilguard_minimal.call_from_threads(square, 8) == [i * i for i in range(8)]
    assert len(seen) == 8
    assert caller not in seen
    assert gilguard_minimal.call_from_threads(square, 0) == []


class WorkerError(ValueError):
    pass


def test_an_exception_on_a_worker_reaches_the_caller():
    raised = []

    def fail_on_three(i):
        if i == 3:
            error = WorkerError(f"callback failed for {i}")
            raised.append(error)
            raise error
        return i

    with pytest.raises(WorkerError, match="callback failed for 3") as caught:
        gilguard_minimal.call_from_threads(fail_on_three, 6)
    # The very object, with the worker's frame in its traceback.
    assert caught.value is raised[0]
    names = [frame.name for frame in caught.traceback]
    assert "fail_on_three" in names


def test_a_result_that_is_not_an_int_raises():
    with pytest.raises(TypeError):
        gilguard_minimal.call_from_threads(lambda i: "no", 2)


def test_the_module_is_still_usable_after_failures():
    with pytest.raises(ZeroDivisionError):
        gilguard_minimal.call_from_threads(lambda i: 1 // 0, 4)
    assert gilguard_minimal.call_from_threads(lambda i: i + 1, 3) == [1, 2, 3]


@pytest.mark.parametrize(
    "place, message",
    [
        ("here", "in the function"),
        ("worker", "on a worker"),
        ("without_gil", "inside without_gil"),
    ],
)
def test_a_panic_becomes_a_runtime_error_and_python_goes_on(place, message):
    # Without `gilguard::boundary` the process would abort ("panic in a function that
    # cannot unwind"); with it, the panic is a Python exception like any other.
    with pytest.raises(RuntimeError, match=f"Rust panic: {message}"):
        gilguard_minimal.panic_in(place)
    # The thread was left attached and usable: the GIL works as before.
    assert gilguard_minimal.sum_of_squares(4) == 14
    assert gilguard_minimal.call_from_threads(lambda i: i, 2) == [0, 1]


def test_panic_in_refuses_an_unknown_place():
    with pytest.raises(ValueError):
        gilguard_minimal.panic_in("nowhere")
