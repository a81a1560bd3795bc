"""``multiprocessing.connection``: ``Pipe``, ``wait``, ``Listener``/``Client``.

As in stdlib on Unix, every Connection is file-descriptor backed: ``Pipe()`` is
a ``socket.socketpair()`` (``os.pipe()`` when ``duplex=False``), ``Listener``/
``Client`` connections are sockets, ``fileno()`` is an int for ``select``,
``Connection(fd)`` wraps a descriptor, connections pickle (``DupFd``, as stdlib)
and ``reduction.send_handle``/``recv_handle`` work over a duplex Pipe. The wire
format is stdlib's (4-byte big-endian length, -1 and an 8-byte length over
2 GiB), so either end may be a stdlib Connection.

Differences from stdlib: descriptors are per process, as after ``fork``. A
Connection object is shared by reference between ios_mp processes (threads),
but each process has its own descriptor for it: a child gets an ``os.dup`` of
its parent's for every Connection reachable from its ``target``, ``args``,
``kwargs`` and attributes when it starts (what spawn would pickle for it), a
process that first uses a Connection it was not given gets a dup then, and a
process's descriptors are closed when it exits. ``close()``, ``closed`` and
``fileno()`` are about the calling process's descriptor. So the usual idioms
work as with fork: a parent closing its copy of the child's end after
``start()``, the peer seeing ``EOFError`` only once every copy is closed.

Blocking calls release the GIL and wake for Ctrl-C in the main thread (the
``EINTR`` of ``poll``/``select``/``read``). In a worker a read or write first
waits for its descriptor (``_wait_fd``, in Rust), a wait that
``terminate()``/``kill()`` of the worker end within its 20 ms polls; ``wait()`` selects on
every descriptor at once, in slices of ``_SLICE`` seconds in a worker (so that
terminate ends it within a slice); queue ``_reader`` objects (not descriptors
in ios_mp) are polled in 5 ms slices.
"""

from __future__ import annotations

import functools
import hmac as _hmac
import io as _io
import os as _os
import selectors
import socket as _socket
import struct as _struct
import sys as _sys
import tempfile as _tempfile
import threading
import time
import types
import weakref

from . import _core, process
from . import util as _util
from .context import AuthenticationError, BufferTooShort
from .reduction import ForkingPickler as _ForkingPickler

__all__ = [
    "AuthenticationError",
    "BufferTooShort",
    "Client",
    "Connection",
    "Listener",
    "Pipe",
    "wait",
]

_process_key = _core._process_key  # 0 in the main process, else the worker's vpid
_in_worker = _core._worker_process

# Who holds a descriptor of what. ``_held`` maps a worker's key to the
# Connections it has a descriptor of (the main process never exits, so it is
# not tracked); ``_live`` has every Connection with a descriptor open somewhere.
_lock = threading.Lock()
_held: dict[int, weakref.WeakSet] = {}
_live: weakref.WeakSet = weakref.WeakSet()


def _byte_slice(buf, offset: int, size: int | None) -> memoryview:
    """``buf[offset:offset + size]`` as bytes, checked as stdlib's ``send_bytes`` does."""
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
    return m[offset : offset + size]


# A worker's connection.wait() selects in slices this long: its terminate()/kill()
# is delivered (an asynchronous exception) between two slices.
_SLICE = 0.05

# Wait until a descriptor is readable (writable); False on timeout. With the GIL
# released; ends for Ctrl-C in the main thread, and at once (ProcessTerminated)
# when a worker is terminated: src/py/connection.rs.
_wait_fd = _core._wait_fd


class Connection:
    """A connection over a file descriptor (a socket or a pipe), stdlib's
    ``multiprocessing.connection.Connection``, with per-process descriptors
    (see the module docstring)."""

    def __init__(self, handle: int, readable: bool = True, writable: bool = True) -> None:
        handle = handle.__index__()
        if handle < 0:
            raise ValueError("invalid handle")
        if not readable and not writable:
            raise ValueError("at least one of `readable` and `writable` must be True")
        self._readable = readable
        self._writable = writable
        self._fds: dict[int, int] = {}  # process key -> its descriptor
        self._closed_in: set[int] = set()  # processes that closed theirs
        with _lock:
            self._hold_locked(_process_key(), handle)

    # -- descriptors ----------------------------------------------------------
    def _hold_locked(self, key: int, fd: int) -> None:
        self._fds[key] = fd
        if key:
            _held.setdefault(key, weakref.WeakSet()).add(self)
        _live.add(self)

    def _drop_locked(self, key: int) -> int | None:
        fd = self._fds.pop(key, None)
        ends = _held.get(key)
        if ends is not None:
            ends.discard(self)
        if not self._fds:
            _live.discard(self)
        return fd

    @property
    def _handle(self) -> int | None:
        """The calling process's descriptor (a dup on its first use), or None."""
        key = _process_key()
        fd = self._fds.get(key)
        if fd is not None or key in self._closed_in:
            return fd
        with _lock:
            fd = self._fds.get(key)
            if fd is None and key not in self._closed_in and self._fds:
                fd = _os.dup(next(iter(self._fds.values())))
                self._hold_locked(key, fd)
            return fd

    @_handle.setter
    def _handle(self, fd: int | None) -> None:
        """Replace (None: forget, without closing) the calling process's descriptor."""
        key = _process_key()
        with _lock:
            if fd is None:
                self._closed_in.add(key)
                self._drop_locked(key)
            else:
                self._closed_in.discard(key)
                self._hold_locked(key, fd)

    def _check_closed(self) -> None:
        if self._handle is None:
            raise OSError("handle is closed")

    def _check_readable(self) -> None:
        if not self._readable:
            raise OSError("connection is write-only")

    def _check_writable(self) -> None:
        if not self._writable:
            raise OSError("connection is read-only")

    def _bad_message_length(self):
        if self._writable:
            self._readable = False
        else:
            self.close()
        raise OSError("bad message length")

    @property
    def closed(self) -> bool:
        key = _process_key()
        return key in self._closed_in or (key not in self._fds and not self._fds)

    @property
    def readable(self) -> bool:
        return self._readable

    @property
    def writable(self) -> bool:
        return self._writable

    def fileno(self) -> int:
        """The calling process's descriptor."""
        fd = self._handle
        if fd is None:
            raise OSError("handle is closed")
        return fd

    def close(self) -> None:
        """Close the calling process's descriptor."""
        key = _process_key()
        with _lock:
            self._closed_in.add(key)
            fd = self._drop_locked(key)
        if fd is not None:
            _os.close(fd)

    def __del__(self) -> None:
        # Unreachable from every process: close every descriptor left.
        try:
            fds = list(self._fds.values())
            self._fds.clear()
            for fd in fds:
                _os.close(fd)
        except Exception:
            pass

    def __reduce__(self):
        # stdlib's reduce_connection: the receiver gets its own descriptor.
        from .reduction import DupFd

        fd = self.fileno()
        return rebuild_connection, (DupFd(fd), self._readable, self._writable)

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        # A child's snapshot of its args shares the object (its own descriptor
        # comes from _inherit_handles), as fork shares the descriptor's file.
        return self

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, exc_tb) -> None:
        self.close()

    # -- framing (stdlib's) ---------------------------------------------------
    def send_bytes(self, buf, offset: int = 0, size: int | None = None) -> None:
        self._check_closed()
        self._check_writable()
        self._send_bytes(_byte_slice(buf, offset, size))

    def send(self, obj) -> None:
        self._check_closed()
        self._check_writable()
        self._send_bytes(_ForkingPickler.dumps(obj))

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        self._check_closed()
        self._check_readable()
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        buf = self._recv_bytes(maxlength)
        if buf is None:
            self._bad_message_length()
        return buf.getvalue()

    def recv_bytes_into(self, buf, offset: int = 0) -> int:
        self._check_closed()
        self._check_readable()
        with memoryview(buf) as m:
            itemsize = m.itemsize
            bytesize = itemsize * len(m)
            if offset < 0:
                raise ValueError("negative offset")
            elif offset > bytesize:
                raise ValueError("offset too large")
            result = self._recv_bytes()
            size = result.tell()
            if bytesize < offset + size:
                raise BufferTooShort(result.getvalue())
            result.seek(0)
            result.readinto(m[offset // itemsize : (offset + size) // itemsize])
            return size

    def recv(self):
        self._check_closed()
        self._check_readable()
        buf = self._recv_bytes()
        return _ForkingPickler.loads(buf.getbuffer())

    def poll(self, timeout: float | None = 0.0) -> bool:
        self._check_closed()
        self._check_readable()
        return _wait_fd(self._handle, False, timeout)

    def _send(self, buf, write=_os.write) -> None:
        handle = self._handle
        worker = _in_worker() is not None
        remaining = len(buf)
        while True:
            if worker:  # a blocking write could not be interrupted
                _wait_fd(handle, True, None)
            n = write(handle, buf)
            remaining -= n
            if remaining == 0:
                break
            buf = buf[n:]

    def _recv(self, size: int, read=_os.read):
        buf = _io.BytesIO()
        handle = self._handle
        worker = _in_worker() is not None
        remaining = size
        while remaining > 0:
            if worker:  # a blocking read could not be interrupted
                _wait_fd(handle, False, None)
            chunk = read(handle, remaining)
            n = len(chunk)
            if n == 0:
                if remaining == size:
                    raise EOFError
                raise OSError("got end of file during message")
            buf.write(chunk)
            remaining -= n
        return buf

    def _send_bytes(self, buf) -> None:
        n = len(buf)
        if n > 0x7FFFFFFF:
            self._send(_struct.pack("!i", -1))
            self._send(_struct.pack("!Q", n))
            self._send(buf)
        else:
            header = _struct.pack("!i", n)
            if n > 16384:
                self._send(header)
                self._send(buf)
            else:
                self._send(header + bytes(buf))

    def _recv_bytes(self, maxsize: int | None = None):
        buf = self._recv(4)
        (size,) = _struct.unpack("!i", buf.getvalue())
        if size == -1:
            buf = self._recv(8)
            (size,) = _struct.unpack("!Q", buf.getvalue())
        if maxsize is not None and size > maxsize:
            return None
        return self._recv(size)


# What Listener.accept() and Client() return (stdlib calls it Connection too).
SocketConnection = Connection


def rebuild_connection(df, readable: bool, writable: bool) -> Connection:
    return Connection(df.detach(), readable, writable)


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
    """``child`` is starting: it gets a dup of its parent's descriptor of each
    Connection passed to it (reachable from what spawn would pickle for it)."""
    if not _live:
        return
    conns = _reachable_connections([target, args, kwargs, vars(child)])
    if not conns:
        return
    parent, key = _process_key(), child.pid
    with _lock:
        for c in conns:
            fd = c._fds.get(parent)
            if fd is not None and key not in c._fds:
                c._hold_locked(key, _os.dup(fd))


def _close_handles(proc) -> None:
    """``proc`` is exiting: its descriptors are closed, as a process's are."""
    key = proc.pid
    with _lock:
        ends = _held.pop(key, None)
        if not ends:
            return
        fds = [c._drop_locked(key) for c in list(ends)]
    for fd in fds:
        if fd is not None:
            try:
                _os.close(fd)
            except OSError:
                pass


process._start_hooks.append(_inherit_handles)
process._exit_hooks.append(_close_handles)


_NOSIGPIPE = getattr(_socket, "SO_NOSIGPIPE", None)  # Darwin, iOS


def _no_sigpipe(s) -> None:
    """A write to a socket whose peer is gone raises BrokenPipeError instead of
    raising SIGPIPE: an iOS app may leave SIGPIPE at its default (fatal)."""
    if _NOSIGPIPE is not None:
        s.setsockopt(_socket.SOL_SOCKET, _NOSIGPIPE, 1)


def Pipe(duplex: bool = True) -> tuple[Connection, Connection]:
    """stdlib's Unix ``Pipe``: a ``socketpair`` if ``duplex``, else an ``os.pipe``
    (the first Connection reads, the second writes). Where sockets have
    ``SO_NOSIGPIPE`` (Darwin, iOS) a simplex Pipe is a socketpair too, each end
    shut down in the direction it does not use, so that no write raises SIGPIPE."""
    if duplex or _NOSIGPIPE is not None:
        s1, s2 = _socket.socketpair()
        for s in (s1, s2):
            s.setblocking(True)
            _no_sigpipe(s)
        if duplex:
            return Connection(s1.detach()), Connection(s2.detach())
        s1.shutdown(_socket.SHUT_WR)
        s2.shutdown(_socket.SHUT_RD)
        return Connection(s1.detach(), writable=False), Connection(s2.detach(), readable=False)
    fd1, fd2 = _os.pipe()
    return Connection(fd1, writable=False), Connection(fd2, readable=False)


def wait(object_list, timeout: float | None = None) -> list:
    """Wait until one or more of ``object_list`` is ready (stdlib semantics).

    Connections, process sentinels and anything with ``fileno()`` are selected
    on at once; queue ``_reader`` objects (no descriptor in ios_mp) are polled
    in 5 ms slices when present. In a worker the select is sliced (``_SLICE``)
    so that terminate()/kill() ends the wait."""
    deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
    polled = [o for o in object_list if getattr(o, "_ios_mp_pollable", False)]
    others = [o for o in object_list if not getattr(o, "_ios_mp_pollable", False)]
    worker = _in_worker() is not None
    with selectors.DefaultSelector() as sel:
        for o in others:
            sel.register(o, selectors.EVENT_READ)
        while True:
            ready = [o for o in polled if o.poll(0)]
            slice_ = 0.005 if polled else (_SLICE if worker else None)
            if deadline is not None:
                left = max(0.0, deadline - time.monotonic())
                slice_ = left if slice_ is None else min(slice_, left)
            if others:
                # Every ready object, as stdlib returns (not only the first).
                fired = [key.fileobj for key, _ in sel.select(0 if ready else slice_)]
                if fired and not ready:
                    # What a process put before it ended is ready with its sentinel.
                    ready = [o for o in polled if o.poll(0)]
                ready += fired
            elif not ready and slice_:
                time.sleep(slice_)
            if ready or (deadline is not None and time.monotonic() >= deadline):
                return ready
            if not polled and not others and deadline is None:
                return []


# =============================================================================
# Listener / Client: connections over real sockets (AF_INET, AF_UNIX).
#
# Adapted from stdlib multiprocessing.connection (SocketListener, SocketClient,
# deliver_challenge/answer_challenge), with stdlib's wire format; a stdlib
# Listener/Client of any version can talk to these. Difference from stdlib:
# AF_PIPE (Windows named pipes) is not supported.
# =============================================================================

BUFSIZE = 8192
CONNECTION_TIMEOUT = 20.0

default_family = "AF_INET"
families = ["AF_INET"]
if hasattr(_socket, "AF_UNIX"):
    default_family = "AF_UNIX"
    families += ["AF_UNIX"]


def arbitrary_address(family: str):
    """An arbitrary free address for ``family`` ('AF_INET' or 'AF_UNIX')."""
    if family == "AF_INET":
        return ("localhost", 0)
    if family == "AF_UNIX":
        return _tempfile.mktemp(prefix="listener-", dir=_util.get_temp_dir())
    if family == "AF_PIPE":
        raise ValueError("family 'AF_PIPE' (Windows named pipes) is not supported by ios_mp")
    raise ValueError("unrecognized family")


def _validate_family(family) -> None:
    if family == "AF_PIPE":
        raise ValueError("Family %s is not recognized." % family)
    if family not in families:
        raise ValueError("Family %s is not recognized." % family)


def address_type(address) -> str:
    """'AF_INET' for a tuple, 'AF_UNIX' for a path, 'AF_PIPE' for ``\\\\.\\pipe\\...``."""
    if type(address) is tuple:
        return "AF_INET"
    if type(address) is str and address.startswith("\\\\"):
        return "AF_PIPE"
    if type(address) is str or _util.is_abstract_socket_namespace(address):
        return "AF_UNIX"
    raise ValueError("address type of %r unrecognized" % (address,))


class Listener:
    """A bound, listening socket (stdlib's ``Listener``; no AF_PIPE)."""

    def __init__(self, address=None, family=None, backlog: int = 1, authkey=None) -> None:
        family = family or (address and address_type(address)) or default_family
        _validate_family(family)
        address = address or arbitrary_address(family)
        if authkey is not None and not isinstance(authkey, bytes):
            raise TypeError("authkey should be a byte string")
        self._listener = _SocketListener(address, family, backlog)
        self._authkey = authkey

    def accept(self) -> SocketConnection:
        if self._listener is None:
            raise OSError("listener is closed")
        c = self._listener.accept()
        # 3.13+ challenges with an empty authkey too (bpo-43952), older ones do not
        if self._authkey if _sys.version_info < (3, 13) else self._authkey is not None:
            deliver_challenge(c, self._authkey)
            answer_challenge(c, self._authkey)
        return c

    def close(self) -> None:
        listener = self._listener
        if listener is not None:
            self._listener = None
            listener.close()

    @property
    def address(self):
        return self._listener._address

    @property
    def last_accepted(self):
        return self._listener._last_accepted

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, exc_tb) -> None:
        self.close()


def Client(address, family=None, authkey=None) -> SocketConnection:
    """A connection to the ``Listener`` at ``address`` (stdlib's ``Client``)."""
    family = family or address_type(address)
    _validate_family(family)
    if authkey is not None and not isinstance(authkey, bytes):
        raise TypeError("authkey should be a byte string")
    c = _socket_client(address)
    if authkey is not None:
        answer_challenge(c, authkey)
        deliver_challenge(c, authkey)
    return c


class _SocketListener:
    def __init__(self, address, family: str, backlog: int = 1) -> None:
        self._socket = _socket.socket(getattr(_socket, family))
        try:
            if _os.name == "posix":
                self._socket.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            self._socket.setblocking(True)
            self._socket.bind(address)
            self._socket.listen(backlog)
            self._address = self._socket.getsockname()
        except OSError:
            self._socket.close()
            raise
        self._family = family
        self._last_accepted = None
        if family == "AF_UNIX" and not _util.is_abstract_socket_namespace(address):
            self._unlink = _util.Finalize(self, _os.unlink, args=(address,), exitpriority=0)
        else:
            self._unlink = None

    def accept(self) -> SocketConnection:
        s, self._last_accepted = self._socket.accept()
        s.setblocking(True)
        _no_sigpipe(s)
        return SocketConnection(s.detach())

    def close(self) -> None:
        try:
            self._socket.close()
        finally:
            unlink = self._unlink
            if unlink is not None:
                self._unlink = None
                unlink()


def _socket_client(address) -> SocketConnection:
    family = address_type(address)
    with _socket.socket(getattr(_socket, family)) as s:
        s.setblocking(True)
        _no_sigpipe(s)
        s.connect(address)
        return SocketConnection(s.detach())


# -- authentication (stdlib's HMAC challenge/response) ---------------------------
#
# Python 3.12+ servers send b'{sha256}' + 40 random bytes and accept any
# allowed digest (or a legacy 16-byte HMAC-MD5) back; older ones send 20
# random bytes and expect HMAC-MD5. deliver_challenge() sends what the running
# version's stdlib sends; answer_challenge() understands both, as 3.12's does.

MESSAGE_LENGTH = 40 if _sys.version_info >= (3, 12) else 20
_CHALLENGE = b"#CHALLENGE#"
_WELCOME = b"#WELCOME#"
_FAILURE = b"#FAILURE#"
if _sys.version_info < (3, 12):  # their public names before 3.12
    CHALLENGE, WELCOME, FAILURE = _CHALLENGE, _WELCOME, _FAILURE
_ALLOWED_DIGESTS = frozenset({b"md5", b"sha256", b"sha384", b"sha3_256", b"sha3_384"})
_MAX_DIGEST_LEN = max(len(_) for _ in _ALLOWED_DIGESTS)
_MD5ONLY_MESSAGE_LENGTH = 20
_MD5_DIGEST_LEN = 16
_LEGACY_LENGTHS = (_MD5ONLY_MESSAGE_LENGTH, _MD5_DIGEST_LEN)


def _get_digest_name_and_payload(message: bytes) -> tuple[str, bytes]:
    if len(message) in _LEGACY_LENGTHS:
        return "", message
    if message.startswith(b"{"):
        curly = message.find(b"}", 1, _MAX_DIGEST_LEN + 2)
        if curly > 0:
            digest = message[1:curly]
            if digest in _ALLOWED_DIGESTS:
                return digest.decode("ascii"), message[curly + 1 :]
    raise AuthenticationError(
        "unsupported message length, missing digest prefix, "
        f"or unsupported digest: message={message!r}"
    )


def _create_response(authkey: bytes, message: bytes) -> bytes:
    digest_name = _get_digest_name_and_payload(message)[0]
    if not digest_name:
        try:
            return _hmac.new(authkey, message, "md5").digest()
        except ValueError:  # no MD5 (FIPS): answer with sha256 as 3.12 does
            digest_name = "sha256"
    response = _hmac.new(authkey, message, digest_name).digest()
    return b"{%s}%s" % (digest_name.encode("ascii"), response)


def _verify_challenge(authkey: bytes, message: bytes, response: bytes) -> None:
    response_digest, response_mac = _get_digest_name_and_payload(response)
    response_digest = response_digest or "md5"
    try:
        expected = _hmac.new(authkey, message, response_digest).digest()
    except ValueError:
        raise AuthenticationError(f"response_digest={response_digest!r} unsupported") from None
    if len(expected) != len(response_mac):
        raise AuthenticationError(
            f"expected {response_digest!r} of length {len(expected)} got {len(response_mac)}"
        )
    if not _hmac.compare_digest(expected, response_mac):
        raise AuthenticationError("digest received was wrong")


def deliver_challenge(connection, authkey: bytes, digest_name: str = "sha256") -> None:
    """Challenge the peer to prove it knows ``authkey`` (the serving side)."""
    if not isinstance(authkey, bytes):
        raise ValueError(f"Authkey must be bytes, not {type(authkey)}")
    if _sys.version_info >= (3, 12):
        assert MESSAGE_LENGTH > _MD5ONLY_MESSAGE_LENGTH, "protocol constraint"
        message = _os.urandom(MESSAGE_LENGTH)
        message = b"{%s}%s" % (digest_name.encode("ascii"), message)
    else:  # the legacy HMAC-MD5 protocol of this version's stdlib
        message = _os.urandom(MESSAGE_LENGTH)
    connection.send_bytes(_CHALLENGE + message)
    response = connection.recv_bytes(256)
    try:
        if _sys.version_info >= (3, 12):
            _verify_challenge(authkey, message, response)
        else:
            digest = _hmac.new(authkey, message, "md5").digest()
            if not _hmac.compare_digest(response, digest):
                raise AuthenticationError("digest received was wrong")
    except AuthenticationError:
        connection.send_bytes(_FAILURE)
        raise
    else:
        connection.send_bytes(_WELCOME)


def answer_challenge(connection, authkey: bytes) -> None:
    """Answer the peer's challenge with ``authkey`` (the connecting side)."""
    if not isinstance(authkey, bytes):
        raise ValueError(f"Authkey must be bytes, not {type(authkey)}")
    message = connection.recv_bytes(256)
    if not message.startswith(_CHALLENGE):
        raise AuthenticationError(f"Protocol error, expected challenge: message={message!r}")
    message = message[len(_CHALLENGE) :]
    if len(message) < _MD5ONLY_MESSAGE_LENGTH:
        raise AuthenticationError(f"challenge too short: {len(message)} bytes")
    digest = _create_response(authkey, message)
    connection.send_bytes(digest)
    response = connection.recv_bytes(256)
    if response != _WELCOME:
        raise AuthenticationError("digest sent was rejected")


# -- the xmlrpclib serializer of managers ------------------------------------------


class ConnectionWrapper:
    def __init__(self, conn, dumps, loads) -> None:
        self._conn = conn
        self._dumps = dumps
        self._loads = loads
        for attr in ("fileno", "close", "poll", "recv_bytes", "send_bytes"):
            setattr(self, attr, getattr(conn, attr))

    def send(self, obj) -> None:
        self._conn.send_bytes(self._dumps(obj))

    def recv(self):
        return self._loads(self._conn.recv_bytes())


def _xml_dumps(obj) -> bytes:
    import xmlrpc.client

    return xmlrpc.client.dumps((obj,), None, None, None, 1).encode("utf-8")


def _xml_loads(s: bytes):
    import xmlrpc.client

    (obj,), _method = xmlrpc.client.loads(s.decode("utf-8"))
    return obj


class XmlListener(Listener):
    def accept(self):
        return ConnectionWrapper(Listener.accept(self), _xml_dumps, _xml_loads)


def XmlClient(*args, **kwds):
    return ConnectionWrapper(Client(*args, **kwds), _xml_dumps, _xml_loads)
