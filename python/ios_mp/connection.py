"""``multiprocessing.connection``: ``Pipe`` between threads, and ``wait``.

This is a first, pure-Python version over ios_mp's native queues: ``Pipe()``
returns two ``Connection`` objects with stdlib's ``send``/``recv``/``*_bytes``/
``poll``/``close`` behaviour (``EOFError`` once the other end is closed and
drained). ``wait()`` accepts Connections, process sentinels and anything with a
``fileno()``. ``Listener``/``Client`` (sockets with authkey) are not implemented
yet; ``fileno()`` of a Connection raises ``OSError`` (there is no descriptor).
"""

from __future__ import annotations

import itertools
import pickle
import selectors
import time

from . import _core
from ._unimplemented import class_ as _missing_class
from ._unimplemented import function as _missing
from .context import AuthenticationError, BufferTooShort

__all__ = ["AuthenticationError", "BufferTooShort", "Client", "Connection", "Listener", "Pipe",
           "wait"]

_EOF = object()  # marker put by close(); never leaves this module
_ids = itertools.count(1)


class _Channel(_core._QueueBase):
    def __init__(self) -> None:
        self._init(0, False)


class Connection:
    """One end of a ``Pipe``."""

    def __init__(self, inbox: _Channel | None, outbox: _Channel | None) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self._stash: list = []  # an item taken by poll() and not yet received
        self._closed = False
        self._id = next(_ids)

    # -- state ----------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def readable(self) -> bool:
        return self._inbox is not None

    @property
    def writable(self) -> bool:
        return self._outbox is not None

    def _check_closed(self) -> None:
        if self._closed:
            raise OSError("handle is closed")

    def _check_readable(self) -> None:
        if self._inbox is None:
            raise OSError("connection is write-only")

    def _check_writable(self) -> None:
        if self._outbox is None:
            raise OSError("connection is read-only")

    def fileno(self) -> int:
        self._check_closed()
        raise OSError("ios_mp connections have no file descriptor")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._outbox is not None:
                self._outbox._put(_EOF)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __reduce__(self):
        raise TypeError("ios_mp Connection objects cannot be pickled (yet)")

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    # -- sending --------------------------------------------------------------
    def send_bytes(self, buf, offset: int = 0, size: int | None = None) -> None:
        self._check_closed()
        self._check_writable()
        m = memoryview(buf)
        if m.itemsize > 1:
            m = m.cast("B")
        n = m.nbytes
        if offset < 0:
            raise ValueError("offset is negative")
        if n < offset:
            raise ValueError("buffer length < offset")
        if size is None:
            size = n - offset
        elif size < 0:
            raise ValueError("size is negative")
        elif offset + size > n:
            raise ValueError("buffer length < offset + size")
        self._outbox._put(bytes(m[offset : offset + size]))

    def send(self, obj) -> None:
        self._check_closed()
        self._check_writable()
        self._outbox._put(pickle.dumps(obj, pickle.HIGHEST_PROTOCOL))

    # -- receiving ------------------------------------------------------------
    def _take(self, timeout: float | None):
        if self._stash:
            return self._stash.pop()
        try:
            item = self._inbox._get(True, timeout)
        except _core_empty:
            return _NOTHING
        if item is _EOF:
            self._inbox._put(_EOF)  # stays at EOF for later calls
            raise EOFError
        return item

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        self._check_closed()
        self._check_readable()
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        data = self._take(None)
        if maxlength is not None and len(data) > maxlength:
            self.close()
            raise OSError("bad message length")
        return data

    def recv_bytes_into(self, buf, offset: int = 0) -> int:
        self._check_closed()
        self._check_readable()
        m = memoryview(buf)
        if m.itemsize > 1:
            m = m.cast("B")
        if offset < 0 or offset > m.nbytes:
            raise ValueError("offset out of bounds" if offset >= 0 else "negative offset")
        data = self._take(None)
        if len(data) > m.nbytes - offset:
            raise BufferTooShort(data)
        m[offset : offset + len(data)] = data
        return len(data)

    def recv(self):
        self._check_closed()
        self._check_readable()
        return pickle.loads(self._take(None))

    def poll(self, timeout: float | None = 0.0) -> bool:
        self._check_closed()
        self._check_readable()
        if self._stash:
            return True
        try:
            item = self._take(timeout)
        except EOFError:
            return True
        if item is _NOTHING:
            return False
        self._stash.append(item)
        return True


_NOTHING = object()
from queue import Empty as _core_empty  # noqa: E402


def Pipe(duplex: bool = True) -> tuple[Connection, Connection]:
    a, b = _Channel(), _Channel()
    if duplex:
        return Connection(a, b), Connection(b, a)
    return Connection(a, None), Connection(None, a)


def wait(object_list, timeout: float | None = None) -> list:
    """Wait until one or more of ``object_list`` is ready (stdlib semantics).

    Process sentinels and objects with ``fileno()`` are waited on with
    ``select``; Connections are polled in short slices (a later version waits on
    them natively).
    """
    deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
    conns = [o for o in object_list if isinstance(o, Connection)]
    others = [o for o in object_list if not isinstance(o, Connection)]
    with selectors.DefaultSelector() as sel:
        for o in others:
            sel.register(o, selectors.EVENT_READ)
        while True:
            ready = [c for c in conns if c.poll(0)]
            slice_ = 0.005 if conns else None
            if deadline is not None:
                left = max(0.0, deadline - time.monotonic())
                slice_ = left if slice_ is None else min(slice_, left)
            if not ready and others:
                ready = [key.fileobj for key, _ in sel.select(0 if ready else slice_)]
            elif not ready and slice_:
                time.sleep(slice_)
            if ready or (deadline is not None and time.monotonic() >= deadline):
                return ready
            if not conns and not others and deadline is None:
                return []


Listener = _missing_class("multiprocessing.connection.Listener")
Client = _missing("multiprocessing.connection.Client()")
answer_challenge = _missing("multiprocessing.connection.answer_challenge()")
deliver_challenge = _missing("multiprocessing.connection.deliver_challenge()")
