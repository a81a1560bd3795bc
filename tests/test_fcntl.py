"""fcntl.lockf between ios_mp workers (python/ios_mp/_fcntl.py; Ansible hazard 14).

POSIX record locks belong to a process, so without ios_mp's lockf two workers (threads
of one process) both get an exclusive lock at once. These tests check that workers and
the app exclude each other as processes do, and that the app's own threads still do not.
"""

from __future__ import annotations

import errno
import fcntl
import multiprocessing
import threading

import pytest

from ios_mp import _virtual


@pytest.fixture
def lockfile(tmp_path):
    path = tmp_path / "lock"
    path.write_text("")
    return str(path)


def _try_lock(path, mode=fcntl.LOCK_EX):
    """A fresh open() of ``path``, lockf(mode | LOCK_NB): True if taken (then unlocked)."""
    with open(path, "r+") as f:
        try:
            fcntl.lockf(f, mode | fcntl.LOCK_NB)
        except OSError as e:
            assert e.errno in (errno.EAGAIN, errno.EACCES)
            assert isinstance(e, BlockingIOError)
            return False
        fcntl.lockf(f, fcntl.LOCK_UN)
        return True


def _holder(path, mode, locked, release):
    with open(path, "r+") as f:
        fcntl.lockf(f, mode)
        locked.set()
        release.wait(20)
        fcntl.lockf(f, fcntl.LOCK_UN)


def _start_holder(path, mode=fcntl.LOCK_EX):
    locked, release = multiprocessing.Event(), multiprocessing.Event()
    p = multiprocessing.Process(target=_holder, args=(path, mode, locked, release))
    p.start()
    assert locked.wait(10)
    return p, release


def _in_worker(fn, *args):
    q = multiprocessing.Queue(copy=False)
    p = multiprocessing.Process(target=lambda: q.put(fn(*args)))
    p.start()
    got = q.get(timeout=10)
    p.join(10)
    assert p.exitcode == 0
    return got


def test_a_workers_lock_excludes_another_worker_and_the_app(lockfile):
    p, release = _start_holder(lockfile)
    try:
        assert _in_worker(_try_lock, lockfile) is False
        assert _try_lock(lockfile) is False  # the app waits for its child, too
    finally:
        release.set()
        p.join(10)
    assert _in_worker(_try_lock, lockfile) is True
    assert _try_lock(lockfile) is True


def test_the_apps_lock_excludes_workers_but_not_the_apps_threads(lockfile):
    with open(lockfile, "r+") as f:
        fcntl.lockf(f, fcntl.LOCK_EX)
        try:
            assert _in_worker(_try_lock, lockfile) is False
            got = []
            t = threading.Thread(target=lambda: got.append(_try_lock(lockfile)))
            t.start()
            t.join(10)
            assert got == [True]  # one process: its threads share its locks (as stdlib)
        finally:
            fcntl.lockf(f, fcntl.LOCK_UN)
    assert _in_worker(_try_lock, lockfile) is True


def test_shared_locks_share_and_exclude_an_exclusive_one(lockfile):
    p, release = _start_holder(lockfile, fcntl.LOCK_SH)
    try:
        assert _in_worker(_try_lock, lockfile, fcntl.LOCK_SH) is True
        assert _in_worker(_try_lock, lockfile, fcntl.LOCK_EX) is False
    finally:
        release.set()
        p.join(10)


def test_a_blocking_lockf_waits_for_the_holder_and_goes_in_order(lockfile):
    order = multiprocessing.Queue(copy=False)

    def body(i, locked, release):
        with open(lockfile, "r+") as f:
            if i == 0:
                fcntl.lockf(f, fcntl.LOCK_EX)
                order.put("0 in")
                locked.set()
                release.wait(20)
                order.put("0 out")
                fcntl.lockf(f, fcntl.LOCK_UN)
            else:
                locked.wait(20)
                fcntl.lockf(f, fcntl.LOCK_EX)  # blocks until worker 0 unlocks
                order.put("1 in")
                fcntl.lockf(f, fcntl.LOCK_UN)

    locked, release = multiprocessing.Event(), multiprocessing.Event()
    ps = [multiprocessing.Process(target=body, args=(i, locked, release)) for i in range(2)]
    for p in ps:
        p.start()
    assert order.get(timeout=10) == "0 in"
    ps[1].join(0.3)
    assert ps[1].is_alive()  # still waiting for the lock
    release.set()
    assert [order.get(timeout=10), order.get(timeout=10)] == ["0 out", "1 in"]
    for p in ps:
        p.join(10)
        assert p.exitcode == 0


def test_a_worker_that_exits_holding_a_lock_releases_it(lockfile):
    def body():
        f = open(lockfile, "w")  # noqa: SIM115 -- left open on purpose
        fcntl.lockf(f, fcntl.LOCK_EX)
        raise SystemExit(3)

    p = multiprocessing.Process(target=body)
    p.start()
    p.join(10)
    assert p.exitcode == 3
    assert _in_worker(_try_lock, lockfile) is True


def test_terminate_reaches_a_worker_waiting_in_lockf(lockfile):
    holder, release = _start_holder(lockfile)
    try:
        started = multiprocessing.Event()

        def body():
            with open(lockfile, "r+") as f:
                started.set()
                fcntl.lockf(f, fcntl.LOCK_EX)

        p = multiprocessing.Process(target=body)
        p.start()
        assert started.wait(10)
        p.join(0.2)
        assert p.is_alive()
        p.terminate()
        p.join(5)
        assert p.exitcode == -15
    finally:
        release.set()
        holder.join(10)


def test_byte_range_locks_and_bad_arguments_go_to_the_real_lockf(lockfile):
    with open(lockfile, "r+") as f:
        fcntl.lockf(f, fcntl.LOCK_EX, 10, 0, 0)  # a range: straight to the real lockf
        fcntl.lockf(f, fcntl.LOCK_UN, 10, 0, 0)
    real = _virtual._original(fcntl, "lockf")
    for call in (fcntl.lockf, real):
        with pytest.raises(
            TypeError, match=r"^argument must be an int, or have a fileno\(\) method"
        ):
            call(object(), fcntl.LOCK_EX)


def test_without_ios_mp_lockf_workers_do_not_exclude_each_other(lockfile):
    """Why the patch is needed: the real lockf lets a second worker in."""
    real = _virtual._original(fcntl, "lockf")
    assert real is not fcntl.lockf

    def real_try(path):
        with open(path, "r+") as f:
            real(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # succeeds although another holds it
            return True

    locked, release = multiprocessing.Event(), multiprocessing.Event()

    def hold():
        with open(lockfile, "r+") as f:
            real(f, fcntl.LOCK_EX)
            locked.set()
            release.wait(20)

    p = multiprocessing.Process(target=hold)
    p.start()
    try:
        assert locked.wait(10)
        assert _in_worker(real_try, lockfile) is True
    finally:
        release.set()
        p.join(10)
