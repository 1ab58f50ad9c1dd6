"""run_in_subinterpreters(scripts, threads=1, own_gil=False)."""

import sys
import threading
import time

import pytest

import gilguard_demo

OWN_GIL = sys.version_info >= (3, 12)


def test_each_script_gets_its_own_interpreter():
    results = gilguard_demo.run_in_subinterpreters(
        [
            "import sys\nsys.marker = 'first'\nshared = 1\nresult = sys.marker",
            "import sys\nresult = (hasattr(sys, 'marker'), 'shared' in globals())",
        ]
    )
    assert results == ["first", "(False, False)"]
    assert not hasattr(sys, "marker")
    assert "result" not in globals()


def test_results_are_str_of_result_in_order():
    scripts = [f"result = {number} * 10" for number in range(5)]
    assert gilguard_demo.run_in_subinterpreters(scripts) == ["0", "10", "20", "30", "40"]
    assert gilguard_demo.run_in_subinterpreters([]) == []


COUNT_THREADS = """
import threading
lock = globals().setdefault('lock', threading.Lock())
with lock:
    idents = globals().setdefault('idents', set())
    idents.add(threading.get_ident())
    result = len(idents)
"""


def test_each_script_runs_once_on_each_thread():
    # Every run adds its thread's id; the last one to take the lock sees all of them.
    results = gilguard_demo.run_in_subinterpreters([COUNT_THREADS] * 3, threads=4)
    assert results == ["4", "4", "4"]


def test_the_module_imports_in_sub_interpreters():
    script = "import gilguard_demo\nresult = gilguard_demo.busy(1)"
    results = gilguard_demo.run_in_subinterpreters([script] * 2, threads=2)
    assert results == [str(gilguard_demo.busy(1))] * 2


# `import` inside the callback looks in the sys.modules of the interpreter the calling
# thread is attached to, so `current is sys` holds only in the Worker's own interpreter.
WORKER_SCRIPT = """
import sys
import gilguard_demo
seen = []
same_interpreter = []

def callback(item):
    import sys as current
    same_interpreter.append(current is sys)
    seen.append(item)

worker = gilguard_demo.Worker(callback, capacity=10)
for item in range(500):
    worker.submit(item)
result = (worker.join(), seen == list(range(500)), all(same_interpreter))
"""


def test_a_worker_calls_back_into_its_sub_interpreter():
    assert gilguard_demo.run_in_subinterpreters([WORKER_SCRIPT] * 2) == ["(500, True, True)"] * 2


@pytest.mark.skipif(not OWN_GIL, reason="own GIL needs CPython 3.12")
def test_own_gil_interpreters_import_the_module():
    # Importing in an isolated interpreter fails unless the module uses multi-phase
    # initialization and declares per-interpreter GIL support.
    script = "import gilguard_demo\nresult = gilguard_demo.busy(1)"
    results = gilguard_demo.run_in_subinterpreters([script] * 3, threads=2, own_gil=True)
    assert results == [str(gilguard_demo.busy(1))] * 3
    assert gilguard_demo.run_in_subinterpreters([WORKER_SCRIPT] * 2, own_gil=True) == [
        "(500, True, True)"
    ] * 2


@pytest.mark.skipif(OWN_GIL, reason="CPython 3.12+ supports own_gil")
def test_own_gil_before_3_12_is_a_value_error():
    with pytest.raises(ValueError, match="3.12"):
        gilguard_demo.run_in_subinterpreters(["result = 1"], own_gil=True)


def test_a_failing_script_raises_runtime_error_with_the_interpreters_text():
    with pytest.raises(RuntimeError) as info:
        gilguard_demo.run_in_subinterpreters(
            ["result = 1", "def inner():\n    raise ValueError('boom in a sub-interpreter')\ninner()"]
        )
    message = str(info.value)
    assert "Traceback (most recent call last)" in message
    assert "ValueError: boom in a sub-interpreter" in message
    assert '"<script 1>", line 2, in inner' in message


def test_a_syntax_error_is_reported_too():
    with pytest.raises(RuntimeError, match="SyntaxError"):
        gilguard_demo.run_in_subinterpreters(["result = ("])


def test_a_script_without_result_is_an_error():
    with pytest.raises(RuntimeError, match="no global `result`"):
        gilguard_demo.run_in_subinterpreters(["x = 1"])


def test_interpreters_are_ended_after_errors():
    # Interpreters that failed are ended as well: many failing calls leave nothing behind
    # (a leftover interpreter would abort the process at exit).
    for _ in range(5):
        with pytest.raises(RuntimeError):
            gilguard_demo.run_in_subinterpreters(["result = 1", "1 / 0"], threads=2)
    assert gilguard_demo.run_in_subinterpreters(["result = 'still fine'"]) == ["still fine"]


def test_bad_arguments():
    with pytest.raises(ValueError):
        gilguard_demo.run_in_subinterpreters(["result = 1"], threads=0)
    with pytest.raises(TypeError):
        gilguard_demo.run_in_subinterpreters([1])
    with pytest.raises(TypeError):
        gilguard_demo.run_in_subinterpreters(None)
    with pytest.raises(ValueError, match="NUL"):
        gilguard_demo.run_in_subinterpreters(["result = 1\0"])


def test_the_callers_gil_is_released_while_waiting():
    # If the caller kept the GIL while waiting, the ticker could not run during the call
    # (and with a shared GIL the scripts could not run at all).
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    thread = threading.Thread(target=ticker)
    thread.start()
    called_at = time.perf_counter()
    results = gilguard_demo.run_in_subinterpreters(["import time\ntime.sleep(0.2)\nresult = 1"])
    returned_at = time.perf_counter()
    stop.set()
    thread.join()
    assert results == ["1"]
    assert any(called_at < tick < returned_at for tick in ticks)
