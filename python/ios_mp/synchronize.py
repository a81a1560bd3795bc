"""``multiprocessing.synchronize``: native locks, semaphores, conditions, events, barriers.

Same signatures and behaviour as stdlib; what differs:

* Every wait releases the GIL, honours its timeout, raises KeyboardInterrupt on
  Ctrl-C in the main thread, and ends with ``ProcessTerminated`` when the
  waiting process is terminated.
* The objects are shared by reference between processes (as inheritance through
  fork shares them); pickling one raises stdlib's RuntimeError.
* ``Semaphore.get_value()`` works everywhere (stdlib raises on macOS).
* ``Condition(lock)`` accepts only ios_mp locks (stdlib also needs its own).
"""

from __future__ import annotations

import threading

from . import _core
from ._core import RECURSIVE_MUTEX, SEMAPHORE

__all__ = ["Barrier", "BoundedSemaphore", "Condition", "Event", "Lock", "RLock", "Semaphore"]

SEM_VALUE_MAX = 2**31 - 1
BrokenBarrierError = threading.BrokenBarrierError


def _holder_name(lock: _core.SemLock) -> str:
    holder = lock._holder()
    if holder is None:
        return "None"
    if holder == "mine":
        from .process import current_process

        name = current_process().name
        thread = threading.current_thread()
        if thread.name not in ("MainThread", name):
            name += "|" + thread.name
        return name
    return "SomeOtherThread" if holder == "other-thread" else "SomeOtherProcess"


class SemLock(_core.SemLock):
    """Base of the lock and semaphore classes (stdlib name)."""

    def __init__(self, kind: int, value: int, maxvalue: int | None, *, ctx=None) -> None:
        self._init(kind, value, maxvalue)


class Semaphore(SemLock):
    def __init__(self, value: int = 1, *, ctx=None) -> None:
        SemLock.__init__(self, SEMAPHORE, value, SEM_VALUE_MAX)

    def get_value(self) -> int:
        return self._get_value()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}(value={self._get_value()})>"


class BoundedSemaphore(Semaphore):
    def __init__(self, value: int = 1, *, ctx=None) -> None:
        SemLock.__init__(self, SEMAPHORE, value, value)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}(value={self._get_value()}, maxvalue={self.maxvalue})>"


class Lock(SemLock):
    def __init__(self, *, ctx=None) -> None:
        SemLock.__init__(self, SEMAPHORE, 1, 1)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}(owner={_holder_name(self)})>"


class RLock(SemLock):
    def __init__(self, *, ctx=None) -> None:
        SemLock.__init__(self, RECURSIVE_MUTEX, 1, 1)

    def __repr__(self) -> str:
        count = self._count() if self._holder() == "mine" else 0
        return f"<{type(self).__name__}({_holder_name(self)}, {count})>"


class _Counter:
    """Read-only stand-in for one of stdlib ``Condition``'s private semaphores."""

    __slots__ = ("_value",)

    def __init__(self, value) -> None:
        self._value = value

    def get_value(self) -> int:
        return self._value()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}(value={self.get_value()})>"


class Condition(_core.Condition):
    def __init__(self, lock=None, *, ctx=None) -> None:
        self._init(RLock() if lock is None else lock)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}({self._lock}, {self._waiters()})>"

    # stdlib's Condition is built from three semaphores, and code written against
    # it (CPython's own tests among it) reads their values to see that no thread
    # is left inside wait(): sleeping - woken is the number of threads inside
    # wait(), wait_semaphore the notifications not yet taken by a waiter. ios_mp
    # keeps that state natively; these report the same numbers.
    @property
    def _sleeping_count(self) -> _Counter:
        return _Counter(lambda: self._waiters() + self._pending())

    @property
    def _woken_count(self) -> _Counter:
        return _Counter(lambda: 0)

    @property
    def _wait_semaphore(self) -> _Counter:
        return _Counter(self._pending)


class Event(_core.Event):
    def __init__(self, *, ctx=None) -> None:
        pass

    def __repr__(self) -> str:
        set_status = "set" if self.is_set() else "unset"
        return f"<{type(self).__qualname__} at {id(self):#x} {set_status}>"


class Barrier(_core.Barrier):
    def __init__(
        self, parties: int, action=None, timeout: float | None = None, *, ctx=None
    ) -> None:
        self._init(parties, action, timeout)
