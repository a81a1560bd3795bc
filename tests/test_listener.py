"""multiprocessing.connection.Listener/Client over real sockets, stdlib's protocol."""

from __future__ import annotations

import multiprocessing
import sys
import threading
from multiprocessing import connection
from multiprocessing.connection import AuthenticationError, Client, Listener, wait

import pytest


def _serve_once(listener, reply=lambda x: x):
    def run():
        c = listener.accept()
        try:
            c.send(reply(c.recv()))
        except EOFError:
            pass
        finally:
            c.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("family", ["AF_INET", "AF_UNIX"])
def test_roundtrip_with_authkey(family):
    with Listener(family=family, authkey=b"secret") as listener:
        t = _serve_once(listener, lambda x: x * 2)
        with Client(listener.address, authkey=b"secret") as c:
            c.send([1, "a"])
            assert wait([c], 10) == [c]
            assert c.recv() == [1, "a", 1, "a"]
        t.join(10)
        assert listener.last_accepted is not None


def test_authkey_mismatch_raises_on_both_sides():
    errors = []
    with Listener(("127.0.0.1", 0), authkey=b"right") as listener:

        def run():
            try:
                listener.accept()
            except AuthenticationError as exc:
                errors.append(exc)

        t = threading.Thread(target=run)
        t.start()
        with pytest.raises(AuthenticationError):
            Client(listener.address, authkey=b"wrong")
        t.join(10)
    assert len(errors) == 1


def test_bytes_api_poll_fileno_close():
    with Listener(("127.0.0.1", 0)) as listener:
        client = Client(listener.address)
        server = listener.accept()
        assert isinstance(server.fileno(), int) and server.fileno() >= 0
        assert not server.poll(0)
        client.send_bytes(b"0123456789", 2, 3)
        assert server.poll(5)
        assert server.recv_bytes() == b"234"
        client.send_bytes(b"abcdef")
        buf = bytearray(10)
        assert server.recv_bytes_into(buf, 4) == 6
        assert bytes(buf) == b"\0\0\0\0abcdef"
        client.send_bytes(b"x" * 100)
        with pytest.raises(multiprocessing.BufferTooShort):
            server.recv_bytes_into(bytearray(10))
        big = b"y" * 100_000
        client.send_bytes(big)
        assert server.recv_bytes() == big
        client.send_bytes(b"z" * 50)
        with pytest.raises(OSError, match="bad message length"):
            server.recv_bytes(10)
        client.close()
        assert client.closed
        with pytest.raises(OSError, match="handle is closed"):
            client.send(1)
        server.close()


def test_eof_when_peer_closes():
    with Listener(("127.0.0.1", 0)) as listener:
        client = Client(listener.address)
        server = listener.accept()
        client.close()
        with pytest.raises(EOFError):
            server.recv()
        server.close()


def test_accept_after_close_and_bad_arguments():
    listener = Listener(("127.0.0.1", 0))
    listener.close()
    with pytest.raises(OSError, match="listener is closed"):
        listener.accept()
    with pytest.raises(TypeError, match="authkey"):
        Listener(("127.0.0.1", 0), authkey="str")
    with pytest.raises(ValueError, match=r"AF_PIPE|not recognized"):
        Listener(family="AF_PIPE")
    with pytest.raises((TypeError, ValueError), match="unrecognized"):
        connection.address_type(42)
    with pytest.raises(ConnectionRefusedError):
        Client(("127.0.0.1", 1))


_STDLIB_CLIENT = """
import sys
from multiprocessing.connection import Client
import multiprocessing
assert "ios_mp" not in repr(multiprocessing), multiprocessing
with Client(("127.0.0.1", int(sys.argv[1])), authkey=sys.argv[2].encode()) as c:
    c.send({"a": 1})
    print(repr(c.recv()))
"""

_STDLIB_LISTENER = """
import sys
from multiprocessing.connection import Listener
with Listener(("127.0.0.1", 0), authkey=b"k") as listener:
    print(listener.address[1], flush=True)
    try:
        with listener.accept() as c:
            c.send(len(c.recv()))
    except Exception as exc:
        print(type(exc).__name__, flush=True)
"""


def _run_stdlib(code, *args):
    import subprocess

    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, text=True
    )


@pytest.mark.no_sandbox
def test_interoperates_with_stdlib_in_a_real_process():
    # a stdlib Client (another process, the real multiprocessing) -> ios_mp Listener
    with Listener(("127.0.0.1", 0), authkey=b"k") as listener:
        t = _serve_once(listener, lambda x: ("ios_mp", x))
        proc = _run_stdlib(_STDLIB_CLIENT, listener.address[1], "k")
        out, _ = proc.communicate(timeout=30)
        t.join(10)
    assert proc.returncode == 0
    assert out.strip() == repr(("ios_mp", {"a": 1}))
    # ios_mp Client -> a stdlib Listener, with the large-message path
    proc = _run_stdlib(_STDLIB_LISTENER)
    port = int(proc.stdout.readline())
    with Client(("127.0.0.1", port), authkey=b"k") as c:
        c.send(b"q" * 300_000)
        assert c.recv() == 300_000
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    # wrong authkey against the stdlib Listener: both sides refuse
    proc = _run_stdlib(_STDLIB_LISTENER)
    port = int(proc.stdout.readline())
    with pytest.raises(AuthenticationError):
        Client(("127.0.0.1", port), authkey=b"other")
    out, _ = proc.communicate(timeout=30)
    assert out.strip() == "AuthenticationError"


def test_challenge_format_matches_running_version():
    a, b = _socketpair()
    t = threading.Thread(target=lambda: connection.answer_challenge(b, b"k"))
    t.start()
    connection.deliver_challenge(a, b"k")
    t.join(10)
    a.close()
    b.close()
    a, b = _socketpair()

    def serve():
        with pytest.raises(AuthenticationError):
            connection.deliver_challenge(b, b"k")

    t = threading.Thread(target=serve)
    t.start()
    first = a.recv_bytes(256)
    assert first.startswith(b"#CHALLENGE#")
    if sys.version_info >= (3, 12):
        assert first[len(b"#CHALLENGE#") :].startswith(b"{sha256}")
    else:
        assert len(first) == len(b"#CHALLENGE#") + 20
    a.send_bytes(b"\0" * 16)  # a wrong md5 answer
    assert a.recv_bytes(256) == b"#FAILURE#"
    t.join(10)
    a.close()
    b.close()


def _socketpair():
    import socket

    s1, s2 = socket.socketpair()
    return connection.SocketConnection(s1.detach()), connection.SocketConnection(s2.detach())


@pytest.mark.timeout(30)
def test_send_bytes_slices_and_errors_as_stdlib_for_pipes():
    import array

    import ios_mp

    a, b = ios_mp.Pipe()
    a.send_bytes(b"abcdef", 2, 3)
    assert b.recv_bytes() == b"cde"
    a.send_bytes(array.array("i", [1, 2, 3]), 4)  # offsets count bytes
    assert len(b.recv_bytes()) == 8
    cases = [
        ((-1,), "offset is negative"),
        ((10,), "buffer length < offset$"),
        ((0, -1), "size is negative"),
        ((2, 10), r"buffer length < offset \+ size"),
    ]
    for args, message in cases:
        with pytest.raises(ValueError, match=message):
            a.send_bytes(b"abc", *args)
