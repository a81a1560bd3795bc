"""``multiprocessing.connection``: ``Pipe`` between threads, and ``wait``.

This is a first, pure-Python version over ios_mp's native queues: ``Pipe()``
returns two ``Connection`` objects with stdlib's ``send``/``recv``/``*_bytes``/
``poll``/``close`` behaviour. ``wait()`` accepts Connections, process sentinels
and anything with a ``fileno()``. ``fileno()`` of a Pipe Connection raises
``OSError`` (there is no descriptor). ``Listener``/``Client`` are stdlib's,
over real sockets (see the section at the end of this module).

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
from .context import AuthenticationError, BufferTooShort

__all__ = [
    "AuthenticationError",
    "BufferTooShort",
    "Client",
    "Connection",
    "Listener",
    "Pipe",
    "wait",
]

_EOF = object()  # marker put when every handle of the sending end is closed
_ids = itertools.count(1)
_process_key = _core._process_key  # 0 in the main process, else the worker's vpid

# Who holds a handle to what. ``_held`` maps a worker's key to the Connections
# it holds (the main process never exits, so it is not tracked); ``_live`` has
# every Connection with a handle open somewhere.
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
        m = _byte_slice(buf, offset, size)
        self._check_peer_reads()
        self._outbox._put(bytes(m))

    def send(self, obj) -> None:
        self._check_closed()
        self._check_writable()
        if _ForkingPickler._extra_reducers:  # reduction.register()ed types, as stdlib
            data = bytes(_ForkingPickler.dumps(obj, pickle.HIGHEST_PROTOCOL))
        else:
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
    ``select``; Connections (and queues' ``_reader``) are polled in short slices
    (a later version waits on them natively).
    """
    deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
    conns = [
        o for o in object_list if isinstance(o, Connection) or getattr(o, "_ios_mp_pollable", False)
    ]
    others = [o for o in object_list if o not in conns]
    with selectors.DefaultSelector() as sel:
        for o in others:
            sel.register(o, selectors.EVENT_READ)
        while True:
            ready = [c for c in conns if c.poll(0)]
            slice_ = 0.005 if conns else None
            if deadline is not None:
                left = max(0.0, deadline - time.monotonic())
                slice_ = left if slice_ is None else min(slice_, left)
            if others:
                # Every ready object, as stdlib returns (not only the Connections).
                fired = [key.fileobj for key, _ in sel.select(0 if ready else slice_)]
                if fired and not ready:
                    # As with pipes, what a process sent before it ended is ready
                    # with its sentinel (ProcessPoolExecutor relies on it).
                    ready = [c for c in conns if c.poll(0)]
                ready += fired
            elif not ready and slice_:
                time.sleep(slice_)
            if ready or (deadline is not None and time.monotonic() >= deadline):
                return ready
            if not conns and not others and deadline is None:
                return []


# =============================================================================
# Listener / Client: connections over real sockets (AF_INET, AF_UNIX).
#
# Adapted from stdlib multiprocessing.connection (SocketListener, SocketClient,
# the fd-backed Connection, deliver_challenge/answer_challenge), with stdlib's
# wire format: a 4-byte big-endian length (-1 then an 8-byte length for
# messages over 2 GiB), then the bytes; objects are pickled with
# ForkingPickler. A stdlib Listener/Client of any version can talk to these.
# Differences from stdlib: AF_PIPE (Windows named pipes) is not supported; a
# read blocked on a socket connection is not interrupted by terminate() of the
# process (ios_mp thread) that waits in it -- close the connection or send it
# something instead.
# =============================================================================

import hmac as _hmac  # noqa: E402
import io as _io  # noqa: E402
import os as _os  # noqa: E402
import socket as _socket  # noqa: E402
import struct as _struct  # noqa: E402
import sys as _sys  # noqa: E402
import tempfile as _tempfile  # noqa: E402

from . import util as _util  # noqa: E402
from .reduction import ForkingPickler as _ForkingPickler  # noqa: E402

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


class _SocketConnectionBase:
    """stdlib's ``_ConnectionBase``: message framing over ``_send``/``_recv``."""

    _handle = None

    def __init__(self, handle: int, readable: bool = True, writable: bool = True) -> None:
        handle = handle.__index__()
        if handle < 0:
            raise ValueError("invalid handle")
        if not readable and not writable:
            raise ValueError("at least one of `readable` and `writable` must be True")
        self._handle = handle
        self._readable = readable
        self._writable = writable

    def __del__(self) -> None:
        if self._handle is not None:
            self._close()

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
        return self._handle is None

    @property
    def readable(self) -> bool:
        return self._readable

    @property
    def writable(self) -> bool:
        return self._writable

    def fileno(self) -> int:
        self._check_closed()
        return self._handle

    def close(self) -> None:
        if self._handle is not None:
            try:
                self._close()
            finally:
                self._handle = None

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
        return self._poll(timeout)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, exc_tb) -> None:
        self.close()


class SocketConnection(_SocketConnectionBase):
    """A connection over a socket (or any file descriptor): what stdlib's
    ``Listener.accept()`` and ``Client()`` return on Unix (stdlib calls the class
    ``Connection``; ios_mp's ``Connection`` is the one of ``Pipe()``)."""

    def _close(self, _close=_os.close) -> None:
        _close(self._handle)

    def _send(self, buf, write=_os.write) -> None:
        remaining = len(buf)
        while True:
            n = write(self._handle, buf)
            remaining -= n
            if remaining == 0:
                break
            buf = buf[n:]

    def _recv(self, size: int, read=_os.read):
        buf = _io.BytesIO()
        handle = self._handle
        remaining = size
        while remaining > 0:
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
            pre_header = _struct.pack("!i", -1)
            header = _struct.pack("!Q", n)
            self._send(pre_header)
            self._send(header)
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

    def _poll(self, timeout) -> bool:
        return bool(wait([self], timeout))

    def __reduce__(self):
        raise TypeError(
            "ios_mp socket connections cannot be pickled; pass the object itself "
            "to a child process (they share the app's descriptors)"
        )


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
