from __future__ import annotations

import copy
import multiprocessing
import pickle
import threading
import time

import pytest

from ios_mp import synchronize


def test_lock_semantics_and_repr():
    lk = multiprocessing.Lock()
    assert repr(lk) == "<Lock(owner=None)>"
    assert lk.acquire() is True
    assert lk.acquire(False) is False
    assert repr(lk) == "<Lock(owner=MainProcess)>"
    out = []
    t = threading.Thread(target=lambda: out.append(repr(lk)))
    t.start()
    t.join()
    assert out == ["<Lock(owner=SomeOtherThread)>"]
    lk.release()
    with pytest.raises(ValueError, match="released too many times"):
        lk.release()
    with lk:
        assert lk.acquire(timeout=0) is False


def test_lock_held_by_another_process_repr():
    lk = multiprocessing.Lock()
    held, done = multiprocessing.Event(), multiprocessing.Event()

    def hold():
        with lk:
            held.set()
            done.wait(5)

    p = multiprocessing.Process(target=hold)
    p.start()
    assert held.wait(5)
    assert repr(lk) == "<Lock(owner=SomeOtherProcess)>"
    done.set()
    p.join(5)


def test_rlock_reentrancy_and_owner_check():
    rl = multiprocessing.RLock()
    assert rl.acquire() and rl.acquire()
    assert repr(rl) == "<RLock(MainProcess, 2)>"
    errors = []

    def other():
        try:
            rl.release()
        except AssertionError as e:
            errors.append(str(e))
        errors.append(rl.acquire(timeout=0.01))

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert errors == ["attempt to release recursive lock not owned by thread", False]
    rl.release()
    rl.release()
    with pytest.raises(AssertionError):
        rl.release()


def test_semaphores():
    s = multiprocessing.Semaphore(2)
    assert s.get_value() == 2
    assert s.acquire() and s.acquire() and not s.acquire(False)
    s.release()
    s.release()
    s.release()  # unbounded
    assert s.get_value() == 3
    b = multiprocessing.BoundedSemaphore(1)
    b.acquire()
    b.release()
    with pytest.raises(ValueError, match="released too many times"):
        b.release()
    with pytest.raises(ValueError):
        multiprocessing.Semaphore(-1)


def test_condition_notify_wait_for_and_errors():
    c = multiprocessing.Condition()
    with pytest.raises(AssertionError, match="must acquire"):
        c.wait(0)
    state = {"n": 0}
    woke = multiprocessing.Queue()

    def waiter():
        with c:
            ok = c.wait_for(lambda: state["n"] > 0, timeout=5)
            woke.put(ok)

    ps = [multiprocessing.Process(target=waiter) for _ in range(3)]
    for p in ps:
        p.start()
    time.sleep(0.1)
    with c:
        state["n"] = 1
        c.notify_all()
    assert [woke.get(timeout=5) for _ in ps] == [True] * 3
    for p in ps:
        p.join(5)


def test_condition_notify_n_wakes_exactly_n():
    c = multiprocessing.Condition(multiprocessing.Lock())
    woken = []

    def waiter(i):
        with c:
            if c.wait(5):
                woken.append(i)

    ts = [threading.Thread(target=waiter, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    while c._waiters() < 4:
        time.sleep(0.005)
    with c:
        c.notify(2)
    time.sleep(0.2)
    assert len(woken) == 2
    with c:
        c.notify_all()
    for t in ts:
        t.join(5)
    assert sorted(woken) == [0, 1, 2, 3]


def test_condition_rejects_foreign_lock():
    with pytest.raises(TypeError, match="Condition"):
        multiprocessing.Condition(threading.Lock())


def test_event():
    e = multiprocessing.Event()
    assert not e.is_set() and e.wait(0.01) is False
    threading.Timer(0.05, e.set).start()
    assert e.wait(5) is True and e.is_set()
    e.clear()
    assert not e.is_set()


def test_barrier_action_abort_reset():
    results = multiprocessing.Queue()
    actions = multiprocessing.Queue()
    b = multiprocessing.Barrier(3, action=lambda: actions.put("ran"))

    def party():
        results.put(b.wait(5))

    ps = [multiprocessing.Process(target=party) for _ in range(3)]
    for p in ps:
        p.start()
    assert sorted(results.get(timeout=5) for _ in ps) == [0, 1, 2]
    assert actions.get(timeout=1) == "ran"
    for p in ps:
        p.join(5)
    assert b.parties == 3 and b.n_waiting == 0 and not b.broken
    b.abort()
    assert b.broken
    with pytest.raises(threading.BrokenBarrierError):
        b.wait()
    b.reset()
    assert not b.broken
    with pytest.raises(ValueError, match="parties"):
        multiprocessing.Barrier(0)


def test_barrier_failing_action_breaks_it():
    def bad():
        raise RuntimeError("action failed")

    b = multiprocessing.Barrier(1, action=bad)
    with pytest.raises(RuntimeError, match="action failed"):
        b.wait()
    assert b.broken


@pytest.mark.parametrize(
    "factory", ["Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event"]
)
def test_sharing_is_by_inheritance_only(factory):
    obj = getattr(multiprocessing, factory)()
    with pytest.raises(RuntimeError, match="through inheritance"):
        pickle.dumps(obj)
    assert copy.deepcopy(obj) is obj


def test_stdlib_module_layout():
    for name in (
        "Lock",
        "RLock",
        "Semaphore",
        "BoundedSemaphore",
        "Condition",
        "Event",
        "Barrier",
        "SemLock",
    ):
        assert hasattr(multiprocessing.synchronize, name)
    assert issubclass(synchronize.BoundedSemaphore, synchronize.Semaphore)
    assert issubclass(synchronize.Lock, synchronize.SemLock)
    lk = multiprocessing.Lock()
    assert lk._semlock._count() == 0
