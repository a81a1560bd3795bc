"""Signals for workers: per-worker dispositions, delivery into the worker's own
thread, and per-worker ``alarm``/``setitimer`` timers.

A real child process has its own signal dispositions and runs its Python
handlers in its main thread, between bytecodes. Here a worker is a thread of
the app, so each worker gets:

* a **handler table** (``signal.signal``/``signal.getsignal`` in any of its
  threads; ``_virtual.py`` routes them here). A worker starts with the
  dispositions of a fresh interpreter: ``default_int_handler`` for SIGINT,
  ``SIG_IGN`` for SIGPIPE and SIGXFSZ, ``SIG_DFL`` for the rest. (A forked
  child would inherit its parent's handlers; the app's handlers are about the
  app, so a worker does not run them.)
* **delivery** (``deliver()``; used by ``Process.terminate()`` when the worker
  set a SIGTERM handler, by ``os.kill``/``os.killpg`` of its virtual pid, by
  ``signal.raise_signal`` in the worker and by its alarm timer):

  - ``SIG_IGN``: nothing happens.
  - ``SIG_DFL``: SIGCHLD, SIGURG, SIGWINCH and SIGCONT are ignored, as by a
    real process; the stop signals (SIGTSTP, SIGTTIN, SIGTTOU) are ignored too
    (stopping a thread is not emulated); any other signal ends the worker with
    exit code ``-signum``, as ``terminate()`` does.
  - a Python callable: it runs in the worker's own thread (the thread that runs
    ``run()``, the worker's "main thread"), with ``(signum, frame)``:

    * at once if that thread waits in an ios_mp primitive or ``time.sleep``:
      the wait is interrupted, the handler runs, and the wait goes on with the
      time it has left (as PEP 475 retries a system call); an exception from
      the handler is raised from the wait;
    * if the thread is running Python code, at its next bytecode, through an
      asynchronous exception (``_Trampoline``) whose construction runs the
      handler: an exception the handler raises is raised there, as a real
      signal handler's would be. A handler that *returns normally* there cannot
      let the interrupted code resume (an asynchronous exception cannot be
      withdrawn once it is being raised): the code gets ``SignalInterrupted``,
      an ``InterruptedError``. Handlers that raise (``sys.exit``,
      ``os._exit``, a timeout exception, ``KeyboardInterrupt``) behave exactly;
      flag-setting handlers behave exactly when the worker is waiting;
    * if the thread is in another blocking C call (a socket read, a
      ``threading`` lock, ``select``), when that call returns, like any
      asynchronous exception.

  Signals coalesce, as ordinary POSIX signals do (one pending SIGALRM at most),
  and handlers of several pending signals run in increasing signal order.
* **timers**: ``signal.alarm``, ``signal.setitimer(ITIMER_REAL, ...)`` and
  ``signal.getitimer(ITIMER_REAL)`` in a worker set and read that worker's own
  timer (one per worker, as one per process), which sends SIGALRM to that
  worker. ``ITIMER_VIRTUAL`` and ``ITIMER_PROF`` (CPU time of the process)
  raise ``signal.ItimerError`` in a worker. Timers run on one daemon thread of
  the app, ``ios_mp-timers``, started on first use and ended when no timer is
  left.

Everything here concerns workers only; the app's own signals are untouched.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import math
import signal
import sys
import threading
import time
from typing import Any

from . import _core

__all__ = ["SignalInterrupted", "deliver"]

_DEFAULT_IGNORE = frozenset(
    getattr(signal, n)
    for n in ("SIGCHLD", "SIGURG", "SIGWINCH", "SIGCONT", "SIGTSTP", "SIGTTIN", "SIGTTOU")
    if hasattr(signal, n)
)
_FRESH_IGNORED = frozenset(getattr(signal, n) for n in ("SIGPIPE", "SIGXFSZ") if hasattr(signal, n))


class _Trampoline(BaseException):
    """Sent asynchronously to a worker's thread: constructing it runs the
    worker's pending signal handlers there (see the module docstring).

    What the construction raises (before 3.11) or returns (3.11+) is what the
    interrupted code sees raised. A returned exception must be an instance of
    ``_Trampoline`` (CPython checks that the exception it made is of the type it
    was sent), so an exception ``e`` a handler raised is returned as a copy of
    ``e`` whose class derives from both ``type(e)`` and ``_Trampoline``:
    ``except type(e)`` (and any base of it) catches it, and it carries ``e``'s
    arguments, attributes, cause, context and traceback.
    """

    def __new__(cls, *args: Any) -> Any:
        if cls is not _Trampoline:
            return super().__new__(cls, *args)
        _core._disarm()
        try:
            _run_pending(sys._getframe(1))
        except BaseException as e:
            if _RAISE_FROM_NEW:
                raise
            return _as_trampoline(e)
        # The handlers returned normally: something must still be raised.
        exc = SignalInterrupted(errno.EINTR, "interrupted by a signal whose handler returned")
        if _RAISE_FROM_NEW:
            raise exc
        return exc


# Before 3.11 CPython makes the instance lazily, at the first enclosing handler,
# and matches that handler's ``except`` against the type it was sent unless the
# construction itself raised: there, raising is what works. From 3.11 on, an
# exception raised by the construction escapes ``try`` blocks (3.11, 3.12), and
# a returned instance of a ``_Trampoline`` subclass is raised as is.
_RAISE_FROM_NEW = sys.version_info < (3, 11)


class SignalInterrupted(InterruptedError, _Trampoline):
    """Raised in a worker's thread that was running Python code when a signal
    handler ran there and returned normally (the code cannot resume)."""


_carriers: dict[type, type] = {}


def _carrier(cls: type) -> type:
    sub = _carriers.get(cls)
    if sub is None:
        sub = type(
            cls.__name__,
            (cls, _Trampoline),
            {
                # The copy is complete when made; CPython calls __init__ with no
                # arguments after __new__, which must not reset it.
                "__init__": lambda self, *a, **k: None,
                "__module__": cls.__module__,
                "__qualname__": cls.__qualname__,
                "__doc__": cls.__doc__,
            },
        )
        _carriers[cls] = sub
    return sub


def _as_trampoline(e: BaseException) -> BaseException:
    """A copy of ``e`` that is also a ``_Trampoline`` (``e`` itself if it is one,
    or if its class cannot be combined with ``_Trampoline``)."""
    if isinstance(e, _Trampoline):
        return e
    cls = type(e)
    try:
        inst = cls.__new__(_carrier(cls), *e.args)
    except Exception:
        return e  # an exotic exception class: raised as is (caught on 3.13+)
    inst.__dict__.update(getattr(e, "__dict__", {}))
    if isinstance(e, SystemExit):
        inst.code = e.code  # set by SystemExit.__init__, which the copy skips
    inst.__cause__ = e.__cause__
    inst.__context__ = e.__context__
    inst.__suppress_context__ = e.__suppress_context__
    return inst.with_traceback(e.__traceback__)


# --- dispositions -----------------------------------------------------------------
# Per worker (by vpid): {signum: handler}, for signals whose handler was set.
_handlers: dict[int, dict[int, Any]] = {}


def default_handler(signalnum: int) -> Any:
    """A fresh interpreter's disposition of ``signalnum``."""
    if signalnum == signal.SIGINT:
        return signal.default_int_handler
    if signalnum in _FRESH_IGNORED:
        return signal.SIG_IGN
    return signal.SIG_DFL


def get_handler(vpid: int, signalnum: int) -> Any:
    return _handlers.get(vpid, {}).get(signalnum, default_handler(signalnum))


def set_handler(vpid: int, signalnum: int, handler: Any) -> Any:
    """Set the worker's handler (validated by the caller); returns the previous one."""
    table = _handlers.setdefault(vpid, {})
    previous = table.get(signalnum, default_handler(signalnum))
    table[signalnum] = handler
    _core._set_caught(signalnum, handler is not signal.SIG_DFL)
    return previous


# --- delivery -------------------------------------------------------------------------


def deliver(proc: Any, signalnum: int) -> None:
    """Send signal ``signalnum`` to worker ``proc`` (a started ios_mp process)."""
    sig = int(signalnum)
    if sig == signal.SIGKILL:
        _end_by(proc, sig)
        return
    handler = get_handler(proc.pid, sig)
    if handler is signal.SIG_IGN:
        return
    if handler is signal.SIG_DFL or not callable(handler):
        if sig not in _DEFAULT_IGNORE:
            _end_by(proc, sig)
        return
    if not _core._signal_worker(proc, sig):
        return
    me = _core._worker_process()
    if me is not None and me.pid == proc.pid:
        # Sent by the worker to itself: a real kill() to oneself runs the
        # handler before it returns. (A no-op in the worker's other threads:
        # its own thread runs the handler, as soon as it can.)
        _run_pending(sys._getframe(1))


def _end_by(proc: Any, sig: int) -> None:
    """End worker ``proc`` with exit code ``-sig``, a signal's default action.
    Called in a thread of ``proc`` itself (``os.kill`` of oneself, a handler set
    back to SIG_DFL), this does not return, as a real ``kill()`` of oneself."""
    proc._send_signal(sig)
    me = _core._worker_process()
    if me is None or me.pid != proc.pid:
        return
    from .process import ProcessTerminated, _absorb_termination

    try:
        _absorb_termination()  # the asynchronous one, if it is for this thread
    except ProcessTerminated:
        pass
    raise ProcessTerminated(f"process terminated by signal {sig}")


def _run_pending(frame: Any = None) -> None:
    """Run the calling worker thread's pending signal handlers (its own thread
    only; called by ios_mp's waits, by ``_Trampoline`` and by ``deliver``)."""
    if _core._disarm():
        # A trampoline is queued for this thread: let it run here instead.
        _absorb()
    for sig in _core._take_signals():
        proc = _core._worker_process()
        if proc is None:
            return
        handler = get_handler(proc.pid, sig)
        if callable(handler):
            handler(sig, frame if frame is not None else sys._getframe(1))
        elif handler is signal.SIG_DFL and sig not in _DEFAULT_IGNORE:
            _end_by(proc, sig)  # the disposition went back to the default meanwhile


def _absorb() -> None:
    """Give a queued ``_Trampoline`` bytecodes to be delivered at, and swallow
    the ``SignalInterrupted`` it raises if its handlers returned normally."""
    try:
        for _ in range(2):
            pass
    except SignalInterrupted:
        pass


# --- per-worker ITIMER_REAL ----------------------------------------------------------


class _Timers:
    """One real-time timer per worker, served by one app thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        # vpid -> (due, interval, proc, generation); the heap holds
        # (due, generation, vpid) and stale entries are skipped.
        self._timers: dict[int, tuple[float, float, Any, int]] = {}
        self._heap: list[tuple[float, int, int]] = []
        self._gen = itertools.count()
        self._thread: threading.Thread | None = None

    def get(self, vpid: int) -> tuple[float, float]:
        with self._cond:
            t = self._timers.get(vpid)
        if t is None:
            return (0.0, 0.0)
        return (max(t[0] - time.monotonic(), 0.0) or 1e-6, t[1])

    def set(self, proc: Any, delay: float, interval: float) -> tuple[float, float]:
        """Arm (delay > 0) or disarm (delay == 0) ``proc``'s timer; the old value."""
        old = self.get(proc.pid)
        with self._cond:
            if delay <= 0:
                self._timers.pop(proc.pid, None)
            else:
                gen = next(self._gen)
                due = time.monotonic() + delay
                self._timers[proc.pid] = (due, max(interval, 0.0), proc, gen)
                heapq.heappush(self._heap, (due, gen, proc.pid))
                self._ensure_thread()
                self._cond.notify()
        return old

    def forget(self, vpid: int) -> None:
        with self._cond:
            self._timers.pop(vpid, None)

    def _ensure_thread(self) -> None:
        if self._thread is None:
            from .process import _orig_start

            t = threading.Thread(target=self._run, name="ios_mp-timers", daemon=True)
            # An app thread even when a worker asks first (not one of its threads).
            _orig_start(t)
            self._thread = t

    def _run(self) -> None:
        while True:
            due_now = []
            with self._cond:
                while True:
                    while self._heap and self._stale(self._heap[0]):
                        heapq.heappop(self._heap)
                    if not self._heap:
                        if not self._cond.wait(1.0) and not self._heap:
                            self._thread = None
                            return
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    _, gen, vpid = heapq.heappop(self._heap)
                    t = self._timers.get(vpid)
                    if t is None or t[3] != gen:
                        continue
                    _, interval, proc, _ = t
                    if interval > 0:
                        ngen = next(self._gen)
                        self._timers[vpid] = (now + interval, interval, proc, ngen)
                        heapq.heappush(self._heap, (now + interval, ngen, vpid))
                    else:
                        del self._timers[vpid]
                    due_now.append(proc)
            for proc in due_now:
                try:
                    if proc.is_alive():
                        deliver(proc, signal.SIGALRM)
                except Exception:  # a worker that just ended; nothing to deliver to
                    pass

    def _stale(self, entry: tuple[float, int, int]) -> bool:
        t = self._timers.get(entry[2])
        return t is None or t[3] != entry[1]


_timers = _Timers()


def _check_real_timer(which: int) -> None:
    if which != signal.ITIMER_REAL:
        if which in (getattr(signal, "ITIMER_VIRTUAL", None), getattr(signal, "ITIMER_PROF", None)):
            raise signal.ItimerError(
                errno.ENOTSUP,
                "ios_mp: only ITIMER_REAL has a per-worker meaning (ITIMER_VIRTUAL and "
                "ITIMER_PROF count the CPU time of a process; workers are threads)",
            )
        raise signal.ItimerError(errno.EINVAL, "Invalid argument")


def alarm(proc: Any, seconds: int) -> int:
    """``signal.alarm(seconds)`` for worker ``proc``."""
    left, _ = _timers.set(proc, float(seconds), 0.0)
    if left <= 0:
        return 0
    # As Linux: whole seconds, rounded to nearest, at least 1 if one was set.
    return max(1, int(left + 0.5))


def setitimer(proc: Any, which: int, seconds: float, interval: float) -> tuple[float, float]:
    _check_real_timer(which)
    if not (math.isfinite(seconds) and math.isfinite(interval)) or seconds < 0 or interval < 0:
        raise signal.ItimerError(errno.EINVAL, "Invalid argument")
    return _timers.set(proc, seconds, interval)


def getitimer(proc: Any, which: int) -> tuple[float, float]:
    _check_real_timer(which)
    return _timers.get(proc.pid)


def forget(proc: Any) -> None:
    """The worker exited: drop its handlers and its timer."""
    _handlers.pop(proc.pid, None)
    _timers.forget(proc.pid)
