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
  blocked inside a C call (``time.sleep``, a socket read) ends when that call
  returns; ``join(timeout)`` returns on time regardless.
* Threads started by a worker belong to it: ``current_process()`` in them is the
  worker.
"""

from __future__ import annotations

import os
import threading
import weakref

from . import _core
from ._core import BaseProcess, active_children, current_process, parent_process

__all__ = ["BaseProcess", "active_children", "current_process", "parent_process"]

VPID_BASE = _core.VPID_BASE
ProcessTerminated = _core.ProcessTerminated


class AuthenticationString(bytes):
    def __reduce__(self):
        raise TypeError("Pickling an AuthenticationString object is disallowed for security reasons")


class _MainProcess(BaseProcess):
    """The app itself: ``current_process()`` outside any worker."""


# Processes ever created and not yet collected (stdlib's test suite checks it).
_dangling: weakref.WeakSet = weakref.WeakSet()

_current_process = _MainProcess.__new__(_MainProcess)
_core._configure(_current_process, _dangling, AuthenticationString, AuthenticationString(os.urandom(32)))
_parent_process = None

_exitcode_to_name = {}
for _name, _signum in list(__import__("signal").__dict__.items()):
    if _name[:3] == "SIG" and "_" not in _name and isinstance(_signum, int):
        _exitcode_to_name[-_signum] = f"-{_name}"
del _name, _signum


def _cleanup() -> None:
    """Forget finished children of the current process (stdlib name)."""
    active_children()


# --- threads started by a worker belong to that worker ----------------------

_orig_start = threading.Thread.start
_orig_bootstrap_inner = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]


def _start(self: threading.Thread) -> None:
    owner = _core._worker_process()
    if owner is not None:
        self.__dict__["_ios_mp_owner"] = owner
    _orig_start(self)


def _bootstrap_inner(self: threading.Thread) -> None:
    owner = self.__dict__.pop("_ios_mp_owner", None)
    if owner is None:
        _orig_bootstrap_inner(self)
        return
    _core._adopt(owner)
    try:
        _orig_bootstrap_inner(self)
    finally:
        _core._unadopt()


def _patch_threading() -> None:
    threading.Thread.start = _start  # type: ignore[method-assign]
    threading.Thread._bootstrap_inner = _bootstrap_inner  # type: ignore[attr-defined]


def _unpatch_threading() -> None:
    threading.Thread.start = _orig_start  # type: ignore[method-assign]
    threading.Thread._bootstrap_inner = _orig_bootstrap_inner  # type: ignore[attr-defined]
