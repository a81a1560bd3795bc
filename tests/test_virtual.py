"""Process virtualization (python/ios_mp/_virtual.py): process-wide calls made
in a worker affect only that worker; the app sees stdlib behaviour."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time

import pytest

from ios_mp import _signals, _virtual
from ios_mp.process import ProcessTerminated


def _run(target, *args, **kwargs):
    p = multiprocessing.Process(target=target, args=args, kwargs=kwargs)
    p.start()
    p.join(10)
    assert not p.is_alive()
    return p


def _fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


@pytest.fixture
def app_unchanged(app_state_unchanged):
    """fds 0-2, sys.std* identity, signal handlers, process group (conftest.app_state)."""
    yield


def test_os_exit_ends_only_the_worker(app_unchanged):
    ran, refused = [], []  # a closure's cells are shared with the worker

    def body():
        try:
            os._exit(7)
        finally:
            ran.append("finally")  # documented: the thread unwinds
            try:
                q.put("after os._exit")
            except ProcessTerminated:
                refused.append("put")  # but the ended worker may not use IPC

    q = multiprocessing.Queue()
    p = _run(body)
    assert p.exitcode == 7
    assert ran == ["finally"]
    assert refused == ["put"]
    assert q.empty()


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


def test_os_kill_and_killpg_of_a_vpid_reach_only_that_worker(app_unchanged, monkeypatch, capsys):
    import errno

    started = multiprocessing.Event()
    real_calls = []

    def spy(name):
        original = _virtual._originals[(id(os), name)]

        def call(*args):
            real_calls.append((name, *args))
            return original(*args)

        return call

    # The real os.kill/os.killpg must never be called for a vpid.
    for name in ("kill", "killpg"):
        monkeypatch.setitem(_virtual._originals, (id(os), name), spy(name))

    def body():
        started.set()
        time.sleep(300)

    for send, sig, code in [
        (os.kill, signal.SIGTERM, -15),
        (os.killpg, signal.SIGTERM, -15),
        (os.kill, signal.SIGKILL, -9),
        (os.killpg, signal.SIGKILL, -9),
        (os.kill, signal.SIGINT, 1),  # KeyboardInterrupt in the worker, as a real child
        (os.killpg, signal.SIGINT, 1),
        (os.kill, signal.SIGUSR1, -signal.SIGUSR1),
    ]:
        started.clear()
        p = multiprocessing.Process(target=body)
        p.start()
        assert started.wait(5)
        os.kill(p.pid, 0)  # exists
        os.killpg(p.pid, 0)
        send(p.pid, sig)
        p.join(5)
        assert p.exitcode == code
        for check in (os.kill, os.killpg):
            with pytest.raises(ProcessLookupError) as e:
                check(p.pid, 0)
            assert e.value.errno == errno.ESRCH
    assert real_calls == []
    assert capsys.readouterr().err.count("KeyboardInterrupt") == 2


def test_worker_killing_its_own_vpid_like_ansibles_sigterm_handler():
    def body():
        os.killpg(multiprocessing.current_process().pid, signal.SIGKILL)
        time.sleep(30)

    assert _run(body).exitcode == -9


def test_twenty_concurrent_workers_detach_and_exit(app_unchanged):
    """Ansible's WorkerProcess sequence, in 20 workers at once: setsid, signal
    handlers, /dev/null over 0-2, new sys.std*, output, alarm, os._exit."""
    import io

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
        ("Thread", "start"),
        ("Thread", "_bootstrap_inner"),
        ("signal", "signal"),
        ("signal", "alarm"),
        ("os", "dup2"),
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


# --- exit codes, unwinding, and what terminate()/kill() cannot interrupt ---------


# What the worker's unwinding ran. A module global: shared with the worker (its
# args are copies), and no IPC, which an ended worker may no longer use.
_unwound: list = []


class _Cm:
    def __init__(self, what):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _unwound.append(("with", self.what))


def _ending(how):
    def body(q, handed):
        handed["seen"] = True  # a mutation of the worker's own copy
        handed["nested"].append("worker")
        with _Cm(how):
            try:
                q.put(("ready", how))
                if how == "os._exit(5)":
                    os._exit(5)
                elif how == "sys.exit(4)":
                    sys.exit(4)
                elif how == "SystemExit()":
                    raise SystemExit()
                elif how == "sys.exit('msg')":
                    sys.exit("msg")
                elif how == "exception":
                    raise RuntimeError("boom")
                else:  # ended from outside: terminate() or kill()
                    time.sleep(60)
            finally:
                _unwound.append(("finally", how))

    return body


@pytest.mark.parametrize(
    "how,code",
    [
        ("os._exit(5)", 5),
        ("sys.exit(4)", 4),
        ("SystemExit()", 0),
        ("sys.exit('msg')", 1),
        ("exception", 1),
        ("terminate", -15),
        ("kill", -9),
    ],
)
def test_exit_codes_are_a_real_childs_and_unwinding_is_as_documented(
    app_unchanged, capsys, how, code
):
    """Exit codes n/0/1/-15/-9; for every way of ending (os._exit, terminate and
    kill included) the worker's thread unwinds: ``finally`` blocks and ``with``
    exits run (documented in _virtual.py and docs/compatibility.md). The dict
    handed to the worker is unchanged in the app."""
    q = multiprocessing.Queue(copy=False)
    handed = {"nested": ["app"]}
    _unwound.clear()
    p = multiprocessing.Process(target=_ending(how), args=(q, handed))
    p.start()
    assert q.get(timeout=10) == ("ready", how)
    if how in ("terminate", "kill"):
        time.sleep(0.05)
        getattr(p, how)()
    p.join(10)
    assert p.exitcode == code
    assert _unwound == [("finally", how), ("with", how)]
    assert handed == {"nested": ["app"]}
    err = capsys.readouterr().err
    if how == "exception":
        assert "RuntimeError: boom" in err
    if how == "sys.exit('msg')":
        assert "msg" in err


@pytest.mark.timeout(30)
def test_a_worker_in_a_blocking_socket_read_ends_when_the_read_returns(app_unchanged):
    """The documented limit: terminate() cannot interrupt a blocking C call other
    than ios_mp's waits and time.sleep (here ``sock.recv``); ``join(timeout)``
    still returns on time, and the worker ends (-15) as soon as the call returns."""
    a, b = socket.socketpair()
    started = multiprocessing.Event()
    after = multiprocessing.Queue(copy=False)

    def body():
        started.set()
        data = b.recv(1)
        after.put(data)  # not reached: ended when recv returns

    p = multiprocessing.Process(target=body)
    p.start()
    try:
        assert started.wait(5)
        time.sleep(0.1)  # let it block in recv
        p.terminate()
        t0 = time.monotonic()
        p.join(0.3)
        waited = time.monotonic() - t0
        print(f"join(0.3) with the worker stuck in recv returned after {waited * 1000:.0f} ms")
        assert 0.25 <= waited < 2.0
        assert p.is_alive() and p.exitcode is None
    finally:
        a.send(b"x")  # the read returns: the worker ends at its next bytecode
    p.join(10)
    assert p.exitcode == -15
    assert after.empty()
    a.close()
    b.close()


# --- outside workers: stdlib behaviour exactly ----------------------------------------


_BAD_CALLS = [
    (time.sleep, ("x",)),
    (time.sleep, (None,)),
    (time.sleep, (-1,)),
    (os._exit, ("x",)),
    (os._exit, (1.5,)),
    (os.kill, ("x", 0)),
    (os.kill, (1.5, 0)),
    (os.kill, (os.getpid(), "x")),
    (os.kill, (2**64, 0)),
    (os.killpg, ("x", 0)),
    (os.setpgid, ("x", 0)),
    (os.getsid, ("x",)),
    (os.getpgid, ("x",)),
    (os.dup2, ("x", 1)),
    (os.close, ("x",)),
    (os.closerange, ("a", 3)),
    (os.fstat, (-1,)),
    (os.write, (1,)),
    (signal.signal, (0, signal.SIG_DFL)),
    (signal.signal, (signal.SIGKILL, signal.SIG_IGN)),
    (signal.getsignal, (0,)),
    (signal.setitimer, (99, 1.0)),
]


def _outcome(call, *args, **kwargs):
    try:
        return ("returned", call(*args, **kwargs))
    except BaseException as e:  # os._exit's cases all raise before exiting
        return (type(e), str(e))


@pytest.mark.parametrize("call,args", _BAD_CALLS, ids=lambda v: getattr(v, "__name__", repr(v)))
def test_outside_workers_the_errors_are_stdlibs(call, args):
    """Same exception type and message as the original, on every Python version."""
    assert _outcome(call, *args) == _outcome(call.__wrapped__, *args)


@pytest.mark.parametrize(
    "call,kwargs",
    [
        (time.sleep, {"seconds": 0}),
        (os.kill, {"pid": os.getpid(), "signal": 0}),
        (os.killpg, {"pgid": os.getpgrp(), "signal": 0}),
        (os.setpgid, {"pid": 0, "pgrp": 0}),
        (os.getsid, {"pid": 0}),
        (signal.alarm, {"seconds": 0}),
        (signal.raise_signal, {"signalnum": 0}),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_outside_workers_keyword_arguments_are_refused_as_by_stdlib(call, kwargs):
    assert _outcome(call, **kwargs)[0] is TypeError
    assert _outcome(call.__wrapped__, **kwargs)[0] is TypeError


def test_outside_workers_keyword_status_of_os_exit_is_accepted():
    # stdlib's os._exit takes ``status`` by keyword; so must the patch (not run:
    # checked through the signature the patch is called with).
    import inspect

    assert list(inspect.signature(os._exit, follow_wrapped=False).parameters) == ["status"]


def test_signal_from_a_non_main_app_thread_raises_as_stdlib():
    out = []

    def app_thread():
        for call in (signal.signal, signal.signal.__wrapped__):
            out.append(_outcome(call, signal.SIGUSR1, signal.SIG_IGN))

    t = threading.Thread(target=app_thread)
    t.start()
    t.join(5)
    assert out[0] == out[1]
    assert out[0][0] is ValueError and "main thread" in out[0][1]
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


def test_app_calls_reach_the_real_process():
    os.kill(os.getpid(), 0)  # the app's own real pid
    os.killpg(os.getpgrp(), 0)
    assert os.getpgid(0) == os.getpgrp.__wrapped__()
    assert os.getsid(0) == os.getsid.__wrapped__(0)
    r, w = os.pipe()
    r2, w2 = os.dup(r), os.dup(w)
    low, high = min(r, w, r2, w2), max(r, w, r2, w2)
    # Only close our four (others may hold descriptors in between).
    for fd in range(low, high + 1):
        if fd not in (r, w, r2, w2) and _fd_open(fd):
            pytest.skip("descriptors of others lie in the range")
    os.closerange(low, high + 1)
    assert not any(_fd_open(fd) for fd in (r, w, r2, w2))
    prev = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        assert signal.getsignal(signal.SIGUSR2) is signal.SIG_IGN
        assert signal.signal.__wrapped__(signal.SIGUSR2, prev) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGUSR2, prev)


_SPIN_STOP: list = []


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["thread", "daemon", "grandchild"])
@pytest.mark.parametrize("how", ["terminate", "kill", "os._exit", "os._exit in a thread"])
def test_threads_a_worker_started_end_with_it_even_when_running_python(how, kind):
    """A thread the worker started, busy running Python code, ends when the worker is
    ended (as a real process's threads do): its finally runs, it ends quietly (no
    excepthook), and it can be joined (threading's epilogue ran)."""
    ended, hooked = [], []

    def spin():
        try:
            # Not `while not _SPIN_STOP: pass`: on 3.13 an asynchronous exception
            # (Ctrl-C too) landing on that loop's backward jump skips the try's
            # handlers (python/cpython#130279).
            while True:
                if _SPIN_STOP:
                    break
        finally:
            ended.append(threading.current_thread().name)

    def start_spinner():
        threading.Thread(target=spin, name="worker-spin", daemon=kind == "daemon").start()

    def body():
        if kind == "grandchild":
            threading.Thread(target=start_spinner).start()
        else:
            start_spinner()
        time.sleep(0.1)
        if how == "os._exit":
            os._exit(3)
        if how == "os._exit in a thread":
            threading.Thread(target=os._exit, args=(3,)).start()
        time.sleep(30)

    _SPIN_STOP.clear()
    old_hook = threading.excepthook
    threading.excepthook = hooked.append
    try:
        p = multiprocessing.Process(target=body)
        p.start()
        time.sleep(0.3)
        if how in ("terminate", "kill"):
            getattr(p, how)()
        p.join(5)
        expected = {"terminate": -15, "kill": -9}.get(how, 3)
        assert p.exitcode == expected
        deadline = time.monotonic() + 2
        while not ended and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ended == ["worker-spin"]
        spinners = [t for t in threading.enumerate() if t.name == "worker-spin"]
        for t in spinners:
            t.join(5)
            assert not t.is_alive()
        assert hooked == []
    finally:
        threading.excepthook = old_hook
        _SPIN_STOP.append(True)  # never leave the thread spinning in the test run
        for t in threading.enumerate():
            if t.name == "worker-spin":
                t.join(5)


@pytest.mark.timeout(30)
def test_a_thread_that_outlives_a_terminated_worker_is_never_interrupted_again():
    """A thread that finished run() before the worker was terminated is not sent a
    late ProcessTerminated (which would land in threading's epilogue): the threads
    of many workers, ended in every phase, all end and can be joined."""

    def short():
        pass

    def body():
        for _ in range(20):
            threading.Thread(target=short).start()
        time.sleep(30)

    before = set(threading.enumerate())
    procs = [multiprocessing.Process(target=body) for _ in range(10)]
    for p in procs:
        p.start()
    for i, p in enumerate(procs):
        time.sleep(0.005 * i)
        p.terminate()
    for p in procs:
        p.join(10)
        assert p.exitcode == -15
    deadline = time.monotonic() + 10
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert set(threading.enumerate()) - before == set()


class _SlowHandler(logging.Handler):
    """A handler busy for a moment in each emit: threads logging through it
    queue on its lock, where a termination lands as soon as they get it."""

    def emit(self, record):
        time.sleep(0.0005)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["worker", "thread of the worker"])
@pytest.mark.parametrize("how,code", [("terminate", -15), ("kill", -9)])
def test_a_worker_ended_while_logging_leaves_no_logging_lock_held(where, how, code):
    """Logging's locks are the app's (a real child has its own copies). A worker
    ended while it waits for a handler the app is using may get the lock and be
    ended before the ``try:`` that releases it (CPython 3.9-3.12): its ending
    thread then releases it, so the app's logging, and ``logging.shutdown()`` at
    exit, never wait for a thread that is gone. 40 rounds: before the fix, the
    first round already left the lock held on 3.9 and 3.11."""
    handler = _SlowHandler()
    logger = logging.getLogger("ios_mp.tests.slow")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    stop = threading.Event()

    def log_forever():
        while True:
            logger.info("from the worker")
            logging.getLogger(f"ios_mp.tests.slow.{threading.get_ident()}")  # module lock

    def body():
        if where == "worker":
            log_forever()
        threading.Thread(target=log_forever, name="worker-logger").start()
        time.sleep(30)

    def app_logs():
        while not stop.is_set():
            logger.info("from the app")

    app = threading.Thread(target=app_logs, daemon=True)  # a failed run must not hang exit
    app.start()
    try:
        for _ in range(40):
            p = multiprocessing.Process(target=body)
            p.start()
            time.sleep(0.005)
            getattr(p, how)()
            p.join(10)
            assert p.exitcode == code
            for t in threading.enumerate():
                if t.name == "worker-logger":
                    t.join(5)
            # The app's thread still logs: neither lock is held by a gone thread.
            assert handler.lock.acquire(timeout=5), "a handler lock is left held"
            handler.lock.release()
            assert logging._lock.acquire(timeout=5), "logging's module lock is left held"
            logging._lock.release()
    finally:
        stop.set()
        app.join(10)
        logger.removeHandler(handler)
    assert not app.is_alive()
