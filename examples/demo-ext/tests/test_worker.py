"""Worker(callback, capacity=0): callbacks on a native thread, with the GIL, in order."""

import gc
import os
import re
import signal
import sys
import threading
import time
import weakref

import pytest

import gilguard_demo


def test_every_item_is_delivered_once_and_in_order():
    seen = []
    worker = gilguard_demo.Worker(seen.append)
    for item in range(10_000):
        worker.submit(item)
    assert worker.join() == 10_000
    assert seen == list(range(10_000))


def test_callbacks_run_on_a_thread_python_did_not_create():
    threads = []
    worker = gilguard_demo.Worker(lambda _: threads.append(threading.current_thread()))
    worker.submit(None)
    worker.join()
    # threading only knows a thread it did not start as a "dummy" thread.
    assert isinstance(threads[0], threading._DummyThread)
    assert threads[0] is not threading.main_thread()


def test_join_raises_the_first_exception_after_processing_everything():
    # Decision: join() raises instead of returning the count; what was processed is visible
    # through the callback.
    seen = []

    def callback(item):
        seen.append(item)
        if item in (3, 7):
            raise ValueError(f"bad item {item}")

    worker = gilguard_demo.Worker(callback)
    for item in range(10):
        worker.submit(item)
    with pytest.raises(ValueError, match="bad item 3") as info:
        worker.join()
    assert seen == list(range(10))
    assert info.traceback[-1].name == "callback"
    # The error was delivered once; joining again returns the count.
    assert worker.join() == 10


def test_submit_after_join_raises():
    worker = gilguard_demo.Worker(lambda _: None)
    worker.submit(1)
    assert worker.join() == 1
    with pytest.raises(RuntimeError):
        worker.submit(2)


def test_bad_arguments():
    with pytest.raises(TypeError):
        gilguard_demo.Worker(42)
    with pytest.raises(ValueError):
        gilguard_demo.Worker(print, capacity=-1)
    with pytest.raises(TypeError):
        gilguard_demo.Worker()


def test_bounded_queue_with_slow_callback_does_not_deadlock():
    seen = []

    def slow(item):
        time.sleep(0.001)
        seen.append(item)

    worker = gilguard_demo.Worker(slow, capacity=2)
    for item in range(200):
        worker.submit(item)
    assert worker.join() == 200
    assert seen == list(range(200))


def test_submit_blocks_while_a_bounded_queue_is_full():
    entered = threading.Event()
    release = threading.Event()
    submitted = threading.Event()

    def callback(item):
        if item == 1:
            entered.set()
            release.wait()

    worker = gilguard_demo.Worker(callback, capacity=1)
    worker.submit(1)
    entered.wait()  # item 1 has left the queue; the worker is stuck in its callback
    worker.submit(2)  # fills the queue

    def submit_third():
        worker.submit(3)
        submitted.set()

    submitter = threading.Thread(target=submit_third)
    submitter.start()
    assert not submitted.wait(0.3), "submit() returned although the queue was full"
    release.set()
    submitter.join()
    assert worker.join() == 3


def test_other_python_threads_run_while_main_is_in_join():
    # The callback, which runs only while main is inside join() (it waits for `joining`),
    # waits for the ticker thread to tick once more: a tick stamped between the start and
    # the end of join(). If join() kept the GIL, neither could run.
    ticks = []
    ticked = threading.Event()
    stop = threading.Event()
    joining = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            ticked.set()
            time.sleep(0.001)

    def callback(item):
        assert joining.wait(30)
        ticked.clear()
        assert ticked.wait(30)

    thread = threading.Thread(target=ticker)
    thread.start()
    worker = gilguard_demo.Worker(callback)
    worker.submit(None)
    joined_at = time.perf_counter()
    joining.set()
    assert worker.join() == 1
    returned_at = time.perf_counter()
    stop.set()
    thread.join()
    assert any(joined_at < tick < returned_at for tick in ticks)


def test_join_from_the_workers_own_callback_is_refused():
    holder = {}

    def callback(item):
        holder["worker"].join()

    holder["worker"] = gilguard_demo.Worker(callback)
    holder["worker"].submit(1)
    with pytest.raises(RuntimeError, match="own callback"):
        holder["worker"].join()


def worker_threads():
    """The OS threads of this process that are Worker threads (named by the module; Linux
    keeps the first 15 bytes of a thread name)."""
    names = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as comm:
                names.append(comm.read().strip())
        except FileNotFoundError:
            pass  # a thread that just ended
    return names.count("gilguard-demo-worker"[:15])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc")
def test_dropping_a_worker_without_join_stops_its_thread():
    class Callback:
        def __call__(self, item):
            time.sleep(0.001)

    before = worker_threads()
    callback = Callback()
    released = weakref.ref(callback)
    worker = gilguard_demo.Worker(callback, capacity=5)
    del callback
    for item in range(100):
        worker.submit(item)
    assert worker_threads() == before + 1
    del worker
    gc.collect()
    assert released() is None, "the worker thread still holds its callback"
    assert worker_threads() == before, "the worker thread is still alive"


def sigint_child(spawn_python, setup, blocking_line):
    """Runs `setup` then `blocking_line` in a child; sends SIGINT once the child's main
    thread is executing `blocking_line` (seen through sys._current_frames, so no guessing
    with sleeps). Returns (line of `blocking_line`, returncode, stdout, stderr)."""
    child = spawn_python(
        f"""
import sys, threading, time
import gilguard_demo

{setup}

def announce(main=threading.main_thread()):
    # Tell the parent once the main thread is inside the blocking call.
    while True:
        frame = sys._current_frames().get(main.ident)
        if frame is not None and frame.f_lineno == BLOCKING_LINE:
            print("blocked at line", BLOCKING_LINE, flush=True)
            return
        time.sleep(0.01)

BLOCKING_LINE = sys._getframe().f_lineno + 2
threading.Thread(target=announce, daemon=True).start()
{blocking_line}
print("not interrupted", flush=True)
"""
    )
    line = int(child.wait_for_line("blocked at line").split()[-1])
    child.process.send_signal(signal.SIGINT)
    return (line, *child.finish())


def assert_interrupted(line, returncode, out, err):
    assert err.rstrip().endswith("KeyboardInterrupt"), err
    # The innermost frame of the traceback is the blocking call.
    frames = re.findall(r'File "<string>", line (\d+)', err)
    assert frames and int(frames[-1]) == line, err
    assert "Fatal Python error" not in err, err
    assert "not interrupted" not in out
    # An uncaught KeyboardInterrupt makes CPython end itself with SIGINT.
    assert returncode == -signal.SIGINT, (returncode, err)


# The worker's callback blocks until `stop` is set, so without signal checks the call under
# test would block forever. `stop` is set by an atexit handler that runs before
# gilguard_demo's own (atexit runs handlers last-registered first), which then finds the
# callback returning and the worker thread ending.
BLOCKING_WORKER = """
stop = threading.Event()
entered = threading.Event()
import atexit
atexit.register(stop.set)

def callback(item):
    entered.set()
    stop.wait()
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_interrupts_a_blocked_join(spawn_python):
    setup = BLOCKING_WORKER + """
worker = gilguard_demo.Worker(callback)
worker.submit(1)
"""
    result = sigint_child(spawn_python, setup, "worker.join()")
    assert_interrupted(*result)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_interrupts_a_blocked_submit(spawn_python):
    setup = BLOCKING_WORKER + """
worker = gilguard_demo.Worker(callback, capacity=1)
worker.submit(1)
entered.wait()  # item 1 has left the queue, and will never be done
worker.submit(2)  # the queue is full now
"""
    result = sigint_child(spawn_python, setup, "worker.submit(3)")
    assert_interrupted(*result)
