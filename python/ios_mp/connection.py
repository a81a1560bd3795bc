"""``multiprocessing.connection``: ``Pipe`` between threads, and ``wait``.

This is a first, pure-Python version over ios_mp's native queues: ``Pipe()``
returns two ``Connection`` objects with stdlib's ``send``/``recv``/``*_bytes``/
``poll``/``close`` behaviour. ``wait()`` accepts Connections, process sentinels
and anything with a ``fileno()``. ``Listener``/``Client`` (sockets with authkey)
are not implemented yet; ``fileno()`` of a Connection raises ``OSError`` (there
is no descriptor).

Handles are per process, as a pipe's file descriptors are: a Connection object
is shared by reference between processes, but each process has its own handle
to it, and ``close()`` (and ``closed``) is about the calling process's handle
only. A child process holds a handle to every Connection reachable from its
``target``, ``args``, ``kwargs`` and attributes when it starts (what spawn would
pickle for it), and any process gets one when it first uses a Connection; a
process's handles are closed when it exits. The other end sees ``EOFError``
(once drained) when every handle to this end is closed, or the object is
garbage; sending to an end whose reading end has no handle left raises
``BrokenPipeError``. So the usual idioms work: a child closing its copy of the
parent's end, a parent closing its copy of the child's end after ``start()``,
reading until ``EOFError``.
"""

from __future__ import annotations

import errno
import functools
import itertools
import pickle
import selectors
import threading
import time
import types
import weakref
from queue import Empty as _core_empty

from . import _core, process
from ._unimplemented import class_ as _missing_class
from ._unimplemented import function as _missing
from .context import AuthenticationError, BufferTooShort

__all__ = ["AuthenticationError", "BufferTooShort", "Client", "Connection", "Listener", "Pipe",
           "wait"]

_EOF = object()  # marker put when every handle of the sending end is closed
_ids = itertools.count(1)
_process_key = _core._process_key  # 0 in the main process, else the worker's vpid

# Who holds a handle to what. ``_held`` maps a worker's key to the Connections
# it holds (the main process never exits, so it is not tracked); ``_live`` has
# every Connection with a handle open somewhere.
_lock = threading.Lock()
_held: dict[int, weakref.WeakSet] = {}
_live: weakref.WeakSet = weakref.WeakSet()


class _Channel(_core._QueueBase):
    """The messages of one direction of a Pipe."""

    def __init__(self) -> None:
        self._init(0, False)
        self.reader_gone = False  # every handle of the receiving end is closed


class Connection:
    """One end of a ``Pipe``."""

    def __init__(self, inbox: _Channel | None, outbox: _Channel | None) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self._stash: list = []  # an item taken by poll() and not yet received
        self._id = next(_ids)
        self._holders: set[int] = set()  # processes with an open handle
        self._closed_in: set[int] = set()  # processes that closed theirs
        self._released = False  # no handle left anywhere: the peer got EOF
        with _lock:
            self._hold_locked(_process_key())

    # -- handles --------------------------------------------------------------
    def _hold_locked(self, key: int) -> None:
        self._holders.add(key)
        if key:
            _held.setdefault(key, weakref.WeakSet()).add(self)
        _live.add(self)

    def _drop_locked(self, key: int) -> bool:
        """Forget ``key``'s handle; True if it was the last one (then release)."""
        self._holders.discard(key)
        ends = _held.get(key)
        if ends is not None:
            ends.discard(self)
        if self._holders or self._released:
            return False
        self._released = True
        return True

    def _release(self) -> None:
        """The last handle is closed: EOF to the peer, no reader for its sends."""
        _live.discard(self)
        if self._outbox is not None:
            self._outbox._put(_EOF)
        if self._inbox is not None:
            self._inbox.reader_gone = True

    # -- state ----------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._released or _process_key() in self._closed_in

    @property
    def readable(self) -> bool:
        return self._inbox is not None

    @property
    def writable(self) -> bool:
        return self._outbox is not None

    def _check_closed(self) -> None:
        key = _process_key()
        if key in self._holders:
            return
        with _lock:
            if self._released or key in self._closed_in:
                raise OSError("handle is closed")
            self._hold_locked(key)  # first use by this process

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
        """Close the calling process's handle."""
        key = _process_key()
        with _lock:
            if key in self._closed_in:
                return
            self._closed_in.add(key)
            last = self._drop_locked(key)
        if last:
            self._release()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        # Unreachable from every process: every handle is gone.
        try:
            if not self._released:
                self._released = True
                self._release()
        except Exception:
            pass

    def __reduce__(self):
        raise TypeError("ios_mp Connection objects cannot be pickled (yet)")

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def _check_peer_reads(self) -> None:
        if self._outbox.reader_gone:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

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
        self._check_peer_reads()
        self._outbox._put(bytes(m[offset : offset + size]))

    def send(self, obj) -> None:
        self._check_closed()
        self._check_writable()
        data = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
        self._check_peer_reads()
        self._outbox._put(data)

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


# -- process start and exit ------------------------------------------------------

_ATOMS = (str, bytes, bytearray, int, float, complex, bool, type(None), type, types.ModuleType)


def _reachable_connections(roots: list, budget: int = 10_000) -> list[Connection]:
    """Connections reachable from ``roots`` (a bounded walk of containers and attributes)."""
    found: list[Connection] = []
    seen: set[int] = set()
    stack = list(roots)
    while stack and budget > 0:
        obj = stack.pop()
        budget -= 1
        if isinstance(obj, _ATOMS) or id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, Connection):
            found.append(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif isinstance(obj, types.MethodType):
            stack.extend((obj.__self__, obj.__func__))
        elif isinstance(obj, functools.partial):
            stack.extend((obj.func, obj.args, obj.keywords))
        elif isinstance(obj, types.FunctionType):
            for cell in obj.__closure__ or ():
                try:
                    stack.append(cell.cell_contents)
                except ValueError:  # an empty cell
                    pass
        else:
            try:
                attrs = object.__getattribute__(obj, "__dict__")
            except Exception:  # no __dict__ (or a strange one): nothing to see
                continue
            if isinstance(attrs, dict):
                stack.extend(attrs.values())
    return found


def _inherit_handles(child, target, args, kwargs) -> None:
    """``child`` is starting: it gets a handle to the Connections passed to it
    (reachable from what spawn would pickle for it)."""
    if not _live:
        return
    conns = _reachable_connections([target, args, kwargs, vars(child)])
    if not conns:
        return
    parent, key = _process_key(), child.pid
    with _lock:
        for c in conns:
            if not c._released and parent not in c._closed_in:
                c._hold_locked(key)


def _close_handles(proc) -> None:
    """``proc`` is exiting: its handles are closed, as a process's descriptors are."""
    key = proc.pid
    with _lock:
        ends = _held.pop(key, None)
        if not ends:
            return
        last = [c for c in list(ends) if c._drop_locked(key)]
    for c in last:
        c._release()


process._start_hooks.append(_inherit_handles)
process._exit_hooks.append(_close_handles)


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
