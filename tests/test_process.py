from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time

import pytest

import ios_mp
from ios_mp import connection, process
from ios_mp.process import ProcessTerminated

from .conftest import wait_until


def _put(q, *values):
    for v in values:
        q.put(v)


def test_target_args_kwargs_and_exitcode_zero():
    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=_put, args=(q, 1), kwargs={})
    assert p.exitcode is None and p.pid is None and not p.is_alive()
    p.start()
    assert q.get(timeout=5) == 1
    p.join(5)
    assert p.exitcode == 0
    assert not p.is_alive()


class WorkerProcess(multiprocessing.get_context("fork").Process):
    """Ansible's WorkerProcess shape: keyword-only __init__, attributes that a
    stdlib Process also uses internally must stay the subclass's own."""

    def __init__(self, *, final_q, task_vars, host):
        super().__init__()
        self._final_q = final_q
        self._task_vars = task_vars
        self._host = host
        self._task = "task"
        self._play_context = "pc"
        self._loader = "loader"
        self._variable_manager = "vm"
        self._shared_loader_obj = "slo"
        self.worker_queue = multiprocessing.Queue()
        self.worker_id = 7
        self._cliargs = {"x": 1}
        self._new_stdin = None
        # names stdlib's BaseProcess / threading.Thread use internally:
        self._target = "mine"
        self._args = "mine"
        self._name = "mine"
        self._popen = "mine"
        self._started = "mine"

    def run(self):
        self._final_q.put((self._host, self._task_vars, self.worker_id, self._target, self._name))


def test_subclass_with_keyword_only_init_runs_most_derived_run():
    final_q = multiprocessing.queues.SimpleQueue(ctx=multiprocessing.get_context("fork"))
    w = WorkerProcess(final_q=final_q, task_vars={"a": 1}, host="h1")
    w.start()
    assert final_q.get() == ("h1", {"a": 1}, 7, "mine", "mine")
    w.join(5)
    assert w.exitcode == 0
    assert w.name.startswith("WorkerProcess-")


def test_sys_exit_codes(capsys):
    cases = [((), 0), ((None,), 0), ((3,), 3), ((True,), 1), (("bye",), 1)]
    for args, code in cases:
        p = multiprocessing.Process(target=sys.exit, args=args)
        p.start()
        p.join(5)
        assert p.exitcode == code, args
    assert "bye\n" in capsys.readouterr().err


def _boom():
    raise ValueError("kaboom")


def test_exception_gives_exitcode_1_and_traceback(capsys):
    p = multiprocessing.Process(target=_boom, name="Boomer")
    p.start()
    p.join(5)
    assert p.exitcode == 1
    err = capsys.readouterr().err
    assert "Process Boomer:" in err
    assert "ValueError: kaboom" in err


def test_stdlib_errors_for_misuse():
    p = multiprocessing.Process(target=time.sleep, args=(0,))
    with pytest.raises(AssertionError, match="can only join a started process"):
        p.join()
    with pytest.raises(ValueError, match="process not started"):
        p.sentinel  # noqa: B018
    p.start()
    with pytest.raises(AssertionError, match="cannot start a process twice"):
        p.start()
    p.join(5)
    p.close()
    with pytest.raises(ValueError, match="process object is closed"):
        p.is_alive()
    with pytest.raises(ValueError, match="closed"):
        p.start()
    with pytest.raises(AssertionError, match="group argument must be None"):
        multiprocessing.Process(group=1)


def test_close_a_running_process_is_refused():
    ev = multiprocessing.Event()
    p = multiprocessing.Process(target=ev.wait)
    p.start()
    with pytest.raises(ValueError, match="still running"):
        p.close()
    ev.set()
    p.join(5)
    p.close()


def test_start_never_raises_oserror_for_uninitialized_subclass():
    class Broken(multiprocessing.Process):
        def __init__(self):  # forgets super().__init__()
            pass

    with pytest.raises(RuntimeError, match=r"__init__\(\) was not called"):
        Broken().start()


def test_virtual_pids_and_ident():
    q = multiprocessing.Queue()
    p = multiprocessing.Process(
        target=lambda: q.put((multiprocessing.current_process().pid, os.getpid(), os.getppid()))
    )
    p.start()
    vpid, real_pid, ppid = q.get(timeout=5)
    p.join(5)
    assert p.pid == p.ident == vpid
    assert vpid >= process.VPID_BASE and vpid <= 2**31 - 1
    assert ios_mp._core.is_virtual_pid(vpid)
    assert real_pid == os.getpid()
    assert multiprocessing.current_process().pid == os.getpid()
    del ppid  # os.getppid() virtualization is the next issue's


def test_names_identity_and_nesting():
    q = multiprocessing.Queue()

    def child():
        me = multiprocessing.current_process()
        grand = multiprocessing.Process(
            target=lambda: q.put(
                (multiprocessing.current_process().name, multiprocessing.parent_process().name)
            )
        )
        grand.start()
        grand.join(5)
        q.put((me.name, threading.current_thread().name, multiprocessing.parent_process().name))

    p = multiprocessing.Process(target=child)
    p.start()
    (gname, gparent), (name, tname, parent) = q.get(timeout=5), q.get(timeout=5)
    p.join(5)
    assert name == p.name == tname
    assert parent == "MainProcess"
    assert gname == p.name + ":1"  # stdlib's nested identity naming
    assert gparent == p.name
    assert multiprocessing.parent_process() is None
    assert multiprocessing.current_process().name == "MainProcess"


def test_threads_started_by_a_worker_belong_to_it():
    q = multiprocessing.Queue()

    def child():
        t = threading.Thread(target=lambda: q.put(multiprocessing.current_process().name))
        t.start()
        t.join()

    p = multiprocessing.Process(target=child, name="Owner")
    p.start()
    assert q.get(timeout=5) == "Owner"
    p.join(5)
    # a thread of the main process stays in the main process
    out = []
    t = threading.Thread(target=lambda: out.append(multiprocessing.current_process().name))
    t.start()
    t.join()
    assert out == ["MainProcess"]


def test_worker_is_a_real_threading_thread():
    seen = multiprocessing.Queue()
    ev = multiprocessing.Event()

    def child():
        t = threading.current_thread()
        seen.put((t.name, t in threading.enumerate(), t.daemon))
        ev.wait(5)

    p = multiprocessing.Process(target=child, name="RealThread", daemon=True)
    p.start()
    assert seen.get(timeout=5) == ("RealThread", True, True)
    ev.set()
    p.join(5)
    assert not any(t.name == "RealThread" for t in threading.enumerate())


def _recurse(n):
    return _recurse(n + 1)


def test_deep_recursion_raises_recursion_error_not_crash(capsys):
    p = multiprocessing.Process(target=_recurse, args=(0,))
    p.start()
    p.join(10)
    assert p.exitcode == 1
    assert "RecursionError" in capsys.readouterr().err


def test_active_children_and_daemon_rules():
    ev = multiprocessing.Event()
    p = multiprocessing.Process(target=ev.wait, daemon=True)
    p.start()
    assert p in multiprocessing.active_children()
    ev.set()
    p.join(5)
    assert p not in multiprocessing.active_children()
    with pytest.raises(AssertionError, match="already started"):
        p.daemon = False

    q = multiprocessing.Queue()

    def spawner():
        try:
            multiprocessing.Process(target=print).start()
        except AssertionError as e:
            q.put(str(e))

    d = multiprocessing.Process(target=spawner, daemon=True)
    d.start()
    assert "daemonic processes are not allowed to have children" in q.get(timeout=5)
    d.join(5)


def test_sentinel_works_with_connection_wait_and_select():
    import select

    ev = multiprocessing.Event()
    p = multiprocessing.Process(target=ev.wait)
    p.start()
    s = p.sentinel
    assert isinstance(s, int)
    assert connection.wait([s], timeout=0.05) == []
    ev.set()
    assert connection.wait([s], timeout=5) == [s]
    r, _, _ = select.select([s], [], [], 5)
    assert r == [s]
    p.join(5)
    p.close()


def test_repr_like_stdlib():
    p = multiprocessing.Process(target=time.sleep, args=(0,), name="R")
    assert repr(p) == f"<Process name='R' parent={os.getpid()} initial>"
    p.start()
    p.join(5)
    assert repr(p) == f"<Process name='R' pid={p.pid} parent={os.getpid()} stopped exitcode=0>"


def test_authkey_inherited_and_not_picklable():
    import pickle

    key = multiprocessing.current_process().authkey
    assert isinstance(key, bytes) and len(key) == 32
    with pytest.raises(TypeError, match="disallowed"):
        pickle.dumps(key)
    p = multiprocessing.Process()
    assert p.authkey == key
    p.authkey = b"other"
    assert p.authkey == b"other"


def test_join_timeout_returns_while_running():
    ev = multiprocessing.Event()
    p = multiprocessing.Process(target=ev.wait)
    p.start()
    t0 = time.monotonic()
    p.join(0.1)
    assert time.monotonic() - t0 >= 0.09
    assert p.is_alive() and p.exitcode is None
    ev.set()
    p.join(5)


def test_non_daemon_children_are_real_non_daemon_threads():
    ev = multiprocessing.Event()
    p = multiprocessing.Process(target=ev.wait)
    p.start()
    t = next(t for t in threading.enumerate() if t.name == p.name)
    assert not t.daemon  # so the interpreter joins it at exit, like stdlib
    ev.set()
    p.join(5)
    assert wait_until(lambda: not t.is_alive())


def test_worker_exit_does_not_wait_for_idle_thread_pool_threads():
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(2)  # outlives the worker, like a module-level one
    try:
        p = multiprocessing.Process(target=lambda: pool.submit(sum, [1, 2]).result())
        p.start()
        p.join(5)
        assert p.exitcode == 0
    finally:
        pool.shutdown()


def test_worker_exit_waits_for_its_non_daemon_threads():
    q = multiprocessing.Queue()

    def child():
        def late():
            time.sleep(0.2)
            q.put("thread done")

        threading.Thread(target=late).start()

    p = multiprocessing.Process(target=child)
    p.start()
    p.join(5)
    assert p.exitcode == 0
    assert q.get(timeout=0) == "thread done"  # already there when join() returned


def _ipc_after_termination(kind, ends, started, tried):
    started.set()
    try:
        time.sleep(60)
    except BaseException:
        # A real SIGTERM ends the process before any of this could run: each
        # use of IPC from here raises ProcessTerminated again.
        if kind == "pipe":
            uses = (lambda: ends[1].send("sent"), ends[0].recv)
        else:
            uses = (lambda: ends.put("sent"), ends.get)
        for use in uses:
            try:
                use()
            except ProcessTerminated:
                tried.append("refused")
            else:
                tried.append("done")
        raise


class _Shared(multiprocessing.Process):
    __ios_mp_snapshot__ = False


@pytest.mark.parametrize("how", ["terminate", "kill"])
@pytest.mark.parametrize("kind", ["queue", "simple", "pipe"])
def test_terminated_worker_sends_and_takes_nothing_from_an_except_handler(kind, how):
    import queue

    if kind == "queue":
        ends = multiprocessing.Queue()
    elif kind == "simple":
        ends = multiprocessing.SimpleQueue()
    else:
        ends = multiprocessing.Pipe()  # (a, b): the worker sends on b, reads a
    started, tried = multiprocessing.Event(), []
    # The item the worker would take if it could: it must still be there after.
    if kind == "pipe":
        ends[1].send("for the app")
    else:
        ends.put("for the app")
    # Not snapshotted, so the worker appends to this very list.
    p = _Shared(target=_ipc_after_termination, args=(kind, ends, started, tried))
    p.start()
    assert started.wait(10)
    getattr(p, how)()
    p.join(10)
    assert p.exitcode == {"terminate": -15, "kill": -9}[how]
    assert tried == ["refused", "refused"]
    if kind == "pipe":
        assert ends[0].recv() == "for the app"
        assert not ends[1].poll(0.2), "the worker sent on the pipe"
        assert not ends[0].poll(0)
    elif kind == "queue":
        assert ends.get(timeout=5) == "for the app"
        with pytest.raises(queue.Empty):
            ends.get(timeout=0.3)
    else:
        assert ends.get() == "for the app"
        assert ends.empty()


def test_a_worker_that_was_not_ended_uses_ipc_in_its_except_handlers():
    """Only an ended worker is refused: an exception of its own leaves IPC usable."""
    q = multiprocessing.Queue()

    def body():
        try:
            raise KeyError("x")
        except KeyError:
            q.put("from except")

    p = multiprocessing.Process(target=body)
    p.start()
    assert q.get(timeout=10) == "from except"
    p.join(10)
    assert p.exitcode == 0


# --- an interrupted start() ------------------------------------------------------
# Thread.start() creates the child's thread, then waits for it to run. An
# interruption in that wait once left a child that ran (and set its signal
# handlers) while its Process said it had exited with code 1.

_CHILDREN: list = []  # module globals: shared with the workers, not snapshotted
_EVENTS: list = []


def _child_sets_a_handler():
    import signal

    signal.signal(signal.SIGTERM, lambda s, f: None)
    _EVENTS.append("child ran")
    time.sleep(0.2)


def _parent_starts_a_child():
    c = multiprocessing.Process(target=_child_sets_a_handler)
    _CHILDREN.append(c)
    c.start()
    _EVENTS.append("start returned")


def _slow_start(monkeypatch, after_created, in_worker):
    """Thread.start() of a child process's thread, called in a worker (or in the
    main process): the real one, then `after_created`."""
    real = threading.Thread.start

    def start(self):
        target = self._target  # (run() deletes it when done)
        real(self)
        caller_is_worker = ios_mp._core._worker_process() is not None
        if target is ios_mp._core._bootstrap and caller_is_worker == in_worker:
            after_created()

    monkeypatch.setattr(threading.Thread, "start", start)


def _terminate_in_start(target, in_window):
    """Run `target` in a worker, terminate it once `in_window` is set (inside a
    start() it makes), and check that it ended by SIGTERM after that start()
    returned, never running the code after it."""
    w = multiprocessing.Process(target=target)
    w.start()
    assert in_window.wait(5)
    w.terminate()
    w.join(5)
    assert w.exitcode == -15
    assert "start returned" not in _EVENTS


def test_terminate_during_a_start_ends_the_parent_after_the_child_is_recorded(monkeypatch):
    from ios_mp import _signals

    _CHILDREN.clear()
    _EVENTS.clear()
    in_window = threading.Event()

    def wait_in_start():
        in_window.set()
        time.sleep(0.3)  # the parent is terminated here: held back till start() returns

    _slow_start(monkeypatch, wait_in_start, in_worker=True)
    _terminate_in_start(_parent_starts_a_child, in_window)
    (c,) = _CHILDREN
    assert c.pid is not None
    c.join(5)
    assert c.exitcode == 0, "the child ran: it must not be reported as failed to start"
    assert _EVENTS == ["child ran"]
    assert _signals._handlers == {}  # the child's exit forgot its handler


def test_ctrl_c_after_the_thread_was_created_leaves_a_running_child(monkeypatch):
    def interrupt():
        raise KeyboardInterrupt

    _slow_start(monkeypatch, interrupt, in_worker=False)
    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=_put, args=(q, "ran"))
    with pytest.raises(KeyboardInterrupt):
        p.start()
    assert q.get(timeout=5) == "ran"
    p.join(5)
    assert p.exitcode == 0
    assert p not in multiprocessing.active_children()


@pytest.mark.parametrize(
    ("exc", "raised"), [(KeyboardInterrupt, KeyboardInterrupt), (OSError, RuntimeError)]
)
def test_a_start_that_fails_before_the_thread_exists_never_runs_the_child(monkeypatch, exc, raised):
    def start(self):
        raise exc("no thread")

    monkeypatch.setattr(threading.Thread, "start", start)
    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=_put, args=(q, "ran"))
    with pytest.raises(raised):
        p.start()
    assert p.exitcode == 1 and not p.is_alive()
    assert q.empty()


def _starts_a_sleeping_thread():
    threading.Thread(target=time.sleep, args=(30,), name="started-in-worker").start()
    _EVENTS.append("start returned")


def test_terminate_during_a_workers_thread_start_leaves_no_stray_thread(monkeypatch):
    """The worker is terminated inside Thread.start(), just before the thread is
    created: the thread is still started and owned by the worker (so it ends
    with it), not left in threading's _limbo, listed forever and never run."""
    _EVENTS.clear()
    name = (
        "_start_new_thread" if hasattr(threading, "_start_new_thread") else "_start_joinable_thread"
    )
    real = getattr(threading, name)
    in_window = threading.Event()

    def wait_then_create(*args, **kwargs):
        if threading.current_thread().name.startswith("Process-"):
            in_window.set()
            time.sleep(0.3)  # the worker is terminated here
        return real(*args, **kwargs)

    monkeypatch.setattr(threading, name, wait_then_create)
    _terminate_in_start(_starts_a_sleeping_thread, in_window)
    assert wait_until(
        lambda: not [t for t in threading.enumerate() if t.name == "started-in-worker"]
    ), threading.enumerate()
