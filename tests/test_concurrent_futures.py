"""Stock ``concurrent.futures.ProcessPoolExecutor`` with ios_mp installed, under
the iOS sandbox: its workers are ios_mp processes (threads of the app) and its
queues ios_mp queues, and nothing else changes. A worker's ``pid`` here is
``multiprocessing.current_process().pid`` (virtual): ``os.getpid()`` is the
app's in every worker."""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures.process import BrokenProcessPool

import pytest

pytestmark = [
    pytest.mark.timeout(90),
    # The executor's manager thread must not die (a missing Queue method did).
    pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning"),
]

_initialized: dict = {}


def vpid() -> int:
    return multiprocessing.current_process().pid


def square(x: int) -> int:
    return x * x


def square_with_pid(x: int) -> tuple:
    return x * x, vpid()


def init(tag: str, n: int) -> None:
    _initialized[vpid()] = (tag, n)


def initialized() -> tuple:
    return _initialized.get(vpid())


def failing_init() -> None:
    raise ValueError("bad initializer")


def exit_now(code: int) -> None:
    os._exit(code)


def slow(x: float) -> float:
    time.sleep(x)
    return x


def test_processes_are_ios_mp_workers(ios_sandbox):
    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as ex:
        pids = {ex.submit(vpid).result(timeout=30) for _ in range(4)}
    assert all(p >= 2**30 for p in pids), pids  # ios_mp's virtual pids
    assert multiprocessing.active_children() == []


def test_submit_and_exceptions(ios_sandbox):
    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as ex:
        futs = [ex.submit(square, i) for i in range(10)]
        assert [f.result(timeout=30) for f in futs] == [i * i for i in range(10)]
        bad = ex.submit(divmod, 1, 0)
        with pytest.raises(ZeroDivisionError):
            bad.result(timeout=30)
        # The traceback of the worker comes along, as with real processes.
        assert "_RemoteTraceback" in repr(bad.exception().__cause__.__class__)


@pytest.mark.parametrize("chunksize", [1, 3, 7, 100])
def test_map_with_chunksize(ios_sandbox, chunksize):
    with concurrent.futures.ProcessPoolExecutor(max_workers=3) as ex:
        got = list(ex.map(square, range(50), chunksize=chunksize))
    assert got == [i * i for i in range(50)]


def test_map_timeout_and_error_in_a_chunk(ios_sandbox):
    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as ex:
        # As stdlib: an error fails its whole chunk, and the map stops there.
        it = ex.map(divmod, [4, 5, 6, 7], [2, 0, 3, 1], chunksize=2)
        with pytest.raises(ZeroDivisionError):
            next(it)
        it = ex.map(divmod, [4, 5, 6, 7], [2, 1, 0, 1], chunksize=2)
        assert [next(it), next(it)] == [(2, 0), (5, 0)]
        with pytest.raises(ZeroDivisionError):
            next(it)
        with pytest.raises(concurrent.futures.TimeoutError):
            list(ex.map(slow, [5], timeout=0.2))


def test_initializer_and_initargs(ios_sandbox):
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=2, initializer=init, initargs=("tag", 42)
    ) as ex:
        got = {ex.submit(initialized).result(timeout=30) for _ in range(6)}
    assert got == {("tag", 42)}


def test_failing_initializer_breaks_the_pool(ios_sandbox):
    ex = concurrent.futures.ProcessPoolExecutor(max_workers=1, initializer=failing_init)
    fut = ex.submit(square, 3)
    with pytest.raises(BrokenProcessPool):
        fut.result(timeout=30)
    with pytest.raises(BrokenProcessPool):
        ex.submit(square, 4)
    ex.shutdown(wait=True)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_mp_context_from_ios_mp(ios_sandbox, method):
    import ios_mp

    ctx = ios_mp.get_context(method)
    assert multiprocessing.get_context(method) is ctx  # ios_mp is multiprocessing
    with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=ctx) as ex:
        assert list(ex.map(square_with_pid, range(6)))[3][0] == 9
        procs = list(ex._processes.values())
    assert procs and all(type(p) is type(ctx.Process()) for p in procs), procs


@pytest.mark.skipif(sys.version_info < (3, 11), reason="max_tasks_per_child is new in 3.11")
@pytest.mark.parametrize("method", [None, "spawn"])
def test_max_tasks_per_child_replaces_workers(ios_sandbox, method):
    kw = {} if method is None else {"mp_context": multiprocessing.get_context(method)}
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, max_tasks_per_child=2, **kw) as ex:
        pids = [ex.submit(square_with_pid, i).result(timeout=30)[1] for i in range(6)]
    # Two tasks per worker, then a new worker (a new virtual pid).
    assert len(set(pids)) == 3, pids
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4] == pids[5], pids


@pytest.mark.skipif(sys.version_info < (3, 11), reason="max_tasks_per_child is new in 3.11")
def test_max_tasks_per_child_refuses_fork_as_stdlib(ios_sandbox):
    with pytest.raises(ValueError, match="fork"):
        concurrent.futures.ProcessPoolExecutor(
            max_workers=1, max_tasks_per_child=1, mp_context=multiprocessing.get_context("fork")
        )


def test_shutdown_wait_false_cancel_futures(ios_sandbox):
    ex = concurrent.futures.ProcessPoolExecutor(max_workers=2)
    # Workers are busy with the first tasks; the rest wait in the executor.
    futs = [ex.submit(slow, 0.3) for _ in range(20)]
    assert futs[0].result(timeout=30) == 0.3
    ex.shutdown(wait=False, cancel_futures=True)
    concurrent.futures.wait(futs, timeout=30)
    assert all(f.done() for f in futs)
    cancelled = [f for f in futs if f.cancelled()]
    finished = [f for f in futs if not f.cancelled()]
    assert cancelled, "no pending future was cancelled"
    assert all(f.result() == 0.3 for f in finished)
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(square, 1)
    ex.shutdown(wait=True)  # joins the workers; the autouse fixture checks none is left


def test_worker_dying_breaks_the_pool(ios_sandbox):
    ex = concurrent.futures.ProcessPoolExecutor(max_workers=2)
    assert ex.submit(square, 2).result(timeout=30) == 4
    fut = ex.submit(exit_now, 3)
    with pytest.raises(BrokenProcessPool):
        fut.result(timeout=30)
    with pytest.raises(BrokenProcessPool):
        ex.submit(square, 3)
    ex.shutdown(wait=True)
    assert multiprocessing.active_children() == []


def test_asyncio_run_in_executor(ios_sandbox):
    async def main():
        loop = asyncio.get_running_loop()
        with concurrent.futures.ProcessPoolExecutor(max_workers=2) as ex:
            got = await asyncio.gather(*(loop.run_in_executor(ex, square, i) for i in range(8)))
            with pytest.raises(ZeroDivisionError):
                await loop.run_in_executor(ex, divmod, 1, 0)
            timed = await asyncio.wait_for(loop.run_in_executor(ex, slow, 0.01), 30)
        return got, timed

    got, timed = asyncio.run(main())
    assert got == [i * i for i in range(8)]
    assert timed == 0.01


def test_asyncio_default_executor_in_a_worker_thread(ios_sandbox):
    # asyncio in a thread (its loop's default executor) next to a process pool.
    out = {}

    def run():
        async def main():
            loop = asyncio.get_running_loop()
            with concurrent.futures.ProcessPoolExecutor(max_workers=1) as ex:
                return await loop.run_in_executor(ex, square, 12)

        out["v"] = asyncio.run(main())

    t = threading.Thread(target=run)
    t.start()
    t.join(60)
    assert out == {"v": 144}


def _getpids(_) -> tuple:
    import concurrent.futures.process as cfp

    return cfp.os.getpid(), os.getpid(), vpid()


def test_the_executor_module_sees_worker_pids(ios_sandbox):
    # ios_mp._futures: the module's `os.getpid()` is the worker's virtual pid
    # (its exit_pid must be a key of the executor's process table); the rest of
    # the program keeps the app's pid.
    import concurrent.futures.process as cfp

    assert cfp.os.getpid() == os.getpid()
    assert cfp.os.sep == os.sep and cfp.os.cpu_count() == os.cpu_count()
    with concurrent.futures.ProcessPoolExecutor(max_workers=1) as ex:
        seen, real, virtual = ex.submit(_getpids, 0).result(timeout=30)
        assert set(ex._processes) == {virtual}
    assert seen == virtual != real == os.getpid()


def test_process_terminated_pickles(ios_sandbox):
    import pickle

    from ios_mp.process import ProcessTerminated

    back = pickle.loads(pickle.dumps(ProcessTerminated("os._exit(3)")))
    assert type(back) is ProcessTerminated and back.args == ("os._exit(3)",)
