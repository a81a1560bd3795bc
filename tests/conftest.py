"""Shared fixtures. The ios_mp pytest plugin (``-p ios_mp.pytest_plugin`` in
pyproject) has already installed ios_mp as ``multiprocessing`` and enabled the
iOS sandbox before these tests are imported."""

from __future__ import annotations

import faulthandler
import os
import threading
import time

import pytest


@pytest.fixture(autouse=True)
def _no_leaked_workers():
    """Every test must leave no ios_mp worker running behind it."""
    import ios_mp._core as core

    yield
    deadline = time.monotonic() + 5
    while core._live_count() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert core._live_count() == 0, "a test left an ios_mp process running"
    from ios_mp import _signals

    # Each worker's exit forgets its signal handlers: a leftover means a worker
    # still runs that ios_mp counted as exited.
    assert _signals._handlers == {}, f"signal handlers of exited workers: {_signals._handlers}"


_EXIT_GRACE = float(os.environ.get("IOS_MP_EXIT_WATCHDOG", "120"))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """If the interpreter has not exited ``IOS_MP_EXIT_WATCHDOG`` seconds (120;
    0: off) after pytest finished, print every thread's stack and exit with
    status 1: a hang at exit (a thread or atexit hook that never ends) then
    fails fast and says where, instead of running into CI's wall-clock limit."""
    if _EXIT_GRACE > 0:
        faulthandler.dump_traceback_later(_EXIT_GRACE, exit=True, file=2)


def wait_until(pred, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            return False
        time.sleep(0.002)
    return True


def interrupt_main_after(delay: float) -> threading.Thread:
    """Send a real SIGINT to the main thread after ``delay`` seconds."""
    import os
    import signal

    def fire():
        time.sleep(delay)
        os.kill(os.getpid(), signal.SIGINT)

    t = threading.Thread(target=fire, daemon=True)
    t.start()
    return t


def app_state():
    """What a worker must leave as it was (issue 3): the app's descriptors 0-2
    (``os.fstat``), its ``sys.std*`` and ``sys.__std*__`` objects (identity),
    its signal handlers (all but SIGALRM, which pytest-timeout sets and resets
    around each test) and its process group."""
    import os
    import signal
    import sys

    fds = []
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
            fds.append((fd, st.st_dev, st.st_ino, st.st_mode))
        except OSError as e:
            fds.append((fd, e.errno))
    names = ("stdin", "stdout", "stderr", "__stdin__", "__stdout__", "__stderr__")
    return (
        fds,
        [id(getattr(sys, n, None)) for n in names],
        {s: signal.getsignal(s) for s in signal.valid_signals() if s != signal.SIGALRM},
        os.getpgrp(),
    )


@pytest.fixture
def app_state_unchanged():
    """Asserts app_state() after the test is what it was before."""
    before = app_state()
    yield
    assert app_state() == before
