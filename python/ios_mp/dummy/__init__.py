"""``multiprocessing.dummy``: stdlib's thread-based API, as in CPython.

Processes are plain ``threading.Thread`` subclasses here, as in stdlib's
``multiprocessing.dummy``; for threads that behave like processes, use
``multiprocessing`` itself (ios_mp).
"""

from __future__ import annotations

import array
import threading
import weakref
from queue import Queue

from .connection import Pipe

__all__ = [
    "Array",
    "Barrier",
    "BoundedSemaphore",
    "Condition",
    "Event",
    "JoinableQueue",
    "Lock",
    "Manager",
    "Namespace",
    "Pipe",
    "Pool",
    "Process",
    "Queue",
    "RLock",
    "Semaphore",
    "Value",
    "active_children",
    "current_process",
    "freeze_support",
    "shutdown",
]

from threading import Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore


class DummyProcess(threading.Thread):
    def __init__(self, group=None, target=None, name=None, args=(), kwargs=None) -> None:
        threading.Thread.__init__(self, group, target, name, args, kwargs or {})
        self._pid = None
        self._children: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._start_called = False
        self._parent = current_process()

    def start(self) -> None:
        if self._parent is not current_process():
            raise RuntimeError(
                f"Parent is {self._parent!r} but current_process is {current_process()!r}"
            )
        self._start_called = True
        if hasattr(self._parent, "_children"):
            self._parent._children[self] = None
        threading.Thread.start(self)

    @property
    def exitcode(self):
        if self._start_called and not self.is_alive():
            return 0
        return None


Process = DummyProcess
current_process = threading.current_thread
current_process()._children = weakref.WeakKeyDictionary()


def active_children() -> list:
    children = current_process()._children
    for p in list(children):
        if not p.is_alive():
            children.pop(p, None)
    return list(children)


def freeze_support() -> None:
    pass


class Namespace:
    def __init__(self, /, **kwds) -> None:
        self.__dict__.update(kwds)

    def __repr__(self) -> str:
        items = list(self.__dict__.items())
        temp = [f"{name}={value!r}" for name, value in items if not name.startswith("_")]
        temp.sort()
        return f"{self.__class__.__name__}({', '.join(temp)})"


dict = dict
list = list


def Array(typecode, sequence, lock=True):
    return array.array(typecode, sequence)


class Value:
    def __init__(self, typecode, value, lock=True) -> None:
        self._typecode = typecode
        self._value = value

    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, value) -> None:
        self._value = value

    def __repr__(self) -> str:
        return f"<{type(self).__name__}({self._typecode!r}, {self._value!r})>"


def Manager():
    import sys

    return sys.modules[__name__]


def shutdown() -> None:
    pass


def Pool(processes=None, initializer=None, initargs=()):
    from ..pool import ThreadPool

    return ThreadPool(processes, initializer, initargs)


JoinableQueue = Queue
