"""Signals sent to workers run the worker's handlers in the worker's own thread
(terminate(), os.kill of a vpid, raise_signal, per-worker alarm/setitimer)."""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import threading
import time

import pytest

from ios_mp import _signals

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("app_state_unchanged")]


class Boom(Exception):
    pass


def _raise_boom(signum, frame):
    raise Boom(signum)


@pytest.fixture
def app_signals():
    """The app's own handlers and timer are untouched by what workers do."""
    # (SIGALRM and ITIMER_REAL are pytest-timeout's here: see test_alarm_is_per_worker.)
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}
    yield
    assert {s: signal.getsignal(s) for s in before} == before
    assert _signals._handlers == {}


def _start(body, *args):
    q = multiprocessing.Queue(copy=False)
    p = multiprocessing.Process(target=body, args=(q, *args))
    p.start()
    assert q.get(timeout=10) == "ready"
    return p, q


WAITS = {
    "sleep": lambda: time.sleep(20),
    "queue.get": lambda: multiprocessing.Queue().get(timeout=20),
    "lock": lambda: (lambda lk: (lk.acquire(), lk.acquire(timeout=20)))(multiprocessing.Lock()),
    "event": lambda: multiprocessing.Event().wait(20),
    "condition": lambda: (lambda c: (c.acquire(), c.wait(20)))(multiprocessing.Condition()),
    "semaphore": lambda: multiprocessing.Semaphore(0).acquire(timeout=20),
    "join": lambda: (lambda p: (p.start(), p.join(20)))(
        multiprocessing.Process(target=time.sleep, args=(20,), daemon=True)
    ),
}


@pytest.mark.parametrize("wait", sorted(WAITS))
def test_terminate_runs_the_workers_sigterm_handler_in_a_wait(app_signals, wait):
    def body(q, wait):
        signal.signal(signal.SIGTERM, _raise_boom)
        me = threading.get_ident()
        q.put("ready")
        t0 = time.monotonic()
        try:
            WAITS[wait]()
        except Boom as e:
            q.put(("handled", e.args[0], threading.get_ident() == me, time.monotonic() - t0))
            return
        q.put("not interrupted")

    p, q = _start(body, wait)
    time.sleep(0.05)
    t0 = time.monotonic()
    p.terminate()
    what, signum, same_thread, waited = q.get(timeout=10)
    p.join(10)
    assert (what, signum, same_thread) == ("handled", signal.SIGTERM, True)
    assert waited < 5 and time.monotonic() - t0 < 5
    assert p.exitcode == 0  # the handler's exception was caught: a normal exit


def test_a_handler_that_returns_lets_the_wait_go_on(app_signals):
    def body(q):
        got = []
        signal.signal(signal.SIGUSR1, lambda s, f: got.append((s, threading.get_ident())))
        cond = multiprocessing.Condition()
        q.put("ready")
        t0 = time.monotonic()
        time.sleep(1.0)  # interrupted, then sleeps the rest
        slept = time.monotonic() - t0
        with cond:
            notified = cond.wait(1.0)  # interrupted, then waits the rest: no notify
        q.put((got, slept, notified, threading.get_ident()))

    p, q = _start(body)
    t0 = time.monotonic()
    for at in (0.2, 0.4, 0.6, 1.5):
        time.sleep(max(0.0, at - (time.monotonic() - t0)))
        os.kill(p.pid, signal.SIGUSR1)
    got, slept, notified, ident = q.get(timeout=10)
    p.join(10)
    assert p.exitcode == 0
    assert slept >= 0.99 and notified is False
    assert 2 <= len(got) <= 4 and all(g == (signal.SIGUSR1, ident) for g in got)


def test_handler_runs_in_a_worker_running_python_code(app_signals):
    def body(q):
        signal.signal(signal.SIGTERM, _raise_boom)
        q.put("ready")
        n = 0
        try:
            try:
                while True:
                    n += 1
            finally:
                q.put("finally")
        except Boom as e:
            q.put(("caught", e.args[0]))

    p, q = _start(body)
    time.sleep(0.05)
    p.terminate()
    assert q.get(timeout=5) == "finally"
    assert q.get(timeout=5) == ("caught", signal.SIGTERM)
    p.join(5)
    assert p.exitcode == 0


def test_a_handler_returning_in_running_code_raises_signal_interrupted(app_signals):
    def body(q):
        signal.signal(signal.SIGUSR1, lambda s, f: q.put("handler ran"))
        q.put("ready")
        n = 0
        try:
            while True:
                n += 1
        except InterruptedError as e:
            q.put((type(e).__name__, e.errno))

    p, q = _start(body)
    time.sleep(0.05)
    os.kill(p.pid, signal.SIGUSR1)
    assert q.get(timeout=5) == "handler ran"
    assert q.get(timeout=5) == ("SignalInterrupted", 4)
    p.join(5)


def test_ansible_style_term_handler_exits_with_its_code(app_signals):
    unwound = []  # a function's closure is shared with the worker, not copied

    def body(q):
        def _term(signum, frame):
            signal.signal(signum, signal.SIG_DFL)
            os.killpg(multiprocessing.current_process().pid, 0)
            os._exit(1)

        signal.signal(signal.SIGTERM, _term)
        signal.signal(signal.SIGINT, _term)
        q.put("ready")
        try:
            time.sleep(20)
        finally:
            unwound.append("unwound")
            q.put("sent after os._exit")  # refused: the process has ended

    p, q = _start(body)
    p.terminate()
    p.join(5)
    assert p.exitcode == 1
    assert unwound == ["unwound"]
    with pytest.raises(queue.Empty):
        q.get(timeout=0.2)


def test_dispositions_ignore_default_and_kill(app_signals):
    def body(q, sig):
        if sig == signal.SIGTERM:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        q.put("ready")
        time.sleep(1.0)
        q.put("survived")

    # SIG_IGN: terminate() does nothing; kill() still kills.
    p, _ = _start(body, signal.SIGTERM)
    p.terminate()
    p.join(0.3)
    assert p.is_alive()
    p.kill()
    p.join(5)
    assert p.exitcode == -signal.SIGKILL
    # SIG_DFL: ignored by default (SIGCHLD, SIGWINCH) or ends the worker (SIGUSR2, SIGHUP).
    for sig, code in [
        (signal.SIGCHLD, 0),
        (signal.SIGWINCH, 0),
        (signal.SIGUSR2, -signal.SIGUSR2),
        (signal.SIGHUP, -signal.SIGHUP),
    ]:
        p, _ = _start(body, sig)
        os.kill(p.pid, sig)
        p.join(5)
        assert p.exitcode == code, sig


def test_sigint_to_a_worker_raises_keyboardinterrupt_there(app_signals, capfd):
    def body(q):
        q.put("ready")
        try:
            time.sleep(20)
        except KeyboardInterrupt:
            q.put("KeyboardInterrupt")
            raise

    p, q = _start(body)
    os.kill(p.pid, signal.SIGINT)
    assert q.get(timeout=5) == "KeyboardInterrupt"
    p.join(5)
    assert p.exitcode == 1  # as a real child: the traceback is printed, exit code 1
    assert "KeyboardInterrupt" in capfd.readouterr().err


def test_raise_signal_and_kill_of_self_run_the_handler_before_returning(app_signals):
    def body(q):
        got = []
        signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
        signal.raise_signal(signal.SIGUSR1)
        after_raise = list(got)
        os.kill(multiprocessing.current_process().pid, signal.SIGUSR1)
        q.put("ready")
        q.put((after_raise, got))

    p, q = _start(body)
    assert q.get(timeout=5) == ([signal.SIGUSR1], [signal.SIGUSR1, signal.SIGUSR1])
    p.join(5)


class _Program(multiprocessing.Process):
    __ios_mp_program__ = True


def test_kill_of_getpid_in_a_program_worker_reaches_that_worker(app_signals):
    """A worker that stands for a whole program (run_playbook's ansible-playbook):
    ansible 2.19's TaskQueueManager handler re-sends SIGTERM with
    ``os.kill(os.getpid(), signum)`` after setting SIG_DFL; the real call would end
    the app."""

    def body(q):
        q.put("ready")
        got = []
        signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
        os.kill(os.getpid(), signal.SIGUSR1)
        q.put(got)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)  # ends the worker, with -15
        q.put("not reached")

    q = multiprocessing.Queue(copy=False)
    p = _Program(target=body, args=(q,))
    p.start()
    assert q.get(timeout=10) == "ready"
    assert q.get(timeout=5) == [signal.SIGUSR1]
    p.join(5)
    assert p.exitcode == -signal.SIGTERM
    assert q.empty()


def test_kill_of_getpid_in_a_plain_worker_reaches_the_app():
    """In an ordinary worker os.getpid() is the parent's (the app's) pid: a child
    signalling its parent, as CPython's test_wait_result does."""
    got = []
    old = signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
    try:
        p = multiprocessing.Process(target=os.kill, args=(os.getpid(), signal.SIGUSR1))
        p.start()
        p.join(10)
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)  # the app's handler runs in the main thread
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert p.exitcode == 0
    assert got == [signal.SIGUSR1]


def test_signals_go_to_the_workers_own_thread_only(app_signals):
    def body(q):
        signal.signal(signal.SIGUSR1, _raise_boom)
        inner = multiprocessing.Queue(copy=False)

        def helper():
            inner.put(("helper got", _wait_quietly()))

        def _wait_quietly():
            try:
                time.sleep(0.5)
                return "slept"
            except Boom:
                return "interrupted"

        t = threading.Thread(target=helper)
        t.start()
        q.put("ready")
        try:
            time.sleep(5)
            q.put("main not interrupted")
        except Boom:
            q.put("main interrupted")
        t.join()
        q.put(inner.get(timeout=5))

    p, q = _start(body)
    time.sleep(0.1)
    os.kill(p.pid, signal.SIGUSR1)
    assert q.get(timeout=5) == "main interrupted"
    assert q.get(timeout=5) == ("helper got", "slept")
    p.join(5)


def test_alarm_is_per_worker(app_signals):
    def body(q, delay):
        def on_alarm(signum, frame):
            raise Boom(delay)

        signal.signal(signal.SIGALRM, on_alarm)
        assert signal.alarm(delay) == 0
        q.put("ready")
        t0 = time.monotonic()
        try:
            multiprocessing.Event().wait(10)
        except Boom as e:
            q.put((e.args[0], time.monotonic() - t0))

    app_alarm = signal.getsignal(signal.SIGALRM)
    app_timer = signal.getitimer(signal.ITIMER_REAL)
    workers = [_start(body, d) for d in (1, 2, 1, 2, 1)]
    results = [q.get(timeout=10) for _, q in workers]
    assert signal.getsignal(signal.SIGALRM) is app_alarm
    assert signal.getitimer(signal.ITIMER_REAL)[0] <= app_timer[0]  # the app's own timer
    for p, _ in workers:
        p.join(5)
        assert p.exitcode == 0
    for delay, took in results:
        assert delay - 0.1 <= took <= delay + 1.5


def test_alarm_returns_what_was_left_and_zero_cancels(app_signals):
    def body(q):
        signal.signal(signal.SIGALRM, _raise_boom)
        first = signal.alarm(10)
        left = signal.alarm(5)
        cancelled = signal.alarm(0)
        again = signal.alarm(0)
        time.sleep(0.2)  # nothing fires
        q.put("ready")
        q.put((first, left, cancelled, again))

    p, q = _start(body)
    assert q.get(timeout=5) == (0, 10, 5, 0)
    p.join(5)
    assert p.exitcode == 0


def test_setitimer_interval_and_getitimer(app_signals):
    def body(q):
        ticks = []
        signal.signal(signal.SIGALRM, lambda s, f: ticks.append(time.monotonic()))
        assert signal.setitimer(signal.ITIMER_REAL, 0.1, 0.1) == (0.0, 0.0)
        delay, interval = signal.getitimer(signal.ITIMER_REAL)
        time.sleep(0.75)
        old = signal.setitimer(signal.ITIMER_REAL, 0)
        n = len(ticks)
        time.sleep(0.3)
        with pytest.raises(signal.ItimerError):
            signal.setitimer(signal.ITIMER_VIRTUAL, 1)
        with pytest.raises(signal.ItimerError):
            signal.setitimer(signal.ITIMER_REAL, -1)
        q.put("ready")
        q.put((0 < delay <= 0.1, interval, old[1], n, len(ticks)))

    p, q = _start(body)
    ok_delay, interval, old_interval, n, n_later = q.get(timeout=5)
    p.join(5)
    assert ok_delay and interval == 0.1 and old_interval == 0.1
    assert 4 <= n <= 8 and n_later == n


def test_an_unhandled_alarm_ends_the_worker_like_sigalrm(app_signals):
    def body(q):
        signal.alarm(1)
        q.put("ready")
        time.sleep(10)

    p, _ = _start(body)
    p.join(5)
    assert p.exitcode == -signal.SIGALRM


THREADING_WAITS = {
    "threading.Event": lambda: threading.Event().wait(20),
    "threading.Condition": lambda: (lambda c: (c.acquire(), c.wait()))(threading.Condition()),
    "queue.Queue": lambda: __import__("queue").Queue().get(timeout=20),
    "threading.Semaphore": lambda: threading.Semaphore(0).acquire(),
}


@pytest.mark.parametrize("wait", sorted(THREADING_WAITS))
def test_signals_and_terminate_reach_a_worker_in_threading_waits(app_signals, wait):
    def body(q, wait, handle):
        if handle:
            signal.signal(signal.SIGTERM, _raise_boom)
        q.put("ready")
        try:
            THREADING_WAITS[wait]()
        except Boom:
            q.put("handled")
            return
        q.put("not interrupted")

    for handle in (True, False):
        p, q = _start(body, wait, handle)
        time.sleep(0.05)
        p.terminate()
        p.join(5)
        if handle:
            assert q.get(timeout=5) == "handled"
            assert p.exitcode == 0
        else:
            assert p.exitcode == -signal.SIGTERM


def test_threading_waits_in_a_worker_still_work_across_threads(app_signals):
    import queue as queue_mod

    def body(q):
        inbox = queue_mod.Queue()
        ev = threading.Event()
        threading.Timer(0.05, lambda: (inbox.put("hi"), ev.set())).start()
        got = inbox.get(timeout=5)
        q.put("ready")
        q.put((got, ev.wait(5), type(threading._allocate_lock()).__name__))

    p, q = _start(body)
    assert q.get(timeout=5) == ("hi", True, "_WaitLock")
    p.join(5)
    assert type(threading._allocate_lock()).__name__ == "lock"  # the app's own
