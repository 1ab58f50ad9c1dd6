"""gilguard_pyo3: a pyo3 module with gilguard beside it. No assertion depends on timing."""

import json
import sys
import threading

import pytest

import gilguard_pyo3


def test_sum_of_squares():
    assert gilguard_pyo3.sum_of_squares(0) == 0
    assert gilguard_pyo3.sum_of_squares(1000) == sum(i * i for i in range(1000))


def test_call_from_threads_calls_on_native_threads():
    caller = threading.get_ident()
    seen = set()

    def square(i):
        seen.add(threading.get_ident())
        return i * i

    assert gilguard_pyo3.call_from_threads(square, 6) == [i * i for i in range(6)]
    assert caller not in seen
    assert len(seen) == 6


class WorkerError(ValueError):
    pass


def test_the_first_exception_on_a_worker_reaches_the_caller():
    raised = []

    def fail_on_two(i):
        if i >= 2:
            error = WorkerError(f"failed for {i}")
            raised.append(error)
            raise error
        return i

    with pytest.raises(WorkerError, match="failed for 2") as caught:
        gilguard_pyo3.call_from_threads(fail_on_two, 5)
    assert caught.value in raised
    with pytest.raises(TypeError):
        gilguard_pyo3.call_from_threads(lambda i: "not an int", 2)
    assert gilguard_pyo3.call_from_threads(lambda i: i + 1, 3) == [1, 2, 3]


def test_dumps_is_looked_up_once_and_works_from_many_threads():
    values = [{"n": i} for i in range(8)]
    results = [None] * len(values)

    def dump(i):
        results[i] = gilguard_pyo3.dumps(values[i])

    threads = [threading.Thread(target=dump, args=(i,)) for i in range(len(values))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [json.dumps(value) for value in values]


def test_each_expression_runs_in_a_sub_interpreter_of_its_own():
    results = gilguard_pyo3.eval_in_subinterpreters(
        ["6 * 7", "__import__('sys').version_info[:2]", "len(globals())"]
    )
    assert results[0] == "42"
    assert results[1] == str(sys.version_info[:2])
    assert results[2] == "1"  # only `__builtins__`: a fresh interpreter, fresh globals


def test_an_error_in_a_sub_interpreter_reaches_the_caller():
    # The exception object belongs to the sub-interpreter, which is gone by the time the
    # caller sees it: its type and message come back as a RuntimeError.
    with pytest.raises(RuntimeError, match="ZeroDivisionError: division by zero"):
        gilguard_pyo3.eval_in_subinterpreters(["1", "1 / 0"])
