"""Pipe() Connections are fd-backed (issue 6): fork-like per-process descriptors,
no descriptor leak, blocking calls interruptible by Ctrl-C and terminate()/kill(),
send_handle/recv_handle and pickling as stdlib."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import select
import socket
import time
from multiprocessing import connection, reduction

import pytest


def _open_fds() -> set[int]:
    fds = set()
    for fd in range(min(os.sysconf("SC_OPEN_MAX"), 4096)):
        try:
            os.fstat(fd)
        except OSError:
            continue
        fds.add(fd)
    return fds


def test_fileno_is_a_selectable_int_and_connection_of_fd_works():
    a, b = multiprocessing.Pipe()
    assert isinstance(a.fileno(), int) and a.fileno() != b.fileno()
    b.send_bytes(b"x")
    assert select.select([a.fileno()], [], [], 5)[0] == [a.fileno()]
    assert a.recv_bytes() == b"x"
    r, w = os.pipe()
    cr, cw = connection.Connection(r, writable=False), connection.Connection(w, readable=False)
    cw.send({"k": 1})
    assert cr.recv() == {"k": 1}
    for c in (a, b, cr, cw):
        c.close()
    assert a.closed and cr.closed
    with pytest.raises(OSError):
        a.fileno()


def test_simplex_pipe_is_read_then_write():
    r, w = multiprocessing.Pipe(duplex=False)
    assert r.readable and not r.writable and w.writable and not w.readable
    w.send(1)
    assert r.recv() == 1
    w.close()
    with pytest.raises(EOFError):
        r.recv()
    r.close()


@pytest.mark.timeout(30)
def test_child_keeps_its_end_after_the_parent_closes_its_copy_and_eof_needs_every_copy():
    parent_end, child_end = multiprocessing.Pipe()
    go = multiprocessing.Event()

    def child(conn, go):
        go.wait(5)
        conn.send(conn.fileno())
        conn.send("hello")
        # the child exits: its descriptor is closed with it

    p = multiprocessing.Process(target=child, args=(child_end, go))
    p.start()
    child_end.close()  # the parent's copy only
    go.set()
    child_fd = parent_end.recv()
    assert parent_end.recv() == "hello"
    p.join(5)
    assert p.exitcode == 0
    with pytest.raises(EOFError):
        parent_end.recv()  # every copy of the other end is closed now
    assert isinstance(child_fd, int)
    parent_end.close()


@pytest.mark.timeout(30)
def test_no_descriptor_leak_across_children():
    before = _open_fds()
    for _ in range(5):
        a, b = multiprocessing.Pipe()
        p = multiprocessing.Process(target=lambda c: c.send(c.fileno()), args=(b,))
        p.start()
        a.recv()
        p.join(5)
        a.close()
        b.close()
    del a, b, p
    assert _open_fds() - before == set()


@pytest.mark.timeout(30)
def test_a_process_using_a_connection_it_was_not_given_gets_its_own_descriptor():
    a, b = multiprocessing.Pipe()
    holder = {}
    holder["conn"] = b  # reached through a global, not the args

    def child():
        holder["conn"].send("from child")

    before = _open_fds()
    p = multiprocessing.Process(target=child)
    p.start()
    assert a.recv() == "from child"
    p.join(5)
    assert _open_fds() - before == set()
    b.close()
    with pytest.raises(EOFError):
        a.recv()
    a.close()


def test_connections_pickle_with_a_descriptor_of_their_own():
    a, b = multiprocessing.Pipe()
    b2 = pickle.loads(reduction.ForkingPickler.dumps(b))
    assert b2.fileno() != b.fileno()
    b.close()
    b2.send("via copy")
    assert a.recv() == "via copy"
    b2.close()
    with pytest.raises(EOFError):
        a.recv()
    a.close()


@pytest.mark.timeout(30)
def test_send_handle_recv_handle_between_processes(tmp_path):
    assert reduction.HAVE_SEND_HANDLE
    path = tmp_path / "f"
    path.write_bytes(b"data")
    a, b = multiprocessing.Pipe()

    def child(conn):
        fd = reduction.recv_handle(conn)
        with os.fdopen(fd, "rb") as f:
            conn.send(f.read())

    p = multiprocessing.Process(target=child, args=(b,))
    p.start()
    with open(path, "rb") as f:
        reduction.send_handle(a, f.fileno(), p.pid)
    assert a.recv() == b"data"
    p.join(5)
    a.close()
    b.close()


def test_wait_over_connections_sentinels_and_sockets():
    a, b = multiprocessing.Pipe()
    s1, s2 = socket.socketpair()
    assert connection.wait([a, s1], 0.05) == []
    s2.send(b"x")
    assert connection.wait([a, s1], 5) == [s1]
    b.send(1)
    assert set(connection.wait([a, s1], 5)) == {a, s1}
    p = multiprocessing.Process(target=len, args=((),))
    p.start()
    p.join(5)
    assert p.sentinel in connection.wait([p.sentinel], 5)
    for o in (a, b, s1, s2):
        o.close()


@pytest.mark.timeout(30)
def test_timeouts_are_honoured():
    a, b = multiprocessing.Pipe()
    for call in (lambda: a.poll(0.1), lambda: connection.wait([a], 0.1)):
        t0 = time.monotonic()
        assert not call()
        assert 0.09 <= time.monotonic() - t0 < 1.0
    a.close()
    b.close()


@pytest.mark.timeout(30)
def test_a_signal_runs_the_workers_handler_during_a_pipe_recv_which_then_goes_on():
    """A worker blocked in recv() on a Pipe runs its handler when signalled (the
    wait wakes at once, PEP 475 style) and then goes on waiting for the message."""
    import signal

    a, b = multiprocessing.Pipe()
    ran = multiprocessing.Queue()
    ready = multiprocessing.Event()

    def body():
        signal.signal(signal.SIGUSR1, lambda s, f: ran.put(("handler", time.monotonic())))
        ready.set()
        ran.put(("recv", b.recv()))

    p = multiprocessing.Process(target=body)
    p.start()
    assert ready.wait(10)
    time.sleep(0.1)  # into the recv
    sent = time.monotonic()
    os.kill(p.pid, signal.SIGUSR1)
    what, when = ran.get(timeout=5)
    assert what == "handler"
    assert when - sent < 1.0
    a.send("message")
    assert ran.get(timeout=5) == ("recv", "message")
    p.join(5)
    assert p.exitcode == 0


def test_poll_rejects_a_nan_timeout_and_treats_a_negative_one_as_zero():
    a, b = multiprocessing.Pipe()
    with pytest.raises(ValueError, match="NaN"):
        a.poll(float("nan"))
    assert a.poll(-1) is False
    b.send(1)
    assert a.poll(-1) is True
    a.close()
    b.close()
