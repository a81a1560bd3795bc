"""A multiprocessing program shaped like a production scanner (issue 6).

Run it with stock multiprocessing (``python tests/scanner_app.py``) or with
ios_mp (``python -m ios_mp --sandbox ios tests/scanner_app.py``, or call
``main()`` from a process where ios_mp is installed); ``tests/test_scanner.py``
compares the two. The architecture, the one many real programs have:

* the main process takes a context (``--method fork|spawn``), starts a
  ``SyncManager`` from it and makes two bounded queues: ``jobs`` (ints, then one
  ``None`` sentinel per worker task) and ``upstream``, a multiplexed queue of
  dataclass messages and exceptions that the parent dispatches with ``match``
  (``scanner_match.py``; an if/elif twin on Python 3.9);
* ``manager.Condition()`` + ``manager.Value`` announce shutdown;
  ``manager.Event()`` says "all workers ready"; ``manager.Condition()`` guards a
  ``manager.dict()`` registry of semaphores that the parent creates lazily when a
  worker asks over ``upstream`` (``SemRequest``). A registry semaphore is a
  picklable ``ManagedSemaphore`` built from ``manager.Value`` +
  ``manager.Condition`` proxies (stored inside the managed dict: nested proxies);
* N workers ignore SIGINT and each runs an asyncio event loop with M tasks that
  make blocking queue calls in ``asyncio.to_thread`` and run each job in
  ``loop.run_in_executor``. A job holds its category's semaphore while it works;
  the workers record how many holders are inside at once (a meter independent of
  the semaphore) so a limit overrun is visible;
* on Ctrl-C the parent notifies the shutdown condition, drains both queues while
  waiting for the workers, ``terminate()``s then ``kill()``s stragglers, injects a
  sentinel into ``upstream``, drains again up to it, closes the queues
  (``cancel_join_thread``/``join_thread``) and shuts the manager down.

Output: ``scanner: workers ready`` once every worker reported, ``scanner:
progress`` after ``--progress-after`` results, a ``RESULT {json}``
line, and ``scanner: clean shutdown`` last. Exit status 0 for a complete run, 130
for an interrupted one that shut down cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

READY_LINE = "scanner: workers ready"
PROGRESS_LINE = "scanner: progress"
CLEAN_LINE = "scanner: clean shutdown"
INTERRUPT_STATUS = 130

# Category of a job -> its semaphore's limit.
LIMITS = {"dns": 1, "http": 2, "tls": 3}
CATEGORIES = sorted(LIMITS)
FAILING = 7  # job numbers == FAILING (mod 13) raise ScanError


# -- upstream messages -------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    worker: int
    pid: int


@dataclass(frozen=True)
class Result:
    worker: int
    job: int
    value: int


@dataclass(frozen=True)
class SemRequest:
    worker: int
    name: str
    limit: int


@dataclass(frozen=True)
class Done:
    worker: int
    handled: int


class ScanError(Exception):
    """A job that failed; sent upstream as the exception object itself."""

    def __init__(self, job: int, reason: str) -> None:
        super().__init__(job, reason)
        self.job = job
        self.reason = reason


# -- a semaphore that lives in a manager --------------------------------------


class ManagedSemaphore:
    """A counting semaphore made of manager proxies, so it pickles (into a queue or
    a managed dict) and works in every process: ``count`` (``manager.Value``)
    holders, at most ``limit``, guarded by ``cond`` (``manager.Condition``).
    ``inside``/``peak``/``meter`` measure concurrency independently of it."""

    def __init__(self, name, limit, count, cond, inside, peak, meter) -> None:
        self.name = name
        self.limit = limit
        self.count = count
        self.cond = cond
        self.inside = inside
        self.peak = peak
        self.meter = meter

    def acquire(self) -> None:
        with self.cond:
            while self.count.value >= self.limit:
                self.cond.wait()
            self.count.value += 1

    def release(self) -> None:
        with self.cond:
            self.count.value -= 1
            self.cond.notify()

    @contextlib.contextmanager
    def held(self):
        self.acquire()
        try:
            with self.meter:
                self.inside.value += 1
                if self.inside.value > self.peak.value:
                    self.peak.value = self.inside.value
            try:
                yield
            finally:
                with self.meter:
                    self.inside.value -= 1
        finally:
            self.release()


# -- workers -----------------------------------------------------------------


@dataclass
class WorkerArgs:
    worker: int
    tasks: int
    jobs: Any
    upstream: Any
    shutdown_cond: Any
    shutdown_flag: Any
    ready: Any
    registry_cond: Any
    registry: Any
    work_seconds: float
    hang_job: int


def job_value(job: int) -> int:
    return (job * job + 7 * job) % 10007


def get_semaphore(a: WorkerArgs, name: str, cache: dict, lock: threading.Lock):
    """The registry's semaphore ``name``, asking the parent to create it once."""
    with lock:
        if name in cache:
            return cache[name]
        with a.registry_cond:
            sem = a.registry.get(name)
        if sem is None:
            # Not while holding registry_cond: the parent takes it to answer, and
            # a full upstream queue would then block both of us.
            a.upstream.put(SemRequest(a.worker, name, LIMITS[name]))
            with a.registry_cond:
                while (sem := a.registry.get(name)) is None:
                    a.registry_cond.wait(0.5)
        cache[name] = sem
        return sem


def run_job(a: WorkerArgs, job: int, cache: dict, lock: threading.Lock) -> int:
    sem = get_semaphore(a, CATEGORIES[job % len(CATEGORIES)], cache, lock)
    with sem.held():
        if job == a.hang_job:
            time.sleep(3600)  # a straggler: never notices shutdown
        time.sleep(a.work_seconds)
    if job % 13 == FAILING:
        raise ScanError(job, f"job {job}: connection refused")
    return job_value(job)


async def worker_async(a: WorkerArgs) -> int:
    loop = asyncio.get_running_loop()
    stopping = threading.Event()
    cache: dict = {}
    lock = threading.Lock()

    def watch_shutdown() -> None:
        with a.shutdown_cond:
            while not a.shutdown_flag.value and not stopping.is_set():
                a.shutdown_cond.wait(0.5)
        stopping.set()

    async def task_loop(executor) -> int:
        handled = 0
        while not stopping.is_set():
            try:
                job = await asyncio.to_thread(a.jobs.get, True, 0.2)
            except queue.Empty:
                continue
            if job is None:
                break
            try:
                msg: Any = Result(
                    a.worker,
                    job,
                    await loop.run_in_executor(executor, run_job, a, job, cache, lock),
                )
            except ScanError as e:
                msg = e
            await asyncio.to_thread(a.upstream.put, msg)
            handled += 1
        return handled

    await asyncio.to_thread(a.upstream.put, Ready(a.worker, os.getpid()))
    await asyncio.to_thread(a.ready.wait)
    watcher = asyncio.ensure_future(asyncio.to_thread(watch_shutdown))
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.tasks) as executor:
        counts = await asyncio.gather(*(task_loop(executor) for _ in range(a.tasks)))
    stopping.set()
    await watcher
    return sum(counts)


def worker_main(a: WorkerArgs) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        handled = asyncio.run(worker_async(a))
    except Exception as e:  # report, as production code does, then fail
        a.upstream.put(RuntimeError(f"worker {a.worker}: {type(e).__name__}: {e}"))
        raise
    a.upstream.put(Done(a.worker, handled))


# -- the parent --------------------------------------------------------------


class Interrupts:
    """SIGINT raises KeyboardInterrupt, except inside ``shield()`` (around manager
    calls, whose connection a half-done call would desynchronise): there it is
    raised when the shielded block ends."""

    def __init__(self) -> None:
        self.depth = 0
        self.pending = False

    def handler(self, signum, frame) -> None:
        if self.depth:
            self.pending = True
        else:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def shield(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if not self.depth and self.pending:
                self.pending = False
                raise KeyboardInterrupt


@dataclass
class State:
    manager: Any
    registry_cond: Any
    registry: Any
    interrupts: Interrupts
    ready: set = field(default_factory=set)
    results: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)
    done: dict = field(default_factory=dict)
    crashes: list = field(default_factory=list)
    semaphores: dict = field(default_factory=dict)
    sentinels: int = 0

    def create_semaphore(self, name: str, limit: int) -> None:
        with self.interrupts.shield():
            if name in self.semaphores:
                return  # a second worker asked before the first answer arrived
            m = self.manager
            sem = ManagedSemaphore(
                name,
                limit,
                m.Value("i", 0),
                m.Condition(),
                m.Value("i", 0),
                m.Value("i", 0),
                m.Lock(),
            )
            self.semaphores[name] = sem
            with self.registry_cond:
                self.registry[name] = sem
                self.registry_cond.notify_all()


def dispatch_if(app, state: State, msg) -> None:
    """``scanner_match.dispatch`` without ``match``, for Python 3.9."""
    if isinstance(msg, app.Ready):
        state.ready.add(msg.worker)
    elif isinstance(msg, app.Result):
        state.results[msg.job] = msg.value
    elif isinstance(msg, app.SemRequest):
        state.create_semaphore(msg.name, msg.limit)
    elif isinstance(msg, app.Done):
        state.done[msg.worker] = msg.handled
    elif isinstance(msg, app.ScanError):
        state.errors[msg.job] = msg.reason
    elif isinstance(msg, BaseException):
        state.crashes.append(f"{type(msg).__name__}: {msg}")
    elif msg is None:
        state.sentinels += 1
    else:
        raise TypeError(f"upstream: unexpected message {msg!r}")


if sys.version_info >= (3, 10):
    try:
        from . import scanner_match as _matcher
    except ImportError:  # run as a script: tests/ is sys.path[0]
        import scanner_match as _matcher
    dispatch = _matcher.dispatch
else:
    dispatch = dispatch_if


def _app():
    return sys.modules[__name__]


def drain(q, state: State, timeout: float = 0.0) -> int:
    """Dispatch what ``q`` holds now (waiting up to ``timeout`` for the first)."""
    n = 0
    while True:
        try:
            msg = q.get(timeout=timeout) if timeout and not n else q.get_nowait()
        except queue.Empty:
            return n
        if state is not None:
            dispatch(_app(), state, msg)
        n += 1


def put_draining(q, item, upstream, state: State, progress=None) -> None:
    """``q.put(item)`` on a bounded queue without deadlocking against workers that
    are blocked putting into ``upstream``."""
    while True:
        try:
            q.put(item, timeout=0.05)
            return
        except queue.Full:
            drain(upstream, state)
            if progress:
                progress()


def shutdown(workers, jobs, upstream, shutdown_cond, shutdown_flag, state, grace: float) -> dict:
    """The Ctrl-C path; returns what it had to do, for the report."""
    with state.interrupts.shield(), shutdown_cond:
        shutdown_flag.value = True
        shutdown_cond.notify_all()
    deadline = time.monotonic() + grace
    while any(p.is_alive() for p in workers) and time.monotonic() < deadline:
        drain(jobs, None)
        drain(upstream, state, timeout=0.05)
        for p in workers:
            p.join(0)
    terminated = [p.name for p in workers if p.is_alive()]
    for p in workers:
        if p.is_alive():
            p.terminate()
    for p in workers:
        p.join(2)
    killed = [p.name for p in workers if p.is_alive()]
    for p in workers:
        if p.is_alive():
            p.kill()
    for p in workers:
        p.join(2)
    upstream.put(None)  # the sentinel: everything before it is drained below
    seen = state.sentinels
    end = time.monotonic() + 5
    while state.sentinels == seen and time.monotonic() < end:
        drain(upstream, state, timeout=0.1)
    drain(jobs, None)
    return {
        "terminated": terminated,
        "killed": killed,
        "alive": [p.name for p in workers if p.is_alive()],
        "sentinel_seen": state.sentinels > seen,
    }


def main(argv=None, *, out=None) -> int:
    out = out or sys.stdout
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="fork", choices=["fork", "spawn"])
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--tasks", type=int, default=3, help="asyncio tasks per worker")
    p.add_argument("--jobs", type=int, default=60)
    p.add_argument("--queue-size", type=int, default=4)
    p.add_argument("--work-seconds", type=float, default=0.002)
    p.add_argument("--hang-job", type=int, default=-1, help="this job never finishes")
    p.add_argument("--grace", type=float, default=2.0, help="seconds before terminate()")
    p.add_argument(
        "--progress-after", type=int, default=0, help=f"print {PROGRESS_LINE!r} after N results"
    )
    args = p.parse_args(argv)

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    interrupts = Interrupts()
    in_main_thread = threading.current_thread() is threading.main_thread()
    old_handler = signal.signal(signal.SIGINT, interrupts.handler) if in_main_thread else None
    ctx = multiprocessing.get_context(args.method)
    from multiprocessing.managers import SyncManager

    manager = SyncManager(ctx=ctx)
    manager.start()
    jobs = ctx.Queue(maxsize=args.queue_size)
    upstream = ctx.Queue(maxsize=args.queue_size)
    shutdown_cond = manager.Condition()
    shutdown_flag = manager.Value("b", False)
    ready = manager.Event()
    registry_cond = manager.Condition()
    registry = manager.dict()
    state = State(manager, registry_cond, registry, interrupts)
    workers = [
        ctx.Process(
            target=worker_main,
            args=(
                WorkerArgs(
                    i,
                    args.tasks,
                    jobs,
                    upstream,
                    shutdown_cond,
                    shutdown_flag,
                    ready,
                    registry_cond,
                    registry,
                    args.work_seconds,
                    args.hang_job,
                ),
            ),
            name=f"scanner-{i}",
        )
        for i in range(args.workers)
    ]
    outcome: dict = {}
    status = 0
    try:
        for w in workers:
            w.start()
        while len(state.ready) < args.workers:
            drain(upstream, state, timeout=0.2)
            if state.crashes:
                raise RuntimeError(f"a worker failed: {state.crashes}")
        with interrupts.shield():
            ready.set()
        say(READY_LINE)
        progress_said = False

        def progress() -> None:
            nonlocal progress_said
            done = len(state.results) + len(state.errors)
            if args.progress_after and not progress_said and done >= args.progress_after:
                progress_said = True
                say(PROGRESS_LINE)

        for job in range(args.jobs):
            put_draining(jobs, job, upstream, state, progress)
        for _ in range(args.workers * args.tasks):
            put_draining(jobs, None, upstream, state)
        while len(state.done) < args.workers:
            drain(upstream, state, timeout=0.2)
            if state.crashes:
                raise RuntimeError(f"a worker failed: {state.crashes}")
        for w in workers:
            w.join()
        outcome = {"outcome": "complete"}
    except KeyboardInterrupt:
        say("scanner: interrupted, shutting down")
        outcome = {"outcome": "interrupted"}
        outcome.update(
            shutdown(workers, jobs, upstream, shutdown_cond, shutdown_flag, state, args.grace)
        )
        status = INTERRUPT_STATUS
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, old_handler)
    peaks = {name: sem.peak.value for name, sem in state.semaphores.items()}
    jobs.cancel_join_thread()  # its leftovers are not wanted
    jobs.close()
    upstream.close()
    upstream.join_thread()
    jobs.join_thread()
    manager.shutdown()
    report = {
        **outcome,
        "method": args.method,
        "results": {str(k): v for k, v in sorted(state.results.items())},
        "errors": {str(k): v for k, v in sorted(state.errors.items())},
        "handled": sum(state.done.values()),
        "crashes": state.crashes,
        "semaphores": {n: s.limit for n, s in sorted(state.semaphores.items())},
        "peaks": peaks,
        "exitcodes": [w.exitcode for w in workers],
    }
    say("RESULT " + json.dumps(report, sort_keys=True))
    say(CLEAN_LINE)
    return status


if __name__ == "__main__":
    sys.exit(main())
