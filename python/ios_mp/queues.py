"""``multiprocessing.queues``: native ``Queue``, ``SimpleQueue``, ``JoinableQueue``.

Same signatures as stdlib (``Queue(maxsize=0, *, ctx)``, ``SimpleQueue(*, ctx)``,
``JoinableQueue(maxsize=0, *, ctx)``; ``ctx`` may be omitted) and subclassable
the same way. What differs:

* Copy semantics are kept: ``put`` pickles and ``get`` returns a new copy. An
  object ``Queue.put`` cannot pickle is handled as stdlib's feeder thread
  handles it: ``put`` returns, the object is dropped, and the queue's
  ``_on_queue_feeder_error(e, obj)`` hook is called (by default it prints the
  traceback to stderr, as stdlib's; subclasses override it, as
  ``concurrent.futures`` does). ``SimpleQueue.put`` raises pickle's error, as
  stdlib's (it has no feeder thread either). Exact ``int``/``float``/
  ``complex``/``str``/``bytes``/``bool``/``None`` skip the copy: it could not be
  told apart. Plain data (exact ``dict``/``list``/``tuple`` nested at most 64
  deep, whose leaves are such atoms, with no container met twice) is copied
  structurally at ``put`` instead: the result of the pickle round trip (pickle
  saves these types itself, never through a reducer), in well under half the
  time, its atoms shared rather than rebuilt. Pass ``copy=False`` (or call
  ``set_default_copy(False)``) to pass references instead, much faster for
  large objects you do not mutate.
* There is no feeder thread: ``put`` is synchronous, ``join_thread()`` and
  ``cancel_join_thread()`` have nothing to wait for.
* ``close()`` closes the queue for the calling process only, as closing a
  process's pipe handles would; other processes keep using it. After it,
  ``put``/``get`` raise ValueError, and ``empty()`` raises OSError if the process
  had put something (as stdlib, whose feeder thread closes the handles).
* ``qsize()`` works everywhere (stdlib raises NotImplementedError on macOS).
"""

from __future__ import annotations

from queue import Empty, Full

from . import _core
from ._core import get_default_copy, set_default_copy

__all__ = [
    "Empty",
    "Full",
    "JoinableQueue",
    "Queue",
    "SimpleQueue",
    "get_default_copy",
    "set_default_copy",
]

_Base = _core._QueueBase


def _report_feeder_error(queue, exc: BaseException, obj) -> None:
    """Call ``queue._on_queue_feeder_error(exc, obj)`` while ``exc`` is being handled
    (so the hook may use ``traceback.print_exc()``, as stdlib's default does)."""
    try:
        raise exc
    except Exception as e:
        queue._on_queue_feeder_error(e, obj)
    # stdlib's hook runs in the feeder thread: the exception it gets (and may keep:
    # ProcessPoolExecutor sets it on the item's Future) references that thread's
    # frames only. Here it ran in the putting thread, and the traceback's frames
    # chain (f_back) to the caller's frames, whose locals may hold what keeps the
    # exception (ProcessPoolExecutor's add_call_item_to_queue: work_item -> future
    # -> exception): a cycle that kept the executor's manager thread, processes and
    # their threads alive until the cyclic GC ran. The message, and the cause the
    # hook may have attached, stay.
    exc.__traceback__ = None


class _Reader:
    """``queue._reader``: the receiving end stdlib code reaches into (stdlib's
    queues are a pipe). ``concurrent.futures.ProcessPoolExecutor`` passes
    ``result_queue._reader`` to ``connection.wait()`` and then calls ``recv()``
    on it; ``connection.wait()`` polls this object as it polls Connections."""

    __slots__ = ("_queue",)
    _ios_mp_pollable = True

    def __init__(self, queue) -> None:
        self._queue = queue

    def poll(self, timeout: float | None = 0.0) -> bool:
        if not self._queue.empty():
            return True
        if timeout is not None and timeout <= 0:
            return False
        from .connection import wait

        return bool(wait([self], timeout))

    def recv(self):
        return self._queue.get()

    def close(self) -> None:
        pass  # the queue itself is closed with close()

    @property
    def closed(self) -> bool:
        """True once the queue is closed (stdlib: its pipe end is closed)."""
        return self._queue._is_closed()

    def fileno(self) -> int:
        raise OSError("an ios_mp queue has no file descriptor")


class Queue(_Base):
    def __init__(self, maxsize: int = 0, *, ctx=None, copy: bool | None = None) -> None:
        self._init(maxsize, copy)

    put = _Base._put
    get = _Base._get
    put_nowait = _Base._put_nowait
    get_nowait = _Base._get_nowait
    qsize = _Base._qsize
    empty = _Base._empty
    full = _Base._full
    close = _Base._close
    join_thread = _Base._join_thread
    cancel_join_thread = _Base._cancel_join_thread

    @staticmethod
    def _on_queue_feeder_error(e: BaseException, obj) -> None:
        """Called while ``put`` handles ``e``, an error pickling ``obj`` (which is
        dropped): stdlib's default, the traceback to stderr."""
        import traceback

        traceback.print_exc()

    @property
    def _closed(self) -> bool:
        return self._is_closed()

    @property
    def _reader(self) -> _Reader:
        return _Reader(self)

    def _terminate_broken(self) -> None:
        """Close the queue on error (stdlib 3.12+; ``ProcessPoolExecutor`` calls it
        on its call queue when the pool breaks)."""
        self.close()
        self.join_thread()


class JoinableQueue(Queue):
    def __init__(self, maxsize: int = 0, *, ctx=None, copy: bool | None = None) -> None:
        self._init(maxsize, copy, False, True)

    task_done = _Base._task_done
    join = _Base._join


class SimpleQueue(_Base):
    def __init__(self, *, ctx=None, copy: bool | None = None) -> None:
        self._init(0, copy, True)

    put = _Base._put
    get = _Base._get
    empty = _Base._empty
    close = _Base._close

    @property
    def _closed(self) -> bool:
        return self._is_closed()

    @property
    def _reader(self) -> _Reader:
        return _Reader(self)

    # stdlib's SimpleQueue is a pipe: tests check ``_reader.closed`` and
    # ``_writer.closed`` after close(); both ends are this queue.
    _writer = _reader
