"""Process virtualization: a per-worker meaning for process-wide calls.

Code written for processes does process-wide things in the child (``os._exit``,
``os.setsid``, ``os.kill`` of its own pid, ``time.sleep`` that a SIGTERM ends...),
because in a real child they only affect the child. In ios_mp the child is a
thread of the app, so each such call is patched **once, at install**, here: in a
thread of an ios_mp worker (the worker's own thread or one it started) the
replacement gives it its per-worker meaning; anywhere else (the app's main
thread and its own threads) it calls the original, so the app sees stdlib
behaviour exactly. ``uninstall()`` restores every original.

The table (``TABLE``, plus ``SPECIAL`` for changes that are not an attribute
replacement; printed by ``python -m ios_mp.virtual``-style tooling and checked
by ``tests/test_virtual.py`` and ``tests/test_stdio.py``):

=====================  ==========================================  ===========
call                   in a worker                                 elsewhere
=====================  ==========================================  ===========
``os._exit(n)``        ends only that worker, exit code ``n``;     unchanged
                       the calling thread unwinds (``finally``
                       blocks and ``with`` exits run, unlike a
                       real ``_exit``); a call from a thread the
                       worker started ends the whole worker
``time.sleep(s)``      same sleep, but ``terminate()``/``kill()``  unchanged
                       of the worker end it at once
``threading.Thread.``  a thread a worker starts belongs to it      unchanged
``start``,             (``current_process()``, streams, signals);
``_bootstrap_inner``   the worker's exit waits for it unless it is
                       a daemon; it ends quietly with the worker
``threading.``         a lock whose blocking acquire is an ios_mp  unchanged
``_allocate_lock()``   wait: terminate() and signals reach a
                       worker in ``Condition.wait`` (``Event``,
                       ``queue.Queue``, ``Semaphore``, ``Barrier``)
``os.setsid()``        no-op (the worker leads its own virtual     unchanged
                       session); ``os.getsid(0)`` is the vpid
``os.setpgrp()``       no-op; ``os.getpgrp()`` is the vpid         unchanged
``os.setpgid(0, 0)``   no-op for the worker itself                 unchanged
``os.getppid()``       the app's pid (the worker's parent)         unchanged
``os.kill(vpid, s)``   delivered to that worker: 0 checks it       unchanged
                       exists, SIGKILL kills, others as its        for real
                       disposition says (handler, ignore, or end   pids
                       with ``-s``); never reaches a real
                       process (from anywhere, app included);
                       ``os.kill(os.getpid(), s)`` (the app's pid)
                       reaches the app, except in a worker class
                       with ``__ios_mp_program__ = True`` (it
                       stands for a whole program: to itself)
``os.killpg(vpid,s)``  as ``os.kill(vpid, s)``                     unchanged
``signal.signal``,     a per-worker handler table (no ValueError   unchanged
``signal.getsignal``   off the main thread); returns the previous
                       handler; a worker starts with a fresh
                       interpreter's dispositions. Signals sent to
                       the worker run its handlers in its own
                       thread (see ``_signals.py``)
``signal.alarm``,      the worker's own ITIMER_REAL timer: SIGALRM  unchanged
``signal.setitimer``,  to that worker only (ITIMER_VIRTUAL/PROF
``signal.getitimer``   raise ItimerError in a worker)
``signal.raise_signal``  delivered to the worker itself; its        unchanged
                       handler runs before the call returns
``sys.stdin``,         the worker's own (read, assign, ``del``),   the app's,
``sys.stdout``,        shared by its threads; it starts with a     exactly as
``sys.stderr``         view of its parent's (like fork): the       assigned
(``SPECIAL``: a        view's ``close()``, ``detach()``,
``sys.__class__``      ``reconfigure()`` affect only the worker;
with properties)       ``print()``, ``input()`` and tracebacks
                       write to it (``sys.__dict__`` holds
                       routers); ``__stdout__`` & co untouched
``os.dup2(fd, 0-2)``   the worker's 0-2 now names a private dup    unchanged
                       of ``fd``; the app's descriptor untouched;
                       views of a stream on it follow (``print``
                       after ``dup2(devnull, 1)`` is discarded)
``os.close(0-2)``      closes the worker's descriptor only; then   unchanged
                       I/O on it raises ``OSError(EBADF)``
``os.closerange``      0-2 as ``os.close``; never closes ios_mp's  unchanged
                       private copies of the workers' 0-2
``os.dup(0-2)``,       of the worker's descriptor (``fdopen``: a   unchanged
``os.dup2(0-2, fd)``,  dup of it, so closing the file never closes
``os.fdopen(0-2)``     the app's)
``fcntl.lockf``        whole-file locks exclude other workers and  also waits
                       the app, as between processes; threads of   for workers'
                       one worker never exclude each other         locks
                       (``_fcntl.py``)
``sys.unraisable``     a ``terminate()``/``kill()`` that landed    unchanged
``hook``               in a ``__del__`` or weakref callback (lost
(``SPECIAL``)          there, reported as unraisable) is raised
                       again in the worker's own code
``os.write(0-2, b)``   on the worker's descriptor: also ``read``,  unchanged
and others of 0-2      ``readv``, ``writev``, ``pread``,
                       ``pwrite``, ``fstat``, ``fstatvfs``,
                       ``isatty`` (False once closed),
                       ``ttyname``, ``get_terminal_size`` (default
                       1), ``device_encoding``, ``fsync``,
                       ``fdatasync``, ``lseek``, ``ftruncate``,
                       ``get/set_inheritable``, ``get/set_blocking``
=====================  ==========================================  ===========

Descriptors 0-2 and the standard streams are described in ``_stdio.py``. Not
covered: C code using descriptors 0-2 directly (``io.FileIO(1)``,
``open(1)``, ``faulthandler``'s dumps, a C extension's ``write(1, ...)``,
``select``/``fcntl``/``termios`` on 0-2) reaches the app's real descriptors;
so does a subprocess a worker starts. ``os.open``/``os.pipe`` never return 0-2
in a worker, even after it closed them (use ``dup2``).

``sys.exit(n)``, ``raise SystemExit`` and escaping exceptions need no patch:
they unwind the worker's thread, and ``Process`` maps them to exit codes as
stdlib does. ``terminate()``/``kill()`` raise ``ProcessTerminated`` in the
worker (``finally`` blocks run; a real SIGTERM/SIGKILL would run none), and
in every thread the worker started that is in its ``run()`` (``_bootstrap_inner``
in the table; idle ``concurrent.futures`` pool threads excepted). After that, queue
and Pipe I/O from the ended worker's ``except``/``finally`` blocks raises
``ProcessTerminated`` again: a real process would be gone, sending nothing.
Each ending thread of a worker releases the ``logging`` locks it still holds
(``util._release_logging_locks``): they are the app's, not a copy.
"""

from __future__ import annotations

import errno
import operator
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, NamedTuple

from . import _core, _fcntl, _signals, _stdio, process
from .process import ProcessTerminated

__all__ = ["SPECIAL", "TABLE", "in_worker", "install", "is_installed", "uninstall"]


class Patch(NamedTuple):
    owner: Any  # the module (or class) whose attribute is replaced
    name: str
    replacement: Callable[..., Any]
    in_worker: str
    elsewhere: str


TABLE: list[Patch] = []
_originals: dict[tuple[int, str], Any] = {}
_installed = False


def in_worker() -> bool:
    """True in a thread of an ios_mp worker (its own thread or one it started)."""
    return _core._worker_process() is not None


def _patch(owner: Any, name: str, in_worker: str, elsewhere: str = "unchanged"):
    """Register ``fn`` as the replacement of ``owner.name`` (applied by install())."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if hasattr(owner, name):
            original = getattr(owner, name)
            fn.__wrapped__ = original  # type: ignore[attr-defined]
            fn.__name__ = getattr(original, "__name__", name)
            fn.__doc__ = getattr(original, "__doc__", None)
            TABLE.append(Patch(owner, name, fn, in_worker, elsewhere))
        return fn

    return register


def _original(owner: Any, name: str) -> Any:
    return _originals.get((id(owner), name), getattr(owner, name))


# --- exit -------------------------------------------------------------------


@_patch(os, "_exit", "ends only that worker, exit code n")
def _exit(status: int) -> None:
    if _core._worker_process() is None:
        _original(os, "_exit")(status)
    code = operator.index(status)  # stdlib's TypeError for a non-integer
    if _core._request_exit(code):
        raise ProcessTerminated(f"os._exit({code})")
    _original(os, "_exit")(status)


@_patch(time, "sleep", "same sleep; terminate()/kill() of the worker end it at once")
def _sleep(seconds: float, /) -> None:
    if _core._worker_process() is None or not _core._sleep(seconds):
        _original(time, "sleep")(seconds)


# --- threads a worker starts belong to it (machinery: process.py) -------------------

_patch(
    threading.Thread,
    "start",
    "the new thread belongs to the worker: current_process(), its streams, signals"
    " and exit; the worker's exit waits for it unless it is a daemon",
)(process._start)
_patch(
    threading.Thread,
    "_bootstrap_inner",
    "runs a thread started by a worker as that worker's; it ends quietly when the"
    " worker ends (os._exit, terminate, kill)",
)(process._bootstrap_inner)


# --- threading's waits ------------------------------------------------------------


class _WaitLock:
    """What ``threading._allocate_lock()`` returns in a worker: a lock whose
    blocking ``acquire`` is an ios_mp wait, so that ``terminate()`` and signals
    reach a worker waiting in ``threading.Condition.wait`` (and so in
    ``Event.wait``, ``queue.Queue.get``, ``threading.Semaphore``, ``Barrier``),
    as they reach a real process blocked there. Same API and errors as the
    ``_thread.lock`` it stands in for (any thread may release it)."""

    __slots__ = ("__weakref__", "_sem")

    def __init__(self) -> None:
        self._sem = _core.SemLock()
        self._sem._init(_core.SEMAPHORE, 1, 1)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if not blocking:
            if timeout != -1:
                raise ValueError("can't specify a timeout for a non-blocking call")
            return self._sem.acquire(False)
        if timeout == -1:
            return self._sem.acquire(True, None)
        if timeout < 0:
            raise ValueError("timeout value must be a non-negative number")
        return self._sem.acquire(True, timeout)

    acquire_lock = acquire

    def __enter__(self) -> bool:
        return self.acquire()

    def release(self) -> None:
        if not self._sem._is_zero():
            raise RuntimeError("release unlocked lock")
        self._sem.release()

    release_lock = release

    def __exit__(self, *exc: object) -> None:
        self.release()

    def locked(self) -> bool:
        return self._sem._is_zero()

    locked_lock = locked

    def _at_fork_reinit(self) -> None:
        self.__init__()  # type: ignore[misc]

    def __repr__(self) -> str:
        state = "locked" if self.locked() else "unlocked"
        return f"<{state} ios_mp._virtual._WaitLock object at {id(self):#x}>"


@_patch(
    threading,
    "_allocate_lock",
    "a lock whose waits terminate() and signals reach (Condition.wait & co)",
)
def _allocate_lock() -> Any:
    if _core._worker_process() is None:
        return _original(threading, "_allocate_lock")()
    return _WaitLock()


# --- session and process group ------------------------------------------------


def _is_vpid(pid: Any) -> bool:
    """``pid`` is a virtual pid; False for what is not an integer, so that the
    original raises stdlib's own error for it."""
    try:
        return _core.is_virtual_pid(operator.index(pid))
    except TypeError:
        return False


def _vpid() -> int | None:
    p = _core._worker_process()
    return None if p is None else p.pid


@_patch(os, "setsid", "no-op: the worker leads its own virtual session")
def _setsid() -> None:
    if not in_worker():
        _original(os, "setsid")()


@_patch(os, "setpgrp", "no-op: the worker leads its own virtual process group")
def _setpgrp() -> None:
    if not in_worker():
        _original(os, "setpgrp")()


@_patch(os, "setpgid", "setpgid(0, 0) (or the worker's own vpid): no-op")
def _setpgid(pid: int, pgrp: int, /) -> None:
    vpid = _vpid()
    if vpid is not None and pid in (0, vpid) and pgrp in (0, vpid):
        return
    if _is_vpid(pid):
        raise ProcessLookupError(errno.ESRCH, os.strerror(errno.ESRCH))
    _original(os, "setpgid")(pid, pgrp)


def _virtual_group(name: str, pid: int) -> int:
    """os.getsid/os.getpgid: a worker leads its own session and group, named by its
    vpid (``pid`` 0 in a worker, or any live worker's vpid); real pids as stdlib."""
    vpid = _vpid()
    if vpid is not None and pid == 0:
        return vpid
    if _is_vpid(pid):
        _lookup(pid)
        return pid
    return _original(os, name)(pid)


@_patch(os, "getsid", "getsid(0) or of a worker's vpid: that vpid")
def _getsid(pid: int, /) -> int:
    return _virtual_group("getsid", pid)


@_patch(os, "getpgrp", "the worker's vpid")
def _getpgrp() -> int:
    vpid = _vpid()
    return _original(os, "getpgrp")() if vpid is None else vpid


@_patch(os, "getpgid", "getpgid(0) or of a worker's vpid: that vpid")
def _getpgid(pid: int) -> int:
    return _virtual_group("getpgid", pid)


@_patch(os, "getppid", "the app's pid (the worker's parent process)")
def _getppid() -> int:
    if in_worker():
        return os.getpid()
    return _original(os, "getppid")()


# --- signals (machinery: _signals.py) -------------------------------------------


def _valid_signum(signalnum: Any) -> int:
    n = int(signalnum)
    if not 1 <= n < signal.NSIG:
        raise ValueError("signal number out of range")
    return n


@_patch(signal, "signal", "per-worker handler table; returns the previous handler")
def _signal(signalnum: int, handler: Any) -> Any:
    vpid = _vpid()
    if vpid is None:
        return _original(signal, "signal")(signalnum, handler)
    n = _valid_signum(signalnum)
    if n in (signal.SIGKILL, signal.SIGSTOP):
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
    if handler not in (signal.SIG_IGN, signal.SIG_DFL) and not callable(handler):
        raise TypeError(
            "signal handler must be signal.SIG_IGN, signal.SIG_DFL, or a callable object"
        )
    return _signals.set_handler(vpid, n, handler)


@_patch(signal, "getsignal", "the worker's handler (per-worker table)")
def _getsignal(signalnum: int) -> Any:
    vpid = _vpid()
    if vpid is None:
        return _original(signal, "getsignal")(signalnum)
    return _signals.get_handler(vpid, _valid_signum(signalnum))


@_patch(signal, "alarm", "the worker's own timer: SIGALRM to that worker")
def _alarm(seconds: int, /) -> int:
    proc = _core._worker_process()
    if proc is None:
        return _original(signal, "alarm")(seconds)
    if not isinstance(seconds, int):
        raise TypeError(f"'{type(seconds).__name__}' object cannot be interpreted as an integer")
    if seconds < 0:
        raise OverflowError("Python int too large to convert to C unsigned int")
    return _signals.alarm(proc, seconds)


@_patch(signal, "setitimer", "ITIMER_REAL: the worker's own timer (others: ItimerError)")
def _setitimer(which: int, seconds: float, interval: float = 0.0, /) -> tuple[float, float]:
    proc = _core._worker_process()
    if proc is None:
        return _original(signal, "setitimer")(which, seconds, interval)
    return _signals.setitimer(proc, int(which), float(seconds), float(interval))


@_patch(signal, "getitimer", "ITIMER_REAL: the worker's own timer")
def _getitimer(which: int, /) -> tuple[float, float]:
    proc = _core._worker_process()
    if proc is None:
        return _original(signal, "getitimer")(which)
    return _signals.getitimer(proc, int(which))


@_patch(signal, "raise_signal", "delivered to the worker itself (its handler runs first)")
def _raise_signal(signalnum: int, /) -> None:
    proc = _core._worker_process()
    if proc is None:
        return _original(signal, "raise_signal")(signalnum)
    _signals.deliver(proc, _valid_signum(signalnum))


def _register_exit_hooks() -> None:
    from . import process

    # What a worker's exit ends: its signal state, its POSIX record locks.
    for hook in (_signals.forget, _fcntl.worker_exited):
        if hook not in process._exit_hooks:
            process._exit_hooks.append(hook)


_register_exit_hooks()


# --- signals to virtual pids --------------------------------------------------


def _lookup(pid: int):
    from .process import _by_vpid

    proc = _by_vpid.get(pid)
    if proc is None or not proc.is_alive():
        raise ProcessLookupError(errno.ESRCH, os.strerror(errno.ESRCH))
    return proc


def _deliver(pid: int, sig: int) -> None:
    proc = _lookup(pid)
    sig = int(sig)
    if sig == 0:
        return
    if not 0 < sig < signal.NSIG:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
    own = getattr(proc, "_ios_mp_signal", None)  # a manager's server thread
    if own is not None:
        own(sig)
        return
    _signals.deliver(proc, sig)


@_patch(
    os,
    "kill",
    "to a vpid: delivered to that worker, never to a real process",
    "unchanged for real pids (a vpid is delivered virtually from anywhere)",
)
def _kill(pid: int, sig: int, /) -> None:
    if _is_vpid(pid):
        _deliver(pid, sig)
        return
    if pid == os.getpid():
        me = _core._worker_process()
        if me is not None and getattr(type(me), "__ios_mp_program__", False):
            # A worker that stands for a whole program (run_playbook's
            # ansible-playbook): the real pid is "its" pid, and "kill myself"
            # (2.19's TaskQueueManager re-sends SIGTERM so) must reach it, never
            # the app. In other workers the real pid is the parent's (the app's):
            # a child signalling its parent, as CPython's tests do.
            _deliver(me.pid, sig)
            return
    _original(os, "kill")(pid, sig)


@_patch(os, "killpg", "to a vpid: as os.kill(vpid, sig)", "unchanged for real process groups")
def _killpg(pgid: int, sig: int, /) -> None:
    if _is_vpid(pgid):
        _deliver(pgid, sig)
        return
    _original(os, "killpg")(pgid, sig)


# --- POSIX record locks (machinery: _fcntl.py) -----------------------------------

if _fcntl.fcntl is not None:

    @_patch(
        _fcntl.fcntl,
        "lockf",
        "whole-file locks exclude other workers and the app, as between processes",
        "also: waits while a worker holds a conflicting lock (threads of the app"
        " still never exclude each other)",
    )
    def _lockf(fd: Any, cmd: int, len: int = 0, start: int = 0, whence: int = 0, /) -> None:
        return _fcntl.lockf(_original(_fcntl.fcntl, "lockf"), fd, cmd, len, start, whence)


# --- standard streams and descriptors 0-2 (machinery: _stdio.py) -------------


class Special(NamedTuple):
    """A change install() makes that is not an attribute replacement."""

    what: str
    install: Callable[[], None]
    uninstall: Callable[[], None]
    in_worker: str
    elsewhere: str


def _install_unraisablehook() -> None:
    sys.unraisablehook = _core.UnraisableHook(sys.unraisablehook)


def _uninstall_unraisablehook() -> None:
    # Only ours: a hook the app set since stays (it replaced ours already).
    if isinstance(sys.unraisablehook, _core.UnraisableHook):
        sys.unraisablehook = sys.unraisablehook.previous


SPECIAL: list[Special] = [
    Special(
        "sys.stdin, sys.stdout, sys.stderr",
        _stdio.install,
        _stdio.uninstall,
        "the worker's own (read, assign, del); starts as a view of its parent's",
        "the app's, exactly as assigned",
    ),
    Special(
        "sys.unraisablehook",
        _install_unraisablehook,
        _uninstall_unraisablehook,
        "a terminate() that landed in a __del__ or weakref callback is raised"
        " again in the worker's code (not reported)",
        "unchanged: passes everything to the previous hook",
    ),
]


def _std_worker(fd: Any) -> _stdio._Worker | None:
    """The calling worker's state if ``fd`` is 0, 1 or 2 (else, and outside workers, None)."""
    return _stdio.worker() if isinstance(fd, int) and 0 <= fd <= 2 else None


@_patch(os, "dup2", "onto 0-2: the worker's descriptor now names a private dup of fd")
def _dup2(fd: int, fd2: int, inheritable: bool = True) -> int:
    w = _std_worker(fd2) or _std_worker(fd)
    if w is not None:
        return w.dup2(fd, fd2, inheritable, _original(os, "dup2"))
    return _original(os, "dup2")(fd, fd2, inheritable)


@_patch(os, "close", "of 0-2: closes the worker's descriptor only")
def _close(fd: int) -> None:
    w = _std_worker(fd)
    if w is None:
        return _original(os, "close")(fd)
    return w.close(fd)


@_patch(os, "closerange", "0-2 as os.close; never ios_mp's private descriptors")
def _closerange(fd_low: int, fd_high: int, /) -> None:
    w = _stdio.worker() if isinstance(fd_low, int) and isinstance(fd_high, int) else None
    if w is None:
        return _original(os, "closerange")(fd_low, fd_high)
    return w.closerange(fd_low, fd_high, _original(os, "closerange"))


@_patch(os, "fdopen", "of 0-2: a file on a dup of the worker's descriptor")
def _fdopen(fd, *args, **kwargs):
    w = _std_worker(fd)
    if w is None:
        return _original(os, "fdopen")(fd, *args, **kwargs)
    return _fdopen_in_worker(w, fd, *args, **kwargs)


def _fdopen_in_worker(
    w,
    fd,
    mode="r",
    buffering=-1,
    encoding=None,
    errors=None,
    newline=None,
    closefd=True,
    opener=None,
):
    real, new = w.fdopen_fd(fd, bool(closefd))
    try:
        f = _original(os, "fdopen")(
            real, mode, buffering, encoding, errors, newline, closefd, opener
        )
    except BaseException:
        if new and closefd:
            _original(os, "close")(real)
        raise
    raw = getattr(getattr(f, "buffer", f), "raw", getattr(f, "buffer", f))
    try:
        raw.name = fd  # the number the worker asked for
    except (AttributeError, TypeError):
        pass
    return f


def _on_worker_fd(name: str, default_fd: int | None = None, if_closed: Any = None):
    """A replacement of ``os.<name>(fd, ...)`` that uses the worker's 0-2 (the
    arguments reach the original as given, so its own checks stay stdlib's)."""
    key = (id(os), name)

    def worker_fd(fd: int) -> Any:
        real = _stdio.worker().lookup(fd)  # type: ignore[union-attr]
        if real is None and if_closed is None:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        return real

    def replacement(*args, **kwargs):
        if args:
            fd = args[0]
            if isinstance(fd, int) and 0 <= fd <= 2 and _core._worker_process() is not None:
                real = worker_fd(fd)
                if real is None:
                    return if_closed
                args = (real, *args[1:])
        elif "fd" in kwargs:
            fd = kwargs["fd"]
            if isinstance(fd, int) and 0 <= fd <= 2 and _core._worker_process() is not None:
                real = worker_fd(fd)
                if real is None:
                    return if_closed
                kwargs["fd"] = real
        elif default_fd is not None and not kwargs and in_worker():
            return replacement(default_fd)
        return (_originals.get(key) or getattr(os, name))(*args, **kwargs)

    return replacement


_patch(os, "dup", "of 0-2: a dup of the worker's descriptor")(_on_worker_fd("dup"))
_patch(os, "isatty", "of 0-2: of the worker's descriptor (False once closed)")(
    _on_worker_fd("isatty", if_closed=False)
)
_patch(os, "get_terminal_size", "of 0-2 (default 1): of the worker's descriptor")(
    _on_worker_fd("get_terminal_size", default_fd=1)
)
for _name in (
    "write",
    "read",
    "readv",
    "writev",
    "pread",
    "pwrite",
    "fstat",
    "fstatvfs",
    "ttyname",
    "device_encoding",
    "fsync",
    "fdatasync",
    "lseek",
    "ftruncate",
    "get_inheritable",
    "set_inheritable",
    "get_blocking",
    "set_blocking",
):
    _patch(os, _name, "of 0-2: on the worker's descriptor (EBADF once it closed it)")(
        _on_worker_fd(_name)
    )
del _name


# --- install / uninstall --------------------------------------------------------


def is_installed() -> bool:
    return _installed


def install() -> None:
    global _installed
    if _installed:
        return
    for p in TABLE:
        _originals[(id(p.owner), p.name)] = getattr(p.owner, p.name)
        setattr(p.owner, p.name, p.replacement)
    for sp in SPECIAL:
        sp.install()
    _installed = True


def uninstall() -> None:
    global _installed
    if not _installed:
        return
    for sp in reversed(SPECIAL):
        sp.uninstall()
    for p in reversed(TABLE):
        setattr(p.owner, p.name, _originals.pop((id(p.owner), p.name)))
    _installed = False
