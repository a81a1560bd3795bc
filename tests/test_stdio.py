"""Per-worker standard streams and descriptors 0-2 (python/ios_mp/_stdio.py and its
rows in _virtual.py): a worker sees process-like stdio, the app's is unchanged."""

from __future__ import annotations

import errno
import io
import multiprocessing
import os
import sys
import threading
import types
from unittest import mock

import pytest

from ios_mp import _stdio, _virtual

NAMES = ("stdin", "stdout", "stderr")
# Objects a worker hands back without a copy (what it leaves in them after run()).
_SINKS: dict = {}


def _run(target, *args):
    p = multiprocessing.Process(target=target, args=args)
    p.start()
    p.join(10)
    assert not p.is_alive()
    return p


def _fd_ids():
    ids = []
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            ids.append(None)
        else:
            ids.append((st.st_dev, st.st_ino))
    return ids


def _devnull_id():
    st = os.stat(os.devnull)
    return (st.st_dev, st.st_ino)


def _assert_routers():
    """sys.__dict__ holds routers that stand for the app's current streams."""
    for name in NAMES:
        router = vars(sys)[name]
        assert type(router) is _stdio._Router
        assert router._ios_mp_app is getattr(sys, name)


@pytest.fixture
def app_unchanged(app_state_unchanged):
    fds = _fd_ids()
    streams = [getattr(sys, n) for n in NAMES]
    assert type(sys) is _stdio._SysModule
    yield
    assert _fd_ids() == fds
    assert [getattr(sys, n) for n in NAMES] == streams
    assert all(a is b for a, b in zip((getattr(sys, n) for n in NAMES), streams))
    assert not sys.stdout.closed and not sys.stderr.closed
    _assert_routers()


def _detach():
    """Ansible 2.19's WorkerProcess._detach()."""
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stdout = io.StringIO()
    sys.stderr = io.StringIO()
    sys.stdin = os.fdopen(0, "r", closefd=False)
    sys.stdin.close()


# --- streams ---------------------------------------------------------------------


def test_worker_print_goes_to_the_apps_stdout_by_default_capsys(app_unchanged, capsys):
    q = multiprocessing.Queue()
    app_class = sys.stdout.__class__

    def body():
        print("from the worker")
        print("to stderr", file=sys.stderr)
        sys.stdout.write("written\n")
        q.put(
            (
                sys.stdout.__class__ is app_class,
                isinstance(sys.stdout, io.TextIOBase),
                type(sys.stdout) is _stdio.WorkerStream,
            )
        )

    assert _run(body).exitcode == 0
    assert q.get(timeout=5) == (True, True, True)
    out, err = capsys.readouterr()
    assert out == "from the worker\nwritten\n"
    assert err == "to stderr\n"
    print("the app prints")
    assert capsys.readouterr().out == "the app prints\n"


def test_worker_output_is_visible_with_capfd(app_unchanged, capfd):
    def body():
        print("worker print", flush=True)
        os.write(1, b"worker fd 1\n")
        os.write(2, b"worker fd 2\n")
        sys.stderr.write("worker stderr\n")

    assert _run(body).exitcode == 0
    out, err = capfd.readouterr()
    assert "worker print\n" in out and "worker fd 1\n" in out
    assert "worker fd 2\n" in err and "worker stderr\n" in err


def test_a_workers_streams_are_the_apps_at_start_even_when_first_used_later(app_unchanged):
    """The state is made at first use, from the streams captured at start(), as
    fork copies them at fork: the app's later assignment does not reach it."""
    at_start, later = io.StringIO(), io.StringIO()
    go = multiprocessing.Event()

    def body():
        go.wait(10)
        print("first use, after the app reassigned its stdout")
        sys.stdout.flush()

    with mock.patch.object(sys, "stdout", at_start):
        p = multiprocessing.Process(target=body)
        p.start()
        assert p.pid in _stdio._pending and p.pid not in _stdio._states
        with mock.patch.object(sys, "stdout", later):
            go.set()
            p.join(10)
    assert p.exitcode == 0
    assert at_start.getvalue() == "first use, after the app reassigned its stdout\n"
    assert later.getvalue() == ""
    assert p.pid not in _stdio._pending


def test_a_worker_that_never_uses_its_streams_makes_no_state(app_unchanged):
    before = set(_stdio._states)
    pids = [_run(lambda: None).pid for _ in range(5)]
    assert not set(_stdio._states) - before
    assert not set(pids) & (set(_stdio._pending) | set(_stdio._states))


def test_a_worker_writing_to_the_apps_stream_directly_is_flushed_at_its_exit(app_unchanged):
    """stdlib's child flushes sys.stdout/stderr as it exits; a worker that never
    touched its own sys.std* still flushes the app's streams it was started with."""
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8")  # block-buffered, not a tty

    def body():
        stream.write("buffered in the app's stream\n")

    with mock.patch.object(sys, "stdout", stream):
        p = _run(body)
        assert p.exitcode == 0
        assert raw.getvalue() == b"buffered in the app's stream\n"


def test_worker_assigns_its_own_stdout_and_the_app_sees_nothing(app_unchanged, capsys):
    q = multiprocessing.Queue()
    assigned, app_checked = multiprocessing.Event(), multiprocessing.Event()

    def body():
        buf = io.StringIO()
        sys.stdout = buf
        assigned.set()
        app_checked.wait(5)
        print("hidden")
        print("hidden too", file=None)
        sys.stdout.write("written\n")
        q.put((sys.stdout is buf, buf.getvalue(), vars(sys)["stdout"] is not buf))

    p = multiprocessing.Process(target=body)
    app_stdout = sys.stdout
    p.start()
    assert assigned.wait(5)
    assert sys.stdout is app_stdout  # the worker's assignment is its own
    print("app line")
    app_checked.set()
    p.join(10)
    assert p.exitcode == 0
    assert q.get(timeout=5) == (True, "hidden\nhidden too\nwritten\n", True)
    assert capsys.readouterr().out == "app line\n"


def test_threads_of_a_worker_share_its_streams(app_unchanged, capsys):
    q = multiprocessing.Queue()

    def body():
        buf = io.StringIO()
        sys.stdout = buf
        seen = []

        def thread_body():
            seen.append(sys.stdout is buf)
            print("from the worker's thread")
            sys.stderr = io.StringIO()  # a process-wide change, within the worker

        t = threading.Thread(target=thread_body)
        t.start()
        t.join()
        q.put((seen, buf.getvalue(), type(sys.stderr) is io.StringIO))

    assert _run(body).exitcode == 0
    assert q.get(timeout=5) == ([True], "from the worker's thread\n", True)
    assert capsys.readouterr() == ("", "")


def test_the_apps_own_threads_see_the_apps_streams(app_unchanged, monkeypatch):
    app_buf = io.StringIO()
    monkeypatch.setattr(sys, "stdout", app_buf)
    seen = []
    t = threading.Thread(target=lambda: (seen.append(sys.stdout is app_buf), print("app thread")))
    t.start()
    t.join()
    assert seen == [True]
    assert app_buf.getvalue() == "app thread\n"
    assert vars(sys)["stdout"]._ios_mp_app is app_buf


def test_closing_inherited_streams_in_a_worker_closes_only_its_own(app_unchanged, capsys):
    q = multiprocessing.Queue()

    def body():
        sys.stdin.close()
        sys.stdout.close()
        results = [sys.stdin.closed, sys.stdout.closed]
        for call in (
            lambda: print("after close"),
            sys.stdout.flush,
            sys.stdin.readline,
            sys.stdout.fileno,
        ):
            try:
                call()
            except ValueError as e:
                results.append(str(e))
        with sys.stderr:  # closes the worker's stderr at the end
            print("stderr still open", file=sys.stderr)
        results.append(sys.stderr.closed)
        q.put(results)

    assert _run(body).exitcode == 0
    closed = "I/O operation on closed file."
    assert q.get(timeout=5) == [True, True, closed, closed, closed, closed, True]
    assert capsys.readouterr() == ("", "stderr still open\n")
    print("the app still prints")
    print("and to stderr", file=sys.stderr)
    assert capsys.readouterr() == ("the app still prints\n", "and to stderr\n")


def test_stdout_none_in_the_app_and_in_a_worker(app_unchanged, monkeypatch):
    q = multiprocessing.Queue()
    monkeypatch.setattr(sys, "stdout", None)
    print("nowhere")  # as stdlib: print() with sys.stdout None writes nothing

    def body():
        first = sys.stdout is None
        print("nowhere either")
        sys.stdout = io.StringIO()
        print("mine")
        q.put((first, sys.stdout.getvalue()))

    assert _run(body).exitcode == 0
    assert q.get(timeout=5) == (True, "mine\n")


def test_deleted_stdout_in_the_app(app_unchanged, monkeypatch):
    q = multiprocessing.Queue()
    monkeypatch.delattr(sys, "stdout")
    assert not hasattr(sys, "stdout")
    with pytest.raises(RuntimeError, match=r"lost sys\.stdout"):
        print("x")

    def body():
        q.put(hasattr(sys, "stdout"))
        sys.stdout = io.StringIO()
        print("the worker has one again")
        q.put(sys.stdout.getvalue())
        del sys.stdout
        q.put(hasattr(sys, "stdout"))

    assert _run(body).exitcode == 0
    assert [q.get(timeout=5) for _ in range(3)] == [False, "the worker has one again\n", False]
    assert not hasattr(sys, "stdout")


def test_input_in_a_worker_uses_its_stdin_and_stdout(app_unchanged):
    q = multiprocessing.Queue()

    def body():
        sys.stdin = io.StringIO("the answer\n")
        sys.stdout = io.StringIO()
        q.put((input("prompt> "), sys.stdout.getvalue()))

    assert _run(body).exitcode == 0
    assert q.get(timeout=5) == ("the answer", "prompt> ")


def test_reconfigure_and_detach_in_a_worker_leave_the_apps_stream(app_unchanged, capfd):
    q = multiprocessing.Queue()
    app_line_buffering = sys.stdout.line_buffering

    def body():
        sys.stdout.reconfigure(line_buffering=not app_line_buffering)
        print("reconfigured")
        got = [sys.stdout.line_buffering]
        sys.stdout = io.TextIOWrapper(sys.stdout.detach(), encoding="utf-8", line_buffering=True)
        print("rewrapped")
        sys.stdout.flush()
        q.put(got)

    assert _run(body).exitcode == 0
    assert q.get(timeout=5) == [not app_line_buffering]
    assert sys.stdout.line_buffering == app_line_buffering
    sys.stdout.buffer  # not detached  # noqa: B018
    print("app after")
    out = capfd.readouterr().out
    assert out.index("reconfigured\n") < out.index("rewrapped\n") < out.index("app after\n")


def test_mock_patch_of_sys_stdout_restores_the_stream(app_unchanged):
    q = multiprocessing.Queue()
    app_stdout = sys.stdout
    with mock.patch("sys.stdout", new_callable=io.StringIO) as m:
        print("patched")
    assert m.getvalue() == "patched\n"
    assert sys.stdout is app_stdout

    def body():
        initial = sys.stdout
        with mock.patch("sys.stdout", new_callable=io.StringIO) as m:
            print("patched in the worker")
        q.put((m.getvalue(), sys.stdout is initial))

    assert _run(body).exitcode == 0
    assert q.get(timeout=5) == ("patched in the worker\n", True)


def test_tracebacks_of_a_worker_go_to_its_stderr(app_unchanged, capsys):
    def replaces_stderr():
        _SINKS["err"] = sys.stderr = io.StringIO()
        raise ValueError("boom in its own stderr")

    p = _run(replaces_stderr)
    assert p.exitcode == 1
    text = _SINKS.pop("err").getvalue()
    assert text.startswith(f"Process {p.name}:\nTraceback (most recent call last):\n")
    assert text.endswith("ValueError: boom in its own stderr\n")
    assert capsys.readouterr() == ("", "")

    def keeps_stderr():
        raise ValueError("boom in the app's stderr")

    p = _run(keeps_stderr)
    assert p.exitcode == 1
    err = capsys.readouterr().err
    assert err.startswith(f"Process {p.name}:\nTraceback (most recent call last):\n")
    assert err.endswith("ValueError: boom in the app's stderr\n")


def test_exceptions_in_a_worker_thread_go_to_the_workers_stderr(app_unchanged, capsys, monkeypatch):
    import _thread

    # stdlib's C hook (pytest installs its own), which writes to sys.__dict__['stderr']
    monkeypatch.setattr(threading, "excepthook", _thread._excepthook)

    def body():
        _SINKS["thread-err"] = sys.stderr = io.StringIO()
        t = threading.Thread(target=lambda: 1 / 0)
        t.start()
        t.join()

    assert _run(body).exitcode == 0
    text = _SINKS.pop("thread-err").getvalue()
    assert "Exception in thread" in text and "ZeroDivisionError" in text
    assert capsys.readouterr() == ("", "")


def test_faulthandler_default_file_is_the_apps_stderr(app_unchanged, capfd):
    import faulthandler

    faulthandler.dump_traceback(all_threads=False)  # reads sys.__dict__['stderr']
    assert "most recent call first" in capfd.readouterr().err


# --- descriptors 0-2 -----------------------------------------------------------------


def test_ansible_detach_in_a_worker(app_unchanged, capfd):
    q = multiprocessing.Queue()

    def body():
        _detach()
        written = os.write(1, b"to devnull\n"), os.write(2, b"to devnull\n")
        ids = [(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in (0, 1, 2)]
        print("into the worker's StringIO")
        print("err too", file=sys.stderr)
        q.put(
            (
                written,
                ids,
                os.read(0, 10),
                sys.stdin.closed,
                sys.stdout.getvalue(),
                sys.stderr.getvalue(),
                os.isatty(1),
                os.getsid(0),
            )
        )

    p = _run(body)
    assert p.exitcode == 0
    written, ids, read, stdin_closed, out, err, tty, sid = q.get(timeout=5)
    assert written == (11, 11)
    assert ids == [_devnull_id()] * 3
    assert (read, stdin_closed, tty, sid) == (b"", True, False, p.pid)
    assert (out, err) == ("into the worker's StringIO\n", "err too\n")
    assert capfd.readouterr() == ("", "")
    print("the app still prints")
    os.write(2, b"and writes fd 2\n")
    assert capfd.readouterr() == ("the app still prints\n", "and writes fd 2\n")


def test_os_close_of_stdout_in_a_worker(app_unchanged, capfd):
    q = multiprocessing.Queue()

    def body():
        os.close(1)
        errors = []
        for call in (
            lambda: os.write(1, b"x"),
            lambda: os.fstat(1),
            lambda: os.close(1),
            lambda: os.dup(1),
            lambda: os.dup2(1, 2),
            lambda: os.fdopen(1, "w"),
        ):
            try:
                call()
            except OSError as e:
                errors.append(e.errno)
        closed_tty = os.isatty(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)  # reopens the worker's fd 1
        os.close(devnull)
        q.put((errors, closed_tty, os.write(1, b"again"), os.fstat(1).st_ino))

    assert _run(body).exitcode == 0
    errors, closed_tty, n, ino = q.get(timeout=5)
    assert errors == [errno.EBADF] * 6
    assert (closed_tty, n, ino) == (False, 5, _devnull_id()[1])
    os.write(1, b"app fd 1\n")
    assert capfd.readouterr().out == "app fd 1\n"


def test_print_follows_dup2_when_the_stream_is_on_fd_1(app_unchanged, monkeypatch, capfd):
    q = multiprocessing.Queue()
    # like a terminal's sys.stdout
    with open(1, "w", encoding="utf-8", closefd=False) as on_fd_1:
        monkeypatch.setattr(sys, "stdout", on_fd_1)

        def body():
            print("before", flush=True)
            saved = os.dup(1)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # python-daemon's redirect_stream()
            os.close(devnull)
            print("discarded", flush=True)
            sys.stdout.buffer.write(b"discarded too\n")
            sys.stdout.flush()
            sys.stdout = io.TextIOWrapper(sys.stdout.detach(), encoding="utf-8")
            print("discarded, rewrapped", flush=True)
            os.dup2(saved, 1)  # back to the shared file: the detached buffer follows
            os.close(saved)
            print("after", flush=True)
            os.close(1)
            try:
                print("fails", flush=True)
            except OSError as e:
                q.put(e.errno)

        assert _run(body).exitcode == 0
        assert q.get(timeout=5) == errno.EBADF
        print("app", flush=True)
        assert capfd.readouterr().out == "before\nafter\napp\n"
        monkeypatch.undo()


def test_fdopen_and_closerange_in_a_worker(app_unchanged, capfd):
    q = multiprocessing.Queue()

    def body():
        with os.fdopen(1, "w") as f:  # closefd=True: closes a dup, not the app's fd 1
            f.write("via fdopen\n")
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 2)
        os.close(devnull)
        private = _stdio.worker().fds[2]
        os.closerange(private, private + 1)  # ios_mp's copy is not the worker's to close
        ok = os.write(2, b"x") == 1 and os.fstat(2).st_ino == _devnull_id()[1]
        os.closerange(0, 3)
        closed = []
        for fd in (0, 1, 2):
            try:
                os.fstat(fd)
            except OSError as e:
                closed.append(e.errno)
        q.put((ok, closed))

    assert _run(body).exitcode == 0
    assert q.get(timeout=5) == (True, [errno.EBADF] * 3)
    assert capfd.readouterr().out == "via fdopen\n"


def test_a_child_of_a_worker_inherits_its_streams_and_descriptors(app_unchanged, capsys):
    q = multiprocessing.Queue()

    def child():
        print("from the child")  # into the parent's StringIO, through the child's view
        q.put(("child", os.fstat(1).st_ino, sys.stdout.getvalue()))
        os.close(1)
        sys.stdout.close()

    def parent():
        buf = io.StringIO()
        sys.stdout = buf
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 1)
        os.close(devnull)
        c = multiprocessing.Process(target=child)
        c.start()
        c.join(5)
        print("parent after")
        q.put(("parent", c.exitcode, os.fstat(1).st_ino, sys.stdout is buf, buf.getvalue()))

    assert _run(parent).exitcode == 0
    ino = _devnull_id()[1]
    assert q.get(timeout=5) == ("child", ino, "from the child\n")
    assert q.get(timeout=5) == ("parent", 0, ino, True, "from the child\nparent after\n")
    assert capsys.readouterr() == ("", "")


def test_twenty_concurrent_workers_detach_and_print(app_unchanged, capfd):
    n = 20
    q = multiprocessing.Queue()
    barrier = multiprocessing.Barrier(n)

    def body(i):
        _detach()
        barrier.wait(10)
        for k in range(30):
            print(f"worker {i} line {k}")
            os.write(1, b"devnull\n")
        t = threading.Thread(target=print, args=(f"worker {i} thread",))
        t.start()
        t.join()
        q.put((i, sys.stdout.getvalue(), os.fstat(1).st_ino))

    ps = [multiprocessing.Process(target=body, args=(i,)) for i in range(n)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(10)
    assert [p.exitcode for p in ps] == [0] * n
    results = dict((i, (out, ino)) for i, out, ino in (q.get(timeout=5) for _ in range(n)))
    for i in range(n):
        expected = "".join(f"worker {i} line {k}\n" for k in range(30)) + f"worker {i} thread\n"
        assert results[i] == (expected, _devnull_id()[1])
    assert capfd.readouterr() == ("", "")


# --- outside workers and uninstall ------------------------------------------------


def test_outside_workers_the_originals_run(app_unchanged):
    assert _stdio.worker() is None
    r, w = os.pipe()
    try:
        w2 = os.dup(w)
        os.dup2(r, w2)  # real descriptors, as stdlib
        assert os.fstat(w2).st_ino == os.fstat(r).st_ino
        os.close(w2)
        assert os.write(w, b"abc") == 3 and os.read(r, 3) == b"abc"
        assert os.fstat(1) == os.fstat.__wrapped__(1)
        assert os.isatty(r) is False
    finally:
        os.close(r)
        os.close(w)


def test_uninstall_restores_sys_and_os_and_reinstall_works(app_unchanged):
    import ios_mp
    from ios_mp import process

    streams = [getattr(sys, n) for n in NAMES]
    ios_mp.uninstall()
    try:
        assert type(sys) is types.ModuleType
        assert all(vars(sys)[n] is s for n, s in zip(NAMES, streams))
        for p in _virtual.TABLE:
            assert getattr(p.owner, p.name) is p.replacement.__wrapped__
        assert _stdio._on_start not in process._start_hooks
        assert _stdio._on_exit not in process._exit_hooks
    finally:
        ios_mp.install()
    assert type(sys) is _stdio._SysModule
    _assert_routers()
    assert [getattr(sys, n) for n in NAMES] == streams
    q = multiprocessing.Queue()

    def body():
        sys.stdout = io.StringIO()
        print("reinstalled")
        q.put(sys.stdout.getvalue())

    assert _run(body).exitcode == 0
    assert q.get(timeout=5) == "reinstalled\n"


def test_table_lists_the_stdio_rows():
    names = {p.name for p in _virtual.TABLE if p.owner is os}
    assert {
        "dup2",
        "close",
        "closerange",
        "dup",
        "fdopen",
        "write",
        "read",
        "fstat",
        "isatty",
    } <= names
    assert [s.what for s in _virtual.SPECIAL] == [
        "sys.stdin, sys.stdout, sys.stderr",
        "sys.unraisablehook",
    ]
    for row in (
        "``sys.stdout``",
        "``sys.unraisable``",
        "``os.dup2(fd, 0-2)``",
        "``os.close(0-2)``",
    ):
        assert row in _virtual.__doc__


def test_modules_imported_after_install_stay_plain_modules(tmp_path, monkeypatch):
    """importlib makes new modules with ``type(sys)(name)``; with ``sys`` an ios_mp
    subclass, every later import used to get the per-worker ``stdout`` property, so a
    module's own global ``stdout`` read (and was set) as ``sys.stdout``."""
    assert type(sys) is _stdio._SysModule
    (tmp_path / "has_streams.py").write_text("stdout = 'mine'\nstderr = None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "has_streams", raising=False)
    import has_streams

    assert type(has_streams) is types.ModuleType
    assert type(type(sys)("made_like_importlib")) is types.ModuleType
    assert has_streams.stdout == "mine" and has_streams.stderr is None
    from has_streams import stdout

    assert stdout == "mine"
    saved = sys.stdout
    has_streams.stdout = "changed"
    assert sys.stdout is saved and has_streams.stdout == "changed"
