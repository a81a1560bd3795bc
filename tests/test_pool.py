"""multiprocessing.pool under ios_mp: Pool of ios_mp workers, ThreadPool of threads."""

from __future__ import annotations

import gc
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import pytest

import ios_mp
import ios_mp.dummy
import ios_mp.pool
from ios_mp.pool import (
    ApplyResult,
    AsyncResult,
    IMapIterator,
    IMapUnorderedIterator,
    MapResult,
    MaybeEncodingError,
    Pool,
    RemoteTraceback,
    ThreadPool,
)

mp = ios_mp


def sq(x):
    return x * x


def add(a, b):
    return a + b


def whoami(_=None):
    p = mp.current_process()
    return p.name, p.pid


def boom(x):
    raise ValueError(f"bad {x}")


def unpicklable_result(_=None):
    return threading.Lock()


def sleep_then(x, delay=0.05):
    time.sleep(delay)
    return x


def spin(_=None):
    # Pure Python busy loop: terminate() ends it at its next bytecode.
    n = 0
    while True:
        n += 1


def init(tag):
    global _init_value
    _init_value = tag


def read_init(_=None):
    return _init_value


class Unpicklable:
    def __reduce__(self):
        raise TypeError("no pickling this")


def test_module_names_are_stdlib_ones():
    import multiprocessing.pool

    assert multiprocessing.pool is ios_mp.pool
    assert AsyncResult is ApplyResult
    assert issubclass(MapResult, ApplyResult)
    assert issubclass(IMapUnorderedIterator, IMapIterator)
    assert issubclass(ThreadPool, Pool)
    assert multiprocessing.pool.TimeoutError is mp.TimeoutError


def test_map_apply_starmap_imap():
    with mp.Pool(3) as p:
        assert p.map(sq, range(20)) == [x * x for x in range(20)]
        assert p.map(sq, range(20), chunksize=7) == [x * x for x in range(20)]
        assert p.map(sq, []) == []
        assert p.apply(add, (2, 3)) == 5
        assert p.apply(add, (), {"a": 1, "b": 2}) == 3
        assert p.starmap(add, [(1, 2), (3, 4)]) == [3, 7]
        assert p.starmap_async(add, [(5, 6)]).get(5) == [11]
        assert list(p.imap(sq, range(10))) == [x * x for x in range(10)]
        assert list(p.imap(sq, range(10), chunksize=3)) == [x * x for x in range(10)]
        assert sorted(p.imap_unordered(sq, range(10))) == [x * x for x in range(10)]
        assert sorted(p.imap_unordered(sq, range(10), chunksize=4)) == [x * x for x in range(10)]
        assert p.map_async(sq, iter(range(5))).get(5) == [0, 1, 4, 9, 16]
        with pytest.raises(ValueError, match="Chunksize must be 1"):
            p.imap(sq, range(3), chunksize=0)


def test_workers_are_ios_mp_processes_named_like_stdlib():
    parent_pid = os.getpid()
    with mp.Pool(2) as p:
        assert p._processes == 2 and len(p._pool) == 2
        assert p._state == "RUN"
        assert all(w.daemon for w in p._pool)
        names_pids = set(p.map(whoami, range(40), chunksize=1))
        worker_pids = {w.pid for w in p._pool}
        assert {pid for _, pid in names_pids} <= worker_pids
        assert all(pid >= ios_mp.process.VPID_BASE for pid in worker_pids)
        assert parent_pid not in worker_pids
        names = {n for n, _ in names_pids}
        start = mp.get_start_method()
        prefix = {
            "fork": "ForkPoolWorker-",
            "spawn": "SpawnPoolWorker-",
            "forkserver": "ForkServerPoolWorker-",
        }[start]
        assert names and all(n.startswith(prefix) for n in names), names
        assert "state=RUN pool_size=2" in repr(p)
    assert p._state == "TERMINATE"


def test_context_pool_uses_that_context():
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as p:
        assert p._ctx is ctx
        ((name, _),) = p.map(whoami, [0])
        assert name.startswith("SpawnPoolWorker-")


def test_arguments_and_results_are_copies():
    data = [1, 2, 3]

    with mp.Pool(1) as p:
        res = p.apply(list.__add__, (data, [9]))
        assert res == [1, 2, 3, 9] and data == [1, 2, 3]
        out = p.apply(sorted, (data,))
        assert out == data and out is not data


def test_exception_is_reraised_with_remote_traceback():
    with mp.Pool(2) as p:
        with pytest.raises(ValueError, match="bad 3") as info:
            p.apply(boom, (3,))
        cause = info.value.__cause__
        assert isinstance(cause, RemoteTraceback)
        assert "in boom" in str(cause) and "raise ValueError" in str(cause)
        with pytest.raises(ValueError, match="bad"):
            p.map(boom, range(4))
        it = p.imap(boom, [7])
        with pytest.raises(ValueError, match="bad 7"):
            next(it)
        r = p.apply_async(boom, (1,))
        r.wait(5)
        assert r.ready() and not r.successful()


def test_unpicklable_argument_fails_that_task_with_picklings_error():
    with mp.Pool(1) as p:
        # pickle's own error for a local function (AttributeError before 3.14)
        with pytest.raises((pickle.PicklingError, AttributeError), match="local object"):
            p.apply(lambda: 1)
        with pytest.raises(TypeError, match="no pickling this"):
            p.apply(sq, (Unpicklable(),))
        # The pool goes on.
        assert p.apply(sq, (3,)) == 9


def test_unpicklable_result_is_maybe_encoding_error():
    with mp.Pool(1) as p:
        with pytest.raises(MaybeEncodingError) as info:
            p.apply(unpicklable_result)
        assert "Error sending result" in str(info.value)
        assert "lock" in str(info.value).lower()
        with pytest.raises(MaybeEncodingError):
            p.map(unpicklable_result, range(2))
        assert p.apply(sq, (4,)) == 16


def test_async_result_api_and_timeout():
    with mp.Pool(1) as p:
        r = p.apply_async(sleep_then, (5, 0.5))
        assert isinstance(r, ApplyResult) and not r.ready()
        with pytest.raises(ValueError, match="not ready"):
            r.successful()
        t0 = time.monotonic()
        with pytest.raises(mp.TimeoutError):
            r.get(timeout=0.05)
        assert time.monotonic() - t0 < 0.4
        r.wait(0.01)
        assert not r.ready()
        assert r.get(5) == 5 and r.ready() and r.successful()
        m = p.map_async(sq, range(3))
        assert isinstance(m, MapResult) and m.get(5) == [0, 1, 4]
        it = p.imap(sleep_then, [1], 1)
        with pytest.raises(mp.TimeoutError):
            it.next(timeout=0.001)
        assert it.next(timeout=5) == 1
        with pytest.raises(StopIteration):
            it.next(timeout=5)
        assert ApplyResult[int] is not None  # __class_getitem__


def test_callbacks_run_in_the_result_handler_thread():
    seen = []
    errors = []
    done = threading.Event()
    with mp.Pool(2) as p:

        def cb(v):
            seen.append((v, threading.current_thread() is p._result_handler))
            done.set()

        p.apply_async(sq, (6,), callback=cb).get(5)
        assert seen == [(36, True)]
        p.map_async(sq, range(3), callback=seen.append).get(5)
        assert seen[-1] == [0, 1, 4]
        r = p.apply_async(boom, (2,), callback=seen.append, error_callback=errors.append)
        r.wait(5)
        assert len(errors) == 1 and isinstance(errors[0], ValueError)
        r = p.map_async(boom, range(3), error_callback=errors.append)
        r.wait(5)
        assert len(errors) == 2 and isinstance(errors[1], ValueError)
        assert len(seen) == 2


def test_initializer_runs_in_each_worker():
    with mp.Pool(2, initializer=init, initargs=("hello",)) as p:
        assert set(p.map(read_init, range(8))) == {"hello"}
    with pytest.raises(TypeError, match="initializer must be a callable"):
        mp.Pool(1, initializer=3)


@pytest.mark.parametrize("bad", [0, -1])
def test_bad_processes_is_value_error(bad):
    with pytest.raises(ValueError, match="Number of processes must be at least 1"):
        mp.Pool(bad)


def test_non_int_processes_is_type_error_naming_it():
    with pytest.raises(TypeError, match="processes must be an int or None, not str"):
        mp.Pool("2")
    with pytest.raises(TypeError, match="processes"):
        ThreadPool(1.5)


@pytest.mark.parametrize("bad", [0, -2, 1.5, "3"])
def test_bad_maxtasksperchild_is_value_error(bad):
    with pytest.raises(ValueError, match="maxtasksperchild must be a positive int or None"):
        mp.Pool(1, maxtasksperchild=bad)


def test_default_processes_is_cpu_count():
    count = getattr(os, "process_cpu_count", os.cpu_count)() or 1
    with mp.Pool() as p:
        assert p._processes == count and len(p._pool) == count


def test_close_join_finishes_queued_work():
    p = mp.Pool(2)
    results = [p.apply_async(sleep_then, (i, 0.02)) for i in range(6)]
    p.close()
    assert p._state == "CLOSE"
    with pytest.raises(ValueError, match="Pool not running"):
        p.apply_async(sq, (1,))
    with pytest.raises(ValueError, match="Pool not running"):
        p.map(sq, [1])
    p.join()
    assert [r.get(0) for r in results] == list(range(6))
    assert not any(w.is_alive() for w in p._pool)


def test_join_while_running_is_value_error():
    with mp.Pool(1) as p, pytest.raises(ValueError, match="Pool is still running"):
        p.join()


def test_enter_on_closed_pool_is_value_error():
    p = mp.Pool(1)
    p.close()
    with pytest.raises(ValueError, match="Pool not running"), p:
        pass
    p.join()


def test_pool_cannot_be_pickled():
    with mp.Pool(1) as p, pytest.raises(NotImplementedError, match="cannot be passed"):
        pickle.dumps(p)


def test_terminate_returns_promptly_with_busy_workers():
    p = mp.Pool(3)
    p.map_async(spin, range(3), chunksize=1)
    sleepers = p.map_async(time.sleep, [30] * 6, chunksize=1)
    time.sleep(0.2)  # the workers are busy
    assert all(w.is_alive() for w in p._pool)
    t0 = time.monotonic()
    p.terminate()
    p.join()
    assert time.monotonic() - t0 < 5
    assert not any(w.is_alive() for w in p._pool)
    assert all(w.exitcode == -15 for w in p._pool)
    assert not sleepers.ready()


def test_exit_of_with_block_terminates():
    with mp.Pool(2) as p:
        p.apply_async(time.sleep, (30,))
        time.sleep(0.1)
        workers = list(p._pool)
    assert p._state == "TERMINATE"
    assert not any(w.is_alive() for w in workers)


def test_maxtasksperchild_replaces_workers():
    with mp.Pool(2, maxtasksperchild=1) as p:
        pids = set()
        for i in range(6):
            _, pid = p.apply(whoami, (i,))
            pids.add(pid)
        assert len(pids) == 6
        # _maintain_pool keeps it at the asked size.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (
            len(p._pool) == 2 and all(w.is_alive() for w in p._pool)
        ):
            time.sleep(0.01)
        assert len(p._pool) == 2
        assert p.map(sq, range(10), chunksize=1) == [x * x for x in range(10)]


def test_unclosed_pool_warns_resource_warning_when_collected():
    p = mp.Pool(1)
    workers = list(p._pool)
    r = repr(p)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del p
        gc.collect()
    assert any(
        issubclass(w.category, ResourceWarning)
        and "unclosed running multiprocessing pool" in str(w.message)
        and r in str(w.message)
        for w in caught
    ), caught
    # The warning's source= kept the pool alive; once it is gone, Finalize runs.
    del caught
    gc.collect()
    for w in workers:  # the finalizer terminated them
        w.join(5)
        assert not w.is_alive()


def test_threadpool_works_in_the_sandbox_with_plain_threads():
    with pytest.raises(ImportError):  # the sandbox, as on iOS: stock ThreadPool needs it
        import _multiprocessing  # noqa: F401
    before = threading.active_count()
    lock = threading.Lock()  # unpicklable: passed by reference in a ThreadPool
    with ThreadPool(3) as tp:
        assert len(tp._pool) == 3
        assert all(isinstance(w, ios_mp.dummy.DummyProcess) for w in tp._pool)
        assert tp.map(sq, range(10)) == [x * x for x in range(10)]
        assert tp.apply(lambda lk: lk, (lock,)) is lock
        assert sorted(tp.imap_unordered(sq, range(5))) == [0, 1, 4, 9, 16]
        with pytest.raises(ValueError, match="bad 1") as info:
            tp.apply(boom, (1,))
        assert info.value.__cause__ is None  # not wrapped, as stdlib
        assert mp.current_process().name == "MainProcess"
    tp.join()
    assert threading.active_count() <= before + 1
    with ios_mp.dummy.Pool(2) as dp:
        assert isinstance(dp, ThreadPool)
        assert dp.map(sq, [3]) == [9]


def test_threadpool_close_join():
    tp = ThreadPool(2)
    rs = [tp.apply_async(sleep_then, (i, 0.01)) for i in range(4)]
    tp.close()
    tp.join()
    assert [r.get(0) for r in rs] == [0, 1, 2, 3]
    assert not any(w.is_alive() for w in tp._pool)


def test_pool_in_a_worker():
    q = mp.SimpleQueue()

    def nested(q):
        with mp.Pool(2) as p:
            q.put(p.map(sq, range(4)))

    proc = mp.Process(target=nested, args=(q,))
    proc.start()
    assert q.get() == [0, 1, 4, 9]
    proc.join(10)
    assert proc.exitcode == 0


@pytest.mark.no_sandbox
def test_pool_left_open_at_interpreter_exit(tmp_path):
    # CPython's test_worker_finalization_via_atexit_handler_of_multiprocessing
    # (bpo-38744, bpo-39360), in a real interpreter under the iOS sandbox.
    script = tmp_path / "prog.py"
    script.write_text(
        textwrap.dedent("""
        from multiprocessing import Pool
        problem = None
        class A:
            def __init__(self):
                self.pool = Pool(processes=1)
        def test():
            global problem
            problem = A()
            print(problem.pool.map(float, tuple(range(3))))
        if __name__ == "__main__":
            test()
    """)
    )
    r = subprocess.run(
        [sys.executable, "-m", "ios_mp", "--sandbox", "ios", str(script)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[0.0, 1.0, 2.0]"
    assert "Traceback" not in r.stderr
