"""multiprocessing.shared_memory under ios_mp: an in-process registry of named blocks."""

from __future__ import annotations

import pickle
import re

import pytest

import ios_mp
from ios_mp import resource_tracker, shared_memory
from ios_mp.shared_memory import ShareableList, SharedMemory

mp = ios_mp


@pytest.fixture
def shm():
    s = SharedMemory(create=True, size=64)
    yield s
    s.close()
    try:
        s.unlink()
    except FileNotFoundError:
        pass


def attach_and_write(name_or_obj, data, q):
    s = SharedMemory(name_or_obj) if isinstance(name_or_obj, str) else name_or_obj
    s.buf[: len(data)] = data
    q.put(bytes(s.buf[len(data) : len(data) + 3]))
    s.close()


def test_module_is_multiprocessing_shared_memory():
    import multiprocessing.shared_memory

    assert multiprocessing.shared_memory is shared_memory


def test_create_names_and_attributes(shm):
    assert re.fullmatch(r"psm_[0-9a-f]{8}", shm.name)
    assert shm._name == "/" + shm.name
    assert shm.size == 64 and len(shm.buf) == 64
    assert not shm.buf.readonly
    assert bytes(shm.buf) == bytes(64)  # zero-filled
    assert repr(shm) == f"SharedMemory({shm.name!r}, size=64)"


def test_named_block_and_leading_slash():
    s = SharedMemory("ios_mp_test_named", create=True, size=10)
    try:
        assert s.name == "ios_mp_test_named" and s._name == "/ios_mp_test_named"
        t = SharedMemory("ios_mp_test_named")
        t.buf[0] = 7
        assert s.buf[0] == 7
        big = SharedMemory("ios_mp_test_named", size=1000)  # size ignored on attach
        assert big.size == 10
        t.close()
        big.close()
    finally:
        s.close()
        s.unlink()


def test_errors_as_stdlib(shm):
    with pytest.raises(FileNotFoundError) as info:
        SharedMemory("ios_mp_no_such_block")
    assert info.value.filename == "/ios_mp_no_such_block"
    with pytest.raises(FileExistsError):
        SharedMemory(shm.name, create=True, size=8)
    with pytest.raises(ValueError, match="'size' must be a positive integer"):
        SharedMemory(create=True, size=-1)
    with pytest.raises(ValueError, match="different from zero"):
        SharedMemory(create=True, size=0)
    with pytest.raises(ValueError, match="'name' can only be None if create=True"):
        SharedMemory()
    with pytest.raises(ValueError, match="embedded null"):
        SharedMemory(shm.name + "\0x")


def test_unlink_twice_is_file_not_found_and_open_handles_keep_memory():
    s = SharedMemory(create=True, size=16)
    t = SharedMemory(s.name)
    s.unlink()
    with pytest.raises(FileNotFoundError):
        s.unlink()
    with pytest.raises(FileNotFoundError):
        SharedMemory(s.name)
    t.buf[0] = 5  # still mapped, as on POSIX
    assert s.buf[0] == 5
    s.close()
    t.close()
    assert s.buf is None
    s.close()  # idempotent


def test_views_made_before_close_stay_usable(shm):
    # A documented difference: stdlib's close() raises BufferError while they live.
    import ctypes

    arr = (ctypes.c_char * 8).from_buffer(shm.buf)
    part = shm.buf[2:4]
    shm.close()
    assert shm.buf is None
    arr[0] = b"q"
    part[0] = 3
    other = SharedMemory(shm.name)
    assert other.buf[0] == ord("q") and other.buf[2] == 3
    other.close()


def test_other_handles_survive_close(shm):
    other = SharedMemory(shm.name)
    other.close()
    shm.buf[1] = 9
    assert shm.buf[1] == 9


def test_pickle_attaches_by_name(shm):
    shm.buf[:3] = b"abc"
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        again = pickle.loads(pickle.dumps(shm, proto))
        assert again is not shm and again.name == shm.name
        assert bytes(again.buf[:3]) == b"abc"
        again.buf[0:1] = b"z"
        assert bytes(shm.buf[:1]) == b"z"
        shm.buf[0:1] = b"a"
        again.close()
    data = pickle.dumps(shm)
    shm.close()
    shm.unlink()
    with pytest.raises(FileNotFoundError):
        pickle.loads(data)


@pytest.mark.parametrize("by_name", [True, False])
def test_workers_attach_and_write(shm, by_name):
    shm.buf[5:8] = b"xyz"
    q = mp.SimpleQueue()
    p = mp.Process(target=attach_and_write, args=(shm.name if by_name else shm, b"hello", q))
    p.start()
    assert q.get() == b"xyz"
    p.join(10)
    assert p.exitcode == 0
    assert bytes(shm.buf[:5]) == b"hello"


def test_make_filename_collision_retries(monkeypatch):
    first = SharedMemory(create=True, size=1)
    names = iter([first._name, "/psm_ios_mp_x"])
    monkeypatch.setattr(shared_memory, "_make_filename", lambda: next(names))
    second = SharedMemory(create=True, size=1)
    try:
        assert second._name == "/psm_ios_mp_x"
    finally:
        for s in (first, second):
            s.close()
            s.unlink()


def test_optional_attach_subclass_flags():
    import os

    class OptionalAttach(SharedMemory):
        _flags = os.O_CREAT | os.O_RDWR

    s = SharedMemory(create=True, size=32)
    try:
        o = OptionalAttach(s.name)
        assert o.size == 32
        o.close()
    finally:
        s.close()
        s.unlink()


def test_track_keyword_accepted():
    s = SharedMemory(create=True, size=4, track=False)
    assert s._track is False
    s.close()
    s.unlink()


def test_shareable_list():
    sl = ShareableList(["howdy", b"HoWdY", -273.154, 100, None, True, 42])
    try:
        assert list(sl) == ["howdy", b"HoWdY", -273.154, 100, None, True, 42]
        assert sl.format == "8s8sdqxxxxxx?xxxxxxxx?q"
        assert sl.shm.name in repr(sl)
        sl[3] = 7
        other = ShareableList(name=sl.shm.name)
        assert other[3] == 7
        other[0] = "hi"
        assert sl[0] == "hi"
        with pytest.raises(IndexError):
            sl[7]
        assert sl.count(7) == 1 and sl.index(42) == 6
        clone = pickle.loads(pickle.dumps(sl))
        clone[6] = 43
        assert sl[6] == 43
        other.shm.close()
        clone.shm.close()
    finally:
        sl.shm.close()
        sl.shm.unlink()


def test_shareable_list_between_workers():
    sl = ShareableList(range(5))
    try:

        def bump(name):
            remote = ShareableList(name=name)
            for i in range(len(remote)):
                remote[i] = remote[i] * 10
            remote.shm.close()

        p = mp.Process(target=bump, args=(sl.shm.name,))
        p.start()
        p.join(10)
        assert p.exitcode == 0
        assert list(sl) == [0, 10, 20, 30, 40]
    finally:
        sl.shm.close()
        sl.shm.unlink()


def test_resource_tracker_is_a_no_op():
    resource_tracker.ensure_running()
    resource_tracker.register("/psm_x", "shared_memory")
    resource_tracker.unregister("/psm_x", "shared_memory")
    with pytest.raises(OSError, match="no resource tracker"):
        resource_tracker.getfd()
