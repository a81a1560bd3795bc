"""Per-worker standard streams and descriptors 0-2 (rows of ``_virtual.py``).

A real child process has its own ``sys.stdin/stdout/stderr`` and its own
descriptors 0, 1 and 2, copied from its parent at fork. Here a worker is a
thread of the app, so both are emulated per worker; the app (its main thread
and its own threads) keeps stdlib behaviour.

Streams
-------
``sys.__class__`` becomes ``_SysModule``, a ``types.ModuleType`` subclass whose
``stdin``/``stdout``/``stderr`` properties (data descriptors, so they take
precedence over ``sys.__dict__``) read, assign and delete the calling thread's
stream: the worker's in a thread of a worker, the app's elsewhere.
``sys.__stdin__``/``__stdout__``/``__stderr__`` are untouched.

C code reads ``sys.__dict__`` directly (``print()`` without ``file``,
``input()``, ``PyErr_Display`` tracebacks, ``PySys_WriteStderr``,
``faulthandler``'s default file). So ``sys.__dict__['stdout']`` holds a
``_Router``: it forwards every call to the calling thread's current stream.
Each assignment by the app installs a fresh router bound to the assigned object
(the app's side of a router is what it was bound to), so code that saves
``sys.__dict__['stdout']`` and later assigns it back (``unittest.mock.patch``
does) restores the app's stream it stood for. A router of the app's stream
``None`` makes ``print()`` a no-op, as ``sys.stdout = None`` does.

A worker starts with a ``WorkerStream`` (a *view*) of each of its parent's
streams at ``start()`` (the app's for a worker started by the app), as fork
copies them. For a worker the app started, the views are made at the worker's
first use of its streams or descriptors 0-2, from the app's streams captured
at ``start()``; one that never uses them costs no views (at its exit it flushes
the app's streams it was started with, as a child flushes its copies). A view
forwards everything to the stream it views, except what
would change that shared object for everyone:

* ``close()`` closes the view only: the worker's later reads and writes raise
  ``ValueError`` as on a closed file, the app's stream stays open (stdlib's
  child bootstrap closes ``sys.stdin``, Ansible 2.19's ``_detach()`` closes
  its own). ``with sys.stdout:`` closes the view too.
* ``detach()`` detaches the view and returns a view of the buffer;
  ``reconfigure(...)`` gives the worker a private ``TextIOWrapper`` over a view
  of the buffer; ``.buffer`` is a view, so a ``TextIOWrapper`` the worker wraps
  around it closes only that view when it goes.
* attributes assigned on a view stay on the view.
* ``isinstance()`` sees the viewed object's class (``__class__`` is
  forwarded); ``type()`` is ``WorkerStream``.

Assigning in a worker stores exactly the object assigned (which the worker then
owns: closing it is the worker's business); assigning one of the routers
(``sys.__dict__`` entries, what ``mock.patch`` restores) gives the worker back
its initial view.

Descriptors 0-2
---------------
Each worker has a table for 0, 1 and 2: each entry is the app's real
descriptor (shared, as after fork), a private ``os.dup`` owned by the worker, or
closed. ``os.dup2(fd, 0|1|2)`` and ``os.close(0|1|2)`` in a worker change only
its table; ``os.write``/``read``/``fstat``/``isatty``/``dup``/``fdopen``/... of
0-2 use it (see ``_virtual.py``). A view whose viewed stream's ``fileno()`` is
such a descriptor follows it, as ``sys.stdout`` follows fd 1 in a process: after
``os.dup2(devnull, 1)`` the worker's ``print()`` goes to /dev/null, after
``os.close(1)`` it raises ``OSError(EBADF)``. A child started by a worker gets
a copy of its table (private entries duplicated). At a worker's exit its private
descriptors are closed (its entries read as closed for threads it leaves
behind).
"""

from __future__ import annotations

import errno
import io
import os
import sys
import threading
import types
import weakref
from typing import Any

from . import _core, process

try:  # ios_mp's own descriptor housekeeping bypasses the patched os functions
    import posix as _osc
except ImportError:  # pragma: no cover - not POSIX
    _osc = os  # type: ignore[assignment]

__all__ = ["NAMES", "WorkerStream", "install", "is_installed", "uninstall", "worker"]

NAMES = ("stdin", "stdout", "stderr")
_MISSING: Any = type("_Missing", (), {"__repr__": lambda self: "<missing>"})()
_SHARED: Any = type("_Shared", (), {"__repr__": lambda self: "<shared>"})()
_OPEN, _CLOSED, _DETACHED = "open", "closed", "detached"

_worker_process = _core._worker_process
_sysdict: dict = sys.__dict__
_installed = False
_saved_class: Any = None

# Descriptors ios_mp owns (the workers' private 0-2 and fdopen copies): a
# worker's os.closerange() never closes them.
_owned_fds: set[int] = set()


def _ebadf() -> OSError:
    return OSError(errno.EBADF, os.strerror(errno.EBADF))


def _std(fd: object) -> bool:
    return isinstance(fd, int) and 0 <= fd <= 2


# --- views --------------------------------------------------------------------

_IO_METHODS = frozenset(
    {
        "fileno",
        "flush",
        "isatty",
        "read",
        "read1",
        "readable",
        "readinto",
        "readinto1",
        "readline",
        "readlines",
        "seek",
        "seekable",
        "tell",
        "truncate",
        "writable",
        "write",
        "writelines",
    }
)


def _closed_error(state: str) -> ValueError:
    if state == _DETACHED:
        return ValueError("underlying buffer has been detached")
    return ValueError("I/O operation on closed file.")


def _raiser(state: str):
    def closed_method(*args, **kwargs):
        raise _closed_error(state)

    return closed_method


class WorkerStream:
    """A worker's own handle on a stream it inherited from its parent.

    Forwards to the stream it views, but ``close()``, ``detach()``,
    ``reconfigure()`` and attribute assignment affect only this worker, and it
    follows the worker's descriptor table (see the module docstring).
    """

    __slots__ = (
        "__dict__",
        "__weakref__",
        "_ios_mp_buffer",
        "_ios_mp_fd",
        "_ios_mp_mode",
        "_ios_mp_origin",
        "_ios_mp_release",
        "_ios_mp_state",
        "_ios_mp_target",
    )

    def __init__(self, origin: Any, mode: str, state: str = _OPEN) -> None:
        self._ios_mp_origin = origin  # what the worker inherited
        self._ios_mp_target = origin  # where calls go now (a private stream after dup2)
        self._ios_mp_mode = mode  # "r" (stdin) or "w"
        self._ios_mp_state = state
        self._ios_mp_buffer: WorkerStream | None = None
        self._ios_mp_release = None  # disposes of a private target ios_mp made
        self._ios_mp_fd: int | None = None  # origin.fileno(), once asked

    # isinstance(sys.stdout, io.TextIOWrapper) holds in a worker as in the app.
    @property  # type: ignore[misc]
    def __class__(self):
        return type(self._ios_mp_target)

    def __repr__(self) -> str:
        return repr(self._ios_mp_target)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_ios_mp_"):
            raise AttributeError(name)
        target = self._ios_mp_target
        if name == "buffer":
            if self._ios_mp_state == _DETACHED:
                raise _closed_error(_DETACHED)
            return self._ios_mp_buffer_view()
        if name == "detach" and (hasattr(target, "buffer") or hasattr(target, "raw")):
            return self._ios_mp_detach
        if name == "reconfigure" and hasattr(target, "reconfigure") and hasattr(target, "buffer"):
            return self._ios_mp_reconfigure
        if self._ios_mp_state is not _OPEN and name in _IO_METHODS:
            return _raiser(self._ios_mp_state)
        return getattr(target, name)

    # The hot paths, with the closed check made at call time.
    def write(self, s):
        if self._ios_mp_state is not _OPEN:
            raise _closed_error(self._ios_mp_state)
        return self._ios_mp_target.write(s)

    def flush(self):
        if self._ios_mp_state is not _OPEN:
            raise _closed_error(self._ios_mp_state)
        return self._ios_mp_target.flush()

    def readline(self, *args):
        if self._ios_mp_state is not _OPEN:
            raise _closed_error(self._ios_mp_state)
        return self._ios_mp_target.readline(*args)

    @property
    def closed(self) -> bool:
        if self._ios_mp_state == _DETACHED:
            raise _closed_error(_DETACHED)
        return self._ios_mp_state == _CLOSED or bool(self._ios_mp_target.closed)

    def close(self) -> None:
        """Close this worker's handle; the stream it views stays open."""
        if self._ios_mp_state == _DETACHED:
            raise _closed_error(_DETACHED)
        if self._ios_mp_state == _CLOSED:
            return
        try:
            flush = getattr(self._ios_mp_target, "flush", None)
            if self._ios_mp_mode != "r" and flush is not None:
                flush()
        finally:
            self._ios_mp_state = _CLOSED
            self._ios_mp_drop_private()
            if self._ios_mp_buffer is not None:
                self._ios_mp_buffer.close()

    def __iter__(self):
        if self._ios_mp_state is not _OPEN:
            raise _closed_error(self._ios_mp_state)
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def __enter__(self):
        if self._ios_mp_state is not _OPEN:
            raise _closed_error(self._ios_mp_state)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _ios_mp_buffer_view(self) -> WorkerStream:
        bv = self._ios_mp_buffer
        if bv is None:
            bv = WorkerStream(
                self._ios_mp_target.buffer,
                self._ios_mp_mode,
                _CLOSED if self._ios_mp_state == _CLOSED else _OPEN,
            )
            self._ios_mp_buffer = bv
        return bv

    def _ios_mp_detach(self):
        if self._ios_mp_state is not _OPEN:
            raise _closed_error(self._ios_mp_state)
        target = self._ios_mp_target
        if self._ios_mp_mode != "r":
            target.flush()
        if hasattr(target, "buffer"):
            # Stays linked to this view, so it keeps following the worker's descriptor.
            inner = self._ios_mp_buffer_view()
        else:
            inner = WorkerStream(target.raw, self._ios_mp_mode)
        self._ios_mp_state = _DETACHED
        if self._ios_mp_release is _flush_and_detach:
            self._ios_mp_drop_private()  # a reconfigured wrapper lets go of the buffer view
        return inner

    def _ios_mp_reconfigure(self, **kwargs) -> None:
        """The first call gives the worker a private TextIOWrapper over a view of the
        buffer (the app's stream keeps its settings); later ones reconfigure that."""
        if self._ios_mp_state is not _OPEN:
            raise _closed_error(self._ios_mp_state)
        target = self._ios_mp_target
        if self._ios_mp_release is not None:  # already a private stream of this worker
            return target.reconfigure(**kwargs)
        new = io.TextIOWrapper(
            self._ios_mp_buffer_view(),
            encoding=target.encoding,
            errors=target.errors,
            newline="\n",
            line_buffering=bool(getattr(target, "line_buffering", False)),
            write_through=bool(getattr(target, "write_through", False)),
        )
        new.reconfigure(**kwargs)  # stdlib's argument checks and defaults
        if self._ios_mp_mode != "r":
            target.flush()
        self._ios_mp_set_target(new, _flush_and_detach, buffer_too=False)
        return None

    def _ios_mp_drop_private(self) -> None:
        """Dispose of a private target ios_mp made for this view (it stays the target)."""
        release, self._ios_mp_release = self._ios_mp_release, None
        if release is not None:
            try:
                release(self._ios_mp_target)
            except Exception:
                pass

    def _ios_mp_set_target(self, new, release, buffer_too: bool = True) -> None:
        if new is not self._ios_mp_target:
            self._ios_mp_drop_private()
        self._ios_mp_target = new
        self._ios_mp_release = release
        bv = self._ios_mp_buffer
        if buffer_too and bv is not None:
            bv._ios_mp_target = getattr(new, "buffer", new)

    def _ios_mp_origin_fd(self) -> int:
        fd = self._ios_mp_fd
        if fd is None:
            try:
                fd = int(self._ios_mp_origin.fileno())
            except Exception:
                fd = -1
            self._ios_mp_fd = fd
        return fd


def _flush_and_detach(wrapper: io.TextIOWrapper) -> None:
    try:
        wrapper.flush()
    finally:
        wrapper.detach()  # not close(): that would close the buffer view under it


def _close_quietly(stream) -> None:
    stream.close()


class _ClosedFd:
    """What a view follows once the worker closed its descriptor: I/O raises EBADF."""

    closed = False

    def __init__(self, fd: int, like: Any) -> None:
        self._fd = fd
        self.name = fd
        self.encoding = _setting(like, "encoding", None)
        self.errors = _setting(like, "errors", None)
        self.line_buffering = _setting(like, "line_buffering", False)

    def _fail(self, *args, **kwargs):
        raise _ebadf()

    write = writelines = read = read1 = readline = readlines = readinto = _fail
    seek = tell = truncate = _fail

    @property
    def buffer(self):
        return self

    def flush(self) -> None:
        pass  # nothing is ever buffered

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    writable = seekable = readable

    def close(self) -> None:
        pass


def _setting(like: Any, name: str, default: Any) -> Any:
    try:
        value = getattr(like, name, default)
    except Exception:  # e.g. a detached TextIOWrapper
        return default
    return default if value is None else value


def _fd_stream(fd: int, name_fd: int, mode: str, like: Any) -> io.TextIOWrapper:
    raw = io.FileIO(fd, mode, closefd=False)
    try:
        raw.name = name_fd  # the number the worker knows it by
    except Exception:
        pass
    buf = io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw)
    return io.TextIOWrapper(
        buf,
        encoding=_setting(like, "encoding", "utf-8"),
        errors=_setting(like, "errors", "strict"),
        newline="\n",  # as CPython's own sys.std* on POSIX
        line_buffering=bool(_setting(like, "line_buffering", False)),
        write_through=bool(_setting(like, "write_through", False)),
    )


# --- routers in sys.__dict__ ------------------------------------------------------


class _Router:
    """``sys.__dict__[name]``: C code's handle on the calling thread's stream."""

    __slots__ = ("_ios_mp_app", "_ios_mp_name")

    def __init__(self, name: str, app: Any) -> None:
        self._ios_mp_name = name
        self._ios_mp_app = app  # the app's stream this router was installed for

    def _ios_mp_current(self):
        p = _worker_process()
        if p is None:
            return self._ios_mp_app
        return _state_of(p).streams[self._ios_mp_name]

    def write(self, s):
        p = _worker_process()
        t = self._ios_mp_app if p is None else _state_of(p).streams[self._ios_mp_name]
        if t is None:
            return None  # print() with sys.stdout None writes nothing
        if t is _MISSING:
            raise RuntimeError(f"lost sys.{self._ios_mp_name}")
        return t.write(s)

    def flush(self):
        t = self._ios_mp_current()
        if t is None or t is _MISSING:
            return None
        return t.flush()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_ios_mp_"):
            raise AttributeError(name)
        t = self._ios_mp_current()
        if self._ios_mp_name == "stdin" and (t is _MISSING or t is None):
            # input() with sys.stdin missing or None: CPython's own error.
            raise RuntimeError("input(): lost sys.stdin")
        if t is _MISSING:
            raise RuntimeError(f"lost sys.{self._ios_mp_name}")
        return getattr(t, name)

    def __repr__(self) -> str:
        return f"<ios_mp router for sys.{self._ios_mp_name}: {self._ios_mp_current()!r}>"


def _app_get(name: str) -> Any:
    v = _sysdict.get(name, _MISSING)
    if type(v) is _Router:
        return v._ios_mp_app
    return v  # C code replaced the entry: that is the app's stream now


def _app_set(name: str, value: Any) -> None:
    if type(value) is _Router:
        value = value._ios_mp_app
    _sysdict[name] = _Router(name, value)


# --- per-worker state -----------------------------------------------------------


class _Worker:
    """One worker's streams and descriptor table (shared by its threads)."""

    __slots__ = ("__weakref__", "extra", "fds", "initial", "lock", "released", "streams", "views")

    def __init__(self, streams: dict, fds: list) -> None:
        self.streams = streams  # name -> object (or _MISSING)
        self.initial = dict(streams)
        self.views = [s for s in streams.values() if type(s) is WorkerStream]
        self.fds = fds  # index 0-2 -> _SHARED | None (closed) | private fd
        self.extra: list[int] = []  # fds handed out by os.fdopen(closefd=False)
        self.lock = threading.RLock()
        self.released = False

    # -- the descriptor table (called by _virtual.py's replacements) --

    def lookup(self, fd: int) -> int | None:
        """The real descriptor behind the worker's ``fd`` (0-2); None if closed."""
        e = self.fds[fd]
        return fd if e is _SHARED else e

    def resolve(self, fd: Any) -> Any:
        if not _std(fd):
            return fd
        real = self.lookup(fd)
        if real is None:
            raise _ebadf()
        return real

    def dup2(self, fd: Any, fd2: Any, inheritable: bool, real_dup2) -> int:
        if not _std(fd2):
            return real_dup2(self.resolve(fd), fd2, inheritable)
        with self.lock:
            src = self.resolve(fd)
            if fd == fd2:
                _osc.fstat(src)  # dup2(fd, fd) only checks fd
                return fd2
            new = _osc.dup(src)
            try:
                _osc.set_inheritable(new, bool(inheritable))
            except OSError:
                pass
            self._replace(fd2, new)
        return fd2

    def close(self, fd: int) -> None:
        with self.lock:
            if self.fds[fd] is None:
                raise _ebadf()
            self._replace(fd, None)

    def closerange(self, lo: int, hi: int, real_closerange) -> None:
        with self.lock:
            for n in range(max(lo, 0), min(hi, 3)):
                if self.fds[n] is not None:
                    self._replace(n, None)
        start = max(lo, 3)
        # The real descriptors in range, except ios_mp's own (every worker's 0-2).
        for keep in [f for f in sorted(_owned_fds) if start <= f < hi]:
            if start < keep:
                real_closerange(start, keep)
            start = keep + 1
        if start < hi:
            real_closerange(start, hi)

    def fdopen_fd(self, fd: int, closefd: bool) -> tuple[int, bool]:
        """The descriptor ``os.fdopen(fd)`` should wrap, and whether it is a new dup."""
        with self.lock:
            e = self.fds[fd]
            if e is None:
                raise _ebadf()
            if e is _SHARED and not closefd:
                return fd, False  # the app's, never closed through this file
            new = _osc.dup(fd if e is _SHARED else e)
            if not closefd:  # the worker owns it until its exit
                self.extra.append(new)
                _owned_fds.add(new)
            return new, True

    def _replace(self, n: int, new: int | None) -> None:
        old = self.fds[n]
        self.fds[n] = new
        if new is not None:
            _owned_fds.add(new)
        self._follow(n)
        if type(old) is int:
            _owned_fds.discard(old)
            try:
                _osc.close(old)
            except OSError:
                pass

    def _follow(self, n: int) -> None:
        """Views of a stream on descriptor ``n`` now write where the worker's ``n`` does."""
        entry = self.fds[n]
        for v in self.views:  # a detached one still carries its buffer view along
            if v._ios_mp_state == _CLOSED or v._ios_mp_origin_fd() != n:
                continue
            old = v._ios_mp_target
            if v._ios_mp_mode != "r":
                try:
                    old.flush()
                except Exception:
                    pass
            if entry is _SHARED:
                new, release = v._ios_mp_origin, None
            elif entry is None:
                new, release = _ClosedFd(n, old), None
            else:
                new, release = _fd_stream(entry, n, v._ios_mp_mode, old), _close_quietly
            v._ios_mp_set_target(new, release)

    def release(self) -> None:
        """At the worker's exit: close its private descriptors."""
        with self.lock:
            if self.released:
                return
            self.released = True
            for n in range(3):
                if type(self.fds[n]) is int:
                    self._replace(n, None)
            for fd in self.extra:
                _owned_fds.discard(fd)
                try:
                    _osc.close(fd)
                except OSError:
                    pass
            self.extra.clear()

    def __del__(self) -> None:  # a worker that never reached its exit hook
        try:
            if not self.released:
                for fd in [*(e for e in self.fds if type(e) is int), *self.extra]:
                    _owned_fds.discard(fd)
                    _osc.close(fd)
        except Exception:
            pass


# By virtual pid: a worker runs with a snapshot copy of its Process object, so the
# parent's handle (what start hooks get) is not the object its threads see.
_states: dict[int, _Worker] = {}
# Re-entrant: making a state allocates, so the garbage collector may run inside
# _state_of's critical section, and with it the weakref.finalize of some other,
# dead worker, whose _drop takes this lock too.
_states_lock = threading.RLock()
# By virtual pid: the app's streams at start() of a worker the app started whose
# state is not made yet. It is made at the worker's first use of its streams or
# descriptors 0-2 (_state_of), from these, as fork would have copied them then:
# most workers never use them, and making views they never use at every start
# and releasing them at every exit was most of what a Process costs over a bare
# thread (benches/start_join_bytecodes.py).
_pending: dict[int, tuple] = {}


def _inherit_stream(s: Any, name: str) -> Any:
    if s is None or s is _MISSING:
        return s
    mode = "r" if name == "stdin" else "w"
    if type(s) is WorkerStream:
        state = _CLOSED if s._ios_mp_state is not _OPEN else _OPEN
        return WorkerStream(s._ios_mp_origin, mode, state)
    return WorkerStream(s, mode)


def _app_streams() -> tuple:
    """The app's stdin, stdout and stderr (in NAMES order)."""
    return (_app_get("stdin"), _app_get("stdout"), _app_get("stderr"))


def _from_app(streams: tuple) -> _Worker:
    """The state of a worker the app started: views of ``streams``, the app's
    descriptors."""
    views = {n: _inherit_stream(s, n) for n, s in zip(NAMES, streams)}
    return _Worker(views, [_SHARED, _SHARED, _SHARED])


def _inherit(parent: _Worker) -> _Worker:
    """A child's state: views of its parent's current streams, a copy of its table."""
    with parent.lock:
        streams = {n: _inherit_stream(parent.streams[n], n) for n in NAMES}
        fds = []
        for e in parent.fds:
            if type(e) is int:
                e = _osc.dup(e)
                _owned_fds.add(e)
            fds.append(e)
    child = _Worker(streams, fds)
    with child.lock:
        for n in range(3):
            if fds[n] is not _SHARED:
                child._follow(n)
    return child


def _state_of(p: Any) -> _Worker:
    pid = p.pid
    st = _states.get(pid)
    if st is None:
        with _states_lock:
            st = _states.get(pid)
            if st is None:
                captured = _pending.pop(pid, None)
                if captured is not None:  # first use: its exit releases it
                    st = _states[pid] = _from_app(captured)
                else:  # started before install(), or used after its exit
                    st = _states[pid] = _from_app(_app_streams())
                    weakref.finalize(p, _drop, pid)
    return st


def worker() -> _Worker | None:
    """The calling thread's worker state, None outside workers."""
    p = _worker_process()
    return None if p is None else _state_of(p)


def _drop(pid: int) -> None:
    with _states_lock:
        st = _states.pop(pid, None)
        _pending.pop(pid, None)
    if st is not None:
        st.release()


def _on_start(child, target, args, kwargs) -> None:
    p = _worker_process()
    if p is None:  # started by the app: the state is made at first use
        _pending[child.pid] = _app_streams()
        return
    st = _inherit(_state_of(p))  # private descriptors are duplicated now, as by fork
    with _states_lock:
        _states[child.pid] = st


def _on_exit(proc) -> None:
    """In the worker's thread: its private descriptors close now; its streams stay
    for threads it leaves behind, until its process object is collected."""
    pid = proc.pid
    with _states_lock:
        st = _states.get(pid)
        if st is None:  # never used: nothing to release
            _pending.pop(pid, None)
            return
    st.release()
    weakref.finalize(proc, _drop, pid)


def _flush_at_exit(proc) -> None:
    """Called by a worker's exit (``_core._bootstrap``) where stdlib's child
    flushes ``sys.stdout`` and ``sys.stderr``: flush the worker's, without making
    its state if it never used its streams (they are then the app's ones captured
    at ``start()``). Errors are ignored, as stdlib's child ignores them."""
    if not _installed:
        streams: Any = (getattr(sys, "stdout", None), getattr(sys, "stderr", None))
    else:
        st = _states.get(proc.pid)
        if st is not None:
            streams = (st.streams["stdout"], st.streams["stderr"])
        else:
            streams = _pending.get(proc.pid) or _app_streams()
            streams = streams[1:]
    for s in streams:
        if s is not None and s is not _MISSING:
            try:
                s.flush()
            except Exception:
                pass


# --- sys.__class__ ----------------------------------------------------------------


def _stream_property(name: str) -> property:
    missing = f"module 'sys' has no attribute '{name}'"

    # Globals bound as defaults: faster, and still there late in interpreter shutdown.
    def fget(module, _wp=_worker_process, _d=_sysdict, _R=_Router, _M=_MISSING):
        p = _wp()
        if p is None:
            v = _d.get(name, _M)  # _app_get(name), inlined: the hot path
            if type(v) is _R:
                v = v._ios_mp_app
        else:
            v = _state_of(p).streams[name]
        if v is _M:
            raise AttributeError(missing)
        return v

    def fset(module, value):
        p = _worker_process()
        if p is None:
            _app_set(name, value)
            return
        st = _state_of(p)
        if type(value) is _Router:  # what mock.patch restores: the worker's own again
            value = st.initial[name]
        st.streams[name] = value

    def fdel(module):
        p = _worker_process()
        if p is None:
            if _app_get(name) is _MISSING:
                raise AttributeError(missing)
            _app_set(name, _MISSING)
            return
        st = _state_of(p)
        if st.streams[name] is _MISSING:
            raise AttributeError(missing)
        st.streams[name] = _MISSING

    return property(fget, fset, fdel, f"sys.{name}: the calling worker's own, else the app's")


class _SysModule(types.ModuleType):
    """``sys`` while ios_mp is installed: per-worker ``stdin``/``stdout``/``stderr``."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        # importlib makes every new module with ``type(sys)(name)``: those must stay
        # plain modules (else a module's own global ``stdout`` would read as sys's).
        module = types.ModuleType.__new__(types.ModuleType, *args, **kwargs)
        types.ModuleType.__init__(module, *args, **kwargs)
        return module

    stdin = _stream_property("stdin")
    stdout = _stream_property("stdout")
    stderr = _stream_property("stderr")


def is_installed() -> bool:
    return _installed


def install() -> None:
    global _installed, _saved_class
    if _installed:
        return
    for name in NAMES:
        v = _sysdict.get(name, _MISSING)
        if type(v) is not _Router:
            _sysdict[name] = _Router(name, v)
    _saved_class = sys.__class__
    sys.__class__ = _SysModule
    process._start_hooks.append(_on_start)
    process._exit_hooks.append(_on_exit)
    _installed = True


def uninstall() -> None:
    global _installed
    if not _installed:
        return
    for hooks, hook in ((process._start_hooks, _on_start), (process._exit_hooks, _on_exit)):
        while hook in hooks:
            hooks.remove(hook)
    if type(sys) is _SysModule:
        sys.__class__ = _saved_class
    for name in NAMES:
        v = _sysdict.get(name, _MISSING)
        if type(v) is _Router:
            if v._ios_mp_app is _MISSING:
                del _sysdict[name]
            else:
                _sysdict[name] = v._ios_mp_app
    _installed = False
