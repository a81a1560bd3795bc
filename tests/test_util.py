"""``multiprocessing.util`` and ``multiprocessing.reduction`` under ios_mp (issue
6's ``util`` items): ``Finalize`` with exitpriority, ``register_after_fork``,
``get_logger``/``log_to_stderr`` (and the Rust core's records reaching that
logger), ``is_exiting``, ``get_temp_dir``, ``ForkingPickler``/``register``."""

from __future__ import annotations

import gc
import io
import logging
import multiprocessing
import os
import pickle
from multiprocessing import reduction, util

import pytest

# Priorities far above any the program uses: util._run_finalizers(P) here runs
# only this file's finalizers.
P = 10**9


@pytest.fixture
def mp_logger():
    """The multiprocessing logger, writing to a StringIO; restored afterwards."""
    logger = util.get_logger()
    level, handlers = logger.level, list(logger.handlers)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(util.DEFAULT_LOGGING_FORMAT))
    logger.addHandler(handler)
    yield logger, stream
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_names_are_ios_mp_and_stdlib_shaped():
    import ios_mp

    assert multiprocessing is ios_mp
    assert multiprocessing.get_logger() is util.get_logger()  # a context method, as stdlib
    assert util.__name__ == "ios_mp.util" and reduction.__name__ == "ios_mp.reduction"


# -- Finalize -----------------------------------------------------------------


class Obj:
    pass


def test_finalize_runs_when_the_object_is_collected():
    calls = []
    o = Obj()
    f = util.Finalize(o, calls.append, args=("collected",))
    assert f.still_active()
    assert "callback=append" in repr(f)
    del o
    gc.collect()
    assert calls == ["collected"]
    assert not f.still_active()
    assert f() is None  # a second call does nothing


def test_finalize_call_cancel_and_kwargs():
    calls = []
    o = Obj()
    f = util.Finalize(o, lambda *a, **k: calls.append((a, k)) or "ret", args=(1,), kwargs={"k": 2})
    assert f() == "ret"
    assert calls == [((1,), {"k": 2})]
    g = util.Finalize(o, calls.append, args=("never",))
    g.cancel()
    assert not g.still_active()
    del o
    gc.collect()
    assert calls == [((1,), {"k": 2})]


def test_run_finalizers_by_exitpriority():
    calls = []
    keep = [Obj() for _ in range(3)]
    util.Finalize(keep[0], calls.append, args=("p1",), exitpriority=P + 1)
    util.Finalize(keep[1], calls.append, args=("p3-first",), exitpriority=P + 3)
    util.Finalize(keep[2], calls.append, args=("p3-second",), exitpriority=P + 3)
    util.Finalize(None, calls.append, args=("p2-no-object",), exitpriority=P + 2)
    low = util.Finalize(None, calls.append, args=("below",), exitpriority=P)
    util._run_finalizers(P + 1)
    # Highest priority first; equal priorities: the later one first (stdlib).
    assert calls == ["p3-second", "p3-first", "p2-no-object", "p1"]
    assert low.still_active()
    low.cancel()


def test_finalize_bad_arguments():
    with pytest.raises(TypeError, match="Exitpriority"):
        util.Finalize(Obj(), print, exitpriority="high")
    with pytest.raises(ValueError, match="exitpriority cannot be None"):
        util.Finalize(None, print)


def test_finalizer_callback_error_is_printed_and_the_rest_run(capsys):
    calls = []

    def boom():
        raise RuntimeError("finalizer failed")

    util.Finalize(None, boom, exitpriority=P + 2)
    util.Finalize(None, calls.append, args=("after",), exitpriority=P + 1)
    util._run_finalizers(P + 1)
    assert calls == ["after"]
    assert "RuntimeError: finalizer failed" in capsys.readouterr().err


# -- register_after_fork, is_exiting, get_temp_dir ------------------------------


def test_register_after_fork_records_and_never_calls():
    calls = []
    o = Obj()
    before = len(util._afterfork_registry)
    util.register_after_fork(o, calls.append)
    assert len(util._afterfork_registry) == before + 1
    p = multiprocessing.Process(target=len, args=((),))
    p.start()
    p.join(10)
    assert p.exitcode == 0 and calls == []  # there is never a fork
    del o
    gc.collect()
    assert len(util._afterfork_registry) == before  # held weakly, as stdlib


def _report_exiting(q):
    q.put(util.is_exiting())


def test_is_exiting_is_false_while_running():
    assert util.is_exiting() is False
    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=_report_exiting, args=(q,))
    p.start()
    assert q.get(timeout=10) is False
    p.join(10)


def _temp_dir(q):
    q.put(util.get_temp_dir())


def test_get_temp_dir(ios_sandbox):
    d = util.get_temp_dir()
    assert os.path.isdir(d) and os.path.basename(d).startswith("pymp-")
    assert util.get_temp_dir() == d
    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=_temp_dir, args=(q,))
    p.start()
    assert q.get(timeout=10) == d  # a forked child would inherit it too
    p.join(10)
    # It is removed by a finalizer (exitpriority -100), at exit.
    assert any(
        key[0] == -100 and f._args[1:] == (d,) for key, f in list(util._finalizer_registry.items())
    )


# -- logging --------------------------------------------------------------------


def test_get_logger_is_stdlibs():
    logger = util.get_logger()
    assert logger is util.get_logger() is logging.getLogger("multiprocessing")
    assert logger.propagate is False
    assert logging.getLevelName(util.SUBDEBUG) == "SUBDEBUG"
    assert logging.getLevelName(util.SUBWARNING) == "SUBWARNING"


def _log_from_worker():
    util.info("hello from %s", "the worker")
    util.get_logger().warning("careful")


def test_log_to_stderr_format_and_process_names(mp_logger, capsys):
    logger, stream = mp_logger
    got = util.log_to_stderr(logging.INFO)
    assert got is logger and logger.level == logging.INFO
    util.debug("not shown")
    util.info("from the app")
    p = multiprocessing.Process(target=_log_from_worker, name="Logger-7")
    p.start()
    p.join(10)
    err = capsys.readouterr().err
    for text in (err, stream.getvalue()):
        assert "[INFO/MainProcess] from the app" in text
        assert "[INFO/Logger-7] hello from the worker" in text
        assert "[WARNING/Logger-7] careful" in text
        assert "not shown" not in text


def test_sub_levels(mp_logger):
    logger, stream = mp_logger
    logger.setLevel(util.SUBDEBUG)
    util.sub_debug("sd %d", 1)
    util.sub_warning("sw %d", 2)
    assert stream.getvalue().splitlines() == [
        "[SUBDEBUG/MainProcess] sd 1",
        "[SUBWARNING/MainProcess] sw 2",
    ]


def test_rust_core_records_reach_the_multiprocessing_logger(mp_logger):
    # The Rust core logs "started <name> ..." and "<name> ... exited with <code>"
    # at DEBUG through pyo3-log (logger "ios_mp"); ios_mp.util hands them on.
    logger, stream = mp_logger
    logger.setLevel(logging.DEBUG)
    p = multiprocessing.Process(target=len, args=((),), name="LoggedByRust")
    p.start()
    p.join(10)
    text = stream.getvalue()
    assert "started LoggedByRust (vpid" in text, text
    assert "LoggedByRust (vpid" in text and "exited with 0" in text, text
    logger.setLevel(logging.INFO)  # and they follow that logger's level
    p = multiprocessing.Process(target=len, args=((),), name="NotLogged")
    p.start()
    p.join(10)
    assert "NotLogged" not in stream.getvalue()


def test_rust_core_records_keep_their_level_for_the_root_logger(mp_logger):
    # Handing records on does not make the Rust core's DEBUG records reach the
    # root logger's handlers when the root is at WARNING.
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.WARNING)
    try:
        p = multiprocessing.Process(target=len, args=((),), name="QuietForRoot")
        p.start()
        p.join(10)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert "QuietForRoot" not in stream.getvalue()


# -- reduction --------------------------------------------------------------------


class Special:
    """Refuses plain pickling; picklable only through a registered reducer."""

    def __init__(self, v):
        self.v = v

    def __reduce__(self):
        raise TypeError("Special: plain pickling refused")


def _rebuild_special(v):
    return Special(v + 1000)


def _reduce_special(obj):
    return _rebuild_special, (obj.v,)


@pytest.fixture
def special_reducer():
    reduction.register(Special, _reduce_special)
    yield
    reduction.ForkingPickler._extra_reducers.pop(Special, None)


def test_forking_pickler_uses_registered_reducers(special_reducer):
    assert reduction.register == reduction.ForkingPickler.register
    with pytest.raises(TypeError, match="plain pickling refused"):
        pickle.dumps(Special(1))
    data = reduction.ForkingPickler.dumps(Special(1))
    assert isinstance(data, memoryview)  # as stdlib: a buffer
    assert reduction.ForkingPickler.loads(data).v == 1001
    buf = io.BytesIO()
    reduction.dump(Special(2), buf)
    assert pickle.loads(buf.getvalue()).v == 1002


def _send_special(conn):
    conn.send(Special(3))


def test_pipe_uses_registered_reducers(special_reducer):
    r, w = multiprocessing.Pipe(duplex=False)
    p = multiprocessing.Process(target=_send_special, args=(w,))
    p.start()
    assert r.poll(10)
    assert r.recv().v == 1003
    p.join(10)
    assert p.exitcode == 0


QUEUE_KINDS = ("Queue", "SimpleQueue", "JoinableQueue")


def _get(q):
    return q.get() if isinstance(q, type(multiprocessing.SimpleQueue())) else q.get(timeout=10)


def _put_special_in_a_worker(q, v):
    q.put(Special(v))


@pytest.mark.parametrize("kind", QUEUE_KINDS)
def test_queue_uses_registered_reducers(special_reducer, kind):
    q = getattr(multiprocessing, kind)()
    q.put(Special(4))
    assert _get(q).v == 1004
    p = multiprocessing.Process(target=_put_special_in_a_worker, args=(q, 5))
    p.start()
    got = _get(q)
    p.join(10)
    assert got.v == 1005 and p.exitcode == 0
    q.close()


@pytest.mark.parametrize("kind", QUEUE_KINDS)
def test_queue_without_the_reducer_refuses_the_object(kind, capsys):
    q = getattr(multiprocessing, kind)()
    if kind == "SimpleQueue":
        with pytest.raises(TypeError, match="plain pickling refused"):
            q.put(Special(1))
    else:  # dropped and reported, as by stdlib's feeder thread
        q.put(Special(1))
        assert "TypeError: Special: plain pickling refused" in capsys.readouterr().err
    q.put({1, 2})  # the queue's pickler still works after the error (a set is pickled)
    assert _get(q) == {1, 2}
    q.close()


def test_queue_sees_reducers_registered_and_replaced_after_use():
    q = multiprocessing.SimpleQueue()
    q.put({1})
    assert q.get() == {1}  # this thread's pickler exists now (a set is pickled)
    try:
        reduction.register(Special, _reduce_special)
        q.put(Special(1))
        assert q.get().v == 1001
        reduction.register(Special, lambda obj: (_rebuild_special, (obj.v + 1,)))
        q.put(Special(1))
        assert q.get().v == 1002
    finally:
        reduction.ForkingPickler._extra_reducers.pop(Special, None)
    with pytest.raises(TypeError, match="plain pickling refused"):
        q.put(Special(1))


def test_queue_reducers_take_precedence_over_copyreg(special_reducer):
    import copyreg

    copyreg.pickle(Special, lambda obj: (_rebuild_special, (obj.v - 1000,)))
    try:
        q = multiprocessing.SimpleQueue()
        q.put(Special(1))
        assert q.get().v == 1001  # ForkingPickler's, as in stdlib
        reduction.ForkingPickler._extra_reducers.pop(Special)
        q.put(Special(1))
        assert q.get().v == 1  # copyreg's, once the registered one is gone
    finally:
        copyreg.dispatch_table.pop(Special, None)


def test_queue_pickles_dict_views_and_sockets_as_stdlib():
    import socket

    import ios_mp.managers  # noqa: F401  (registers the dict view reducers, as stdlib's)

    q = multiprocessing.SimpleQueue()
    q.put({"a": 1, "b": 2}.keys())
    assert q.get() == ["a", "b"]
    a, b = socket.socketpair()
    with a, b:
        q.put(a)
        a2 = q.get()
        with a2:
            assert a2.fileno() != a.fileno()
            a2.sendall(b"x")
            assert b.recv(1) == b"x"
    q.close()


def test_queue_pickler_keeps_no_reference_to_what_it_pickled():
    import weakref

    q = multiprocessing.SimpleQueue()
    o = Special2(1)
    r = weakref.ref(o)
    q.put([o])
    assert q.get()[0] is not o
    del o
    gc.collect()
    assert r() is None


def test_queue_copies_a_large_bytearray_at_put():
    q = multiprocessing.SimpleQueue()
    data = bytearray(b"a" * 200_000)  # past pickle's frame size: written out directly
    q.put([data])
    data[:] = b"b" * 200_000
    got = q.get()[0]
    assert got == bytearray(b"a" * 200_000)
    assert isinstance(got, bytearray)


class _Reentrant:
    q = None

    def __reduce__(self):
        _Reentrant.q.put([Special2(7)])  # a dump inside a dump, on the same thread
        return _Reentrant, ()


class Special2:
    def __init__(self, v):
        self.v = v


def test_queue_dump_inside_a_dump():
    q = multiprocessing.SimpleQueue()
    _Reentrant.q = q
    try:
        q.put([_Reentrant(), Special2(1)])
    finally:
        _Reentrant.q = None
    inner = q.get()
    outer = q.get()
    assert inner[0].v == 7
    assert isinstance(outer[0], _Reentrant) and outer[1].v == 1


def test_exit_function_in_a_worker_is_that_workers_exit_only():
    """CPython's _TestFinalize child calls util._exit_function() then os._exit(0): in
    a real child that runs the child's finalizers and marks the child exiting; here it
    must not run the app's finalizers nor make the app "exiting"."""
    ran = []
    app_side = util.Finalize(None, ran.append, args=("app",), exitpriority=5)
    q = multiprocessing.Queue(copy=False)

    def body():
        util.Finalize(None, ran.append, args=("worker",), exitpriority=1)
        util._exit_function()
        q.put(util.is_exiting())

    p = multiprocessing.Process(target=body)
    p.start()
    assert q.get(timeout=10) is True  # the worker is exiting
    p.join(10)
    assert ran == ["worker"]
    assert util.is_exiting() is False  # the app is not
    assert app_side.still_active()
    app_side.cancel()
