"""``multiprocessing.reduction``: the pickler used for copies.

``ForkingPickler`` is a ``pickle.Pickler`` with a per-class reducer registry, as
in stdlib. Passing file descriptors or sockets between processes
works as stdlib's on Unix: ``send_handle``/``recv_handle`` pass a descriptor
over a duplex ``Pipe`` (a socketpair, ``SCM_RIGHTS``), and ``DupFd(fd)``, with
which Connections and sockets pickle, is an ``os.dup`` of ``fd`` (the receiver
is in the same app, so no ``resource_sharer`` server is needed).
"""

from __future__ import annotations

import array
import copyreg
import io
import os
import pickle
import socket

from . import _core

__all__ = ["DupFd", "ForkingPickler", "dump", "recv_handle", "register", "send_handle"]

HAVE_SEND_HANDLE = True
ACKNOWLEDGE = False


class ForkingPickler(pickle.Pickler):
    """Pickler supporting extra reducers registered with ``register``."""

    _extra_reducers: dict = {}
    _copyreg_dispatch_table = copyreg.dispatch_table

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.dispatch_table = self._copyreg_dispatch_table.copy()
        self.dispatch_table.update(self._extra_reducers)

    @classmethod
    def register(cls, type, reduce) -> None:
        cls._extra_reducers[type] = reduce
        _core._reducers_changed()  # queues' cached picklers rebuild their table

    @classmethod
    def dumps(cls, obj, protocol=None):
        buf = io.BytesIO()
        cls(buf, protocol).dump(obj)
        return buf.getbuffer()

    loads = pickle.loads


register = ForkingPickler.register


def dump(obj, file, protocol=None) -> None:
    ForkingPickler(file, protocol).dump(obj)


def sendfds(sock, fds) -> None:
    """Send the descriptors ``fds`` over the AF_UNIX socket ``sock``."""
    fds = array.array("i", fds)
    msg = bytes([len(fds) % 256])
    sock.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])


def recvfds(sock, size: int) -> list:
    """Receive ``size`` descriptors sent with ``sendfds`` over ``sock``."""
    a = array.array("i")
    bytes_size = a.itemsize * size
    msg, ancdata, _flags, _addr = sock.recvmsg(1, socket.CMSG_SPACE(bytes_size))
    if not msg and not ancdata:
        raise EOFError
    try:
        if len(ancdata) != 1:
            raise RuntimeError("received %d items of ancdata" % len(ancdata))
        cmsg_level, cmsg_type, cmsg_data = ancdata[0]
        if cmsg_level == socket.SOL_SOCKET and cmsg_type == socket.SCM_RIGHTS:
            if len(cmsg_data) % a.itemsize != 0:
                raise ValueError
            a.frombytes(cmsg_data)
            if len(a) % 256 != msg[0]:
                raise AssertionError(f"Len is {len(a):n} but msg[0] is {msg[0]!r}")
            return list(a)
    except (ValueError, IndexError):
        pass
    raise RuntimeError("Invalid data received")


def send_handle(conn, handle: int, destination_pid) -> None:
    """Send the descriptor ``handle`` over the duplex Connection ``conn``."""
    with socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as s:
        sendfds(s, [handle])


def recv_handle(conn) -> int:
    """Receive a descriptor sent with ``send_handle`` (a new descriptor)."""
    from .connection import _wait_fd

    fd = conn.fileno()
    _wait_fd(fd, False, None)  # interruptible in a worker
    with socket.fromfd(fd, socket.AF_UNIX, socket.SOCK_STREAM) as s:
        return recvfds(s, 1)[0]


class _DupFd:
    """A duplicate of a descriptor, taken when pickled; ``detach()`` hands it over.

    Pickling hands the duplicate over to the pickle (as stdlib's
    ``resource_sharer`` keeps it until fetched): if that pickle is never loaded,
    the descriptor stays open."""

    def __init__(self, fd: int | None, dup: bool = True) -> None:
        self._fd = os.dup(fd) if dup else fd

    def detach(self) -> int:
        fd, self._fd = self._fd, None
        if fd is None:
            raise ValueError("already detached")
        return fd

    def __reduce__(self):
        return _DupFd, (self.detach(), False)

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass


def DupFd(fd: int) -> _DupFd:
    """Return a wrapper for a duplicate of ``fd`` (stdlib name)."""
    return _DupFd(fd)


def _reduce_socket(s):
    df = DupFd(s.fileno())
    return _rebuild_socket, (df, s.family, s.type, s.proto)


def _rebuild_socket(df, family, type, proto):
    return socket.socket(family, type, proto, fileno=df.detach())


register(socket.socket, _reduce_socket)
