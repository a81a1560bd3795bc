"""``multiprocessing.process``: processes that are threads.

Differences from stdlib multiprocessing:

* A process is a ``threading.Thread`` of the app, named after the process, so it
  shows up in ``threading.enumerate()``, debuggers and tracing.
* ``pid`` is a *virtual* pid, at least ``VPID_BASE`` (2**30): Linux caps real
  pids at 2**22 and Darwin at 99 999, so it is never the pid of a real process.
  ``os.getpid()`` stays the app's pid in every process.
* ``sentinel`` is a real file descriptor (a pipe created on first access) that
  becomes readable when the process ends, so ``select`` and
  ``multiprocessing.connection.wait`` work with it.
* ``terminate()``/``kill()`` end a worker waiting in any ios_mp primitive at once,
  and one running Python code at its next bytecode (an asynchronous
  ``ProcessTerminated``); exit codes are -15 and -9 as for real signals. A worker
  blocked inside another C call (a socket read) ends when that call returns;
  ``time.sleep`` in a worker is interruptible (see ``_virtual.py``);
  ``join(timeout)`` returns on time regardless.
* Threads started by a worker belong to it: ``current_process()`` in them is the
  worker. As in stdlib, a worker whose ``run()`` has returned terminates its
  daemonic children, waits for its other children and its non-daemon threads,
  and only then exits (``join()`` returns, ``exitcode`` is set). Its daemon
  threads are not stopped: they keep running until they return. A worker's
  exit does not run ``threading``'s atexit hooks (they are the app's), which
  in a real child shut down ``ThreadPoolExecutor`` threads; so it does not wait
  for those pool threads either (they stay idle in the app).
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from typing import Any

from . import _core
from ._core import BaseProcess, active_children, current_process, parent_process

__all__ = ["BaseProcess", "active_children", "current_process", "parent_process"]

VPID_BASE = _core.VPID_BASE
ProcessTerminated = _core.ProcessTerminated
# The native class says module "_core", which pickle cannot import.
ProcessTerminated.__module__ = "ios_mp._core"


class AuthenticationString(bytes):
    def __reduce__(self):
        raise TypeError(
            "Pickling an AuthenticationString object is disallowed for security reasons"
        )


class _MainProcess(BaseProcess):
    """The app itself: ``current_process()`` outside any worker."""


# Processes ever created and not yet collected (stdlib's test suite checks it).
_dangling: weakref.WeakSet = weakref.WeakSet()

# Called as hook(child, target, args, kwargs) in the parent when a child starts
# (it has its pid but does not run yet), and as hook(process) in a process's own
# thread as it exits (after run() and the wait for its children and threads,
# before join() returns).
_start_hooks: list = []
# Started processes by virtual pid, for os.kill(vpid, ...) (see _virtual.py).
_by_vpid: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_exit_hooks: list = []


def _on_start(child: BaseProcess, target, args, kwargs) -> None:
    for hook in _start_hooks:
        hook(child, target, args, kwargs)


def _on_exit(proc: BaseProcess) -> None:
    errors = []
    for hook in _exit_hooks:
        try:
            hook(proc)
        except Exception as e:
            errors.append(e)
    if errors:
        raise errors[0]


def _register_vpid(child: BaseProcess, target, args, kwargs) -> None:
    _by_vpid[child.pid] = child


_start_hooks.append(_register_vpid)

_current_process = _MainProcess.__new__(_MainProcess)
_core._configure(
    _current_process,
    _dangling,
    AuthenticationString,
    AuthenticationString(os.urandom(32)),
    _on_start,
    _on_exit,
)
_parent_process = None

_exitcode_to_name = {}
for _name, _signum in list(__import__("signal").__dict__.items()):
    if _name[:3] == "SIG" and "_" not in _name and isinstance(_signum, int):
        _exitcode_to_name[-_signum] = f"-{_name}"
del _name, _signum


def _absorb_termination() -> None:
    """Give a pending asynchronous ProcessTerminated a bytecode to be delivered at.

    Called from Rust (``runtime::absorb_pending_termination``), which swallows
    the exception: the loop's backward jump is where every CPython checks for
    asynchronous exceptions.
    """
    for _ in range(2):
        pass


def _cleanup() -> None:
    """Forget finished children of the current process (stdlib name)."""
    active_children()


# --- threads started by a worker belong to that worker ----------------------

_orig_start = threading.Thread.start
_orig_bootstrap_inner = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]


def _is_pool_worker(thread: threading.Thread) -> bool:
    """A ``ThreadPoolExecutor`` worker thread. A real child's exit shuts these down
    through threading's atexit hooks, which a worker's exit cannot run (they are
    the app's), so the worker does not wait for them: it would wait forever."""
    cf = sys.modules.get("concurrent.futures.thread")
    return cf is not None and getattr(thread, "_target", None) is getattr(cf, "_worker", ())


def _start(self: threading.Thread) -> None:
    owner = _core._worker_process()
    if owner is None or getattr(self, "_target", None) is _core._bootstrap:
        # Outside workers, or the thread of a child process a worker starts:
        # that thread is its own process (it ends with its own terminate()).
        _orig_start(self)
        return
    # Shielded from the worker's end, which is raised once the start is done: a
    # termination landing inside Thread.start() left the thread in threading's
    # _limbo for good (listed by enumerate(), never run), or running unowned.
    _core._shielded(lambda: _start_owned(self, owner))


def _start_owned(self: threading.Thread, owner: Any) -> None:
    # Whether the worker's exit waits for this thread: not for daemon threads,
    # as stdlib, and not for idle concurrent.futures pool threads either.
    pool = _is_pool_worker(self)
    daemon = bool(self.daemon) or pool
    # Counted before the thread runs: the worker may finish run() first.
    _core._thread_started(owner, daemon)
    self.__dict__["_ios_mp_owner"] = (owner, daemon, pool)
    try:
        _orig_start(self)
    except BaseException:
        if self.__dict__.pop("_ios_mp_owner", None) is not None:
            _core._thread_finished(owner, daemon)
        raise


def _bootstrap_inner(self: threading.Thread) -> None:
    owned = self.__dict__.pop("_ios_mp_owner", None)
    if owned is None:
        _orig_bootstrap_inner(self)
        return
    owner, daemon, pool = owned
    run = self.run

    def run_until_the_process_ends() -> None:
        # terminate(), kill() and os._exit of the worker end this thread too
        # (unless it is a pool thread, which other code may go on using); it
        # then ends quietly, as a real process's threads end with it.
        _core._run_thread(owner, run, not pool)

    self.run = run_until_the_process_ends  # type: ignore[method-assign]
    _core._adopt(owner)
    try:
        _orig_bootstrap_inner(self)
    finally:
        # Before the thread counts as finished: the worker's exit may be waiting
        # for it, and the app for the logging locks it may still hold.
        from . import util  # imports this module: not at the top

        util._release_logging_locks(owner)
        _core._unadopt()
        _core._thread_finished(owner, daemon)


# Installed by _virtual.py (its TABLE lists both): Thread.start = _start and
# Thread._bootstrap_inner = _bootstrap_inner.
