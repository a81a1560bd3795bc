from __future__ import annotations

import gc
import multiprocessing
import multiprocessing.queues
import pickle
import queue
import threading
import weakref

import pytest

from ios_mp import queues

CTX = multiprocessing.get_context("fork")


class FinalQueue(multiprocessing.queues.SimpleQueue):
    """ansible-core's FinalQueue shape."""

    def __init__(self, *args, **kwargs):
        kwargs["ctx"] = CTX
        super().__init__(*args, **kwargs)

    def send_task_result(self, *args):
        self.put(args)


class WorkerQueue(multiprocessing.queues.Queue):
    """ansible-core 2.19's WorkerQueue shape: get() overridden, calls super()."""

    def get(self, *args, **kwargs):
        result = super().get(*args, **kwargs)
        return ("wrapped", result)


def test_ansible_subclass_shapes():
    fq = FinalQueue()
    fq.send_task_result("host", {"ok": True})
    assert fq.get() == ("host", {"ok": True})
    wq = WorkerQueue(ctx=CTX)
    wq.put(5)
    assert wq.get(timeout=1) == ("wrapped", 5)
    assert not isinstance(fq, multiprocessing.queues.Queue)


def test_factories_and_signatures():
    assert isinstance(multiprocessing.Queue(3), queues.Queue)
    assert isinstance(multiprocessing.SimpleQueue(), queues.SimpleQueue)
    assert isinstance(multiprocessing.JoinableQueue(), queues.Queue)
    q = multiprocessing.queues.Queue(maxsize=2, ctx=CTX)
    q.put(1)
    q.put(2)
    assert q.full() and q.qsize() == 2 and not q.empty()
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    assert q.get_nowait() == 1


def test_put_get_copy_semantics():
    q = multiprocessing.Queue()
    payload = {"list": [1, 2, 3]}
    q.put(payload)
    payload["list"].append(4)  # a real process would not see this mutation
    got = q.get(timeout=1)
    assert got == {"list": [1, 2, 3]} and got is not payload
    big = "x" * 1000
    q.put(big)
    assert q.get(timeout=1) == big  # atoms are passed as is (no observable copy)


def _round_trip(obj):
    q = multiprocessing.SimpleQueue()
    q.put(obj)
    return q.get()


def test_plain_data_is_copied_structurally_as_the_pickle_round_trip_would():
    big, text = 10**30, "é" * 50  # pickle would give new objects for these
    payload = {"id": big, "tags": ["a", [text, (1, [2])]], "pair": (1, 2.5), ("k", 1): None}
    got = _round_trip(payload)
    assert got == pickle.loads(pickle.dumps(payload, -1)) and list(got) == list(payload)
    assert type(got) is dict and got is not payload
    assert got["tags"] is not payload["tags"] and got["tags"][1] is not payload["tags"][1]
    assert got["tags"][1][1] is not payload["tags"][1][1]  # a tuple holding a list: new
    assert got["tags"][1][1][1] is not payload["tags"][1][1][1]
    # Atoms and tuples of atoms are shared: the structural path, not pickle, ran.
    assert got["id"] is big and got["tags"][1][0] is text and got["pair"] is payload["pair"]
    got["tags"][1][1][1].append(3)
    payload["tags"].append("later")
    assert payload["tags"][1][1] == (1, [2]) and got["tags"] == ["a", [text, (1, [2, 3])]]


class _Tagged(dict):
    pass


def _deep(n):
    x = [1]
    for _ in range(n):
        x = [x]
    return x


@pytest.mark.parametrize(
    "case",
    ["shared list", "cycle", "shared tuple of a list", "dict subclass", "set inside", "deep"],
)
def test_what_plain_copying_cannot_keep_goes_through_pickle(case):
    import collections

    if case == "shared list":
        inner = [1]
        got = _round_trip({"a": inner, "b": [inner]})
        assert got["a"] is got["b"][0] and got["a"] is not inner  # sharing kept
    elif case == "cycle":
        loop = [1]
        loop.append({"back": loop})
        got = _round_trip(loop)
        assert got[1]["back"] is got and got is not loop
    elif case == "shared tuple of a list":
        t = ([1],)
        got = _round_trip([t, t])
        assert got[0] is got[1] and got[0][0] is not t[0]
    elif case == "dict subclass":
        obj = [_Tagged(a=1), collections.OrderedDict(b=2), collections.Counter("aa")]
        got = _round_trip(obj)
        assert [type(x) for x in got] == [_Tagged, collections.OrderedDict, collections.Counter]
        assert got == obj and got[0] is not obj[0]
    elif case == "set inside":
        obj = {"s": {1, 2}, "f": [frozenset({3})]}
        got = _round_trip(obj)
        assert got == obj and got["s"] is not obj["s"]
    else:  # deeper than the structural copy goes (64): pickle's job
        obj = _deep(200)
        got = _round_trip(obj)
        assert got == obj and got is not obj


def test_an_unpicklable_leaf_in_plain_data_fails_at_put_as_with_pickle():
    q = multiprocessing.SimpleQueue()
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        q.put({"fn": [lambda: None]})
    with pytest.raises(TypeError):
        q.put([threading.Lock()])
    q.put([1, [2]])  # the queue still works
    assert q.get() == [1, [2]]


def test_copy_opt_out_per_queue_and_global():
    obj = {"a": [1]}
    q = multiprocessing.Queue(copy=False)
    q.put(obj)
    assert q.get(timeout=1) is obj
    old = queues.set_default_copy(False)
    try:
        assert queues.get_default_copy() is False
        q2 = multiprocessing.SimpleQueue()
        q2.put(obj)
        assert q2.get() is obj
    finally:
        queues.set_default_copy(old)
    q3 = multiprocessing.Queue()
    q3.put(obj)
    assert q3.get(timeout=1) is not obj


def test_an_unpicklable_value_is_dropped_and_reported_as_stdlibs_feeder_does(capsys):
    q = multiprocessing.Queue(maxsize=1)
    q.put(threading.Lock())  # returns: stdlib's feeder thread would report it later
    q.put(lambda: None)
    err = capsys.readouterr().err
    assert err.count("Traceback (most recent call last)") == 2
    assert "TypeError" in err and ("lambda" in err or "PicklingError" in err)
    assert q.empty() and q.qsize() == 0  # nothing counted (bpo-33078)
    q.put("next")
    assert q.get(timeout=1) == "next"


def test_simple_queue_raises_pickles_error_at_put():
    q = multiprocessing.SimpleQueue()
    with pytest.raises((TypeError, pickle.PicklingError)):
        q.put(threading.Lock())
    with pytest.raises((TypeError, AttributeError, pickle.PicklingError)):
        q.put(lambda: None)
    assert q.empty()


def test_feeder_error_hook_of_a_subclass_gets_stdlib_behaviour():
    seen = []

    class SafeQueue(multiprocessing.queues.Queue):
        @staticmethod
        def _on_queue_feeder_error(e, obj):
            seen.append((type(e), obj))

    q = SafeQueue(ctx=CTX)
    lock = threading.Lock()
    q.put(lock)  # dropped and reported instead of raising
    q.put("next")
    assert seen == [(TypeError, lock)]
    assert q.get(timeout=1) == "next"


class _Holder:
    pass


def test_feeder_error_exception_does_not_keep_the_putters_frames():
    """ProcessPoolExecutor's hook stores the exception in a Future that the caller's
    frame references (add_call_item_to_queue's work_item): if the exception's
    traceback reached that frame, the frame, the Future and everything the frame
    references would only be freed by the cyclic GC (on 3.9/3.10 CPython's
    threading_cleanup then saw the executor's threads dangling and looped)."""
    kept = []

    class SafeQueue(multiprocessing.queues.Queue):
        def _on_queue_feeder_error(self, e, obj):
            kept.append(e)

    q = SafeQueue(ctx=CTX)

    def put_from_a_frame():
        local = _Holder()  # referenced by this frame only
        local.kept = kept  # the frame reaches the stored exception, as in the executor
        q.put(threading.Lock())
        return weakref.ref(local)

    gc.disable()
    try:
        ref = put_from_a_frame()
        assert ref() is None  # freed by reference counting: no cycle through the frame
    finally:
        gc.enable()
    assert len(kept) == 1 and isinstance(kept[0], TypeError)
    assert kept[0].__traceback__ is None


def test_empty_and_timeouts():
    q = multiprocessing.Queue()
    with pytest.raises(queue.Empty):
        q.get(block=False)
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    with pytest.raises(queue.Empty):
        q.get(True, -1)  # negative timeout: don't wait (stdlib)


def test_queue_close_is_per_process():
    q = multiprocessing.Queue()
    done = multiprocessing.Event()

    def producer():
        q.put("from child")
        q.close()  # the child's end only
        q.join_thread()
        done.set()

    p = multiprocessing.Process(target=producer)
    p.start()
    p.join(5)
    assert done.is_set() and p.exitcode == 0
    assert q.get(timeout=1) == "from child"  # the parent's end still works
    q.close()
    with pytest.raises(ValueError, match="is closed"):
        q.get()
    with pytest.raises(ValueError, match="is closed"):
        q.put(1)


def test_simplequeue_close_raises_oserror_and_wakes_getter():
    q = multiprocessing.SimpleQueue()
    errors = []

    def getter():
        try:
            q.get()
        except OSError as e:
            errors.append(e)

    t = threading.Thread(target=getter)
    t.start()
    t.join(0.1)
    q.close()
    t.join(5)
    assert not t.is_alive() and len(errors) == 1
    with pytest.raises(OSError):
        q.put(1)


def test_join_thread_requires_close():
    q = multiprocessing.Queue()
    with pytest.raises(AssertionError, match="not closed"):
        q.join_thread()
    q.cancel_join_thread()
    q.close()
    q.join_thread()


def test_joinable_queue_task_done_and_join():
    q = multiprocessing.JoinableQueue()
    with pytest.raises(ValueError, match="too many times"):
        q.task_done()
    for i in range(5):
        q.put(i)

    def consumer():
        for _ in range(5):
            q.get()
            q.task_done()

    p = multiprocessing.Process(target=consumer)
    p.start()
    q.join()
    p.join(5)
    assert p.exitcode == 0
    assert not hasattr(multiprocessing.Queue(), "task_done")


def test_queues_do_not_pickle_but_copy_by_identity():
    import copy

    q = multiprocessing.Queue()
    with pytest.raises(RuntimeError, match="through inheritance"):
        pickle.dumps(q)
    assert copy.copy(q) is q and copy.deepcopy({"q": q})["q"] is q


def test_use_before_init_is_a_clear_error():
    class Bad(multiprocessing.queues.Queue):
        def __init__(self):
            pass

    with pytest.raises(RuntimeError, match=r"Bad.__init__\(\) was not called"):
        Bad().put(1)


def test_many_producers_nothing_lost():
    q = multiprocessing.Queue(maxsize=10)
    n, k = 4, 500

    def produce(i):
        for j in range(k):
            q.put((i, j))

    ps = [multiprocessing.Process(target=produce, args=(i,)) for i in range(n)]
    for p in ps:
        p.start()
    got = sorted(q.get(timeout=5) for _ in range(n * k))
    for p in ps:
        p.join(5)
    assert got == sorted((i, j) for i in range(n) for j in range(k))


@pytest.mark.timeout(60)
def test_concurrent_futures_process_pool_executor_runs_on_ios_mp():
    # Stock ProcessPoolExecutor waits on result_queue._reader with connection.wait.
    import concurrent.futures

    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as ex:
        assert list(ex.map(abs, [-1, -2, 3])) == [1, 2, 3]
        fut = ex.submit(divmod, 7, 0)
        with pytest.raises(ZeroDivisionError):
            fut.result(timeout=10)
        assert ex.submit(pow, 2, 10).result(timeout=10) == 1024
    assert multiprocessing.active_children() == []
