"""POSIX record locks (``fcntl.lockf``) that exclude ios_mp workers from each other.

A POSIX record lock belongs to a *process*: it excludes other processes, never
other threads of the same one (a second thread's ``lockf(fd, LOCK_EX)`` succeeds
at once). Code written for processes takes ``lockf`` locks to exclude its
children and siblings: Ansible's ``ConnectionBase.connection_lock()``, the
``paramiko_ssh`` plugin's lock on ``known_hosts`` (hazard 14), many daemons'
pid/lock files. With ios_mp the children are threads, so without help those
locks exclude nothing.

``_virtual`` replaces ``fcntl.lockf`` by ``lockf()`` below, **for every caller**
(the app too: a worker must wait while the app holds a lock, as a child waits
for its parent). Each *owner* -- an ios_mp worker (with the threads it starts),
or the app (all of its own threads together, as in a real process) -- holds a
shared or an exclusive whole-file lock per file (``st_dev``, ``st_ino``), and a
request that conflicts with another owner's lock waits (``LOCK_NB``: raises
``BlockingIOError(EAGAIN)``, as ``lockf`` does on Linux and Darwin). Threads of
one owner never exclude each other, exactly as before. The real ``lockf`` is
still applied to the file with the strongest mode any owner holds, so other
real processes are excluded as before; while one of them holds the file, the
request polls it every 10 ms.

What differs from POSIX record locks between real processes:

* Only whole-file locks (``len=0, start=0, whence=0``, what ``lockf`` users nearly
  always take) are tracked between workers; a byte-range lock goes straight to
  the real ``lockf`` (it excludes real processes, not workers).
* POSIX drops all of a process's locks on a file when the process closes *any*
  descriptor of it; here an owner's lock ends when it unlocks or, for a worker,
  when the worker exits (``terminate()`` included). A worker that exits holding
  a lock leaves the real lock held by the app until another owner unlocks.
* No deadlock detection (``EDEADLK``): two workers that wait for each other's
  files wait until one is terminated.
* ``fcntl.fcntl(fd, F_SETLK/F_SETLKW, ...)`` and ``fcntl.flock`` are unchanged
  (``flock`` locks belong to the open file, so two ``open()`` of one file already
  exclude each other's threads).

A worker waiting here is reached by ``terminate()`` and by its signals (the
wait is a ``threading.Condition`` wait, an ios_mp wait in a worker).
"""

from __future__ import annotations

import errno
import os
import threading
import time
from typing import Any, Callable

from . import _core

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["lockf", "worker_exited"]

_cond = threading.Condition(threading.Lock())
# (st_dev, st_ino) -> {owner (vpid, or 0 for the app): fcntl.LOCK_SH or LOCK_EX}
_holders: dict[tuple[int, int], dict[int, int]] = {}
_POLL = 0.01  # seconds between tries while another real process holds the file


def _file_key(fd: Any) -> tuple[int, int]:
    if not isinstance(fd, int):
        fileno = getattr(fd, "fileno", None)
        if fileno is None:
            raise TypeError("argument must be an int, or have a fileno() method.")  # as lockf
        fd = fileno()
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _strongest(held: dict[int, int]) -> int:
    assert fcntl is not None
    modes = set(held.values())
    if fcntl.LOCK_EX in modes:
        return fcntl.LOCK_EX
    return fcntl.LOCK_SH if modes else fcntl.LOCK_UN


def _conflicts(held: dict[int, int], owner: int, mode: int) -> bool:
    assert fcntl is not None
    others = [m for o, m in held.items() if o != owner]
    if mode == fcntl.LOCK_EX:
        return bool(others)
    return mode == fcntl.LOCK_SH and fcntl.LOCK_EX in others


def lockf(
    real: Callable[..., Any], fd: Any, cmd: int, len: int = 0, start: int = 0, whence: int = 0
) -> None:
    """``fcntl.lockf(fd, cmd, len, start, whence)``, with ``real`` the original."""
    assert fcntl is not None
    mode = cmd & ~fcntl.LOCK_NB
    if (len, start, whence) != (0, 0, 0) or mode not in (
        fcntl.LOCK_UN,
        fcntl.LOCK_SH,
        fcntl.LOCK_EX,
    ):
        return real(fd, cmd, len, start, whence)  # its own checks and errors
    key = _file_key(fd)
    owner = _core._process_key()
    while True:
        with _cond:
            held = _holders.setdefault(key, {})
            while _conflicts(held, owner, mode):
                if cmd & fcntl.LOCK_NB:
                    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))
                _cond.wait()
                held = _holders.setdefault(key, {})
            before = _strongest(held)
            previous = held.get(owner)
            if mode == fcntl.LOCK_UN:
                held.pop(owner, None)
            else:
                held[owner] = mode
            after = _strongest(held)
            busy = False
            if after != before:
                # Non-blocking under _cond: a wait for another real process must
                # not stop the owners in this process from unlocking.
                nb = fcntl.LOCK_NB if after != fcntl.LOCK_UN else 0
                try:
                    real(fd, after | nb)
                except OSError as e:
                    if previous is None:
                        held.pop(owner, None)
                    else:
                        held[owner] = previous
                    if e.errno not in (errno.EAGAIN, errno.EACCES) or cmd & fcntl.LOCK_NB:
                        raise
                    busy = True  # another real process holds the file
            if not held:
                del _holders[key]
            _cond.notify_all()
        if not busy:
            return None
        time.sleep(_POLL)


def worker_exited(proc: Any) -> None:
    """Drop the locks a worker held (a process's locks end with it)."""
    vpid = getattr(proc, "pid", None)
    if not vpid:
        return
    with _cond:
        for key in list(_holders):
            held = _holders[key]
            if held.pop(vpid, None) is not None:
                if not held:
                    del _holders[key]
                _cond.notify_all()
