"""How processes end with the interpreter: non-daemon ones are joined at exit,
daemon ones are terminated, as with stdlib multiprocessing. These start a real
interpreter (``python -m ios_mp --sandbox ios``), hence ``no_sandbox`` for the
test process itself; the program under test runs inside the sandbox."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.no_sandbox


def run(tmp_path, body: str, timeout: float = 30) -> subprocess.CompletedProcess:
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.run(
        [sys.executable, "-m", "ios_mp", "--sandbox", "ios", str(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
    )


def test_non_daemon_processes_are_joined_at_exit(tmp_path):
    r = run(
        tmp_path,
        """
        import multiprocessing, time
        def late(path):
            time.sleep(0.3)
            open(path, "w").write("done")
        if __name__ == "__main__":
            multiprocessing.Process(target=late, args=("out.txt",)).start()
            print("main returns")
    """,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.txt").read_text() == "done"


def test_daemon_processes_are_terminated_at_exit(tmp_path):
    r = run(
        tmp_path,
        """
        import multiprocessing, time
        def forever(ev):
            ev.wait()  # an ios_mp wait: terminate() at exit ends it
        if __name__ == "__main__":
            ev = multiprocessing.Event()
            p = multiprocessing.Process(target=forever, args=(ev,), daemon=True)
            p.start()
            time.sleep(0.05)
            print("exiting with", multiprocessing.active_children())
    """,
    )
    assert r.returncode == 0, r.stderr
    assert "exiting with [<Process" in r.stdout
    assert "Traceback" not in r.stderr


def test_demo_from_the_readme_runs_in_the_sandbox():
    from pathlib import Path

    demo = Path(__file__).resolve().parent.parent / "examples" / "demo.py"
    r = subprocess.run(
        [sys.executable, "-m", "ios_mp", "--sandbox", "ios", str(demo)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    assert "os.fork available: False" in r.stdout
    assert "exit codes: [0, 0, 0, 0]" in r.stdout


def test_finished_and_terminated_workers_leave_the_interpreter_unharmed(tmp_path):
    """A regression test: clearing a pending asynchronous exception with
    PyThreadState_SetAsyncExc(ident, NULL) leaves CPython < 3.13's eval breaker
    signalled for good, so every later call takes the slow path and, on 3.11,
    any profile/trace function loops forever. Workers that ran normally, were
    terminated while waiting, or while running Python, must leave tracing and
    profiling working (pdb, coverage, cProfile rely on them)."""
    r = run(
        tmp_path,
        """
        import multiprocessing, sys, time

        def spin(started):
            started.set()
            while True:
                pass

        if __name__ == "__main__":
            p = multiprocessing.Process(target=print, args=("worker ran",))
            p.start(); p.join()
            ev = multiprocessing.Event()
            p = multiprocessing.Process(target=ev.wait)
            p.start(); time.sleep(0.05); p.terminate(); p.join()
            assert p.exitcode == -15, p.exitcode
            started = multiprocessing.Event()
            p = multiprocessing.Process(target=spin, args=(started,))
            p.start(); started.wait(); p.kill(); p.join()
            assert p.exitcode == -9, p.exitcode
            calls = []
            sys.setprofile(lambda frame, event, arg: calls.append(event))
            for _ in range(100):
                len("x")
            sys.setprofile(None)
            sys.settrace(lambda frame, event, arg: None)
            def f():
                return 1
            for _ in range(100):
                f()
            sys.settrace(None)
            print("profiled", len(calls) > 0)
    """,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "worker ran" in r.stdout and "profiled True" in r.stdout


# A daemon thread that never returns from a C call releasing the GIL: the socket
# read times out every 0.5 ms, so it re-takes the GIL all the time, also while the
# interpreter finalizes.
_SPIN = """
    import multiprocessing, socket, threading, time

    def spin(sock, up):
        up.set()
        while True:
            try:
                sock.recv(1)
            except (socket.timeout, OSError):
                pass

    a, b = socket.socketpair()
    a.settimeout(0.0005)
    up = multiprocessing.Event()
"""

# Where the spinning thread is when the app exits: each time below a Rust frame.
_SPINNERS = {
    # The body of a thread a worker started (paramiko's transport thread).
    "worker-thread": """
        def worker(sock, up):
            threading.Thread(target=spin, args=(sock, up), name="spinner", daemon=True).start()
            time.sleep(30)  # a daemon worker: terminated at exit

        p = multiprocessing.Process(target=worker, args=(a, up), daemon=True)
        p.start()
    """,
    # The predicate of Condition.wait_for, in a daemon thread of the app.
    "wait_for-predicate": """
        cond = multiprocessing.Condition()

        def waiter():
            with cond:
                cond.wait_for(lambda: spin(a, up))

        threading.Thread(target=waiter, name="spinner", daemon=True).start()
    """,
    # An object's __reduce__, called by Queue.put's pickling.
    "queue-pickling": """
        class Slow:
            def __reduce__(self):
                spin(a, up)

        q = multiprocessing.Queue()
        threading.Thread(target=q.put, args=(Slow(),), name="spinner", daemon=True).start()
    """,
}


@pytest.mark.parametrize("where", list(_SPINNERS))
def test_threads_in_c_calls_at_exit_do_not_abort_the_app(tmp_path, where):
    """A regression test (a SIGABRT, nothing printed, after an Ansible run over
    paramiko): a daemon thread blocked in a C call that releases the GIL wakes
    while the interpreter finalizes. CPython 3.13 and older then end it with
    pthread_exit(), whose unwind aborted the app when it reached a Rust frame
    (here: the one that runs a worker thread's body, a wait_for predicate, a
    pickling). It must hang there instead (as CPython 3.14 does), and the app
    exit with 0. The program runs several times: the abort came in most runs,
    not all."""
    body = (
        textwrap.dedent(_SPIN)
        + textwrap.dedent(_SPINNERS[where])
        + textwrap.dedent("""
            assert up.wait(10)
            alive = any(t.name == "spinner" for t in threading.enumerate())
            print("spinning at exit:", alive, flush=True)
        """)
    )
    for _ in range(6):
        r = run(tmp_path, body, timeout=60)
        assert r.returncode == 0, (r.returncode, r.stderr)
        assert "spinning at exit: True" in r.stdout, r.stdout


@pytest.mark.parametrize("how, code", [("terminate", -15), ("kill", -9)])
def test_a_termination_landing_in_a_finalizer_still_ends_the_worker(tmp_path, how, code):
    """terminate() raises ProcessTerminated in a worker running Python code at its
    next bytecode; when that bytecode is in a __del__ (or a weakref callback: the
    garbage collector runs them anywhere), CPython reports the exception as
    unraisable and goes on. ios_mp's sys.unraisablehook raises it again in the
    worker's own code, so the worker still ends (here it then spins in pure Python,
    which only an asynchronous exception can end), and nothing is reported. Other
    unraisable exceptions still reach the previous hook, and uninstall() restores it."""
    body = f"""
        import multiprocessing, sys, time
        import ios_mp

        class Slow:
            def __del__(self):
                inside.set()
                t = time.perf_counter()
                while time.perf_counter() - t < 0.5:  # the termination lands here
                    pass

        def worker():
            Slow()  # deleted at once: its __del__ runs in the worker
            n = 0
            while True:  # pure Python from here on
                n += 1

        inside = multiprocessing.Event()
        p = multiprocessing.Process(target=worker)
        p.start()
        assert inside.wait(10)
        p.{how}()
        p.join(5)
        print("exitcode", p.exitcode, flush=True)

        class Raises:
            def __del__(self):
                raise ValueError("from the app's __del__")

        Raises()
        ours = sys.unraisablehook
        ios_mp.uninstall()
        print("restored", sys.unraisablehook is ours.previous, flush=True)
        ios_mp.install()
        print("reinstalled", type(sys.unraisablehook).__name__, flush=True)
    """
    r = run(tmp_path, body, timeout=30)  # the worker runs on, the app hangs: 30 s
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert f"exitcode {code}" in r.stdout, (r.stdout, r.stderr)
    assert "restored True" in r.stdout and "reinstalled UnraisableHook" in r.stdout
    assert "ProcessTerminated" not in r.stderr, r.stderr
    assert "ValueError: from the app's __del__" in r.stderr, r.stderr
