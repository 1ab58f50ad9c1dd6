"""Interpreter exit while a Worker still has work: no hang, no crash.

gilguard_demo's atexit hook closes every live Worker of the interpreter, drops the items
still queued, lets the callback in progress finish, and waits for the worker threads, before
CPython sets its finalizing flag (main interpreter) or checks for leftover thread states
(Py_EndInterpreter). Each scenario runs in a child process so that a crash or a hang fails
one test only."""

import sys

import pytest

# A worker with 1,000 slow items, of which the first has started when the script ends.
# `processed` is printed by an atexit handler registered before gilguard_demo is imported,
# so it runs after gilguard_demo's hook (atexit runs the last-registered handler first).
PENDING_WORK = """
import atexit, threading, time
processed = []
atexit.register(lambda: print("processed", len(processed), flush=True))
import gilguard_demo

started = threading.Event()

def slow(item):
    started.set()
    time.sleep(0.01)
    processed.append(item)

worker = gilguard_demo.Worker(slow)
for item in range(1000):
    worker.submit(item)
started.wait()
"""


def assert_clean_exit(returncode, err):
    assert "Fatal Python error" not in err, err
    assert returncode == 0, (returncode, err)


def test_main_interpreter_exits_with_a_busy_worker(run_python):
    returncode, out, err = run_python(PENDING_WORK + "print('leaving', flush=True)\n")
    assert_clean_exit(returncode, err)
    assert "leaving" in out
    # The callback in progress finished; the pending items were dropped.
    processed = int(out.split("processed")[1])
    assert 1 <= processed < 1000, out


def test_main_interpreter_exits_with_a_full_bounded_queue(run_python):
    code = PENDING_WORK.replace("gilguard_demo.Worker(slow)", "gilguard_demo.Worker(slow, capacity=3)")
    code = code.replace("for item in range(1000):\n    worker.submit(item)\nstarted.wait()\n", "")
    code += "for item in range(5):\n    worker.submit(item)\n"
    returncode, out, err = run_python(code)
    assert_clean_exit(returncode, err)


def test_exit_with_a_worker_dropped_inside_its_own_callback(run_python):
    # The last reference to the Worker goes away on the worker thread: its deallocation
    # cannot wait for its own thread, so the atexit hook does.
    returncode, out, err = run_python(
        """
import threading, time
import gilguard_demo

holder = {}
dropped = threading.Event()

def callback(item):
    if item == 0:
        holder.clear()  # the Worker is deallocated here, on its own thread
        dropped.set()
    time.sleep(0.001)

holder["worker"] = gilguard_demo.Worker(callback)
for item in range(100):
    holder["worker"].submit(item)
dropped.wait()
print("dropped", flush=True)
"""
    )
    assert_clean_exit(returncode, err)
    assert "dropped" in out


def subinterpreter_exit_script(own_gil):
    # The script starts a Worker in a sub-interpreter and leaves without joining it;
    # run_in_subinterpreters then ends that interpreter.
    script = PENDING_WORK.replace('print("processed", len(processed), flush=True)', "None")
    script += "result = 'left running'\n"
    return f"""
import gilguard_demo
print(gilguard_demo.run_in_subinterpreters([{script!r}] * 2, own_gil={own_gil}), flush=True)
"""


def test_subinterpreter_ends_with_a_busy_worker(run_python):
    returncode, out, err = run_python(subinterpreter_exit_script(own_gil=False))
    assert_clean_exit(returncode, err)
    assert "['left running', 'left running']" in out


@pytest.mark.skipif(sys.version_info < (3, 12), reason="own GIL needs CPython 3.12")
def test_own_gil_subinterpreter_ends_with_a_busy_worker(run_python):
    returncode, out, err = run_python(subinterpreter_exit_script(own_gil=True))
    assert_clean_exit(returncode, err)
    assert "['left running', 'left running']" in out
