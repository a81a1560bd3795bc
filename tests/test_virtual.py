"""Process virtualization (python/ios_mp/_virtual.py): process-wide calls made
in a worker affect only that worker; the app sees stdlib behaviour."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

import pytest

from ios_mp import _signals, _virtual


def _run(target, *args, **kwargs):
    p = multiprocessing.Process(target=target, args=args, kwargs=kwargs)
    p.start()
    p.join(10)
    assert not p.is_alive()
    return p


def _app_state():
    return (
        [os.fstat(fd).st_ino for fd in (0, 1, 2) if _fd_open(fd)],
        [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)],
        os.getpgrp(),
    )


def _fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


@pytest.fixture
def app_unchanged():
    before = _app_state()
    yield
    assert _app_state() == before


def test_os_exit_ends_only_the_worker(app_unchanged):
    ran = multiprocessing.Queue()

    def body():
        try:
            os._exit(7)
        finally:
            ran.put("finally")  # documented: the thread unwinds

    p = _run(body)
    assert p.exitcode == 7
    assert ran.get(timeout=1) == "finally"


def test_os_exit_from_a_thread_of_the_worker_ends_the_whole_worker(app_unchanged):
    def body():
        threading.Thread(target=os._exit, args=(3,)).start()
        time.sleep(30)  # interrupted by the exit request

    t0 = time.monotonic()
    p = _run(body)
    assert p.exitcode == 3
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize("how,code", [("terminate", -15), ("kill", -9)])
def test_terminate_interrupts_time_sleep_in_a_worker(how, code):
    started = multiprocessing.Event()

    def body():
        started.set()
        time.sleep(300)

    p = multiprocessing.Process(target=body)
    p.start()
    assert started.wait(5)
    time.sleep(0.05)
    getattr(p, how)()
    p.join(5)
    assert p.exitcode == code


def test_time_sleep_still_sleeps_in_a_worker():
    q = multiprocessing.Queue()

    def body():
        t0 = time.monotonic()
        time.sleep(0.1)
        q.put(time.monotonic() - t0)
        with pytest.raises(ValueError):
            time.sleep(-1)

    p = _run(body)
    assert p.exitcode == 0
    assert q.get(timeout=1) >= 0.095


def test_session_calls_are_noops_and_report_the_vpid(app_unchanged):
    q = multiprocessing.Queue()

    def body():
        os.setsid()
        os.setpgrp()
        os.setpgid(0, 0)
        me = multiprocessing.current_process().pid
        q.put((os.getsid(0), os.getpgrp(), os.getpgid(0), me, os.getppid()))

    p = _run(body)
    assert p.exitcode == 0
    sid, pgrp, pgid, me, ppid = q.get(timeout=1)
    assert sid == pgrp == pgid == me == p.pid
    assert ppid == os.getpid()


def test_os_kill_and_killpg_of_a_vpid_reach_only_that_worker(app_unchanged):
    import errno

    started = multiprocessing.Event()

    def body():
        started.set()
        time.sleep(300)

    for send, sig, code in [
        (os.kill, signal.SIGTERM, -15),
        (os.killpg, signal.SIGKILL, -9),
        (os.kill, signal.SIGUSR1, -signal.SIGUSR1),
    ]:
        started.clear()
        p = multiprocessing.Process(target=body)
        p.start()
        assert started.wait(5)
        os.kill(p.pid, 0)  # exists
        send(p.pid, sig)
        p.join(5)
        assert p.exitcode == code
        with pytest.raises(ProcessLookupError) as e:
            os.kill(p.pid, 0)
        assert e.value.errno == errno.ESRCH


def test_worker_killing_its_own_vpid_like_ansibles_sigterm_handler():
    def body():
        os.killpg(multiprocessing.current_process().pid, signal.SIGKILL)
        time.sleep(30)

    assert _run(body).exitcode == -9


def test_twenty_concurrent_workers_detach_and_exit(app_unchanged):
    """Ansible's WorkerProcess sequence, in 20 workers at once: setsid, signal
    handlers, /dev/null over 0-2, new sys.std*, output, alarm, os._exit."""
    import io
    import sys

    app_streams = (sys.stdin, sys.stdout, sys.stderr)
    seen = multiprocessing.Queue(copy=False)

    def body(i):
        os.setsid()
        os.setpgid(0, 0)
        signal.signal(signal.SIGTERM, lambda s, f: os._exit(1))
        signal.signal(signal.SIGINT, lambda s, f: os._exit(1))
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
        sys.stdout = io.StringIO()
        print("worker", i)
        signal.signal(signal.SIGALRM, lambda s, f: os._exit(i % 5))
        seen.put((i, sys.stdout.getvalue(), signal.getsignal(signal.SIGTERM) is not None))
        signal.alarm(1)
        time.sleep(30)  # ended by the alarm's handler

    ps = [multiprocessing.Process(target=body, args=(i,)) for i in range(20)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(10)
    assert [p.exitcode for p in ps] == [i % 5 for i in range(20)]
    assert sorted(seen.get(timeout=5) for _ in range(20)) == [
        (i, f"worker {i}\n", True) for i in range(20)
    ]
    assert (sys.stdin, sys.stdout, sys.stderr) == app_streams


def test_outside_workers_the_originals_run():
    assert not _virtual.in_worker()
    assert os.getppid() == os.getppid.__wrapped__()
    t0 = time.monotonic()
    time.sleep(0.01)
    assert time.monotonic() - t0 >= 0.009
    with pytest.raises(ProcessLookupError):
        os.kill(2**30 + 2**29, 0)  # a vpid nobody has: never a real process


def test_table_lists_every_patch_and_uninstall_restores_them():
    import ios_mp

    names = {(p.owner.__name__, p.name) for p in _virtual.TABLE}
    for expected in [
        ("os", "_exit"),
        ("time", "sleep"),
        ("os", "setsid"),
        ("os", "setpgrp"),
        ("os", "setpgid"),
        ("os", "getppid"),
        ("os", "kill"),
        ("os", "killpg"),
    ]:
        assert expected in names
    for p in _virtual.TABLE:
        assert getattr(p.owner, p.name) is p.replacement
        assert p.in_worker and p.elsewhere
    ios_mp.uninstall()
    try:
        for p in _virtual.TABLE:
            assert getattr(p.owner, p.name) is p.replacement.__wrapped__
    finally:
        ios_mp.install()
    assert os._exit is not os._exit.__wrapped__


def test_signal_handlers_are_per_worker(app_unchanged):
    q = multiprocessing.Queue(copy=False)

    def handler(signum, frame):
        pass

    def body():
        # Ansible 2.19's worker does this first thing; off the main thread the
        # real call raises "signal only works in main thread".
        first = signal.signal(signal.SIGTERM, handler)
        second = signal.signal(signal.SIGINT, signal.SIG_IGN)
        q.put(
            (
                first,
                second,
                signal.getsignal(signal.SIGTERM),
                signal.getsignal(signal.SIGINT),
                signal.getsignal(signal.SIGHUP),
            )
        )
        with pytest.raises(ValueError, match="out of range"):
            signal.signal(0, handler)
        with pytest.raises(OSError):
            signal.signal(signal.SIGKILL, handler)
        with pytest.raises(TypeError, match="callable"):
            signal.signal(signal.SIGTERM, 42)

    app_term = signal.getsignal(signal.SIGTERM)
    p = _run(body)
    assert p.exitcode == 0
    first, second, term, intr, hup = q.get(timeout=1)
    assert first is signal.SIG_DFL and second is signal.default_int_handler
    assert term is handler and intr is signal.SIG_IGN and hup is signal.SIG_DFL
    assert signal.getsignal(signal.SIGTERM) is app_term
    assert _signals._handlers == {}  # forgotten at exit
