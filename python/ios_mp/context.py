"""``multiprocessing.context``: start-method contexts, all backed by threads.

``get_context()`` accepts ``None``, ``'fork'``, ``'spawn'`` and ``'forkserver'``
and returns a working context for each (Ansible asks for ``'fork'``). They
differ only in their name and in the ``Process`` subclass they hand out
(``ForkProcess``, ``SpawnProcess``, ``ForkServerProcess``, as stdlib names them);
every one of them runs processes as threads. As in a spawned stdlib child, the
default context of a process started by 'spawn' or 'forkserver' is that one
(``get_start_method()`` there says so). The default start method reports
``'fork'``, whose semantics (no pickling of the process's arguments) are the
closest to a thread's.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Iterable

from . import process
from . import reduction as _default_reduction

if TYPE_CHECKING:
    import logging
    from types import ModuleType

    from . import connection as _connection
    from . import managers as _managers
    from . import pool as _pool
    from . import queues as _queues
    from . import synchronize as _synchronize

__all__: list[str] = []  # names are reached as multiprocessing.<name>


class ProcessError(Exception):
    pass


class BufferTooShort(ProcessError):
    pass


class TimeoutError(ProcessError):
    pass


class AuthenticationError(ProcessError):
    pass


_reducer = _default_reduction


class BaseContext:
    _name: str
    ProcessError = ProcessError
    BufferTooShort = BufferTooShort
    TimeoutError = TimeoutError
    AuthenticationError = AuthenticationError

    current_process = staticmethod(process.current_process)
    parent_process = staticmethod(process.parent_process)
    active_children = staticmethod(process.active_children)

    def cpu_count(self) -> int:
        num = os.cpu_count()
        if num is None:
            raise NotImplementedError("cannot determine number of cpus")
        return num

    def Manager(self) -> _managers.SyncManager:
        from .managers import SyncManager

        m = SyncManager(ctx=self.get_context())
        m.start()
        return m

    def Pipe(self, duplex: bool = True) -> tuple[_connection.Connection, _connection.Connection]:
        from .connection import Pipe

        return Pipe(duplex)

    def Lock(self) -> _synchronize.Lock:
        from .synchronize import Lock

        return Lock(ctx=self.get_context())

    def RLock(self) -> _synchronize.RLock:
        from .synchronize import RLock

        return RLock(ctx=self.get_context())

    def Condition(
        self, lock: _synchronize.Lock | _synchronize.RLock | None = None
    ) -> _synchronize.Condition:
        from .synchronize import Condition

        return Condition(lock, ctx=self.get_context())

    def Semaphore(self, value: int = 1) -> _synchronize.Semaphore:
        from .synchronize import Semaphore

        return Semaphore(value, ctx=self.get_context())

    def BoundedSemaphore(self, value: int = 1) -> _synchronize.BoundedSemaphore:
        from .synchronize import BoundedSemaphore

        return BoundedSemaphore(value, ctx=self.get_context())

    def Event(self) -> _synchronize.Event:
        from .synchronize import Event

        return Event(ctx=self.get_context())

    def Barrier(
        self,
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
    ) -> _synchronize.Barrier:
        from .synchronize import Barrier

        return Barrier(parties, action, timeout, ctx=self.get_context())

    def Queue(self, maxsize: int = 0, *, copy: bool | None = None) -> _queues.Queue:
        from .queues import Queue

        return Queue(maxsize, ctx=self.get_context(), copy=copy)

    def JoinableQueue(self, maxsize: int = 0, *, copy: bool | None = None) -> _queues.JoinableQueue:
        from .queues import JoinableQueue

        return JoinableQueue(maxsize, ctx=self.get_context(), copy=copy)

    def SimpleQueue(self, *, copy: bool | None = None) -> _queues.SimpleQueue:
        from .queues import SimpleQueue

        return SimpleQueue(ctx=self.get_context(), copy=copy)

    def Pool(
        self,
        processes: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        maxtasksperchild: int | None = None,
    ) -> _pool.Pool:
        from .pool import Pool

        return Pool(processes, initializer, initargs, maxtasksperchild, context=self.get_context())

    def RawValue(self, typecode_or_type: Any, *args: Any) -> Any:
        from .sharedctypes import RawValue

        return RawValue(typecode_or_type, *args)

    def RawArray(self, typecode_or_type: Any, size_or_initializer: Any) -> Any:
        from .sharedctypes import RawArray

        return RawArray(typecode_or_type, size_or_initializer)

    def Value(self, typecode_or_type: Any, *args: Any, lock: Any = True) -> Any:
        from .sharedctypes import Value

        return Value(typecode_or_type, *args, lock=lock, ctx=self.get_context())

    def Array(self, typecode_or_type: Any, size_or_initializer: Any, *, lock: Any = True) -> Any:
        from .sharedctypes import Array

        return Array(typecode_or_type, size_or_initializer, lock=lock, ctx=self.get_context())

    def freeze_support(self) -> None:
        """Nothing to do: no frozen executable is ever re-launched."""

    def get_logger(self) -> logging.Logger:
        from .util import get_logger

        return get_logger()

    def log_to_stderr(self, level: int | str | None = None) -> logging.Logger:
        from .util import log_to_stderr

        return log_to_stderr(level)

    def allow_connection_pickling(self) -> None:
        """Connections need no registration to be passed between threads."""
        from . import connection  # noqa: F401

    def set_executable(self, executable: str) -> None:
        """Recorded only: no interpreter is ever executed."""
        self._executable = executable

    def set_forkserver_preload(self, module_names: Iterable[str]) -> None:
        """Recorded only: there is no fork server. ``module_names`` must be a
        list of strings, as stdlib checks."""
        if not all(type(mod) is str for mod in module_names):
            raise TypeError("module_names must be a list of strings")
        self._forkserver_preload = list(module_names)

    def get_context(self, method: str | None = None) -> BaseContext:
        if method is None:
            return self
        try:
            ctx = _concrete_contexts[method]
        except KeyError:
            raise ValueError(
                f"cannot find context for {method!r} (expected one of "
                f"{', '.join(map(repr, _concrete_contexts))})"
            ) from None
        ctx._check_available()
        return ctx

    def get_start_method(self, allow_none: bool = False) -> str:
        return self._name

    def set_start_method(self, method: str | None, force: bool = False) -> None:
        raise ValueError("cannot set start method of concrete context")

    @property
    def reducer(self) -> ModuleType:
        """The module used for pickling (``multiprocessing.reduction``), as stdlib."""
        return _reducer

    @reducer.setter
    def reducer(self, reduction: ModuleType) -> None:
        global _reducer
        _reducer = reduction

    def _check_available(self) -> None:
        pass


class Process(process.BaseProcess):
    _start_method = None


class ForkProcess(process.BaseProcess):
    _start_method = "fork"


class SpawnProcess(process.BaseProcess):
    _start_method = "spawn"


class ForkServerProcess(process.BaseProcess):
    _start_method = "forkserver"


class ForkContext(BaseContext):
    _name = "fork"
    Process = ForkProcess


class SpawnContext(BaseContext):
    _name = "spawn"
    Process = SpawnProcess


class ForkServerContext(BaseContext):
    _name = "forkserver"
    Process = ForkServerProcess


_concrete_contexts = {
    "fork": ForkContext(),
    "spawn": SpawnContext(),
    "forkserver": ForkServerContext(),
}


class DefaultContext(BaseContext):
    Process = Process

    def __init__(self, context: BaseContext) -> None:
        self._default_context = context
        self._actual_context: BaseContext | None = None

    def get_context(self, method: str | None = None) -> BaseContext:
        if method is None:
            spawned = _spawned_context()
            if spawned is not None:
                return spawned
            if self._actual_context is None:
                self._actual_context = self._default_context
            return self._actual_context
        return super().get_context(method)

    def set_start_method(self, method: str | None, force: bool = False) -> None:
        if self._actual_context is not None and not force:
            raise RuntimeError("context has already been set")
        if method is None and force:
            self._actual_context = None
            return
        self._actual_context = self.get_context(method)

    def get_start_method(self, allow_none: bool = False) -> str | None:  # type: ignore[override]
        spawned = _spawned_context()
        if spawned is not None:
            return spawned._name
        if self._actual_context is None:
            if allow_none:
                return None
            self._actual_context = self._default_context
        return self._actual_context._name

    def get_all_start_methods(self) -> list[str]:
        return ["fork", "spawn", "forkserver"]


_default_context = DefaultContext(_concrete_contexts["fork"])


def _spawned_context() -> BaseContext | None:
    """In a process started by the 'spawn' or 'forkserver' context, that context.

    A spawned stdlib child sets its start method to the one that started it, so
    there ``get_start_method()`` is 'spawn' (or 'forkserver') whatever the parent's
    default; a forked child inherits its parent's default, which here is simply
    the app's. Only the calling process's own start method is looked at.
    """
    method = getattr(type(process.current_process()), "_start_method", None)
    if method in ("spawn", "forkserver"):
        return _concrete_contexts[method]
    return None


def assert_spawning(obj: object) -> None:
    """ios_mp never spawns: sharing happens by reference, through inheritance."""
    raise RuntimeError(
        f"{type(obj).__name__} objects should only be shared between processes through inheritance"
    )


def get_spawning_popen() -> None:
    return None


def set_spawning_popen(popen: object) -> None:
    pass
