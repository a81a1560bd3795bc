"""The fork-like snapshot (python/ios_mp/_snapshot.py): a worker works on its
own copy of what it was handed; IPC objects and uncopyable things stay shared."""

from __future__ import annotations

import multiprocessing
import os
import socket
import threading
import types

import pytest

from ios_mp import _snapshot

# Every test here also checks the app state (conftest.app_state) is unchanged.
pytestmark = pytest.mark.usefixtures("app_state_unchanged")


class Host:
    def __init__(self, name):
        self.name = name
        self.vars = {"color": "blue"}
        self.groups = ["web"]


class Task:
    def __init__(self):
        self.args = {"dest": "{{ inventory_hostname }}"}


class WorkerProcess(multiprocessing.get_context("fork").Process):
    """ansible-core's shape: the worker mutates the Host and Task it was handed."""

    def __init__(self, final_q, host, task):
        super().__init__()
        self._final_q = final_q
        self._host = host
        self._task = task

    def run(self):
        self._task.args["dest"] = self._host.name  # templated in place
        self._host.vars = {}
        self._host.groups = []
        self._final_q.put((self._task.args["dest"], multiprocessing.current_process().pid))


def test_worker_mutations_stay_in_the_worker():
    q = multiprocessing.SimpleQueue()
    task = Task()
    hosts = [Host(f"h{i}") for i in range(5)]
    workers = [WorkerProcess(q, h, task) for h in hosts]
    for w in workers:
        w.start()
    results = sorted(q.get() for _ in workers)
    for w in workers:
        w.join(5)
        assert w.exitcode == 0
    assert [r[0] for r in results] == [f"h{i}" for i in range(5)]  # no cross-host leak
    assert sorted(r[1] for r in results) == sorted(w.pid for w in workers)
    assert task.args == {"dest": "{{ inventory_hostname }}"}
    for h in hosts:
        assert h.vars == {"color": "blue"} and h.groups == ["web"]


def test_parent_mutations_after_start_are_not_seen():
    go = multiprocessing.Event()
    q = multiprocessing.Queue()
    data = {"n": 1, "items": [1]}

    def body(d):
        go.wait(5)
        q.put((d["n"], d["items"]))

    p = multiprocessing.Process(target=body, args=(data,))
    p.start()
    data["n"] = 2
    data["items"].append(2)
    go.set()
    assert q.get(timeout=5) == (1, [1])
    p.join(5)


def test_identity_is_preserved_inside_the_copy():
    q = multiprocessing.Queue()
    shared = {"k": [1]}

    def body(a, b, c):
        q.put((a is b, a["k"] is c[0], a is not shared))

    p = multiprocessing.Process(target=body, args=(shared, shared, (shared["k"],)))
    p.start()
    assert q.get(timeout=5) == (True, True, True)
    p.join(5)


def test_a_nested_object_shared_by_two_args_stays_one_object_in_the_copy():
    """Like fork: the worker's two args still share their nested list (a mutation
    through one is seen through the other), and the app's objects are untouched."""
    q = multiprocessing.Queue(copy=False)
    nested = [1]
    first = {"items": nested, "name": "first"}
    second = Host("h")
    second.vars = {"items": nested}

    def body(a, b):
        a["items"].append(2)
        b.vars["items"].append(3)
        a["name"] = "changed"
        q.put((a["items"] is b.vars["items"], list(b.vars["items"]), a["items"] is nested))

    p = multiprocessing.Process(target=body, args=(first, second))
    p.start()
    assert q.get(timeout=5) == (True, [1, 2, 3], False)
    p.join(5)
    assert p.exitcode == 0
    assert nested == [1] and first == {"items": [1], "name": "first"}
    assert second.vars["items"] is nested and first["items"] is nested


def test_ipc_objects_and_uncopyables_stay_shared(tmp_path):
    q = multiprocessing.Queue()
    lock = multiprocessing.Lock()
    tlock = threading.Lock()
    f = open(tmp_path / "f.txt", "w")  # noqa: SIM115
    s = socket.socket()
    r, w = multiprocessing.Pipe()
    other = multiprocessing.Process(target=len, args=((),))
    args = {
        "q": q,
        "sq": multiprocessing.SimpleQueue(),
        "jq": multiprocessing.JoinableQueue(),
        "lock": lock,
        "rlock": multiprocessing.RLock(),
        "sem": multiprocessing.Semaphore(2),
        "event": multiprocessing.Event(),
        "cond": multiprocessing.Condition(),
        "barrier": multiprocessing.Barrier(2),
        "value": multiprocessing.Value("i", 1),
        "conn_r": r,
        "conn_w": w,
        "process": other,
        "tlock": tlock,
        "thread": threading.current_thread(),
        "f": f,
        "s": s,
        "os": os,
        "fn": len,
        "lambda": lambda: None,
        "cls": Host,
    }
    out = multiprocessing.Queue(copy=False)

    def body(a):
        out.put({k: v is args[k] for k, v in a.items()})

    try:
        p = multiprocessing.Process(target=body, args=(args,))
        p.start()
        assert out.get(timeout=5) == dict.fromkeys(args, True)
        p.join(5)
        assert p.exitcode == 0
    finally:
        f.close()
        s.close()
        r.close()
        w.close()


def test_current_process_in_the_worker_is_its_own_copy():
    q = multiprocessing.Queue(copy=False)
    p = multiprocessing.Process(target=lambda: q.put(multiprocessing.current_process()))
    p.start()
    child_view = q.get(timeout=5)
    p.join(5)
    assert child_view is not p
    assert child_view.pid == p.pid and child_view.name == p.name
    assert p.exitcode == 0


class Unsnapshotted(multiprocessing.Process):
    __ios_mp_snapshot__ = False

    def __init__(self, box):
        super().__init__()
        self.box = box

    def run(self):
        self.box.append("worker was here")


def test_per_process_opt_out():
    box = []
    p = Unsnapshotted(box)
    p.start()
    p.join(5)
    assert box == ["worker was here"]


def test_per_class_opt_out():
    @_snapshot.share_type
    class Registry:
        def __init__(self):
            self.seen = []

    reg = Registry()
    p = multiprocessing.Process(target=lambda r: r.seen.append(1), args=(reg,))
    p.start()
    p.join(5)
    assert reg.seen == [1]


def test_snapshot_function_rules():
    cyc: list = []
    cyc.append(cyc)
    c = _snapshot.snapshot(cyc)
    assert c is not cyc and c[0] is c
    t = (1, "a", None)
    assert _snapshot.snapshot(t) is t  # immutable all the way down: no copy needed
    deep = cur = []
    for _ in range(5000):  # deeper than the native fast path: Python finishes it
        nxt: list = []
        cur.append(nxt)
        cur = nxt
    with pytest.raises(RecursionError):
        _snapshot.snapshot(deep)


class PicklesLossily:
    """ansible-core 2.18's VariableManager shape: its pickle protocol drops the loader."""

    def __init__(self, loader):
        self._loader = loader
        self.facts = {"a": 1}

    def __getstate__(self):
        return {"facts": self.facts}

    def __setstate__(self, data):
        self.facts = data["facts"]
        self._loader = None


def test_a_pickle_protocol_is_not_used_fork_copies_the_fields():
    loader = Task()
    vm = PicklesLossily(loader)
    out = multiprocessing.Queue(copy=False)

    def body(vm):
        vm.facts["a"] = 2  # the worker's own copy
        out.put((type(vm._loader).__name__, vm._loader is loader, dict(vm.facts)))

    p = multiprocessing.Process(target=body, args=(vm,))
    p.start()
    got = out.get(timeout=10)
    p.join(10)
    assert got == ("Task", False, {"a": 2})  # a copy of the loader, not None
    assert vm.facts == {"a": 1} and vm._loader is loader
    copied = _snapshot.snapshot([vm, vm])
    assert copied[0] is copied[1] and copied[0]._loader is not None


def test_a_simple_namespace_keeps_the_sharing_rules_inside():
    """ansible 2.19+ hands each worker a SimpleNamespace of its plugin loaders."""
    q = multiprocessing.Queue(copy=False)
    ns = types.SimpleNamespace(queue=q, data={"a": [1]}, again=None)
    ns.again = ns.data
    copied = _snapshot.snapshot(ns)
    assert type(copied) is types.SimpleNamespace and copied is not ns
    assert copied.queue is q  # an IPC object stays shared
    assert copied.data == {"a": [1]} and copied.data is not ns.data
    assert copied.again is copied.data  # identity inside the copy


@pytest.mark.timeout(30)
def test_manager_proxies_stay_shared():
    out = multiprocessing.Queue(copy=False)
    with multiprocessing.Manager() as m:
        d = m.dict()
        lst = m.list([1])

        def body(d2, l2):
            d2["worker"] = True  # through the proxy: the app sees it
            l2.append(2)
            out.put((d2 is d, l2 is lst))

        p = multiprocessing.Process(target=body, args=(d, lst))
        p.start()
        assert out.get(timeout=10) == (True, True)
        p.join(10)
        assert p.exitcode == 0
        assert dict(d) == {"worker": True} and list(lst) == [1, 2]


def test_the_copy_holds_the_gil_and_puts_the_switch_interval_back():
    """While a start() copies the snapshot the switch interval is raised (the copy
    runs through instead of waiting for the GIL at every switch); afterwards the
    app's own interval is back, also after overlapping copies and a failed one."""
    import sys

    from ios_mp import _snapshot

    seen = []

    class Probe:
        def __deepcopy__(self, memo):
            seen.append(sys.getswitchinterval())
            return Probe()

    class Boom:
        def __deepcopy__(self, memo):
            raise KeyboardInterrupt

    before = sys.getswitchinterval()
    sys.setswitchinterval(0.002)
    try:
        p = multiprocessing.Process()
        _snapshot.snapshot_process(p, print, (Probe(),), {})
        assert seen == [_snapshot._HOLD_INTERVAL]
        assert sys.getswitchinterval() == 0.002
        _snapshot._hold_gil()  # an overlapping copy in another thread
        _snapshot.snapshot_process(p, print, (Probe(),), {})
        assert sys.getswitchinterval() == _snapshot._HOLD_INTERVAL
        _snapshot._release_gil_hold()
        assert sys.getswitchinterval() == 0.002
        with pytest.raises(KeyboardInterrupt):
            _snapshot.snapshot_process(p, print, (Boom(),), {})
        assert sys.getswitchinterval() == 0.002
    finally:
        sys.setswitchinterval(before)
