"""Process virtualization: a per-worker meaning for process-wide calls.

Code written for processes does process-wide things in the child (``os._exit``,
``os.setsid``, ``os.kill`` of its own pid, ``time.sleep`` that a SIGTERM ends...),
because in a real child they only affect the child. In ios_mp the child is a
thread of the app, so each such call is patched **once, at install**, here: in a
thread of an ios_mp worker (the worker's own thread or one it started) the
replacement gives it its per-worker meaning; anywhere else (the app's main
thread and its own threads) it calls the original, so the app sees stdlib
behaviour exactly. ``uninstall()`` restores every original.

The table (``TABLE``; printed by ``python -m ios_mp.virtual``-style tooling and
checked by ``tests/test_virtual.py``):

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
``os.setsid()``        no-op (the worker leads its own virtual     unchanged
                       session); ``os.getsid(0)`` is the vpid
``os.setpgrp()``       no-op; ``os.getpgrp()`` is the vpid         unchanged
``os.setpgid(0, 0)``   no-op for the worker itself                 unchanged
``os.getppid()``       the app's pid (the worker's parent)         unchanged
``os.kill(vpid, s)``   delivered to that worker: 0 checks it       unchanged
                       exists, SIGKILL kills, other signals end    for real
                       it with ``-s``; never reaches a real        pids
                       process (from anywhere, app included)
``os.killpg(vpid,s)``  as ``os.kill(vpid, s)``                     unchanged
=====================  ==========================================  ===========

``sys.exit(n)``, ``raise SystemExit`` and escaping exceptions need no patch:
they unwind the worker's thread, and ``Process`` maps them to exit codes as
stdlib does. ``terminate()``/``kill()`` raise ``ProcessTerminated`` in the
worker (``finally`` blocks run; a real SIGTERM/SIGKILL would run none).
"""

from __future__ import annotations

import errno
import os
import signal
import time
from typing import Any, Callable, NamedTuple

from . import _core
from .process import ProcessTerminated

__all__ = ["TABLE", "in_worker", "install", "is_installed", "uninstall"]


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
def _exit(n: int) -> None:
    code = int(n)
    if _core._request_exit(code):
        raise ProcessTerminated(f"os._exit({code})")
    _original(os, "_exit")(n)


@_patch(time, "sleep", "same sleep; terminate()/kill() of the worker end it at once")
def _sleep(seconds: float) -> None:
    if not _core._sleep(seconds):
        _original(time, "sleep")(seconds)


# --- session and process group ------------------------------------------------

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
def _setpgid(pid: int, pgrp: int) -> None:
    vpid = _vpid()
    if vpid is not None and pid in (0, vpid) and pgrp in (0, vpid):
        return
    if _core.is_virtual_pid(pid):
        raise ProcessLookupError(errno.ESRCH, os.strerror(errno.ESRCH))
    _original(os, "setpgid")(pid, pgrp)


@_patch(os, "getsid", "getsid(0) or of a worker's vpid: that vpid")
def _getsid(pid: int) -> int:
    vpid = _vpid()
    if vpid is not None and pid == 0:
        return vpid
    if _core.is_virtual_pid(pid):
        _lookup(pid)
        return pid
    return _original(os, "getsid")(pid)


@_patch(os, "getpgrp", "the worker's vpid")
def _getpgrp() -> int:
    vpid = _vpid()
    return _original(os, "getpgrp")() if vpid is None else vpid


@_patch(os, "getpgid", "getpgid(0) or of a worker's vpid: that vpid")
def _getpgid(pid: int) -> int:
    vpid = _vpid()
    if vpid is not None and pid == 0:
        return vpid
    if _core.is_virtual_pid(pid):
        _lookup(pid)
        return pid
    return _original(os, "getpgid")(pid)


@_patch(os, "getppid", "the app's pid (the worker's parent process)")
def _getppid() -> int:
    if in_worker():
        return os.getpid()
    return _original(os, "getppid")()


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
    if sig == signal.SIGKILL:
        proc.kill()
    elif sig == signal.SIGTERM:
        proc.terminate()
    else:
        proc._send_signal(sig)


@_patch(os, "kill", "to a vpid: delivered to that worker, never to a real process",
        "unchanged for real pids (a vpid is delivered virtually from anywhere)")
def _kill(pid: int, sig: int) -> None:
    if _core.is_virtual_pid(pid):
        _deliver(pid, sig)
        return
    _original(os, "kill")(pid, sig)


@_patch(os, "killpg", "to a vpid: as os.kill(vpid, sig)",
        "unchanged for real process groups")
def _killpg(pgid: int, sig: int) -> None:
    if _core.is_virtual_pid(pgid):
        _deliver(pgid, sig)
        return
    _original(os, "killpg")(pgid, sig)


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
    _installed = True


def uninstall() -> None:
    global _installed
    if not _installed:
        return
    for p in reversed(TABLE):
        setattr(p.owner, p.name, _originals.pop((id(p.owner), p.name)))
    _installed = False
