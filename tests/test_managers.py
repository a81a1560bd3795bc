"""multiprocessing.managers: in-app managers, proxies, remote managers over loopback."""

from __future__ import annotations

import gc
import multiprocessing
import pickle
import queue
import threading
import time
from multiprocessing import managers
from multiprocessing.managers import BaseManager, BaseProxy, RemoteError, SyncManager

import pytest


@pytest.fixture
def manager():
    m = multiprocessing.Manager()
    try:
        yield m
    finally:
        m.shutdown()


def _manager_threads():
    return [t for t in threading.enumerate() if t.name.startswith("ios_mp-manager")]


def test_manager_is_in_app_and_shuts_down_cleanly():
    before = set(_manager_threads())
    m = multiprocessing.Manager()
    assert isinstance(m, SyncManager)
    assert m.address.startswith("ios_mp-local:")  # no socket
    d = m.dict(a=1)
    assert d["a"] == 1
    m.shutdown()
    deadline = time.monotonic() + 5
    while set(_manager_threads()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert set(_manager_threads()) - before == set()
    assert not m._process.is_alive() and m._process.exitcode == 0
    with pytest.raises((EOFError, OSError)):
        d["a"]
    with pytest.raises(AssertionError, match="not yet started"):  # as stdlib
        m.dict()


def test_type_names_and_repr(manager):
    d, lst, ns, v = manager.dict(), manager.list(), manager.Namespace(), manager.Value("i", 3)
    assert type(d).__name__ == "DictProxy"
    assert type(lst).__name__ == "ListProxy"
    assert type(ns).__name__ == "NamespaceProxy"
    assert type(v).__name__ == "ValueProxy"
    assert repr(d).startswith("<DictProxy object, typeid 'dict' at ")
    lst.extend([1, 2])
    assert str(lst) == "[1, 2]"
    ns.x = 5
    assert str(ns) == "Namespace(x=5)"
    assert v.value == 3
    v.value = 4
    assert v.get() == 4


def test_containers(manager):
    d = manager.dict({"a": 1})
    d["b"] = 2
    d.update(c=3)
    assert sorted(d.keys()) == ["a", "b", "c"]
    assert d.pop("a") == 1 and "a" not in d and len(d) == 2
    assert sorted(iter(d)) == ["b", "c"]
    lst = manager.list(range(3))
    lst += [3]
    lst *= 2
    lst.append(9)
    assert lst[:] == [0, 1, 2, 3, 0, 1, 2, 3, 9]
    assert lst.index(9) == 8 and len(lst) == 9
    arr = manager.Array("i", [1, 2, 3])
    arr[0] = 7
    assert list(arr[:]) == [7, 2, 3] and len(arr) == 3
    assert d._getvalue() == {"b": 2, "c": 3}


def test_copy_semantics(manager):
    d = manager.dict()
    arg = [1]
    d["k"] = arg
    arg.append(2)  # not visible to the manager
    assert d["k"] == [1]
    got = d["k"]
    got.append(3)  # a result is a copy
    assert d["k"] == [1]


def test_exceptions_reraise(manager):
    d = manager.dict()
    with pytest.raises(KeyError):
        d["missing"]
    lst = manager.list()
    with pytest.raises(IndexError):
        lst.pop()
    with pytest.raises(RemoteError, match="not in exposed"):  # a #TRACEBACK, as stdlib
        d._callmethod("nonexistent")
    err = managers.convert_to_error("#TRACEBACK", "Traceback ...")
    assert isinstance(err, RemoteError) and "Traceback ..." in str(err)


def test_nested_proxies_and_pickled_proxies(manager):
    outer = manager.dict()
    inner = manager.list([1])
    outer["inner"] = inner
    got = outer["inner"]
    assert isinstance(got, BaseProxy)
    got.append(2)
    assert inner[:] == [1, 2]  # the same managed list
    q = manager.Queue()
    q.put(inner)
    again = q.get(timeout=5)
    again.append(3)
    assert inner[:] == [1, 2, 3]
    clone = pickle.loads(pickle.dumps(inner))
    clone.append(4)
    assert inner[:] == [1, 2, 3, 4]


def _child(d, lst, lock, q):
    with lock:
        d["child"] = multiprocessing.current_process().name
    lst.append("child")
    q.put("done")


def test_proxies_in_a_child_process(manager):
    d, lst, lock, q = manager.dict(), manager.list(), manager.Lock(), manager.Queue()
    p = multiprocessing.Process(target=_child, args=(d, lst, lock, q), name="kid")
    p.start()
    assert q.get(timeout=10) == "done"
    p.join(10)
    assert p.exitcode == 0
    assert d["child"] == "kid" and lst[:] == ["child"]


def test_refcount_follows_proxy_lifetime(manager):
    base = manager._number_of_objects()
    d = manager.dict()
    lst = manager.list()
    assert manager._number_of_objects() == base + 2
    del d
    gc.collect()
    assert manager._number_of_objects() == base + 1
    del lst
    gc.collect()
    assert manager._number_of_objects() == base


def test_sync_types(manager):
    q = manager.Queue()
    q.put(1)
    assert q.get() == 1
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    jq = manager.JoinableQueue()
    jq.put(1)
    jq.get()
    jq.task_done()
    jq.join()
    for lock in (manager.Lock(), manager.RLock()):
        assert lock.acquire()
        lock.release()
        with lock:
            pass
    s = manager.Semaphore(2)
    assert s.acquire() and s.acquire() and not s.acquire(False)
    bs = manager.BoundedSemaphore(1)
    bs.acquire()
    bs.release()
    with pytest.raises(ValueError):
        bs.release()
    e = manager.Event()
    assert not e.is_set() and not e.wait(0.01)
    e.set()
    assert e.wait(1)
    c = manager.Condition()
    with c:
        assert c.wait(0.01) is False
        c.notify_all()
    b = manager.Barrier(2)
    assert b.parties == 2 and b.n_waiting == 0 and not b.broken
    results = []
    t = threading.Thread(target=lambda: results.append(b.wait(5)))
    t.start()
    results.append(b.wait(5))
    t.join(5)
    assert sorted(results) == [0, 1]


def test_blocking_call_does_not_block_other_proxies(manager):
    q = manager.Queue()
    d = manager.dict()
    got = []
    t = threading.Thread(target=lambda: got.append(q.get(timeout=10)))
    t.start()
    time.sleep(0.05)
    d["x"] = 1  # served while the other thread waits in q.get()
    assert d["x"] == 1
    q.put("v")
    t.join(10)
    assert got == ["v"]


class Counter:
    def __init__(self, start=0):
        self.n = start

    def incr(self, by=1):
        self.n += by
        return self.n

    def fail(self):
        raise ValueError("boom")

    def _hidden(self):
        return "hidden"

    def child(self):
        return Counter(self.n * 10)


class MyManager(BaseManager):
    pass


MyManager.register("Counter", Counter, method_to_typeid={"child": "CounterRef"})
MyManager.register("CounterRef", create_method=False)  # a returned object, proxied
MyManager.register("plain", callable=lambda: Counter(1), exposed=("incr",))
MyManager.register("nocreate", Counter, create_method=False)


def _init(event, box):
    # Runs on the manager's server thread, before it serves.
    box["thread"] = threading.current_thread().name
    event.set()


def test_custom_manager_register_autoproxy():
    box = {}
    event = multiprocessing.Event()
    with MyManager() as m:
        pass
    m = MyManager()
    m.start(_init, (event, box))
    try:
        assert event.is_set() and box == {"thread": m._process.name}
        assert m._process.name.startswith("MyManager-") and m._process.exitcode is None
        c = m.Counter(5)
        assert type(c).__name__ == "AutoProxy[Counter]"
        assert c.incr() == 6 and c.incr(by=4) == 10
        with pytest.raises(ValueError, match="boom"):
            c.fail()
        assert not hasattr(c, "_hidden")
        kid = c.child()
        assert isinstance(kid, BaseProxy) and kid.incr() == 101
        p = m.plain()
        assert p.incr() == 2
        with pytest.raises(AttributeError):
            getattr(p, "fail")  # noqa: B009
        assert not hasattr(m, "nocreate") and not hasattr(m, "CounterRef")
    finally:
        m.shutdown()
    with pytest.raises(TypeError, match="initializer"):
        MyManager().start(1)
    m2 = MyManager()
    m2.start()
    with pytest.raises(multiprocessing.ProcessError, match="Already started"):
        m2.start()
    m2.shutdown()
    with pytest.raises(multiprocessing.ProcessError, match="shut down"):
        m2.start()


def test_make_proxy_type_and_token(manager):
    Proxy = managers.MakeProxyType("CounterProxy", ("incr",))
    assert managers.MakeProxyType("CounterProxy", ("incr",)) is Proxy
    token = manager.dict()._token
    assert isinstance(token, managers.Token) and token.typeid == "dict"
    assert pickle.loads(pickle.dumps(token)).id == token.id
    ns = managers.Namespace(a=1, _b=2)
    assert repr(ns) == "Namespace(a=1)"


def test_remote_manager_over_loopback():
    class QueueManager(BaseManager):
        pass

    shared = queue.Queue()
    QueueManager.register("get_queue", callable=lambda: shared)
    server_mgr = QueueManager(address=("127.0.0.1", 0), authkey=b"abc")
    server_mgr.start()
    try:
        host, port = server_mgr.address
        client = QueueManager(address=(host, port), authkey=b"abc")
        client.connect()
        client.get_queue().put("hello")
        assert server_mgr.get_queue().get(timeout=5) == "hello"
        bad = QueueManager(address=(host, port), authkey=b"wrong")
        with pytest.raises(multiprocessing.AuthenticationError):
            bad.connect()
    finally:
        server_mgr.shutdown()


def test_get_server_serve_forever_on_a_thread():
    class M(BaseManager):
        pass

    M.register("Counter", Counter)
    server = M(address=("127.0.0.1", 0), authkey=b"k").get_server()
    t = threading.Thread(target=server.serve_forever)
    t.start()
    try:
        client = M(address=server.address, authkey=b"k")
        client.connect()
        c = client.Counter(1)
        assert c.incr() == 2
        del c
    finally:
        conn = multiprocessing.connection.Client(server.address, authkey=b"k")
        managers.dispatch(conn, None, "shutdown")
        conn.close()
        t.join(10)
    assert not t.is_alive()


def test_shared_memory_manager_wires_to_shared_memory():
    from multiprocessing.managers import SharedMemoryManager

    with SharedMemoryManager() as smm:
        lock = smm.Lock() if hasattr(smm, "Lock") else None
        assert lock is None  # SharedMemoryManager registers no types, as stdlib
        try:
            shm = smm.SharedMemory(16)
        except NotImplementedError:
            pytest.skip("ios_mp.shared_memory is not implemented yet")
        assert shm.size >= 16
        sl = smm.ShareableList([1, "two", 3.0])
        assert list(sl) == [1, "two", 3.0]
        conn = smm._Client(smm.address, authkey=smm._authkey)
        segments = managers.dispatch(conn, None, "list_segments")
        conn.close()
        assert set(segments) == {shm.name, sl.shm.name}
        shm.close()
        sl.shm.close()


def _square(x):
    return x * x


def test_pool_through_the_manager(manager):
    try:
        pool = manager.Pool(2)
    except RemoteError as exc:
        if "NotImplemented" in str(exc):
            pytest.skip("ios_mp.pool.Pool is not implemented yet")
        raise
    assert type(pool).__name__ == "PoolProxy"
    with pool:
        assert pool.map(_square, range(5)) == [0, 1, 4, 9, 16]
        res = pool.apply_async(_square, (7,))
        assert res.get(timeout=10) == 49
        assert list(pool.imap(_square, range(3))) == [0, 1, 4]


_STDLIB_MANAGER_CLIENT = """
import sys
import multiprocessing
from multiprocessing.managers import BaseManager
assert "ios_mp" not in repr(multiprocessing), multiprocessing

class QueueManager(BaseManager):
    pass

QueueManager.register("get_queue")
QueueManager.register("get_dict")
m = QueueManager(address=("127.0.0.1", int(sys.argv[1])), authkey=b"interop")
m.connect()
m.get_queue().put("from stdlib")
d = m.get_dict()
d["pid"] = "stdlib"
print(d.copy()["pid"])
"""


@pytest.mark.no_sandbox
def test_stdlib_manager_client_talks_to_an_ios_mp_server():
    import subprocess
    import sys

    class QueueManager(BaseManager):
        pass

    shared_q = queue.Queue()
    shared_d = {}
    QueueManager.register("get_queue", callable=lambda: shared_q)
    QueueManager.register("get_dict", callable=lambda: shared_d, proxytype=managers.DictProxy)
    m = QueueManager(address=("127.0.0.1", 0), authkey=b"interop")
    m.start()
    try:
        out = subprocess.run(
            [sys.executable, "-c", _STDLIB_MANAGER_CLIENT, str(m.address[1])],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "stdlib"
        assert shared_q.get(timeout=5) == "from stdlib"
        assert shared_d == {"pid": "stdlib"}
    finally:
        m.shutdown()
