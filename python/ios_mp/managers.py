"""``multiprocessing.managers``: stdlib's managers, served inside the app.

This is stdlib's ``managers`` module (proxies, ``Server``, ``BaseManager``,
``SyncManager``, ``SharedMemoryManager``) with the same protocol and semantics:
every proxied call sends its arguments to the server and gets the result back
as a pickle round trip (a mutated argument is not seen by the manager, a
result is a copy), refcounts follow proxy lifetime (incref/decref), exceptions
raised by the managed object re-raise in the caller (``#ERROR``) and server
failures raise ``RemoteError`` (``#TRACEBACK``). What differs:

* ``start()`` runs the server on a thread of the app (``manager._process`` is
  that thread, with ``is_alive``/``join``/``exitcode``/``terminate``): no OS
  process and no ios_mp worker, so ``Manager()`` works under the iOS sandbox and
  does not show in ``active_children()``. ``initializer(*initargs)`` runs on
  that thread, with the arguments themselves (not copies), and SIGINT is not
  ignored there (Python runs signal handlers in the main thread only). The
  server serves each client connection on its own thread, as stdlib's does,
  so a proxy blocked in ``Queue.get()`` does not block the others.
* With no ``address`` (the default), the manager listens on an in-app
  address (``'ios_mp-local:...'``) reached through in-memory connections: no
  socket is opened. The authkey handshake still runs over them.
* With an ``address`` (``('127.0.0.1', 0)``, a Unix socket path), the server
  listens on that socket with ``connection.Listener`` and stdlib's protocol: a
  stdlib manager (of the same Python version) can ``connect()`` to it, and
  ``connect()`` here can reach a stdlib manager's server.
* ``shutdown()`` stops the server thread and closes every client connection
  (each serving thread ends); proxies then raise as stdlib's do once the
  server process is gone. A serving thread blocked inside a managed object's
  method (e.g. ``Queue.get()`` with no timeout) ends when that call returns.
* ``Server.serve_forever()`` returns when the server is shut down (stdlib's
  calls ``sys.exit(0)``, which would end the calling thread here).
* The "inside the server" test of ``RebuildProxy`` (a proxy unpickled by the
  server is not increfed again) is per server thread, not per process.
"""

from __future__ import annotations

__all__ = ["BaseManager", "BaseProxy", "SyncManager", "Token"]

#
# Imports
#

import array
import collections
import errno
import itertools
import os
import queue
import signal
import socket
import sys
import threading
import time
import types
from os import getpid
from traceback import format_exc

from . import connection, pool, process, reduction, util
from .context import ProcessError, _default_context, get_spawning_popen

get_context = _default_context.get_context
HAS_SHMEM = True  # ios_mp.shared_memory is imported when a segment is made
__all__.append("SharedMemoryManager")

#
# Register some things for pickling
#


def reduce_array(a):
    return array.array, (a.typecode, a.tobytes())


reduction.register(array.array, reduce_array)

view_types = [type(getattr({}, name)()) for name in ("items", "keys", "values")]


def rebuild_as_list(obj):
    return list, (list(obj),)


for view_type in view_types:
    reduction.register(view_type, rebuild_as_list)
del view_type, view_types

#
# Type for identifying shared objects
#


class Token:
    """
    Type to uniquely identify a shared object
    """

    __slots__ = ("address", "id", "typeid")

    def __init__(self, typeid, address, id):
        (self.typeid, self.address, self.id) = (typeid, address, id)

    def __getstate__(self):
        return (self.typeid, self.address, self.id)

    def __setstate__(self, state):
        (self.typeid, self.address, self.id) = state

    def __repr__(self):
        return "%s(typeid=%r, address=%r, id=%r)" % (
            self.__class__.__name__,
            self.typeid,
            self.address,
            self.id,
        )


#
# Function for communication with a manager's server process
#


def dispatch(c, id, methodname, args=(), kwds=None):
    """
    Send a message to manager using connection `c` and return response
    """
    if kwds is None:
        kwds = {}
    c.send((id, methodname, args, kwds))
    kind, result = c.recv()
    if kind == "#RETURN":
        return result
    try:
        raise convert_to_error(kind, result)
    finally:
        del result  # break reference cycle (as stdlib 3.13)


def convert_to_error(kind, result):
    if kind == "#ERROR":
        return result
    elif kind in ("#TRACEBACK", "#UNSERIALIZABLE"):
        if not isinstance(result, str):
            raise TypeError(f"Result {result!r} (kind '{kind}') type is {type(result)}, not str")
        if kind == "#UNSERIALIZABLE":
            return RemoteError("Unserializable message: %s\n" % result)
        else:
            return RemoteError(result)
    else:
        return ValueError(f"Unrecognized message type {kind!r}")


class RemoteError(Exception):
    def __str__(self):
        return "\n" + "-" * 75 + "\n" + str(self.args[0]) + "-" * 75


#
# Functions for finding the method names of an object
#


def all_methods(obj):
    """
    Return a list of names of methods of `obj`
    """
    temp = []
    for name in dir(obj):
        func = getattr(obj, name)
        if callable(func):
            temp.append(name)
    return temp


def public_methods(obj):
    """
    Return a list of names of methods of `obj` which do not start with '_'
    """
    return [name for name in all_methods(obj) if name[0] != "_"]


#
# Server which is run in a process controlled by a manager
#


class Server:
    """
    Server class which runs in a process controlled by a manager object
    """

    public = [
        "shutdown",
        "create",
        "accept_connection",
        "get_methods",
        "debug_info",
        "number_of_objects",
        "dummy",
        "incref",
        "decref",
    ]

    def __init__(self, registry, address, authkey, serializer):
        if not isinstance(authkey, bytes):
            raise TypeError(f"Authkey {authkey!r} is type {type(authkey)!s}, not bytes")
        self.registry = registry
        self.authkey = process.AuthenticationString(authkey)
        Listener, _Client = listener_client[serializer]

        # do authentication later
        self.listener = Listener(address=address, backlog=16)
        self.address = self.listener.address
        if isinstance(self.listener, _LocalListener):
            self.listener.server = self  # for _local_server()

        self.id_to_obj = {"0": (None, ())}
        self.id_to_refcount = {}
        self.id_to_local_proxy_obj = {}
        # ios_mp: reentrant, for a decref run by the garbage collector in a
        # thread that holds it (see BaseProxy._decref).
        self.mutex = threading.RLock()
        self._conns = set()  # ios_mp: accepted connections, closed at shutdown
        self.stop_event = threading.Event()

    def serve_forever(self):
        """
        Run the server forever
        """
        self.stop_event = threading.Event()
        _in_server.server = self
        try:
            accepter = threading.Thread(target=self.accepter, name="ios_mp-manager-accepter")
            accepter.daemon = True
            accepter.start()
            self._accepter = accepter
            try:
                while not self.stop_event.is_set():
                    self.stop_event.wait(1)
            except (KeyboardInterrupt, SystemExit):
                pass
        finally:
            self._stop_serving()

    def _stop_serving(self):
        # ios_mp: what the exit of stdlib's server process does -- stop
        # accepting, end every serving thread, drop the managed objects.
        self.stop_event.set()
        listener, self.listener = self.listener, None
        if listener is not None:
            _close_listener(listener)
        with self.mutex:
            conns = list(self._conns)
            self._conns.clear()
        for c in conns:
            _abort_connection(c)
        accepter = getattr(self, "_accepter", None)
        if accepter is not None and accepter is not threading.current_thread():
            accepter.join(5)
        with self.mutex:
            self.id_to_obj.clear()
            self.id_to_obj["0"] = (None, ())
            self.id_to_refcount.clear()
            self.id_to_local_proxy_obj.clear()
        _in_server.server = None

    def accepter(self):
        while not self.stop_event.is_set():
            listener = self.listener
            if listener is None:
                break
            try:
                c = listener.accept()
            except OSError:
                if self.stop_event.is_set() or self.listener is None:
                    break
                continue
            with self.mutex:
                if self.stop_event.is_set():
                    _abort_connection(c)
                    break
                self._conns.add(c)
            t = threading.Thread(
                target=self.handle_request, args=(c,), name="ios_mp-manager-client"
            )
            t.daemon = True
            t.start()

    def _handle_request(self, c):
        request = None
        try:
            connection.deliver_challenge(c, self.authkey)
            connection.answer_challenge(c, self.authkey)
            request = c.recv()
            _ignore, funcname, args, kwds = request
            assert funcname in self.public, "%r unrecognized" % funcname
            func = getattr(self, funcname)
        except Exception:
            msg = ("#TRACEBACK", format_exc())
        else:
            try:
                result = func(c, *args, **kwds)
            except Exception:
                msg = ("#TRACEBACK", format_exc())
            else:
                msg = ("#RETURN", result)

        try:
            c.send(msg)
        except Exception as e:
            try:
                c.send(("#TRACEBACK", format_exc()))
            except Exception:
                pass
            util.info("Failure to send message: %r", msg)
            util.info(" ... request was %r", request)
            util.info(" ... exception was %r", e)

    def handle_request(self, conn):
        """
        Handle a new connection
        """
        _in_server.server = self
        try:
            self._handle_request(conn)
        except SystemExit:
            # Server.serve_client() calls sys.exit(0) on EOF
            pass
        except OSError:  # ios_mp: the connection was closed at shutdown
            pass
        finally:
            with self.mutex:
                self._conns.discard(conn)
            conn.close()

    def serve_client(self, conn):
        """
        Handle requests from the proxies in a particular process/thread
        """
        util.debug("starting server thread to service %r", threading.current_thread().name)

        recv = conn.recv
        send = conn.send
        id_to_obj = self.id_to_obj

        while not self.stop_event.is_set():
            try:
                methodname = obj = None
                request = recv()
                ident, methodname, args, kwds = request
                try:
                    obj, exposed, gettypeid = id_to_obj[ident]
                except KeyError as ke:
                    try:
                        obj, exposed, gettypeid = self.id_to_local_proxy_obj[ident]
                    except KeyError:
                        raise ke from None

                if methodname not in exposed:
                    raise AttributeError(
                        "method %r of %r object is not in exposed=%r"
                        % (methodname, type(obj), exposed)
                    )

                function = getattr(obj, methodname)

                try:
                    res = function(*args, **kwds)
                except Exception as e:
                    msg = ("#ERROR", e)
                else:
                    typeid = gettypeid and gettypeid.get(methodname, None)
                    if typeid:
                        rident, rexposed = self.create(conn, typeid, res)
                        token = Token(typeid, self.address, rident)
                        msg = ("#PROXY", (rexposed, token))
                    else:
                        msg = ("#RETURN", res)

            except AttributeError:
                if methodname is None:
                    msg = ("#TRACEBACK", format_exc())
                else:
                    try:
                        fallback_func = self.fallback_mapping[methodname]
                        result = fallback_func(self, conn, ident, obj, *args, **kwds)
                        msg = ("#RETURN", result)
                    except Exception:
                        msg = ("#TRACEBACK", format_exc())

            except EOFError:
                util.debug("got EOF -- exiting thread serving %r", threading.current_thread().name)
                sys.exit(0)

            except Exception:
                msg = ("#TRACEBACK", format_exc())

            try:
                try:
                    send(msg)
                except Exception:
                    send(("#UNSERIALIZABLE", format_exc()))
            except Exception as e:
                util.info("exception in thread serving %r", threading.current_thread().name)
                util.info(" ... message was %r", msg)
                util.info(" ... exception was %r", e)
                conn.close()
                sys.exit(1)
            # ios_mp: the server is a thread of the app, so what it still
            # references until the next request (arguments, result, an error)
            # would stay alive in the app, not in another process.
            request = args = kwds = obj = function = res = msg = None

    def fallback_getvalue(self, conn, ident, obj):
        return obj

    def fallback_str(self, conn, ident, obj):
        return str(obj)

    def fallback_repr(self, conn, ident, obj):
        return repr(obj)

    fallback_mapping = {
        "__str__": fallback_str,
        "__repr__": fallback_repr,
        "#GETVALUE": fallback_getvalue,
    }

    def dummy(self, c):
        pass

    def debug_info(self, c):
        """
        Return some info --- useful to spot problems with refcounting
        """
        # Perhaps include debug info about 'c'?
        with self.mutex:
            result = []
            keys = list(self.id_to_refcount.keys())
            keys.sort()
            for ident in keys:
                if ident != "0":
                    result.append(
                        "  %s:       refcount=%s\n    %s"
                        % (ident, self.id_to_refcount[ident], str(self.id_to_obj[ident][0])[:75])
                    )
            return "\n".join(result)

    def number_of_objects(self, c):
        """
        Number of shared objects
        """
        # Doesn't use (len(self.id_to_obj) - 1) as we shouldn't count ident='0'
        return len(self.id_to_refcount)

    def shutdown(self, c):
        """
        Shutdown this process
        """
        try:
            util.debug("manager received shutdown message")
            c.send(("#RETURN", None))
        except:  # noqa: E722 (as stdlib)
            import traceback

            traceback.print_exc()
        finally:
            self.stop_event.set()

    def create(self, c, typeid, /, *args, **kwds):
        """
        Create a new shared object and return its id
        """
        with self.mutex:
            callable, exposed, method_to_typeid, _proxytype = self.registry[typeid]

            if callable is None:
                if kwds or (len(args) != 1):
                    raise ValueError("Without callable, must have one non-keyword argument")
                obj = args[0]
            else:
                obj = callable(*args, **kwds)

            if exposed is None:
                exposed = public_methods(obj)
            if method_to_typeid is not None:
                if not isinstance(method_to_typeid, dict):
                    raise TypeError(
                        f"Method_to_typeid {method_to_typeid!r}: "
                        f"type {type(method_to_typeid)!s}, not dict"
                    )
                exposed = list(exposed) + list(method_to_typeid)

            ident = "%x" % id(obj)  # convert to string because xmlrpclib
            # only has 32 bit signed integers
            util.debug("%r callable returned object with id %r", typeid, ident)

            self.id_to_obj[ident] = (obj, set(exposed), method_to_typeid)
            if ident not in self.id_to_refcount:
                self.id_to_refcount[ident] = 0

        self.incref(c, ident)
        return ident, tuple(exposed)

    def get_methods(self, c, token):
        """
        Return the methods of the shared object indicated by token
        """
        return tuple(self.id_to_obj[token.id][1])

    def accept_connection(self, c, name):
        """
        Spawn a new thread to serve this connection
        """
        threading.current_thread().name = name
        c.send(("#RETURN", None))
        self.serve_client(c)

    def incref(self, c, ident):
        with self.mutex:
            try:
                self.id_to_refcount[ident] += 1
            except KeyError as ke:
                # If no external references exist but an internal (to the
                # manager) still does and a new external reference is created
                # from it, restore the manager's tracking of it from the
                # previously stashed internal ref.
                if ident in self.id_to_local_proxy_obj:
                    self.id_to_refcount[ident] = 1
                    self.id_to_obj[ident] = self.id_to_local_proxy_obj[ident]
                    _obj, _exposed, _gettypeid = self.id_to_obj[ident]
                    util.debug("Server re-enabled tracking & INCREF %r", ident)
                else:
                    raise ke

    def decref(self, c, ident):
        if ident not in self.id_to_refcount and ident in self.id_to_local_proxy_obj:
            util.debug("Server DECREF skipping %r", ident)
            return

        with self.mutex:
            if self.id_to_refcount[ident] <= 0:
                raise AssertionError(
                    f"Id {ident!s} ({self.id_to_obj[ident]!r}) has refcount "
                    f"{self.id_to_refcount[ident]:n}, not 1+"
                )
            self.id_to_refcount[ident] -= 1
            if self.id_to_refcount[ident] == 0:
                del self.id_to_refcount[ident]

        if ident not in self.id_to_refcount:
            # Two-step process in case the object turns out to contain other
            # proxy objects (e.g. a managed list of managed lists).
            # Otherwise, deleting self.id_to_obj[ident] would trigger the
            # deleting of the stored value (another managed object) which would
            # in turn attempt to acquire the mutex that is already held here.
            self.id_to_obj[ident] = (None, (), None)  # thread-safe
            util.debug("disposing of obj with id %r", ident)
            with self.mutex:
                del self.id_to_obj[ident]


#
# Class to represent state of a manager
#


class State:
    __slots__ = ["value"]
    value: int
    INITIAL = 0
    STARTED = 1
    SHUTDOWN = 2


#
# Mapping from serializer name to Listener and Client types
#


#
# ios_mp: in-app transport (no sockets) for managers with no address
#

_in_server = threading.local()  # .server: the Server this thread serves for

_LOCAL_PREFIX = "ios_mp-local:"
_local_listeners = {}
_local_lock = threading.Lock()
_local_ids = itertools.count(1)


def _is_local(address):
    return type(address) is str and address.startswith(_LOCAL_PREFIX)


class _LocalChannel:
    """The messages (bytes) of one direction of an in-memory connection."""

    def __init__(self):
        self.cond = threading.Condition(threading.Lock())
        self.items = collections.deque()
        self.closed = False  # no more messages (writer closed) or reader gone


class _LocalConnection:
    """One end of an in-memory duplex connection, with the API of a socket
    Connection: messages are pickled with ForkingPickler (so every proxied call
    copies its arguments and result, as across a socket)."""

    def __init__(self, inbox, outbox):
        self._inbox = inbox
        self._outbox = outbox
        self._closed = False

    closed = property(lambda self: self._closed)
    readable = writable = property(lambda self: True)

    def _check_closed(self):
        if self._closed:
            raise OSError("handle is closed")

    def fileno(self):
        self._check_closed()
        raise OSError("in-app manager connections have no file descriptor")

    def send_bytes(self, buf, offset=0, size=None):
        self._check_closed()
        data = bytes(memoryview(buf).cast("B")[offset : None if size is None else offset + size])
        out = self._outbox
        with out.cond:
            if out.closed:
                raise BrokenPipeError(errno.EPIPE, "Broken pipe")
            out.items.append(data)
            out.cond.notify()

    def send(self, obj):
        self._check_closed()
        self.send_bytes(reduction.ForkingPickler.dumps(obj))

    def _take(self, timeout=None, peek=False):
        inbox = self._inbox
        with inbox.cond:
            if timeout is None:
                while not inbox.items and not inbox.closed:
                    inbox.cond.wait()
            elif not inbox.items and not inbox.closed:
                inbox.cond.wait_for(lambda: inbox.items or inbox.closed, timeout)
            if peek:
                return bool(inbox.items or inbox.closed)
            if inbox.items:
                return inbox.items.popleft()
            raise EOFError

    def recv_bytes(self, maxlength=None):
        self._check_closed()
        data = self._take()
        if maxlength is not None and len(data) > maxlength:
            self.close()
            raise OSError("bad message length")
        return data

    def recv(self):
        self._check_closed()
        return reduction.ForkingPickler.loads(self._take())

    def poll(self, timeout=0.0):
        self._check_closed()
        return self._take(timeout, peek=True)

    def close(self):
        if self._closed:
            return
        self._closed = True
        for chan in (self._outbox, self._inbox):
            with chan.cond:
                chan.closed = True
                chan.cond.notify_all()

    def _abort(self):
        # Wake a thread blocked in recv() on this end with EOFError.
        for chan in (self._outbox, self._inbox):
            with chan.cond:
                chan.closed = True
                chan.items.clear()
                chan.cond.notify_all()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __reduce__(self):
        raise TypeError("in-app manager connections cannot be pickled")


class _LocalListener:
    """A listener at an in-app address: ``accept()`` returns the server end of
    each ``_local_client()`` connection made to it."""

    def __init__(self, address=None, family=None, backlog=1, authkey=None):
        if address is None:
            address = "%s%d:%d" % (_LOCAL_PREFIX, os.getpid(), next(_local_ids))
        if authkey is not None and not isinstance(authkey, bytes):
            raise TypeError("authkey should be a byte string")
        self._address = address
        self._authkey = authkey
        self._pending = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self._closed = False
        self.last_accepted = None
        with _local_lock:
            if address in _local_listeners:
                raise OSError(errno.EADDRINUSE, "Address already in use", address)
            _local_listeners[address] = self

    address = property(lambda self: self._address)

    def _connect(self):
        a, b = _LocalChannel(), _LocalChannel()
        client, server = _LocalConnection(a, b), _LocalConnection(b, a)
        with self._cond:
            if self._closed:
                raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
            self._pending.append(server)
            self._cond.notify()
        return client

    def accept(self):
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if self._closed:
                raise OSError("listener is closed")
            c = self._pending.popleft()
        self.last_accepted = self._address
        if self._authkey:
            connection.deliver_challenge(c, self._authkey)
            connection.answer_challenge(c, self._authkey)
        return c

    def close(self):
        with _local_lock:
            if _local_listeners.get(self._address) is self:
                del _local_listeners[self._address]
        with self._cond:
            self._closed = True
            pending, self._pending = list(self._pending), collections.deque()
            self._cond.notify_all()
        for c in pending:
            c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _local_client(address, family=None, authkey=None):
    if authkey is not None and not isinstance(authkey, bytes):
        raise TypeError("authkey should be a byte string")
    with _local_lock:
        listener = _local_listeners.get(address)
    if listener is None:
        raise ConnectionRefusedError(
            errno.ECONNREFUSED, "Connection refused (no manager serves at %r)" % (address,)
        )
    c = listener._connect()
    if authkey is not None:
        connection.answer_challenge(c, authkey)
        connection.deliver_challenge(c, authkey)
    return c


def _local_server(address):
    """The Server of the in-app ``address``, if one serves there (no lock taken:
    this runs in garbage-collector callbacks)."""
    if not _is_local(address):
        return None
    return getattr(_local_listeners.get(address), "server", None)


def _Listener(address=None, family=None, backlog=1, authkey=None):
    """An in-app listener with no address, else a socket ``connection.Listener``."""
    if address is None or _is_local(address):
        return _LocalListener(address, family, backlog, authkey)
    return connection.Listener(address, family, backlog, authkey)


def _Client(address, family=None, authkey=None):
    if _is_local(address):
        return _local_client(address, family, authkey)
    return connection.Client(address, family, authkey)


def _XmlListener(*args, **kwds):
    listener = _Listener(*args, **kwds)
    accept = listener.accept
    listener.accept = lambda: connection.ConnectionWrapper(
        accept(), connection._xml_dumps, connection._xml_loads
    )
    return listener


def _XmlClient(*args, **kwds):
    return connection.ConnectionWrapper(
        _Client(*args, **kwds), connection._xml_dumps, connection._xml_loads
    )


def _close_listener(listener):
    sock_listener = getattr(listener, "_listener", None)
    sock = getattr(sock_listener, "_socket", None)
    if sock is not None:
        try:  # wakes a thread blocked in accept() (close() alone does not)
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    listener.close()


def _abort_connection(c):
    c = getattr(c, "_conn", c)  # a ConnectionWrapper (xmlrpclib)
    if isinstance(c, _LocalConnection):
        c._abort()
        return
    try:  # EOF to a thread blocked reading the socket; it closes the descriptor
        s = socket.socket(fileno=os.dup(c.fileno()))
    except (OSError, ValueError):
        return
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        s.close()


def _shared_memory():
    from . import shared_memory

    return shared_memory


listener_client = {"pickle": (_Listener, _Client), "xmlrpclib": (_XmlListener, _XmlClient)}

_server_ids = itertools.count(1)


# The server threads' virtual pids, from the top of the vpid range down (the
# core gives workers vpids from VPID_BASE up), so os.kill() can reach them.
_server_vpids = itertools.count(2**31 - 1, -1)
# Signals whose default action is not to end a process.
_HARMLESS = {
    getattr(signal, n) for n in ("SIGCHLD", "SIGCONT", "SIGURG", "SIGWINCH") if hasattr(signal, n)
}


class _ServerThread(threading.Thread):
    """The thread a started manager's server runs on, with the part of the
    Process API ``BaseManager`` uses (``exitcode``, ``terminate``, ``kill``) and a
    virtual ``pid`` (from the top of the range) that ``os.kill`` delivers to:
    SIGINT is ignored, as stdlib's server process ignores it (bpo-36368), and a
    signal that would end a process stops the server."""

    _parent_pid = None  # not an ios_mp child of anyone (walked by ansible's kill_all)

    def __init__(self, *args, **kwds):
        super().__init__(*args, **kwds)
        self.daemon = True
        self.server = None
        self.pid = None

    def start(self):
        self.pid = next(_server_vpids)
        process._by_vpid[self.pid] = self
        super().start()

    def _ios_mp_signal(self, sig):
        """``os.kill(self.pid, sig)`` (see ``_virtual._deliver``)."""
        if sig == signal.SIGINT or sig in _HARMLESS:
            return
        self.terminate()

    @property
    def exitcode(self):
        return None if self.is_alive() or self.ident is None else 0

    def terminate(self):
        server = self.server
        if server is not None:
            server._stop_serving()

    kill = terminate


#
# Definition of BaseManager
#


class BaseManager:
    """
    Base class for managers
    """

    _registry = {}
    _Server = Server

    def __init__(
        self, address=None, authkey=None, serializer="pickle", ctx=None, *, shutdown_timeout=1.0
    ):
        if authkey is None:
            authkey = process.current_process().authkey
        self._address = address  # XXX not final address if eg ('', 0)
        self._authkey = process.AuthenticationString(authkey)
        self._state = State()
        self._state.value = State.INITIAL
        self._serializer = serializer
        self._Listener, self._Client = listener_client[serializer]
        self._ctx = ctx or get_context()
        self._shutdown_timeout = shutdown_timeout

    def get_server(self):
        """
        Return server object with serve_forever() method and address attribute
        """
        if self._state.value != State.INITIAL:
            if self._state.value == State.STARTED:
                raise ProcessError("Already started server")
            elif self._state.value == State.SHUTDOWN:
                raise ProcessError("Manager has shut down")
            else:
                raise ProcessError(f"Unknown state {self._state.value!r}")
        return Server(self._registry, self._address, self._authkey, self._serializer)

    def connect(self):
        """
        Connect manager object to the server process
        """
        _Listener, Client = listener_client[self._serializer]
        conn = Client(self._address, authkey=self._authkey)
        dispatch(conn, None, "dummy")
        self._state.value = State.STARTED

    def start(self, initializer=None, initargs=()):
        """
        Spawn a server process for this manager object
        """
        if self._state.value != State.INITIAL:
            if self._state.value == State.STARTED:
                raise ProcessError("Already started server")
            elif self._state.value == State.SHUTDOWN:
                raise ProcessError("Manager has shut down")
            else:
                raise ProcessError(f"Unknown state {self._state.value!r}")

        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")

        # ios_mp: the server runs on a thread of the app (not an ios_mp
        # process, which would count as a live worker for as long as the
        # manager lives); it reports its address, or why it failed, here.
        reply = queue.SimpleQueue()
        self._process = _ServerThread(
            target=type(self)._run_server,
            args=(
                self._registry,
                self._address,
                self._authkey,
                self._serializer,
                reply,
                initializer,
                initargs,
            ),
            name=type(self).__name__ + "-" + str(next(_server_ids)),
        )
        self._process.start()

        # get address of server
        ok, result = reply.get()
        if not ok:
            self._process.join()
            raise result
        self._address = result

        # register a finalizer
        self._state.value = State.STARTED
        self.shutdown = util.Finalize(
            self,
            type(self)._finalize_manager,
            args=(
                self._process,
                self._address,
                self._authkey,
                self._state,
                self._Client,
                self._shutdown_timeout,
            ),
            exitpriority=0,
        )

    @classmethod
    def _run_server(
        cls, registry, address, authkey, serializer, writer, initializer=None, initargs=()
    ):
        """
        Create a server, report its address and run it
        """
        # ios_mp: no signal.signal(SIGINT, SIG_IGN) (bpo-36368): the server is a
        # thread of the app, where Python only runs handlers in the main thread.
        try:
            if initializer is not None:
                initializer(*initargs)

            # create server
            server = cls._Server(registry, address, authkey, serializer)
        except BaseException as exc:
            writer.put((False, exc))
            return
        threading.current_thread().server = server

        # inform parent process of the server's address
        writer.put((True, server.address))

        # run the manager
        util.info("manager serving at %r", server.address)
        server.serve_forever()

    def _create(self, typeid, /, *args, **kwds):
        """
        Create a new shared object; return the token and exposed tuple
        """
        assert self._state.value == State.STARTED, "server not yet started"
        conn = self._Client(self._address, authkey=self._authkey)
        try:
            id, exposed = dispatch(conn, None, "create", (typeid, *args), kwds)
        finally:
            conn.close()
        return Token(typeid, self._address, id), exposed

    def join(self, timeout=None):
        """
        Join the manager process (if it has been spawned)
        """
        if self._process is not None:
            self._process.join(timeout)
            if not self._process.is_alive():
                self._process = None

    def _debug_info(self):
        """
        Return some info about the servers shared objects and connections
        """
        conn = self._Client(self._address, authkey=self._authkey)
        try:
            return dispatch(conn, None, "debug_info")
        finally:
            conn.close()

    def _number_of_objects(self):
        """
        Return the number of shared objects
        """
        conn = self._Client(self._address, authkey=self._authkey)
        try:
            return dispatch(conn, None, "number_of_objects")
        finally:
            conn.close()

    def __enter__(self):
        if self._state.value == State.INITIAL:
            self.start()
        if self._state.value != State.STARTED:
            if self._state.value == State.INITIAL:
                raise ProcessError("Unable to start server")
            elif self._state.value == State.SHUTDOWN:
                raise ProcessError("Manager has shut down")
            else:
                raise ProcessError(f"Unknown state {self._state.value!r}")
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.shutdown()

    @staticmethod
    def _finalize_manager(process, address, authkey, state, _Client, shutdown_timeout):
        """
        Shutdown the manager process; will be registered as a finalizer
        """
        if process.is_alive():
            util.info("sending shutdown message to manager")
            try:
                conn = _Client(address, authkey=authkey)
                try:
                    dispatch(conn, None, "shutdown")
                finally:
                    conn.close()
            except Exception:
                pass

            process.join(timeout=shutdown_timeout)
            if process.is_alive():
                util.info("manager still alive")
                if hasattr(process, "terminate"):
                    util.info("trying to `terminate()` manager process")
                    process.terminate()
                    process.join(timeout=shutdown_timeout)
                    if process.is_alive():
                        util.info("manager still alive after terminate")
                        process.kill()
                        process.join()

        state.value = State.SHUTDOWN
        try:
            del BaseProxy._address_to_local[address]
        except KeyError:
            pass

    @property
    def address(self):
        return self._address

    @classmethod
    def register(
        cls,
        typeid,
        callable=None,
        proxytype=None,
        exposed=None,
        method_to_typeid=None,
        create_method=True,
    ):
        """
        Register a typeid with the manager type
        """
        if "_registry" not in cls.__dict__:
            cls._registry = cls._registry.copy()

        if proxytype is None:
            proxytype = AutoProxy

        exposed = exposed or getattr(proxytype, "_exposed_", None)

        method_to_typeid = method_to_typeid or getattr(proxytype, "_method_to_typeid_", None)

        if method_to_typeid:
            for key, value in list(method_to_typeid.items()):  # isinstance?
                assert type(key) is str, "%r is not a string" % key
                assert type(value) is str, "%r is not a string" % value

        cls._registry[typeid] = (callable, exposed, method_to_typeid, proxytype)

        if create_method:

            def temp(self, /, *args, **kwds):
                util.debug("requesting creation of a shared %r object", typeid)
                token, exp = self._create(typeid, *args, **kwds)
                proxy = proxytype(
                    token, self._serializer, manager=self, authkey=self._authkey, exposed=exp
                )
                conn = self._Client(token.address, authkey=self._authkey)
                dispatch(conn, None, "decref", (token.id,))
                return proxy

            temp.__name__ = typeid
            setattr(cls, typeid, temp)


#
# Subclass of set which get cleared after a fork
#


class ProcessLocalSet(set):
    def __init__(self):
        util.register_after_fork(self, lambda obj: obj.clear())

    def __reduce__(self):
        return type(self), ()


#
# Definition of BaseProxy
#


class BaseProxy:
    """
    A base for proxies of shared objects
    """

    _address_to_local = {}
    _mutex = util.ForkAwareThreadLock()
    # ios_mp: a child process shares a proxy passed to it (the fork-like
    # snapshot would otherwise deepcopy it, i.e. fetch a copy of the referent).
    __ios_mp_share__ = True

    def __init__(
        self,
        token,
        serializer,
        manager=None,
        authkey=None,
        exposed=None,
        incref=True,
        manager_owned=False,
    ):
        with BaseProxy._mutex:
            tls_idset = BaseProxy._address_to_local.get(token.address, None)
            if tls_idset is None:
                tls_idset = util.ForkAwareLocal(), ProcessLocalSet()
                BaseProxy._address_to_local[token.address] = tls_idset

        # self._tls is used to record the connection used by this
        # thread to communicate with the manager at token.address
        self._tls = tls_idset[0]

        # self._idset is used to record the identities of all shared
        # objects for which the current process owns references and
        # which are in the manager at token.address
        self._idset = tls_idset[1]

        self._token = token
        self._id = self._token.id
        self._manager = manager
        self._serializer = serializer
        self._Client = listener_client[serializer][1]

        # Should be set to True only when a proxy object is being created
        # on the manager server; primary use case: nested proxy objects.
        # RebuildProxy detects when a proxy is being created on the manager
        # and sets this value appropriately.
        self._owned_by_manager = manager_owned

        if authkey is not None:
            self._authkey = process.AuthenticationString(authkey)
        elif self._manager is not None:
            self._authkey = self._manager._authkey
        else:
            self._authkey = process.current_process().authkey

        if incref:
            self._incref()

        util.register_after_fork(self, BaseProxy._after_fork)

    def _connect(self):
        util.debug("making connection to manager")
        name = process.current_process().name
        if threading.current_thread().name != "MainThread":
            name += "|" + threading.current_thread().name
        conn = self._Client(self._token.address, authkey=self._authkey)
        dispatch(conn, None, "accept_connection", (name,))
        self._tls.connection = conn

    def _callmethod(self, methodname, args=(), kwds=None):
        """
        Try to call a method of the referent and return a copy of the result
        """
        if kwds is None:
            kwds = {}
        try:
            conn = self._tls.connection
        except AttributeError:
            util.debug("thread %r does not own a connection", threading.current_thread().name)
            self._connect()
            conn = self._tls.connection

        conn.send((self._id, methodname, args, kwds))
        kind, result = conn.recv()

        if kind == "#RETURN":
            return result
        elif kind == "#PROXY":
            exposed, token = result
            proxytype = self._manager._registry[token.typeid][-1]
            token.address = self._token.address
            proxy = proxytype(
                token,
                self._serializer,
                manager=self._manager,
                authkey=self._authkey,
                exposed=exposed,
            )
            conn = self._Client(token.address, authkey=self._authkey)
            dispatch(conn, None, "decref", (token.id,))
            return proxy
        try:
            raise convert_to_error(kind, result)
        finally:
            del result  # break reference cycle (as stdlib 3.13)

    def _getvalue(self):
        """
        Get a copy of the value of the referent
        """
        return self._callmethod("#GETVALUE")

    def _incref(self):
        if self._owned_by_manager:
            util.debug("owned_by_manager skipped INCREF of %r", self._token.id)
            return

        conn = self._Client(self._token.address, authkey=self._authkey)
        dispatch(conn, None, "incref", (self._id,))
        util.debug("INCREF %r", self._token.id)

        self._idset.add(self._id)

        state = self._manager and self._manager._state

        self._close = util.Finalize(
            self,
            BaseProxy._decref,
            args=(self._token, self._authkey, state, self._tls, self._idset, self._Client),
            exitpriority=10,
        )

    @staticmethod
    def _decref(token, authkey, state, tls, idset, _Client):
        idset.discard(token.id)

        # check whether manager is still alive
        if state is None or state.value == State.STARTED:
            # tell manager this process no longer cares about referent
            try:
                util.debug("DECREF %r", token.id)
                server = _local_server(token.address)
                if server is not None:
                    # ios_mp: an in-app server is told directly. This runs when
                    # the garbage collector frees a proxy, which can be in any
                    # thread, the server's own included: waiting there for a
                    # server thread to accept a connection could deadlock.
                    server.decref(None, token.id)
                else:
                    conn = _Client(token.address, authkey=authkey)
                    dispatch(conn, None, "decref", (token.id,))
            except Exception as e:
                util.debug("... decref failed %s", e)

        else:
            util.debug("DECREF %r -- manager already shutdown", token.id)

        # check whether we can close this thread's connection because
        # the process owns no more references to objects for this manager
        if not idset and hasattr(tls, "connection"):
            util.debug(
                "thread %r has no more proxies so closing conn", threading.current_thread().name
            )
            tls.connection.close()
            del tls.connection

    def _after_fork(self):
        self._manager = None
        try:
            self._incref()
        except Exception as e:
            # the proxy may just be for a manager which has shutdown
            util.info("incref failed: %s" % e)

    def __reduce__(self):
        kwds = {}
        if get_spawning_popen() is not None:
            kwds["authkey"] = self._authkey

        if getattr(self, "_isauto", False):
            kwds["exposed"] = self._exposed_
            return (RebuildProxy, (AutoProxy, self._token, self._serializer, kwds))
        else:
            return (RebuildProxy, (type(self), self._token, self._serializer, kwds))

    def __deepcopy__(self, memo):
        return self._getvalue()

    def __repr__(self):
        return "<%s object, typeid %r at %#x>" % (type(self).__name__, self._token.typeid, id(self))

    def __str__(self):
        """
        Return representation of the referent (or a fall-back if that fails)
        """
        try:
            return self._callmethod("__repr__")
        except Exception:
            return repr(self)[:-1] + "; '__str__()' failed>"


#
# Function used for unpickling
#


def RebuildProxy(func, token, serializer, kwds):
    """
    Function used for unpickling proxy objects.
    """
    server = getattr(_in_server, "server", None)
    if server and server.address == token.address:
        util.debug("Rebuild a proxy owned by manager, token=%r", token)
        kwds["manager_owned"] = True
        if token.id not in server.id_to_local_proxy_obj:
            server.id_to_local_proxy_obj[token.id] = server.id_to_obj[token.id]
    incref = kwds.pop("incref", True) and not getattr(
        process.current_process(), "_inheriting", False
    )
    return func(token, serializer, incref=incref, **kwds)


#
# Functions to create proxies and proxy types
#


def MakeProxyType(name, exposed, _cache={}):  # noqa: B006 (the cache, as stdlib)
    """
    Return a proxy type whose methods are given by `exposed`
    """
    exposed = tuple(exposed)
    try:
        return _cache[(name, exposed)]
    except KeyError:
        pass

    dic = {}

    for meth in exposed:
        exec(
            """def %s(self, /, *args, **kwds):
        return self._callmethod(%r, args, kwds)"""
            % (meth, meth),
            dic,
        )

    ProxyType = type(name, (BaseProxy,), dic)
    ProxyType._exposed_ = exposed
    _cache[(name, exposed)] = ProxyType
    return ProxyType


def AutoProxy(
    token, serializer, manager=None, authkey=None, exposed=None, incref=True, manager_owned=False
):
    """
    Return an auto-proxy for `token`
    """
    _Client = listener_client[serializer][1]

    if exposed is None:
        conn = _Client(token.address, authkey=authkey)
        try:
            exposed = dispatch(conn, None, "get_methods", (token,))
        finally:
            conn.close()

    if authkey is None and manager is not None:
        authkey = manager._authkey
    if authkey is None:
        authkey = process.current_process().authkey

    ProxyType = MakeProxyType("AutoProxy[%s]" % token.typeid, exposed)
    proxy = ProxyType(
        token,
        serializer,
        manager=manager,
        authkey=authkey,
        incref=incref,
        manager_owned=manager_owned,
    )
    proxy._isauto = True
    return proxy


#
# Types/callables which we will register with SyncManager
#


class Namespace:
    def __init__(self, /, **kwds):
        self.__dict__.update(kwds)

    def __repr__(self):
        items = list(self.__dict__.items())
        temp = []
        for name, value in items:
            if not name.startswith("_"):
                temp.append("%s=%r" % (name, value))
        temp.sort()
        return "%s(%s)" % (self.__class__.__name__, ", ".join(temp))


class Value:
    def __init__(self, typecode, value, lock=True):
        self._typecode = typecode
        self._value = value

    def get(self):
        return self._value

    def set(self, value):
        self._value = value

    def __repr__(self):
        return "%s(%r, %r)" % (type(self).__name__, self._typecode, self._value)

    value = property(get, set)


def Array(typecode, sequence, lock=True):
    return array.array(typecode, sequence)


#
# Proxy types used by SyncManager
#


class IteratorProxy(BaseProxy):
    _exposed_ = ("__next__", "send", "throw", "close")

    def __iter__(self):
        return self

    def __next__(self, *args):
        return self._callmethod("__next__", args)

    def send(self, *args):
        return self._callmethod("send", args)

    def throw(self, *args):
        return self._callmethod("throw", args)

    def close(self, *args):
        return self._callmethod("close", args)


class AcquirerProxy(BaseProxy):
    _exposed_ = ("acquire", "release")

    def acquire(self, blocking=True, timeout=None):
        args = (blocking,) if timeout is None else (blocking, timeout)
        return self._callmethod("acquire", args)

    def release(self):
        return self._callmethod("release")

    def __enter__(self):
        return self._callmethod("acquire")

    def __exit__(self, exc_type, exc_val, exc_tb):
        return self._callmethod("release")


class ConditionProxy(AcquirerProxy):
    _exposed_ = ("acquire", "release", "wait", "notify", "notify_all")

    def wait(self, timeout=None):
        return self._callmethod("wait", (timeout,))

    def notify(self, n=1):
        return self._callmethod("notify", (n,))

    def notify_all(self):
        return self._callmethod("notify_all")

    def wait_for(self, predicate, timeout=None):
        result = predicate()
        if result:
            return result
        if timeout is not None:
            endtime = time.monotonic() + timeout
        else:
            endtime = None
            waittime = None
        while not result:
            if endtime is not None:
                waittime = endtime - time.monotonic()
                if waittime <= 0:
                    break
            self.wait(waittime)
            result = predicate()
        return result


class EventProxy(BaseProxy):
    _exposed_ = ("is_set", "set", "clear", "wait")

    def is_set(self):
        return self._callmethod("is_set")

    def set(self):
        return self._callmethod("set")

    def clear(self):
        return self._callmethod("clear")

    def wait(self, timeout=None):
        return self._callmethod("wait", (timeout,))


class BarrierProxy(BaseProxy):
    _exposed_ = ("__getattribute__", "wait", "abort", "reset")

    def wait(self, timeout=None):
        return self._callmethod("wait", (timeout,))

    def abort(self):
        return self._callmethod("abort")

    def reset(self):
        return self._callmethod("reset")

    @property
    def parties(self):
        return self._callmethod("__getattribute__", ("parties",))

    @property
    def n_waiting(self):
        return self._callmethod("__getattribute__", ("n_waiting",))

    @property
    def broken(self):
        return self._callmethod("__getattribute__", ("broken",))


class NamespaceProxy(BaseProxy):
    _exposed_ = ("__getattribute__", "__setattr__", "__delattr__")

    def __getattr__(self, key):
        if key[0] == "_":
            return object.__getattribute__(self, key)
        callmethod = object.__getattribute__(self, "_callmethod")
        return callmethod("__getattribute__", (key,))

    def __setattr__(self, key, value):
        if key[0] == "_":
            return object.__setattr__(self, key, value)
        callmethod = object.__getattribute__(self, "_callmethod")
        return callmethod("__setattr__", (key, value))

    def __delattr__(self, key):
        if key[0] == "_":
            return object.__delattr__(self, key)
        callmethod = object.__getattribute__(self, "_callmethod")
        return callmethod("__delattr__", (key,))


class ValueProxy(BaseProxy):
    _exposed_ = ("get", "set")

    def get(self):
        return self._callmethod("get")

    def set(self, value):
        return self._callmethod("set", (value,))

    value = property(get, set)

    __class_getitem__ = classmethod(types.GenericAlias)


BaseListProxy = MakeProxyType(
    "BaseListProxy",
    (
        "__add__",
        "__contains__",
        "__delitem__",
        "__getitem__",
        "__len__",
        "__mul__",
        "__reversed__",
        "__rmul__",
        "__setitem__",
        "append",
        "count",
        "extend",
        "index",
        "insert",
        "pop",
        "remove",
        "reverse",
        "sort",
        "__imul__",
    ),
)


class ListProxy(BaseListProxy):
    def __iadd__(self, value):
        self._callmethod("extend", (value,))
        return self

    def __imul__(self, value):
        self._callmethod("__imul__", (value,))
        return self


DictProxy = MakeProxyType(
    "DictProxy",
    (
        "__contains__",
        "__delitem__",
        "__getitem__",
        "__iter__",
        "__len__",
        "__setitem__",
        "clear",
        "copy",
        "get",
        "items",
        "keys",
        "pop",
        "popitem",
        "setdefault",
        "update",
        "values",
    ),
)
DictProxy._method_to_typeid_ = {
    "__iter__": "Iterator",
}


ArrayProxy = MakeProxyType("ArrayProxy", ("__len__", "__getitem__", "__setitem__"))


BasePoolProxy = MakeProxyType(
    "PoolProxy",
    (
        "apply",
        "apply_async",
        "close",
        "imap",
        "imap_unordered",
        "join",
        "map",
        "map_async",
        "starmap",
        "starmap_async",
        "terminate",
    ),
)
BasePoolProxy._method_to_typeid_ = {
    "apply_async": "AsyncResult",
    "map_async": "AsyncResult",
    "starmap_async": "AsyncResult",
    "imap": "Iterator",
    "imap_unordered": "Iterator",
}


class PoolProxy(BasePoolProxy):
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.terminate()


#
# Definition of SyncManager
#


class SyncManager(BaseManager):
    """
    Subclass of `BaseManager` which supports a number of shared object types.

    The types registered are those intended for the synchronization
    of threads, plus `dict`, `list` and `Namespace`.

    The `multiprocessing.Manager()` function creates started instances of
    this class.
    """


SyncManager.register("Queue", queue.Queue)
SyncManager.register("JoinableQueue", queue.Queue)
SyncManager.register("Event", threading.Event, EventProxy)
SyncManager.register("Lock", threading.Lock, AcquirerProxy)
SyncManager.register("RLock", threading.RLock, AcquirerProxy)
SyncManager.register("Semaphore", threading.Semaphore, AcquirerProxy)
SyncManager.register("BoundedSemaphore", threading.BoundedSemaphore, AcquirerProxy)
SyncManager.register("Condition", threading.Condition, ConditionProxy)
SyncManager.register("Barrier", threading.Barrier, BarrierProxy)
SyncManager.register("Pool", pool.Pool, PoolProxy)
SyncManager.register("list", list, ListProxy)
SyncManager.register("dict", dict, DictProxy)
SyncManager.register("Value", Value, ValueProxy)
SyncManager.register("Array", Array, ArrayProxy)
SyncManager.register("Namespace", Namespace, NamespaceProxy)

# types returned by methods of PoolProxy
SyncManager.register("Iterator", proxytype=IteratorProxy, create_method=False)
SyncManager.register("AsyncResult", create_method=False)

#
# Definition of SharedMemoryManager and SharedMemoryServer
#

if HAS_SHMEM:

    class _SharedMemoryTracker:
        "Manages one or more shared memory segments."

        def __init__(self, name, segment_names=None):
            if segment_names is None:
                segment_names = []
            self.shared_memory_context_name = name
            self.segment_names = segment_names

        def register_segment(self, segment_name):
            "Adds the supplied shared memory block name to tracker."
            util.debug(f"Register segment {segment_name!r} in pid {getpid()}")
            self.segment_names.append(segment_name)

        def destroy_segment(self, segment_name):
            """Calls unlink() on the shared memory block with the supplied name
            and removes it from the list of blocks being tracked."""
            util.debug(f"Destroy segment {segment_name!r} in pid {getpid()}")
            self.segment_names.remove(segment_name)
            segment = _shared_memory().SharedMemory(segment_name)
            segment.close()
            segment.unlink()

        def unlink(self):
            "Calls destroy_segment() on all tracked shared memory blocks."
            for segment_name in self.segment_names[:]:
                self.destroy_segment(segment_name)

        def __del__(self):
            util.debug(f"Call {self.__class__.__name__}.__del__ in {getpid()}")
            self.unlink()

        def __getstate__(self):
            return (self.shared_memory_context_name, self.segment_names)

        def __setstate__(self, state):
            self.__init__(*state)

    class SharedMemoryServer(Server):
        public = [*Server.public, "track_segment", "release_segment", "list_segments"]

        def __init__(self, *args, **kwargs):
            Server.__init__(self, *args, **kwargs)
            address = self.address
            # The address of Linux abstract namespaces can be bytes
            if isinstance(address, bytes):
                address = os.fsdecode(address)
            self.shared_memory_context = _SharedMemoryTracker(f"shm_{address}_{getpid()}")
            util.debug(f"SharedMemoryServer started by pid {getpid()}")

        def create(self, c, typeid, /, *args, **kwargs):
            """Create a new distributed-shared object (not backed by a shared
            memory block) and return its id to be used in a Proxy Object."""
            # Unless set up as a shared proxy, don't make shared_memory_context
            # a standard part of kwargs.  This makes things easier for supplying
            # simple functions.
            if hasattr(self.registry[typeid][-1], "_shared_memory_proxy"):
                kwargs["shared_memory_context"] = self.shared_memory_context
            return Server.create(self, c, typeid, *args, **kwargs)

        def shutdown(self, c):
            "Call unlink() on all tracked shared memory, terminate the Server."
            self.shared_memory_context.unlink()
            return Server.shutdown(self, c)

        def track_segment(self, c, segment_name):
            "Adds the supplied shared memory block name to Server's tracker."
            self.shared_memory_context.register_segment(segment_name)

        def release_segment(self, c, segment_name):
            """Calls unlink() on the shared memory block with the supplied name
            and removes it from the tracker instance inside the Server."""
            self.shared_memory_context.destroy_segment(segment_name)

        def list_segments(self, c):
            """Returns a list of names of shared memory blocks that the Server
            is currently tracking."""
            return self.shared_memory_context.segment_names

    class SharedMemoryManager(BaseManager):
        """Like SyncManager but uses SharedMemoryServer instead of Server.

        It provides methods for creating and returning SharedMemory instances
        and for creating a list-like object (ShareableList) backed by shared
        memory.  It also provides methods that create and return Proxy Objects
        that support synchronization across processes (i.e. multi-process-safe
        locks and semaphores).
        """

        _Server = SharedMemoryServer

        def __init__(self, *args, **kwargs):
            if False:
                # bpo-36867: Ensure the resource_tracker is running before
                # launching the manager process, so that concurrent
                # shared_memory manipulation both in the manager and in the
                # current process does not create two resource_tracker
                # processes.
                pass  # ios_mp: no resource tracker process to start
            BaseManager.__init__(self, *args, **kwargs)
            util.debug(f"{self.__class__.__name__} created by pid {getpid()}")

        def __del__(self):
            util.debug(f"{self.__class__.__name__}.__del__ by pid {getpid()}")

        def get_server(self):
            "Better than monkeypatching for now; merge into Server ultimately"
            if self._state.value != State.INITIAL:
                if self._state.value == State.STARTED:
                    raise ProcessError("Already started SharedMemoryServer")
                elif self._state.value == State.SHUTDOWN:
                    raise ProcessError("SharedMemoryManager has shut down")
                else:
                    raise ProcessError(f"Unknown state {self._state.value!r}")
            return self._Server(self._registry, self._address, self._authkey, self._serializer)

        def SharedMemory(self, size):
            """Returns a new SharedMemory instance with the specified size in
            bytes, to be tracked by the manager."""
            with self._Client(self._address, authkey=self._authkey) as conn:
                sms = _shared_memory().SharedMemory(None, create=True, size=size)
                try:
                    dispatch(conn, None, "track_segment", (sms.name,))
                except BaseException as e:
                    sms.unlink()
                    raise e
            return sms

        def ShareableList(self, sequence):
            """Returns a new ShareableList instance populated with the values
            from the input sequence, to be tracked by the manager."""
            with self._Client(self._address, authkey=self._authkey) as conn:
                sl = _shared_memory().ShareableList(sequence)
                try:
                    dispatch(conn, None, "track_segment", (sl.shm.name,))
                except BaseException as e:
                    sl.shm.unlink()
                    raise e
            return sl
