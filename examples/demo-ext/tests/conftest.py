"""Shared helpers: running code in a fresh interpreter, where a crash or a hang at exit
fails one test instead of taking the whole run down."""

import subprocess
import sys
import textwrap

import pytest

# Generous: these children finish in well under a second; the limit only turns a hang into a
# failure.
CHILD_TIMEOUT = 60


class Child:
    """A Python child process running `code`, with stdout and stderr as text."""

    def __init__(self, code):
        self.process = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_for_line(self, prefix):
        """Reads stdout until a line that starts with `prefix`, and returns it; fails if the
        child ends first."""
        lines = []
        for line in self.process.stdout:
            lines.append(line)
            if line.startswith(prefix):
                return line.strip()
        self.finish()
        pytest.fail(f"the child never printed {prefix!r}; stdout: {''.join(lines)!r}")

    def finish(self):
        """Waits for the child; returns (returncode, stdout, stderr). A hang is a failure."""
        try:
            out, err = self.process.communicate(timeout=CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
            pytest.fail(f"the child hung (killed after {CHILD_TIMEOUT} s); stderr: {err!r}")
        return self.process.returncode, out, err


@pytest.fixture
def run_python():
    """Runs `code` in a fresh interpreter; returns (returncode, stdout, stderr)."""

    def run(code):
        return Child(code).finish()

    return run


@pytest.fixture
def spawn_python():
    """Starts `code` in a fresh interpreter and returns its `Child`."""
    children = []

    def spawn(code):
        child = Child(code)
        children.append(child)
        return child

    yield spawn
    for child in children:
        if child.process.poll() is None:
            child.process.kill()
            child.process.communicate()
